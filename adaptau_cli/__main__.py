"""``python -m adaptau_cli`` runs the same app as the ``adaptau`` console script."""

from adaptau_cli.cli.app import main

if __name__ == "__main__":
    main()
