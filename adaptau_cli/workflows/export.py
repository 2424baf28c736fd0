"""Export a run for serving: scoring embeddings with the original ids, the items to exclude, an optional index.

``adaptau export RUN --out DIR`` writes

    users.parquet        id (the user's original id), vector (fixed_size_list<float32>[dim])
    items.parquet        id (the item's original id), vector; row r is item index r = FAISS label r
    train_items.parquet  id (user id), items (its training item ids), item_rows (the same as rows of
                         items.parquet): what a server must drop from a user's candidates
    items.faiss          with --index exact|hnsw|ivf: a FAISS inner-product index of items.parquet's vectors
    export.json          what the files hold, the scoring rule, the index parameters and the run's identity

The vectors are the model's *scoring* embeddings (normalized as it was trained),
so every rule is the inner product of the two vectors: cosine for ``--norm
both``. A vector is one fixed-size-list column rather than one column per
dimension: the dimension is part of the schema, pyarrow hands the column to
numpy as one (n, dim) buffer without copying, and DuckDB, Polars, Spark and the
vector databases' bulk loaders read a list-of-float column as a vector.

Every file is written atomically and ``export.json`` last, so a folder with an
``export.json`` holds a complete export; ``--force`` removes the old
``export.json`` before writing anything. ``recommend --index DIR`` (``open_index``)
refuses an index exported from another checkpoint (its sha256 is recorded).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
import torch

from adaptau_cli import __version__
from adaptau_cli.base.errors import UserError
from adaptau_cli.base.files import atomic_path, ensure_dir, sha256_file, write_json
from adaptau_cli.base.runtime import resolve_device
from adaptau_cli.data.store import id_array
from adaptau_cli.eval.ann import (
    IndexParams,
    build_index,
    check_index_flags,
    faiss_class,
    index_params,
    load_faiss,
    read_index,
    search_unseen,
    write_index,
)
from adaptau_cli.method.losses import normalize_flags

EXPORT_JSON = "export.json"
USERS_FILE = "users.parquet"
ITEMS_FILE = "items.parquet"
TRAIN_FILE = "train_items.parquet"
INDEX_FILE = "items.faiss"
EXPORT_FILES = (EXPORT_JSON, USERS_FILE, ITEMS_FILE, TRAIN_FILE, INDEX_FILE)
FORMAT = "adaptau-export"
FORMAT_VERSION = 1
_AS_TRAINED = {"both": "cosine(e_u, e_i)", "none": "e_u · e_i (inner product)",
               "user": "(e_u / ‖e_u‖) · e_i", "item": "e_u · (e_i / ‖e_i‖)"}
_LOCATIONS = ("home", "mirror")      # where the data lives, not what it is: left out of the settings hash


@dataclasses.dataclass
class ExportResult:
    """Where the export went and its ``export.json`` contents."""

    out: Path
    manifest: dict[str, Any]


def check_export_dir(out: Path, force: bool) -> None:
    """UserError if ``out`` already holds (part of) an export and ``--force`` is not given."""
    found = [name for name in EXPORT_FILES if (out / name).exists()]
    if found and not force:
        raise UserError(f"{out} already holds an export ({', '.join(found)})",
                        hint="pass --force to replace it, or choose another --out")


def export_run(run_or_checkpoint, out: str | Path, index: str | None = None, nprobe: int | None = None,
               ef_search: int | None = None, hnsw_m: int | None = None, force: bool = False,
               device: str = "auto", dataset=None) -> ExportResult:
    """Write the serving files of a run directory, checkpoint or ``LoadedRun`` into ``out``.

    Flags, FAISS and the folder are checked before the run is loaded, so a
    mistake costs a second, not an export.
    """
    from adaptau_cli.engine.runs import load_run, open_run_dataset

    out = Path(out)
    if index is not None:
        check_index_flags(index, nprobe, ef_search, hnsw_m)
        load_faiss()
    check_export_dir(out, force)
    run = run_or_checkpoint
    if isinstance(run, (str, Path)):
        run = load_run(run, device=resolve_device(device))
    if dataset is None:
        dataset = open_run_dataset(run)
    user_emb, item_emb = (_as_numpy(t) for t in run.scoring_embeddings(dataset))
    ensure_dir(out, "export folder")
    (out / EXPORT_JSON).unlink(missing_ok=True)        # from here on the folder holds no complete export
    write_vectors(out / USERS_FILE, dataset.user_ids, user_emb)
    write_vectors(out / ITEMS_FILE, dataset.item_ids, item_emb)
    write_train_items(out / TRAIN_FILE, dataset)
    index_info = None
    if index is not None:
        index_info = _export_index(out / INDEX_FILE, item_emb, index_params(index, len(item_emb), nprobe,
                                                                            ef_search, hnsw_m))
    else:
        (out / INDEX_FILE).unlink(missing_ok=True)      # a stale index would not match the new vectors
    manifest = export_manifest(run, dataset, user_emb.shape[1], index_info)
    write_json(out / EXPORT_JSON, manifest)
    return ExportResult(out, manifest)


def _as_numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().float().cpu().numpy())


def write_vectors(path: Path, ids: np.ndarray, vectors: np.ndarray) -> Path:
    """Parquet with ``id`` (original ids, int64 or string) and ``vector`` (fixed_size_list<float32>[dim])."""
    dim = vectors.shape[1]
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    table = pa.table({"id": id_array(ids), "vector": pa.FixedSizeListArray.from_arrays(flat, dim)})
    return _write_table(path, table)


def write_train_items(path: Path, dataset) -> Path:
    """One row per user: its id, its training items' ids and their rows in items.parquet (= FAISS labels)."""
    train = sp.csr_matrix(dataset.csr("train"))
    offsets = pa.array(train.indptr.astype(np.int32))
    rows = train.indices.astype(np.int32)
    item_ids = id_array(np.asarray(dataset.item_ids)[rows])
    table = pa.table({"id": id_array(dataset.user_ids),
                      "items": pa.ListArray.from_arrays(offsets, item_ids),
                      "item_rows": pa.ListArray.from_arrays(offsets, pa.array(rows))})
    return _write_table(path, table)


