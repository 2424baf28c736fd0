"""Atomic file writes: temp file in the same folder, fsync, then rename.

A crash or Ctrl-C in the middle of a write never leaves a half-written file at
the destination: readers see either the old file or the complete new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from adaptau_cli.base.errors import UserError


def _reason(exc: OSError, folder: Path) -> str:
    """Why ``folder`` cannot be made: a file in its way is named, else the system's words."""
    for part in (folder, *folder.parents):
        if part.exists():
            return f"{part} is a file, not a folder" if not part.is_dir() else (exc.strerror or str(exc))
    return exc.strerror or str(exc)


def ensure_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create the folder ``path`` (and its parents), or say in one line (UserError) why it cannot be.

    Called before the work starts, by every command that writes, so that a path
    under a file, a read-only mount or a full disk is reported as the user's
    path, not as an internal error after minutes of work.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".adaptau-probe.", delete=True)
        probe.close()
    except OSError as exc:
        raise UserError(f"cannot write the {what} {path}: {_reason(exc, path)}",
                        hint="choose another location, or fix its permissions") from None
    return path


def check_writable_file(dest: str | os.PathLike) -> Path:
    """UserError now, before the work, when ``dest`` could not be written later (its folder is made)."""
    dest = Path(dest)
    if dest.is_dir():
        raise UserError(f"cannot write {dest}: it is a folder", hint="name a file")
    ensure_dir(dest.parent, "output folder")
    return dest


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; rename it over ``dest`` on success."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write {dest}: {_reason(exc, dest.parent)}",
                        hint="choose another location, or fix its permissions") from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    except OSError as exc:
        raise UserError(f"cannot write {dest}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        try:
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
            os.replace(tmp_path, dest)
        except OSError as exc:
            raise UserError(f"cannot write {dest}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(dest: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text(dest: str | os.PathLike, text: str) -> Path:
    return write_bytes(dest, text.encode("utf-8"))


def write_json(dest: str | os.PathLike, obj: Any) -> Path:
    return write_text(dest, json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n")


def write_parquet(dest: str | os.PathLike, frame) -> Path:
    """Write a pandas DataFrame as parquet, deterministically (no pandas index, no timestamps)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata(None)
    with atomic_path(dest) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return Path(dest)


def torch_save(dest: str | os.PathLike, obj: Any) -> Path:
    import torch

    with atomic_path(dest) as tmp:
        torch.save(obj, tmp)
    return Path(dest)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def json_default(obj: Any):
    import numpy as np

    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
