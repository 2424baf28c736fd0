"""The command line: Typer commands over the workflows and the engine."""

from adaptau_cli.cli.app import app, main

__all__ = ["app", "main"]