def _write_table(path: Path, table: pa.Table) -> Path:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path


def read_vectors(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors as an (n, dim) float32 array) of users.parquet / items.parquet: how a server reads them."""
    table = pq.read_table(path)
    col = table.column("vector").combine_chunks()
    dim = col.type.list_size
    vectors = col.values.to_numpy(zero_copy_only=False).reshape(-1, dim)
    return table.column("id").to_numpy(zero_copy_only=False), vectors


def _export_index(path: Path, items: np.ndarray, params: IndexParams) -> dict[str, Any]:
    """Build and save the item index; its parameters, class and build time for export.json."""
    faiss = load_faiss()
    t0 = time.perf_counter()
    idx = build_index(items, params)
    seconds = time.perf_counter() - t0
    with atomic_path(path) as tmp:
        write_index(idx, tmp)
    return {**params.to_dict(), "file": path.name, "faiss_class": faiss_class(params),
            "faiss_version": getattr(faiss, "__version__", "?"), "n_items": int(idx.ntotal),
            "build_seconds": round(seconds, 3)}


def settings_sha256(run) -> str:
    """sha256 of the checkpoint's train + dataset settings as canonical JSON (store locations left out)."""
    data = {k: v for k, v in dataclasses.asdict(run.data_config).items() if k not in _LOCATIONS}
    payload = {"train": dataclasses.asdict(run.train_config), "dataset": data}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def score_rule(norm: str) -> dict[str, Any]:
    """How a server scores: always the inner product of the exported vectors, which equals the trained rule."""
    users_unit, items_unit = normalize_flags(norm)
    return {"rule": "inner_product", "formula": "score(u, i) = dot(users.vector[u], items.vector[i])",
            "equals": _AS_TRAINED[norm], "norm": norm, "users_normalized": users_unit,
            "items_normalized": items_unit, "faiss_metric": "METRIC_INNER_PRODUCT",
            "note": "the vectors are exported already normalized as the model scores them: "
                    "an inner-product index ranks exactly as `adaptau recommend`"}


