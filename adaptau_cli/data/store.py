"""The dataset store: one parquet folder per prepared dataset, and the fast way back in.

Layout of ``<root>/datasets/<name>-<key>/``::

    train.parquet  valid.parquet  test.parquet   user int32, item int32[, timestamp]
    users.parquet  items.parquet                 index int32, id (original), train interactions
    manifest.json                                source, input sha256, options, statistics, content hash

``<key>`` hashes the input files' sha256 and every option that changes the
content, so the same request finds the same folder and reuses it. A folder is
written under a hidden temporary name and renamed into place in one step:
readers see a complete folder or none. Files are written deterministically
(sorted rows, no wall-clock times, no pandas metadata), so the same inputs
give the same bytes.

Nothing is left behind: one process at a time builds an entry (``entry_lock``,
an exclusive lock on ``.<name>-<key>.lock`` next to it); the temporary folder
``.<name>-<key>.<pid>@<host>.<random>.tmp`` is removed on any failure, Ctrl-C
and SIGTERM included; and a build first sweeps the temporary folders and lock
files of processes that died without cleaning up (``kill -9``, power loss).
An ``OSError`` while writing becomes a ``UserError`` naming the path.

``load_dataset`` is the engine's entry point: it reads five small parquet files
with pyarrow (no parsing, no cleaning) and is many times faster than reading
the original text.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from adaptau_cli.base.errors import UserError
from adaptau_cli.base.locks import exclusive_lock, pid_alive, remove_stale_lock, sigterm_cleanup
from adaptau_cli.data.dataset import SPLITS, Interactions, PreparedDataset

STORE_VERSION = 1
MANIFEST = "manifest.json"
LOCK_WAIT_SECONDS = 3.0                 # how long a second builder of the same entry waits for the first
_STALE_TMP_SECONDS = 24 * 3600          # temp folders of another machine (or of no known owner)
_STALE_OLD_SECONDS = 60
# .<entry>.<pid>@<host>.<random>.tmp|old: who is building it, so that a dead owner's leftovers can go
_OWNED = re.compile(r"^\.(?P<entry>.+)\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]*)\.[A-Za-z0-9_]+\.(?:tmp|old)$")


# ---------------------------------------------------------------------------
# Where
# ---------------------------------------------------------------------------

def store_root(home: str | os.PathLike | None = None) -> Path:
    """The store root: ``home``, else ``$ADAPTAU_HOME``, else the platform cache dir.

    Linux: ``$XDG_CACHE_HOME/adaptau`` or ``~/.cache/adaptau``; macOS:
    ``~/Library/Caches/adaptau``; Windows: ``%LOCALAPPDATA%\\adaptau\\Cache``.
    """
    if home:
        return Path(home).expanduser()
    env = os.environ.get("ADAPTAU_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("adaptau", appauthor=False))


def datasets_dir(root: str | os.PathLike) -> Path:
    return Path(root) / "datasets"


def store_key(payload: dict[str, Any]) -> str:
    """Hex sha256 of a canonical JSON payload (inputs' sha256 + options + store version)."""
    text = json.dumps({"store_version": STORE_VERSION, **payload}, sort_keys=True, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def folder_name(name: str, key: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "dataset"
    return f"{slug[:48]}-{key[:12]}"


def is_complete(folder: Path) -> bool:
    return (folder / MANIFEST).is_file()


def check_root(root: str | os.PathLike) -> Path:
    """``UserError`` naming the path when the store root is, or sits under, a file (nothing is written).

    Run before any work, so that ``ADAPTAU_HOME=/some/file`` fails at once in one line.
    """
    root = Path(root)
    probe = root
    while not probe.exists() and probe != probe.parent and not probe.is_symlink():
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "is a file" if probe == root else f"cannot be created: {probe} is a file"
        raise UserError(f"the dataset store {root} {where}, not a folder",
                        hint="point ADAPTAU_HOME (or --home) at a folder")
    if probe.is_symlink() and not probe.exists():
        raise UserError(f"the dataset store {root} cannot be created: {probe} is a broken symbolic link",
                        hint="fix the link, or point ADAPTAU_HOME (or --home) at a folder")
    return root


def ensure_writable(folder: str | os.PathLike, what: str = "the dataset store") -> Path:
    """Create ``folder`` if needed and check a file can be written in it; else ``UserError`` naming it.

    A real write is tried (not ``os.access``): it also catches read-only mounts,
    and it is right for root, whom permission bits do not stop.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise path_error(exc, folder, what) from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise path_error(OSError(exc.errno, exc.strerror), folder, what) from None
    return folder


def path_error(exc: OSError, path: str | os.PathLike, what: str = "the dataset store",
               verb: str = "write") -> UserError:
    """The one-line ``UserError`` for an ``OSError`` on a path of the user's store (``verb``: write | read)."""
    name = exc.filename if isinstance(exc.filename, str) and exc.filename else str(path)
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "make it writable, or point ADAPTAU_HOME (or --home) at a writable folder" if verb == "write" \
            else "make it readable, or point ADAPTAU_HOME (or --home) elsewhere"
    elif exc.errno == errno.ENOSPC or exc.errno == getattr(errno, "EDQUOT", None):
        hint = "free some disk space, or point ADAPTAU_HOME (or --home) at another disk"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST):
        hint = "a file stands where a folder is needed; move it, or point ADAPTAU_HOME (or --home) elsewhere"
    else:
        hint = "check the folder, or point ADAPTAU_HOME (or --home) elsewhere"
    if name == str(path):
        where = f"{path}: {reason}"
    elif Path(name).parent == Path(path) or Path(path) in Path(name).parents:
        where = f"{path} ({Path(name).relative_to(path)}): {reason}"     # a file inside it
    else:
        where = f"{path}: {name}: {reason}"                             # e.g. a parent folder that cannot be made
    return UserError(f"cannot {verb} {what} at {where}", hint=hint)


def entry_lock(final: str | os.PathLike, wait: float | None = None):
    """The exclusive lock of one store entry (``.<name>-<key>.lock`` next to it) while it is built."""
    final = Path(final)
    return exclusive_lock(final.parent / f".{final.name}.lock", f"the dataset store entry {final}",
                          wait=LOCK_WAIT_SECONDS if wait is None else wait)


# ---------------------------------------------------------------------------
# Write
# ---------------------------------------------------------------------------

def build_atomically(final: Path, write: Callable[[Path], None], replace: bool = True) -> Path:
    """Run ``write(tmp_folder)`` then rename the folder to ``final``.

    With ``replace`` an existing folder is swapped out (``--force``); without
    it, a folder that another process finished meanwhile is kept and ours is
    discarded (both hold the same content). On any failure (including Ctrl-C
    and SIGTERM) the temporary folder is removed, so the store never holds a
    half-written dataset; temporary folders of dead processes are swept first.
    An ``OSError`` becomes a ``UserError`` naming the path. Callers that may
    race on ``final`` hold ``entry_lock(final)`` around the call.
    """
    final = Path(final)
    parent = final.parent
    ensure_writable(parent)
    sweep_leftovers(parent)
    with sigterm_cleanup():
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.{_owner()}.", suffix=".tmp", dir=parent))
        except OSError as exc:
            raise path_error(exc, parent) from None
        try:
            os.chmod(tmp, 0o755)
            write(tmp)
            if final.exists() and replace:
                old = parent / f".{final.name}.{_owner()}.{uuid.uuid4().hex[:8]}.old"
                os.rename(final, old)
                try:
                    os.rename(tmp, final)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.rename(old, final)                  # put the previous entry back
                    raise
                shutil.rmtree(old, ignore_errors=True)
            else:
                try:
                    os.rename(tmp, final)
                except OSError:
                    if not is_complete(final):
                        raise
                    shutil.rmtree(tmp, ignore_errors=True)   # built concurrently by someone else
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            name = exc.filename if isinstance(exc.filename, str) else ""
            if name and Path(name).is_relative_to(tmp):       # name the file as the entry will hold it
                exc = OSError(exc.errno, exc.strerror, str(final / Path(name).relative_to(tmp)))
            raise path_error(exc, final, "the dataset store entry") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def _owner() -> str:
    host = re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname())[:32]
    return f"{os.getpid()}@{host}"


def sweep_leftovers(parent: str | os.PathLike) -> list[Path]:
    """Remove what killed builds left in ``parent``; return what was removed.

    A temporary (``.tmp``) or swapped-out (``.old``) folder goes when its owner
    (the pid in its name) is a dead process of this machine; one of another
    machine, or without an owner in its name, after a day (``.old``: a minute).
    Lock files go when no process holds them. A live build is never touched.
    """
    parent = Path(parent)
    removed: list[Path] = []
    now, me = time.time(), _owner().split("@", 1)
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for p in entries:
        name = p.name
        if not name.startswith("."):
            continue
        with contextlib.suppress(OSError):
            if name.endswith((".tmp", ".old")) and p.is_dir() and not p.is_symlink():
                m = _OWNED.match(name)
                if m and m["host"] == me[1]:
                    stale = int(m["pid"]) != os.getpid() and not pid_alive(int(m["pid"]))
                else:
                    limit = _STALE_OLD_SECONDS if name.endswith(".old") else _STALE_TMP_SECONDS
                    stale = now - p.stat().st_mtime > limit
                if stale:
                    shutil.rmtree(p, ignore_errors=True)
                    removed.append(p)
            elif name.endswith(".lock") and p.is_file() and remove_stale_lock(p):
                removed.append(p)
            elif name.startswith(".write-test.") and now - p.stat().st_mtime > _STALE_OLD_SECONDS:
                p.unlink()
                removed.append(p)
    return removed


def write_table(path: Path, columns: dict[str, np.ndarray | pa.Array]) -> None:
    """Deterministic parquet: fixed schema order, no metadata, fsynced.

    Chosen for load speed (``load_dataset`` is the hot path): sorted or
    monotone integer columns (user, index, timestamp) use delta encoding, which
    shrinks them ~4x and decodes fast; item indices stay PLAIN and nothing
    numeric is compressed (decompression would cost more than reading the
    bytes). Only string id columns are snappy-compressed.
    """
    table = pa.table({k: (v if isinstance(v, pa.Array) else pa.array(v)) for k, v in columns.items()})
    table = table.replace_schema_metadata(None)
    encoding, compression = {}, {}
    for f in table.schema:
        numeric = pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
        compression[f.name] = "none" if numeric else "snappy"
        if pa.types.is_integer(f.type):
            encoding[f.name] = "PLAIN" if f.name in ("item",) else "DELTA_BINARY_PACKED"
    pq.write_table(table, path, compression=compression, write_statistics=False, use_dictionary=False,
                   column_encoding=encoding or None)
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def write_json_file(path: Path, obj: Any) -> None:
    from adaptau_cli.base.files import json_default

    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n", encoding="utf-8")


def id_array(ids: np.ndarray) -> pa.Array:
    """Original ids as int64 or utf8 (never an object column)."""
    ids = np.asarray(ids)
    if ids.dtype.kind in "iu":
        return pa.array(ids.astype(np.int64))
    return pa.array(ids.astype(str).astype(object), type=pa.string())


def write_dataset_files(folder: Path, splits: dict[str, Interactions], user_ids: np.ndarray,
                        item_ids: np.ndarray, manifest: dict[str, Any]) -> None:
    """Everything but the atomic rename: split tables, id maps, manifest (last)."""
    n_users, n_items = int(user_ids.shape[0]), int(item_ids.shape[0])
    for name in SPLITS:
        s = splits[name]
        cols: dict[str, Any] = {"user": np.ascontiguousarray(s.users, np.int32),
                                "item": np.ascontiguousarray(s.items, np.int32)}
        if s.timestamps is not None:
            cols["timestamp"] = np.asarray(s.timestamps)
        write_table(folder / f"{name}.parquet", cols)
    train = splits["train"]
    write_table(folder / "users.parquet", {
        "index": np.arange(n_users, dtype=np.int32), "id": id_array(user_ids),
        "train_interactions": np.bincount(train.users, minlength=n_users).astype(np.int64)})
    write_table(folder / "items.parquet", {
        "index": np.arange(n_items, dtype=np.int32), "id": id_array(item_ids),
        "popularity": np.bincount(train.items, minlength=n_items).astype(np.int64)})
    write_json_file(folder / MANIFEST, manifest)


# ---------------------------------------------------------------------------
# Read
# ---------------------------------------------------------------------------

def load_dataset(path: str | os.PathLike) -> PreparedDataset:
    """Load a prepared store folder (or its manifest.json) into a ``PreparedDataset``."""
    folder = Path(path).expanduser()
    if folder.name == MANIFEST and folder.is_file():
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(f"prepared dataset not found: {folder}", hint="run `adaptau preprocess` first")
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise UserError(f"{folder} is not a prepared dataset (no {MANIFEST})",
                        hint="point at a folder made by `adaptau preprocess`")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise TypeError(f"{MANIFEST} holds no JSON object")
        if manifest.get("store_version") != STORE_VERSION:
            raise UserError(f"{folder} was written by an incompatible adaptau (store version "
                            f"{manifest.get('store_version')}, expected {STORE_VERSION})",
                            hint="rerun `adaptau preprocess ... --force`")
        splits = {}
        for name in SPLITS:
            table = pq.ParquetFile(folder / f"{name}.parquet").read()
            ts = _np(table.column("timestamp")) if "timestamp" in table.column_names else None
            splits[name] = Interactions(users=_np(table.column("user")), items=_np(table.column("item")),
                                        timestamps=ts)
        user_ids = _ids(pq.ParquetFile(folder / "users.parquet").read(columns=["id"]).column("id"))
        item_ids = _ids(pq.ParquetFile(folder / "items.parquet").read(columns=["id"]).column("id"))
        ds = PreparedDataset(name=manifest.get("name", folder.name), n_users=int(manifest["n_users"]),
                             n_items=int(manifest["n_items"]), splits=splits, user_ids=user_ids,
                             item_ids=item_ids, manifest=manifest, path=folder)
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        raise UserError(f"{folder}: damaged dataset store ({type(exc).__name__}: {exc})",
                        hint="rebuild it with `adaptau preprocess ... --force`") from None
    return ds


def _np(col: pa.ChunkedArray) -> np.ndarray:
    """A numeric column as a writable numpy array, straight from its data buffer.

    Not ``to_numpy()``: that would import pandas (a quarter second of every
    command's start-up) and return a read-only view. The copy costs ~0.1 ms
    per million values and lets callers modify or hand arrays to torch freely.
    """
    arr = col.combine_chunks()
    if arr.null_count == 0 and (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
        dtype = np.dtype(arr.type.to_pandas_dtype())
        if len(arr) == 0 or arr.buffers()[1] is None:
            return np.zeros(0, dtype=dtype)
        return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr),
                             offset=arr.offset * dtype.itemsize).copy()
    return arr.to_numpy(zero_copy_only=False)


