"""Checkpoint files: what a run saves each epoch, and how it is read back without running code.

A checkpoint is a dict of tensors and plain data only (numbers, strings,
None, lists, tuples, dicts): model and optimizer state, every RNG state, the τ
state, early stopping, the history. It is read with ``torch.load(...,
weights_only=True)``, whose restricted unpickler refuses any other Python
object — a crafted ``checkpoint-last.pt`` whose pickle calls ``os.system``
is refused before anything runs (sharing run directories is a normal
workflow). ``plain`` turns numpy values into that vocabulary before saving.

Checkpoints written before this (same format name) held a few numpy arrays
and scalars (the numpy RNG state, metric values). Those are still read, with
only numpy's array and scalar reconstruction allowed in addition: that
rebuilds plain arrays from bytes and calls nothing else.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adaptau_cli.base import files as io
from adaptau_cli.base.errors import UserError

CHECKPOINT_FORMAT = "adaptau-checkpoint/1"
LAST = "checkpoint-last.pt"   # the latest epoch: what --resume continues from
BEST = "checkpoint-best.pt"   # the selected epoch


def plain(obj: Any) -> Any:
    """``obj`` with numpy scalars and arrays replaced by Python numbers and tensors (recursively)."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(plain(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def save(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically, as plain data (see ``plain``)."""
    return io.torch_save(path, plain(state))


def _legacy_numpy_globals() -> list:
    """numpy's array/scalar reconstruction, which checkpoints of adaptau <= 0.1 pickled."""
    core = getattr(np, "_core", None) or np.core
    names = [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        names += [getattr(dtypes, n) for n in ("UInt32DType", "Int64DType", "Int32DType", "Float64DType",
                                               "Float32DType", "BoolDType") if hasattr(dtypes, n)]
    return names


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read an adaptau checkpoint; anything that is not one ends in a one-line UserError."""
    path = Path(path)
    try:
        with torch.serialization.safe_globals(_legacy_numpy_globals()):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"unsupported (?:global: )?GLOBAL ([\w.]+)", str(exc), flags=re.IGNORECASE)
        if not found:
            raise UserError(f"{path}: not a readable adaptau checkpoint (not a torch checkpoint, "
                            "or a truncated one)") from None
        what = f" ({found.group(1)})"
        raise UserError(f"{path}: refused to load: it holds Python objects beyond tensors and plain data{what}, "
                        "which could run code",
                        hint="only load checkpoints written by adaptau; this file was not, or was altered") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the checkpoint ({exc.strerror or exc})") from None
    except Exception as exc:  # truncated, corrupt or not a torch file
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise UserError(f"{path}: not a readable adaptau checkpoint ({type(exc).__name__}: {first})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not an adaptau checkpoint")
    return ckpt


def numpy_rng_state() -> dict[str, Any]:
    """numpy's global RNG state as plain data (the legacy tuple held an ndarray)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def set_numpy_rng_state(state: Any) -> None:
    """Restore numpy's global RNG from ``numpy_rng_state()`` or from the legacy tuple."""
    if isinstance(state, dict):
        keys = state["keys"].numpy() if isinstance(state["keys"], torch.Tensor) else np.asarray(state["keys"])
        state = (state["kind"], keys.astype(np.uint32), state["pos"], state["has_gauss"], state["cached_gaussian"])
    np.random.set_state(state)
