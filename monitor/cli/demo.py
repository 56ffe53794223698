"""`newsmon demo`: the whole flow offline on the bundled sample site."""

from __future__ import annotations

import click


@click.command()
@click.option("--port", type=int, default=0, help="Port for the sample site (default: any free one).")
@click.option("--keep-running/--exit", default=True, help="Keep serving the sample site (and the web UI) after ingest.")
@click.option("--web-port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port of the web UI on 127.0.0.1 (another free one if it is taken).")
@click.option("--no-web", is_flag=True, help="Do not serve the web UI.")
def demo(port: int, keep_running: bool, web_port: int, no_web: bool) -> None:
    """Serve the bundled sample news site on 127.0.0.1, ingest it into a demo home, and serve the
    web UI over it (the address is printed)."""
    from monitor.demo import run_demo

    run_demo(port=port, keep_running=keep_running, web=not no_web, web_port=web_port)
