"""`python -m monitor.cli` runs the newsmon command line."""

from monitor.cli.main import main

main()
