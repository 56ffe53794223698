"""The `newsmon` command line: thin commands that parse arguments, call the library and print."""

from monitor.cli.main import cli, main

__all__ = ["cli", "main"]
