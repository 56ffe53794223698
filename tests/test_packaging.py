"""Declared dependencies and pinned versions agree with what the code imports and what installs use."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
# Import name -> distribution name, where they differ.
DISTRIBUTION = {"yaml": "pyyaml", "sqlalchemy": "sqlalchemy", "psycopg": "psycopg"}


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _declared(*extras: str) -> set[str]:
    reqs = list(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        reqs += PYPROJECT["project"]["optional-dependencies"][extra]
    return {_name(r) for r in reqs}


def _third_party_imports(*folders: str) -> set[str]:
    found = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            if "data" in path.relative_to(ROOT).parts:  # fixture generators: standard library only
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in ("monitor", "search", "tests"):
                        found.add(DISTRIBUTION.get(top, top).lower().replace("_", "-"))
    return found


def test_the_package_declares_everything_it_imports():
    missing = _third_party_imports("monitor", "search") - _declared()
    assert not missing, f"imported by monitor/ or search/ but not in [project.dependencies]: {sorted(missing)}"


def test_tests_and_benchmarks_need_only_declared_packages():
    missing = _third_party_imports("tests", "benchmarks") - _declared("test")
    assert not missing, f"imported by tests/ or benchmarks/ but not declared (add to the test extra): {sorted(missing)}"


def test_constraints_pin_every_declared_dependency():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pins[name.lower().replace("_", "-")] = version
    assert "newsmon" not in pins
    unpinned = _declared("test", "postgres") - set(pins)
    assert not unpinned, f"declared but not pinned in constraints.txt (regenerate it, see README): {sorted(unpinned)}"


def test_every_install_path_uses_the_constraints():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    installs = [line for line in readme.splitlines() if line.startswith("python3 -m venv")]
    assert len(installs) == 2 and all("-c constraints.txt" in line for line in installs), installs
    test_command = next(line for line in installs if "pytest" in line)
    assert test_command in ci.splitlines(), ".ci/run must run the README's test command exactly"
    assert all("-c constraints.txt" in line for line in dockerfile.splitlines() if "pip install" in line)


def test_the_packaged_demo_site_is_data_only():
    """pyproject ships monitor/demo/site/**: its generator lives in tests/data and must not creep back."""
    site = ROOT / "monitor" / "demo" / "site"
    assert not list(site.rglob("*.py")), "the site generator belongs in tests/data/make_site.py"
    assert (site / "README.md").is_file() and (site / "LICENSE-extraction-benchmark").is_file()
    assert (ROOT / "tests" / "data" / "site").resolve() == site.resolve()  # one copy of the generated site
