"""``adaptau preprocess`` as one engine call: resolve the input, clean, split, store, reuse.

``prepare_dataset(cfg)`` is what every command that names a dataset calls. It
is cheap when the dataset was prepared before: it resolves the input files,
hashes them together with the options into the store key, and loads the
existing folder. Only a new key (or ``force``) reads and cleans the raw data.

A build holds the entry's lock (``store.entry_lock``): a second process asking
for the same entry waits a few seconds and then reuses what the first built, or
is told which pid is building it. A store root that is a file fails before any
work; one that cannot be written fails before the raw data is read (reusing a
prepared dataset from a read-only store still works).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from adaptau_cli import __version__
from adaptau_cli.base.errors import UserError
from adaptau_cli.base.files import sha256_file
from adaptau_cli.base.locks import sigterm_cleanup
from adaptau_cli.base.settings import PreprocessConfig, to_dict
from adaptau_cli.data import readers, registry, split, store, synthetic
from adaptau_cli.data.dataset import SPLITS, Interactions, PreparedDataset

# Options that say where things are, not what the data is: left out of the store key.
_LOCATION_OPTIONS = ("mirror", "home", "source")


@dataclasses.dataclass
class PrepareResult:
    dataset: PreparedDataset
    path: Path
    reused: bool
    seconds: float


@dataclasses.dataclass
class _Input:
    """A resolved request: what to read and how it is identified."""

    name: str
    kind: str                                # registry | synthetic | path
    format: str
    files: dict[str, Path]
    given_split: bool
    has_valid_file: bool
    fingerprints: list[dict[str, Any]]       # [{role, name, sha256, bytes}] or the generator's spec hash


def prepare_dataset(cfg: PreprocessConfig, force: bool = False, quiet: bool = True) -> PreparedDataset:
    """Prepare (or reuse) the dataset ``cfg`` describes and return it loaded."""
    return prepare(cfg, force=force, quiet=quiet).dataset


def prepare(cfg: PreprocessConfig, force: bool = False, quiet: bool = True) -> PrepareResult:
    """Like ``prepare_dataset``, also saying where the store is and whether it was reused."""
    start = time.perf_counter()
    root = store.check_root(store.store_root(cfg.home))
    _check_options(cfg)
    ratios = split.parse_ratios(cfg.ratios)
    inp = _resolve_input(cfg, root, quiet)
    method = split.resolve_split(cfg.split, inp.given_split, inp.has_valid_file, float(cfg.valid_ratio))
    options = effective_options(cfg, inp.format, method, ratios)
    key = store.store_key(_key_payload(inp, options))
    final = store.datasets_dir(root) / store.folder_name(inp.name, key)

    if store.is_complete(final) and not force:
        return _reuse(final, start, quiet)

    store.ensure_writable(final.parent)
    with sigterm_cleanup(), store.entry_lock(final):
        if store.is_complete(final) and not force:      # built by another process while we waited
            return _reuse(final, start, quiet)
        with _status(f"preparing {inp.name} ...", quiet):
            raw = _read(inp, cfg)
            pool = split.build_pool(raw, cfg.min_rating, int(cfg.user_core), int(cfg.item_core))
            result = split.split_pool(pool, method, ratios, float(cfg.valid_ratio), int(cfg.seed),
                                      drop_cold=bool(cfg.drop_cold))
            ds = PreparedDataset(name=inp.name, n_users=result.n_users, n_items=result.n_items,
                                 splits=result.splits, user_ids=result.user_ids, item_ids=result.item_ids)
            manifest = build_manifest(inp, options, key, result, ds)
            ds.manifest = manifest
            store.build_atomically(final, lambda tmp: store.write_dataset_files(
                tmp, result.splits, result.user_ids, result.item_ids, manifest), replace=force or final.exists())
    ds.path = final
    if result.counts.get("cold_dropped"):
        from adaptau_cli.base.console import info

        info("{name}: dropped " + _count(result.counts["cold_dropped"], "valid/test interaction")
             + " whose item never occurs in training (--drop-cold)", quiet, name=inp.name)
    report_cold(ds, quiet)
    return PrepareResult(dataset=ds, path=final, reused=False, seconds=time.perf_counter() - start)


def _reuse(final: Path, start: float, quiet: bool) -> PrepareResult:
    ds = store.load_dataset(final)
    report_cold(ds, quiet)
    return PrepareResult(dataset=ds, path=final, reused=True, seconds=time.perf_counter() - start)


def cold_counts(ds: PreparedDataset) -> dict[str, dict[str, int]]:
    """Per held-out split: interactions (and distinct items) whose item has no training interaction."""
    seen = np.zeros(ds.n_items, dtype=bool)
    seen[ds.split("train").items] = True
    out = {}
    for name in ("valid", "test"):
        items = ds.split(name).items
        cold = items[~seen[items]] if len(items) else items
        out[name] = {"interactions": int(cold.shape[0]), "items": int(np.unique(cold).shape[0])}
    return out


def report_cold(ds: PreparedDataset, quiet: bool) -> None:
    """One warning line on stderr when valid/test items never occur in training (unless ``quiet``)."""
    from adaptau_cli.base.console import info

    counts = cold_counts(ds)
    parts = [_count(c["interactions"], f"{name} interaction") + " (" + _count(c["items"], "item") + ")"
             for name, c in (("test", counts["test"]), ("valid", counts["valid"])) if c["interactions"]]
    if parts:
        info("[yellow]warning:[/] " + " and ".join(parts) + " of items never seen in training; "
             "--drop-cold drops them", quiet)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _key_payload(inp: _Input, options: dict) -> dict:
    """What the store key hashes: the inputs and the options that say what the data is.

    An option added later (``_NEW_OPTIONS``) is hashed only when it differs from
    the default that gives the old content, so a new option does not move every
    existing store folder. A user's own files are hashed with a reader mark:
    before it, date-string timestamps were stored 1000x too small under
    pandas 3, so such stores must not be reused (they are rebuilt once).
    """
    payload: dict[str, Any] = {"inputs": inp.fingerprints,
                               "options": {k: v for k, v in options.items()
                                           if k not in _LOCATION_OPTIONS
                                           and not (k in _NEW_OPTIONS and v == _NEW_OPTIONS[k])}}
    if inp.kind == "path":
        payload["reader"] = "timestamps-by-unit"
    if options.get("split") in _HOLDOUT_SPLITS:
        # Before this mark, users with 3-4 interactions got a valid item and no test item under the
        # default ratios; such stores hold the old split and must not be reused (rebuilt once).
        payload["holdout"] = "test-first"
    return payload


# Options added after stores were first written, with the default that gives the old content:
# hashed only when set to something else, so that existing store folders keep their key.
_NEW_OPTIONS: dict[str, Any] = {"time_format": None, "drop_cold": False}
# Splits that share held-out interactions out per user with ``split._holdout_counts``.
_HOLDOUT_SPLITS = ("random", "temporal-user")


def _status(message: str, quiet: bool):
    """A transient spinner on stderr while a dataset is built (terminals only, never with --quiet)."""
    from adaptau_cli.base.console import err_console, show_progress

    return err_console.status(message) if show_progress(quiet) else contextlib.nullcontext()


# ---------------------------------------------------------------------------
# Options and inputs
# ---------------------------------------------------------------------------

def _check_options(cfg: PreprocessConfig) -> None:
    if cfg.dataset and cfg.source:
        raise UserError("give either a registry dataset name or --source, not both",
                        hint="`adaptau preprocess ml-1m` or `adaptau preprocess --source data.csv`")
    if not cfg.dataset and not cfg.source:
        raise UserError("no dataset given",
                        hint=f"name one of {', '.join(registry.REGISTRY)} or pass --source PATH")
    if not 0 <= int(cfg.seed) < 2**32:
        raise UserError(f"the split seed must be an integer in [0, 2^32), got {cfg.seed}",
                        hint="--seed of preprocess, --split-seed of train and estimate-tau")
    for name in ("user_core", "item_core"):
        if int(getattr(cfg, name)) < 0:
            raise UserError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(cfg, name)}")
    if cfg.min_rating is not None and not np.isfinite(cfg.min_rating):
        raise UserError(f"--min-rating must be a finite number, got {cfg.min_rating}")
    fmt = (cfg.format or "auto").lower()
    if fmt != "auto" and fmt not in readers.FORMATS:
        raise UserError(f"unknown format {cfg.format!r}", hint=f"use one of {readers.FORMAT_HELP}")
    if cfg.dataset:
        given = [flag for flag, value in (("--format", fmt != "auto"), ("--user-col", cfg.user_col),
                                          ("--item-col", cfg.item_col), ("--rating-col", cfg.rating_col),
                                          ("--time-col", cfg.time_col), ("--time-format", cfg.time_format),
                                          ("--sep", cfg.sep)) if value]
        if given:
            raise UserError(f"{', '.join(given)} only apply to --source, not to the registry dataset {cfg.dataset!r}")


def effective_options(cfg: PreprocessConfig, fmt: str, method: str, ratios: tuple[float, float, float]) -> dict:
    """Every option, with ``auto`` values resolved (recorded in the manifest, hashed into the key)."""
    opts = to_dict(cfg)
    opts.pop("mirror", None)
    opts.pop("home", None)
    opts.update(format=fmt, split=method, ratios=list(ratios), valid_ratio=float(cfg.valid_ratio),
                seed=int(cfg.seed), user_core=int(cfg.user_core), item_core=int(cfg.item_core),
                drop_cold=bool(cfg.drop_cold),
                min_rating=None if cfg.min_rating is None else float(cfg.min_rating))
    if opts.get("dataset"):
        opts["dataset"] = registry.get_entry(opts["dataset"]).name
    if opts.get("source"):
        opts["source"] = str(Path(opts["source"]).expanduser().resolve())
    return opts


def _resolve_input(cfg: PreprocessConfig, root: Path, quiet: bool) -> _Input:
    if cfg.dataset:
        entry = registry.get_entry(cfg.dataset)
        if entry.kind == "synthetic":
            spec = synthetic.SPECS[entry.name]
            return _Input(name=entry.name, kind="synthetic", format="synthetic", files={}, given_split=False,
                          has_valid_file=False,
                          fingerprints=[{"role": "all", "name": f"generator:{entry.name}",
                                         "sha256": spec.fingerprint()}])
        paths = registry.ensure_files(entry, root, cfg.mirror, quiet)
        if entry.format == "lightgcn":
            files = dict(zip(("train", "test", "valid"), paths))
        else:
            files = {"all": paths[0]}
        return _Input(name=entry.name, kind="registry", format=entry.format, files=files,
                      given_split="train" in files, has_valid_file="valid" in files,
                      fingerprints=_fingerprints(files))
    path = Path(cfg.source).expanduser()
    fmt, files = readers.resolve_layout(path, cfg.format or "auto")
    name = path.name if path.is_dir() else path.stem
    return _Input(name=name or "dataset", kind="path", format=fmt, files=files, given_split="train" in files,
                  has_valid_file="valid" in files, fingerprints=_fingerprints(files))


def _fingerprints(files: dict[str, Path]) -> list[dict[str, Any]]:
    out = []
    for role, p in sorted(files.items()):
        try:
            out.append({"role": role, "name": p.name, "sha256": sha256_file(p), "bytes": p.stat().st_size})
        except OSError as exc:
            raise UserError(f"cannot read {p}: {exc.strerror or exc}",
                            hint="check that the file exists and is readable") from None
    return out


def _read(inp: _Input, cfg: PreprocessConfig) -> readers.RawData:
    if inp.kind == "synthetic":
        return synthetic.synthetic_raw(inp.name)
    columns = readers.Columns(user=cfg.user_col, item=cfg.item_col, rating=cfg.rating_col, time=cfg.time_col,
                              sep=cfg.sep, time_format=cfg.time_format)
    return readers.read_files(inp.files, inp.format, columns)


# ---------------------------------------------------------------------------
# Manifest
# ---------------------------------------------------------------------------

def build_manifest(inp: _Input, options: dict, key: str, result: split.SplitResult,
                   ds: PreparedDataset) -> dict[str, Any]:
    """Everything needed to know what a store folder holds and how it was made (no wall-clock times)."""
    stats = {name: split.split_stats(result.splits[name], result.n_items) for name in SPLITS}
    everything = Interactions(
        users=np.concatenate([result.splits[s].users for s in SPLITS]),
        items=np.concatenate([result.splits[s].items for s in SPLITS]))
    stats["all"] = split.split_stats(everything, result.n_items)
    return {
        "store_version": store.STORE_VERSION,
        "created_by": f"adaptau {__version__}",
        "name": inp.name,
        "key": key,
        "source": {
            "kind": inp.kind,
            "dataset": options.get("dataset"),
            "path": options.get("source"),
            "format": inp.format,
            "given_split": inp.given_split,
            "inputs": inp.fingerprints,
        },
        "options": options,
        "n_users": result.n_users,
        "n_items": result.n_items,
        "has_timestamps": result.splits["train"].timestamps is not None,
        "id_types": {"user": _id_type(result.user_ids), "item": _id_type(result.item_ids)},
        "cleaning": result.counts,
        "cold": result.cold,
        "train_only_users": result.train_only_users,
        "stats": stats,
        "content_hash": ds.fingerprint,
    }


def _id_type(ids: np.ndarray) -> str:
    return "int" if np.asarray(ids).dtype.kind in "iu" else "str"


# ---------------------------------------------------------------------------
# Listing
# ---------------------------------------------------------------------------

def list_datasets(home: str | Path | None = None) -> dict[str, Any]:
    """The registry (with what is downloaded) and every prepared dataset in the store."""
    root = store.check_root(store.store_root(home))
    try:
        downloaded = registry.cached_downloads(root)
    except OSError as exc:
        raise store.path_error(exc, root / "downloads", "the download cache", verb="read") from None
    prepared = store.list_prepared(root)
    entries = []
    for entry in registry.REGISTRY.values():
        entries.append({
            "name": entry.name,
            "kind": entry.kind,
            "description": entry.description,
            "stats": entry.stats,
            "urls": [rf.urls[0] for rf in entry.files],
            "downloaded": entry.kind == "synthetic" or bool(downloaded.get(entry.name))
                          and all(Path(rf.member or rf.name).name in downloaded[entry.name] for rf in entry.files),
            "prepared": sum(1 for p in prepared if p["source"] == entry.name),
        })
    return {"root": str(root), "registry": entries, "prepared": prepared}
