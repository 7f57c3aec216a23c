"""``python -m privval`` runs the command line."""

from privval.cli import main

main()
