"""The command line: Typer commands over the workflows and the engine.

``app`` (the Typer app) and ``main`` (the console-script entry point) live in
``cli.app``; the commands in ``data_cmds``, ``train_cmds``, ``analysis_cmds``
and ``quickstart_cmd``; their shared options in ``options``; their tables in ``render``.
"""

from adaptau_cli.cli.app import app, main

__all__ = ["app", "main"]