def _ids(col: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_integer(col.type):
        return _np(col)
    return np.asarray(col.combine_chunks().to_numpy(zero_copy_only=False), dtype=object)


def read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def list_prepared(root: str | os.PathLike) -> list[dict[str, Any]]:
    """Every complete store folder under ``root`` with a short summary from its manifest."""
    base = datasets_dir(root)
    out = []
    if not base.is_dir():
        return out
    try:
        folders = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise path_error(exc, base, verb="read") from None
    for folder in folders:
        manifest = read_manifest(folder)
        if not isinstance(manifest, dict):
            continue
        stats = manifest.get("stats", {})
        out.append({
            "name": manifest.get("name"),
            "path": str(folder),
            "source": (manifest.get("source") or {}).get("dataset") or (manifest.get("source") or {}).get("path"),
            "split": (manifest.get("options") or {}).get("split"),
            "n_users": manifest.get("n_users"),
            "n_items": manifest.get("n_items"),
            "interactions": {k: stats.get(k, {}).get("interactions") for k in SPLITS},
            "content_hash": manifest.get("content_hash"),
            "bytes": _folder_bytes(folder),
        })
    return out


def _folder_bytes(folder: Path) -> int:
    try:
        return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    except OSError:
        return 0


def find_by_content_hash(home: str | os.PathLike | None, content_hash: str) -> PreparedDataset | None:
    """The prepared dataset in the store whose content hash is ``content_hash``, loaded; else ``None``.

    ``home`` is the store root as ``store_root`` takes it (``None``: ``$ADAPTAU_HOME``
    or the platform cache dir). Scans every complete entry's manifest.json: a
    missing, unreadable or corrupt manifest, an entry of another store version,
    or an entry whose files do not load or no longer hash to ``content_hash``
    is skipped. Reads nothing but the store (never the original source), so a
    run's dataset opens even when its source file was moved or deleted.
    """
    if not content_hash:
        return None
    base = datasets_dir(store_root(home))
    try:
        folders = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return None
    for folder in folders:
        manifest = read_manifest(folder)
        if not isinstance(manifest, dict) or manifest.get("content_hash") != content_hash \
                or manifest.get("store_version") != STORE_VERSION:
            continue
        try:
            ds = load_dataset(folder)
        except (UserError, ValueError, TypeError, KeyError):
            continue
        if ds.fingerprint == content_hash:
            return ds
    return None
