"""CLI start-up: `newsmon search` and `newsmon --help` cold, against bare Python doing the same work.

Ratios measured in one run (medians of --repeat runs, wall and CPU of each child process):

- `newsmon search QUERY` vs `python -c` that opens the same index and runs the same query
  (goal <= 3x);
- `newsmon --help` vs `python -c "import click"` (a bare interpreter plus click; goal <= 2x),
  with `python -c pass` printed too;

then the import costs of `newsmon search` (`python -X importtime`, cumulative per top-level
package, own time of its modules) and whether the heavy packages (SQLAlchemy, alembic, datasketch, scipy, numpy) load.

    .venv/bin/python benchmarks/cli_startup.py [--repeat 15] [--docs 2000]
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HEAVY = ("sqlalchemy", "alembic", "datasketch", "scipy", "numpy", "trafilatura", "httpx", "yaml")
QUERY = "nato summit"


def newsmon_cmd() -> list[str]:
    script = Path(sys.executable).with_name("newsmon")
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor.cli"]


def run_timed(cmd: list[str], env: dict[str, str], repeat: int) -> tuple[float, float]:
    """Median wall and median CPU (user + system) seconds of `cmd` as a fresh process."""
    walls, cpus = [], []
    subprocess.run(cmd, env=env, capture_output=True, check=True)  # warm the page cache once
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, env=env, capture_output=True, check=True)
        walls.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def import_costs(cmd: list[str], env: dict[str, str]) -> tuple[list[tuple[str, int]], set[str], int]:
    """(top-level packages by the sum of their modules' own import µs, heavy packages loaded, total µs)."""
    out = subprocess.run(cmd, env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, capture_output=True, text=True, check=True)
    per_top: dict[str, int] = {}
    loaded: set[str] = set()
    total = 0
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, _, name = (p.strip() for p in line[len("import time:"):].split("|"))
        top = name.split(".")[0]
        if top in HEAVY:
            loaded.add(top)
        per_top[top] = per_top.get(top, 0) + int(own)
        total += int(own)
    return sorted(per_top.items(), key=lambda kv: -kv[1]), loaded, total


def make_home(home: Path, docs: int) -> str:
    """An index with `docs` articles where `newsmon search` looks for it (the default SEARCH_URL)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("search_bench", Path(__file__).with_name("search_bench.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    make_docs = bench.make_docs
    from monitor.config.settings import Settings
    from search import open_backend

    settings = Settings.from_env({"NEWSMON_HOME": str(home)})
    be = open_backend(settings.search_url)
    be.setup()
    be.reindex(make_docs(docs, 300))
    be.close()
    return settings.search_url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--docs", type=int, default=2000, help="articles in the index searched (default 2000)")
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="cli-startup-"))
    try:
        url = make_home(home, args.docs)
        env = {k: v for k, v in os.environ.items() if k not in ("SEARCH_URL", "DATABASE_URL", "NEWSMON_FEEDS")}
        env.update(NEWSMON_HOME=str(home), PYTHONPATH=str(ROOT))
        py = sys.executable
        bare_search = [py, "-c", "from search import open_backend, SearchQuery; "
                                 f"b = open_backend({url!r}); b.setup(); print(b.search(SearchQuery(text={QUERY!r})).total)"]
        rows = {
            "python -c pass": [py, "-c", "pass"],
            "python -c 'import click'": [py, "-c", "import click"],
            "newsmon --help": newsmon_cmd() + ["--help"],
            "bare python: open index + search": bare_search,
            f"newsmon search {QUERY!r}": newsmon_cmd() + ["search", QUERY],
        }
        print(f"cold start, median of {args.repeat} runs each, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
              f"index: {url} ({args.docs:,} articles)")
        res = {}
        for label, cmd in rows.items():
            res[label] = run_timed(cmd, env, args.repeat)
            print(f"  {label:<36} wall {res[label][0] * 1000:7.1f} ms   cpu {res[label][1] * 1000:7.1f} ms")
        sw, sc = res[f"newsmon search {QUERY!r}"]
        bw, bc = res["bare python: open index + search"]
        hw, hc = res["newsmon --help"]
        cw, cc = res["python -c 'import click'"]
        print(f"newsmon search / bare python search:  wall {sw / bw:.2f}x  cpu {sc / bc:.2f}x   (goal <= 3x)")
        print(f"newsmon --help / python + click:      wall {hw / cw:.2f}x  cpu {hc / cc:.2f}x   (goal <= 2x)")

        for label in (f"newsmon search {QUERY!r}", "newsmon --help"):
            costs, loaded, total = import_costs(rows[label], env)
            print(f"\nimports of `{label}` (python -X importtime, own time summed per top-level package): {total / 1000:.0f} ms in all")
            for name, us in costs[:14]:
                print(f"  {name:<28} {us / 1000:7.1f} ms")
            print(f"  heavy packages loaded: {', '.join(sorted(loaded)) or 'none'} (checked: {', '.join(HEAVY)})")
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
