"""Temporary: the errors now live in adaptau_cli.base.errors (removed once every importer moved)."""

from adaptau_cli.base.errors import *  # noqa: F401,F403
from adaptau_cli.base.errors import DataError, UserError  # noqa: F401
