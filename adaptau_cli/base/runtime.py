"""Where tensors live: the device a command asked for, checked once."""

from __future__ import annotations

import torch

from adaptau_cli.base.errors import UserError


def resolve_device(device: str) -> str:
    """``auto`` -> cuda when available, else cpu; anything else is passed through (validated)."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device!r} asked for, but no CUDA device is available", hint="use --device cpu")
    if device not in ("cpu",) and not device.startswith("cuda") and device != "mps":
        raise UserError(f"unknown device {device!r} (expected auto, cpu or cuda)")
    return device
