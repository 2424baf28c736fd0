"""adaptau: normalized-embedding recommenders with an adaptive temperature (Adap-tau, WWW 2023).

The package is one engine with thin commands on top: every CLI command is a call
to a function importable from here or from the submodules (``adaptau_cli.data``,
``adaptau_cli.train``, ``adaptau_cli.evaluate`` ...).
"""

import os as _os

__version__ = "0.1.0"

# OpenMP threads that spin while waiting turn a busy 2-core machine into a
# 10-100x slowdown (measured: a 1 s epoch took 95 s beside another job).
# Passive waiting costs little on a quiet machine; a user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from adaptau_cli.base.errors import AdaptauError, UserError  # noqa: E402

__all__ = ["__version__", "AdaptauError", "UserError"]
