"""``adaptau train --nproc N``: the same command under torch's own launcher (``torch.distributed.run``).

No process management of ours: this builds the argument list ``torchrun`` would
get (``--standalone --nproc-per-node N -m adaptau_cli <the command without
--nproc>``) and calls the launcher in this process; the ranks run the ordinary
command, and ``engine.distributed`` does the rest. A failed rank ends the group
(torchrun stops the others, no hang); rank 0 printed its one-line error, and this
returns the failed rank's exit code (2 for a user error) without the launcher's
traceback report.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Sequence

from adaptau_cli.base.errors import EXIT_INTERNAL, UserError


def without_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``--nproc N`` / ``--nproc=N`` removed (the ranks run one process each)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``adaptau <argv>`` as ``nproc`` ranks on this machine; the group's exit code."""
    if nproc < 1:
        raise UserError(f"--nproc must be >= 1, got {nproc}")
    if os.environ.get("WORLD_SIZE"):
        raise UserError("--nproc inside a torchrun group", hint="let torchrun start the processes, or drop --nproc")
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    # torchrun's own default, said here so that it does not print a warning about it
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    args = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}", "--module", "adaptau_cli",
                                         *without_nproc(argv)])
    try:
        run(args)
    except ChildFailedError as exc:
        codes = [f.exitcode for f in exc.failures.values() if f.exitcode not in (None, 0)]
        return codes[0] if codes and codes[0] > 0 else EXIT_INTERNAL
    return 0


def command_line() -> list[str]:
    """The arguments this ``adaptau`` process was started with (after the program name)."""
    return list(sys.argv[1:])
