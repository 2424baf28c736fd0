"""Run the real console entry point (with its error handling) the way a user's shell would."""

from __future__ import annotations

import sys

from typer.testing import CliRunner

from adaptau_cli.cli.app import main


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """``adaptau ARGS`` inside CliRunner's isolation: (exit code, stdout, stderr)."""
    runner = CliRunner()
    with runner.isolation() as streams:
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        sys.stdout.flush()
        sys.stderr.flush()
        out, err = streams[0].getvalue().decode(), streams[1].getvalue().decode()
    return code, out, err
