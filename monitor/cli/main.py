"""The `newsmon` command group. Commands live one group per module and load only when called.

Exit codes: 0 success (an ingest pass that ran is a success even if some feeds failed),
1 runtime failure, 2 usage, bad configuration, bad query or database errors.
"""

from __future__ import annotations

import importlib
import logging

import click

from monitor import __version__

# name -> "module:attribute". Importing a command's module only when it runs keeps
# `newsmon --help` and `newsmon search` free of the pipeline's heavy imports.
COMMANDS: dict[str, str] = {
    "ingest": "monitor.cli.ingest:ingest",
    "run": "monitor.cli.ingest:run",
    "search": "monitor.cli.search:search",
    "index": "monitor.cli.search:index_cmd",
    "reindex": "monitor.cli.search:reindex",
    "extract": "monitor.cli.extract:extract",
    "feeds": "monitor.cli.feeds:feeds",
    "status": "monitor.cli.status:status",
    "story": "monitor.cli.stories:story",
    "recluster": "monitor.cli.stories:recluster",
    "cluster": "monitor.cli.stories:cluster",
    "demo": "monitor.cli.demo:demo",
    "digest": "monitor.cli.digest:digest",
    "doctor": "monitor.cli.doctor:doctor",
    "prune": "monitor.cli.prune:prune",
}

# One-line help shown by `newsmon --help` without importing every command module.
SHORT_HELP: dict[str, str] = {
    "ingest": "Fetch every feed once, store new articles and update the search index.",
    "run": "Run the scheduler headless until stopped.",
    "search": "Search stored articles.",
    "index": "Send pending articles (the outbox) to the search index now.",
    "reindex": "Rebuild the search index from the database and swap it in.",
    "extract": "Extract the article text and metadata of one page.",
    "feeds": "List, add, remove, import and export feeds.",
    "status": "Feed health, article counts and search-index lag.",
    "story": "Show a story: its articles and why each is grouped there.",
    "recluster": "Recompute duplicates and stories with the current settings.",
    "cluster": "Dedup and story-cluster a JSONL file offline (no database).",
    "demo": "The whole flow offline on the bundled sample news site.",
    "digest": "Saved searches and daily digest e-mails: subscribe, list, preview, send.",
    "doctor": "Check configuration, database, migrations, search backend and SMTP.",
    "prune": "Clear raw page HTML and fetch attempts past their retention.",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SHORT_HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="newsmon")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """newsmon: media monitoring for foreign-policy research.

    Pulls RSS/Atom feeds, fetches and extracts the articles, groups copies and write-ups of one
    story, and indexes everything for search. Configuration comes from the environment
    (NEWSMON_HOME, DATABASE_URL, SEARCH_URL, NEWSMON_ALLOW_HOSTS, NEWSMON_FEEDS) and feeds.yaml.
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main() -> None:
    cli(prog_name="newsmon")
