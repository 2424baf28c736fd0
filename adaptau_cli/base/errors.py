"""User-facing error types and the exit codes they map to.

A ``UserError`` is a mistake the user can fix (bad file, bad option, wrong
checkpoint): the CLI prints its one-line message and exits with code 2, never a
traceback. Anything else escaping the engine is an internal failure (exit 1).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USER = 2


class AdaptauError(Exception):
    """Base class for errors the CLI knows how to report in one line."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message the user sees: what went wrong, and how to fix it."""
        text = self.message.strip().replace("\n", " ")
        if self.hint:
            text += f" (hint: {self.hint.strip()})"
        return text


class UserError(AdaptauError):
    """Bad input or options: missing file, malformed line, contradictory flags ..."""

    exit_code = EXIT_USER


class DataError(UserError):
    """The data itself is unusable (malformed, empty after filtering, wrong ids)."""


class TrainingDiverged(AdaptauError):
    """The loss became NaN/inf or tau ran away; the last good checkpoint is kept."""

    exit_code = EXIT_USER