def export_manifest(run, dataset, dim: int, index_info: dict[str, Any] | None) -> dict[str, Any]:
    """The contents of export.json: files, scoring rule, exclusion rule, index, run identity."""
    tc = run.train_config
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "adaptau_version": __version__,
        "created_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "run": {"run_dir": str(Path(run.run_dir).resolve()) if run.run_dir is not None else None,
                "checkpoint": str(Path(run.checkpoint_path).resolve()),
                "checkpoint_sha256": sha256_file(run.checkpoint_path),
                "epoch": int(run.epoch), "settings_sha256": settings_sha256(run),
                "model": tc.model, "norm": tc.norm, "tau_mode": tc.tau_mode, "loss": tc.loss},
        "dataset": {"name": dataset.name, "content_hash": run.dataset_fingerprint,
                    "n_users": int(dataset.n_users), "n_items": int(dataset.n_items)},
        "vectors": {"dim": int(dim), "dtype": "float32", "layout": f"fixed_size_list<float32>[{dim}]",
                    "users": USERS_FILE, "items": ITEMS_FILE, "columns": ["id", "vector"],
                    "rows": "row r of items.parquet is item index r; FAISS labels are these rows"},
        "score": score_rule(tc.norm),
        "exclude": {"file": TRAIN_FILE, "columns": ["id", "items", "item_rows"],
                    "rule": "never recommend a user's training items: fetch k + len(items) candidates, "
                            "drop those items, keep the first k"},
        "index": index_info,
    }


def read_export(folder: str | Path) -> dict[str, Any]:
    """export.json of ``folder``; UserError when there is none or it is not an adaptau export."""
    path = Path(folder) / EXPORT_JSON
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{folder} holds no export ({EXPORT_JSON} not found)",
                        hint="adaptau export RUN --out DIR --index exact|hnsw|ivf") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{path} is not an adaptau export")
    return manifest


@dataclasses.dataclass
class ExportedIndex:
    """An exported item index opened for ``recommend``: ``topk`` answers as ``score_topk`` does."""

    folder: Path
    params: IndexParams
    index: Any
    manifest: dict[str, Any]
    fallback_users: int = 0            # users whose filtered list was short and were scored exactly

    def topk(self, user_emb, item_emb, users, exclude, k, batch_users=1024, return_scores=True):
        """(items, scores) of ``search_unseen``; the exact fallbacks are counted in ``fallback_users``.

        Called as ``score_topk`` is (``batch_users`` is that scorer's block size,
        which the index search does not need).
        """
        found = search_unseen(self.index, self.params, user_emb, item_emb, users, exclude, k)
        self.fallback_users += found.fallback_users
        return (found.top, found.scores) if return_scores else found.top

    def info(self) -> dict[str, Any]:
        return {"folder": str(self.folder), **self.params.to_dict(), "fallback_users": self.fallback_users}


def open_index(folder: str | Path, run) -> ExportedIndex:
    """The index exported into ``folder``, for ``run`` only: UserError if it came from another checkpoint."""
    load_faiss()
    folder = Path(folder)
    manifest = read_export(folder)
    info = manifest.get("index")
    if not info:
        raise UserError(f"{folder} holds an export without an index",
                        hint="export it again with --index exact|hnsw|ivf (and --force)")
    exported = manifest.get("run", {})
    if (manifest.get("dataset", {}).get("content_hash") != run.dataset_fingerprint
            or exported.get("checkpoint_sha256") != sha256_file(run.checkpoint_path)):
        raise UserError(f"the index in {folder} was exported from another checkpoint "
                        f"({exported.get('checkpoint')}, epoch {exported.get('epoch')}), not {run.checkpoint_path}",
                        hint="export this run again: adaptau export RUN --out DIR --index ... --force")
    params = IndexParams.from_dict(info)
    return ExportedIndex(folder, params, read_index(folder / info.get("file", INDEX_FILE), params), manifest)


__all__ = ["EXPORT_FILES", "EXPORT_JSON", "ExportResult", "ExportedIndex", "check_export_dir", "export_manifest",
           "export_run", "open_index", "read_export", "read_vectors", "score_rule", "settings_sha256",
           "write_train_items", "write_vectors"]
