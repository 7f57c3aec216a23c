"""``python -m privval`` runs the command line."""

from privval.cli import main

if __name__ == "__main__":
    main()
