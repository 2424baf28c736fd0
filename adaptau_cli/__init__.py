"""adaptau: normalized-embedding recommenders with an adaptive temperature (Adap-tau, WWW 2023).

The package is one engine with thin commands on top: every CLI command is a call
to a function importable from here or from the submodules (``adaptau_cli.data``,
``adaptau_cli.train``, ``adaptau_cli.evaluate`` ...).
"""

__version__ = "0.1.0"

from adaptau_cli.errors import AdaptauError, UserError  # noqa: E402

__all__ = ["__version__", "AdaptauError", "UserError"]
