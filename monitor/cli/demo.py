"""`newsmon demo`: the whole flow offline on the bundled sample site."""

from __future__ import annotations

import click


@click.command()
@click.option("--port", type=int, default=0, help="Port for the sample site (default: any free one).")
@click.option("--keep-running/--exit", default=True, help="Keep serving the sample site after ingest.")
def demo(port: int, keep_running: bool) -> None:
    """Serve the bundled sample news site on 127.0.0.1, ingest it into a demo home and search it."""
    from monitor.demo import run_demo

    run_demo(port=port, keep_running=keep_running)
