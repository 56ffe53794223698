"""The default Tantivy index has one writer: `newsmon index`/`ingest`/`reindex` beside a process that
holds it (as `newsmon run` does) wait briefly and report, keep the outbox, and never corrupt."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from click.testing import CliRunner

from monitor.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _feeds(tmp_path: Path, base: str) -> str:
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n" + "".join(f"  - url: {base}/{n}\n" for n in ("natowatch.rss", "ukraineaid.atom")))
    return str(path)


def _writer_process(url: str) -> subprocess.Popen:
    """A process that takes the index writer and keeps it, like `newsmon run` after its first drain."""
    code = textwrap.dedent(f"""
        import sys
        from search import SearchDocument, open_backend
        be = open_backend({url!r})
        be.upsert([SearchDocument(id="900001", url="https://x.org/1", title="Writer holder", text="t", source="x.org")])
        print("holding", flush=True)
        for line in sys.stdin:
            if line.strip() == "write":
                be.upsert([SearchDocument(id="900002", url="https://x.org/2", title="Second write", text="t", source="x.org")])
                print("wrote", flush=True)
            else:
                break
        be.close()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_index_waits_reports_and_keeps_outbox_while_another_process_writes(site_server, newsmon_env, tmp_path):
    assert newsmon_env["SEARCH_URL"].startswith("tantivy:")  # the default embedded backend
    holder = _writer_process(newsmon_env["SEARCH_URL"])
    try:
        ingest = invoke("ingest", "--once", "--no-progress", "--feeds", _feeds(tmp_path, site_server.base), "--json")
        assert ingest.exit_code == 0, ingest.output  # storing never depends on the index
        summary = json.loads(ingest.output.strip().splitlines()[-1])
        assert summary["new_articles"] > 0 and "writer in another process" in summary["index"]["error"]

        busy = invoke("index")
        assert busy.exit_code == 1
        assert "writer in another process" in busy.output and "Traceback" not in busy.output
        status = json.loads(invoke("status", "--json").output)
        assert status["index"]["outbox_pending"] == summary["new_articles"]
        assert invoke("search", "--json").exit_code == 0  # readers are never blocked

        rebuilt = invoke("reindex", "--no-progress")  # builds a new generation beside the writer
        assert rebuilt.exit_code == 0, rebuilt.output
        holder.stdin.write("write\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "wrote"  # the holder followed the swap
    finally:
        holder.communicate("stop\n", timeout=60)
    assert holder.returncode == 0

    drained = invoke("index")  # the writer is free: the queue drains
    assert drained.exit_code == 0, drained.output
    status = json.loads(invoke("status", "--json").output)
    assert status["index"]["outbox_pending"] == 0
    # every stored article, plus the holder's second document written after the swap
    assert status["index"]["documents"] == status["articles"] + 1
    total = json.loads(invoke("search", "--json", "--limit", "1000").output)["total"]
    assert total == status["articles"] + 1
