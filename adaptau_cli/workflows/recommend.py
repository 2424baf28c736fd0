"""Top-K recommendations for given users, in the dataset's own (original) ids.

Users are named by their original ids (as in the raw data), either inline
(``"17,42,u9"``) or in a file: a text file with one id per line, a CSV/TSV
with a ``user``/``user_id`` column (or the first column), or a parquet file
likewise. Items the user interacted with in training are never recommended
(``exclude_seen`` also drops their validation and test items). A user the
dataset does not know is an error, unless ``skip_unknown`` is set: then it is
listed in ``unknown`` and left out. With ``index`` (a folder written by
``adaptau export --index``) the candidates come from its FAISS index instead of
scoring every item (see ``eval.ann.search_unseen`` for the exclusion and the
exact fallback).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from adaptau_cli.base.errors import UserError
from adaptau_cli.base.files import write_json, write_parquet, write_text
from adaptau_cli.base.runtime import resolve_device
from adaptau_cli.eval.topk import score_topk
from adaptau_cli.workflows.evaluate import run_label

OUTPUT_SUFFIXES = (".csv", ".parquet", ".json")
_USER_COLUMNS = ("user", "user_id", "userid", "users", "uid")


@dataclasses.dataclass
class Recommendations:
    frame: pd.DataFrame              # columns: user, rank (1 = best), item, score
    k: int
    unknown: list[str]               # requested ids the dataset does not know (skip_unknown)
    label: str = "model"
    index: dict[str, Any] | None = None   # the exported index used (recommend --index), else None

    def to_dict(self) -> dict[str, Any]:
        users = []
        for user, grp in self.frame.groupby("user", sort=False):
            users.append({"user": _plain(user), "items": [_plain(v) for v in grp["item"]],
                          "scores": [float(v) for v in grp["score"]]})
        out = {"run": self.label, "k": self.k, "users": users, "unknown": self.unknown}
        return out if self.index is None else {**out, "index": self.index}


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


def parse_user_spec(spec: str | Path | Sequence[str]) -> list[str]:
    """The requested user ids as strings: a file (txt, csv, tsv, parquet) or comma-separated ids."""
    if not isinstance(spec, (str, Path)):
        ids = [str(s).strip() for s in spec]
    else:
        path = Path(spec)
        if path.is_file():
            ids = _read_user_file(path)
        else:
            text = str(spec)
            if any(sep in text for sep in ("/", "\\")) or path.suffix.lower() in (".txt", ".csv", ".tsv", ".parquet"):
                raise UserError(f"users file not found: {spec}",
                                hint="give a file of user ids or comma-separated ids such as 1,2,3")
            ids = [t.strip() for t in text.split(",")]
    ids = [i for i in ids if i != ""]
    if not ids:
        raise UserError("no user ids given", hint="--users 1,2,3 or --users users.txt")
    return list(dict.fromkeys(ids))   # unique, order kept


def _read_user_file(path: Path) -> list[str]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".tsv"):
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        else:
            return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                    if line.strip() and not line.startswith("#")]
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read users file {path}: {exc}") from None
    if frame.shape[1] == 0:
        raise UserError(f"users file {path} has no columns")
    col = next((c for c in frame.columns if str(c).lower() in _USER_COLUMNS), frame.columns[0])
    return [str(v).strip() for v in frame[col].tolist()]


def user_index(dataset, ids: Sequence[str], skip_unknown: bool = False) -> tuple[np.ndarray, list[str], list[str]]:
    """Map original user ids (as strings) to dataset indices: (indices, known ids, unknown ids)."""
    lookup = {str(_plain(v)): i for i, v in enumerate(dataset.user_ids)}
    known, unknown, idx = [], [], []
    for uid in ids:
        j = lookup.get(uid)
        if j is None:
            unknown.append(uid)
        else:
            known.append(uid)
            idx.append(j)
    if unknown and not skip_unknown:
        shown = ", ".join(repr(u) for u in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise UserError(f"{len(unknown)} user id(s) not in the dataset {dataset.name!r}: {shown}",
                        hint="check the ids (they are the original ids of your data) or pass --skip-unknown")
    return np.asarray(idx, dtype=np.int64), known, unknown


def recommend_embeddings(dataset, user_emb, item_emb, users: str | Path | Sequence[str], k: int = 20,
                         skip_unknown: bool = False, exclude_seen: bool = False,
                         batch_users: int = 1024, label: str = "model", index=None) -> Recommendations:
    """Top-``k`` unseen items per requested user from scoring-ready embeddings.

    ``index``: an ``ExportedIndex`` (``workflows.export.open_index``) whose ``topk``
    replaces the exact ``score_topk``; same answer shape, same exclusions.
    """
    if k < 1:
        raise UserError(f"--k must be >= 1, got {k}")
    ids = parse_user_spec(users)
    idx, known, unknown = user_index(dataset, ids, skip_unknown)
    exclude = dataset.csr("train")
    if exclude_seen:
        exclude = (exclude + dataset.csr("valid") + dataset.csr("test")).tocsr()
    if len(idx) == 0:
        frame = pd.DataFrame({"user": pd.Series([], dtype=object), "rank": pd.Series([], dtype=np.int64),
                              "item": pd.Series([], dtype=object), "score": pd.Series([], dtype=np.float32)})
        return Recommendations(frame, k, unknown, label)
    topk = score_topk if index is None else index.topk
    top, scores = topk(user_emb, item_emb, idx, sp.csr_matrix(exclude), k, batch_users, return_scores=True)
    keep = np.isfinite(scores)                   # -inf = a masked item (user has < k unseen items)
    rows = np.repeat(np.arange(len(idx)), top.shape[1]).reshape(top.shape)
    ranks = np.cumsum(keep, axis=1)
    frame = pd.DataFrame({
        "user": np.asarray(dataset.user_ids)[idx[rows[keep]]],
        "rank": ranks[keep].astype(np.int64),
        "item": np.asarray(dataset.item_ids)[top[keep]],
        "score": scores[keep].astype(np.float32),
    })
    return Recommendations(frame, k, unknown, label, None if index is None else index.info())


def recommend(run_or_checkpoint, users: str | Path | Sequence[str], k: int = 20, skip_unknown: bool = False,
              exclude_seen: bool = False, device: str = "auto", batch_users: int = 1024,
              dataset=None, index: str | Path | None = None) -> Recommendations:
    """Top-``k`` recommendations of a run directory, checkpoint or ``LoadedRun``.

    ``index``: a folder of ``adaptau export --index`` for this run's checkpoint:
    the top-K comes from its FAISS index (refused if exported from another checkpoint).
    """
    from adaptau_cli.engine.runs import load_run, open_run_dataset

    run = run_or_checkpoint
    if isinstance(run, (str, Path)):
        run = load_run(run, device=resolve_device(device))
    searcher = None
    if index is not None:
        from adaptau_cli.workflows.export import open_index

        searcher = open_index(index, run)
    if dataset is None:
        dataset = open_run_dataset(run)
    user_emb, item_emb = run.scoring_embeddings(dataset)
    return recommend_embeddings(dataset, user_emb, item_emb, users, k, skip_unknown, exclude_seen,
                                batch_users, label=run_label(run), index=searcher)


def write_recommendations(recs: Recommendations, path: str | Path) -> Path:
    """CSV, parquet (long format: user, rank, item, score) or JSON (grouped per user), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise UserError(f"cannot write recommendations to {path.name!r}: unknown suffix",
                        hint="use .csv, .parquet or .json")
    if suffix == ".json":
        return write_json(path, recs.to_dict())
    if suffix == ".csv":
        return write_text(path, recs.frame.to_csv(index=False))
    frame = recs.frame.copy()
    for col in ("user", "item"):
        if frame[col].dtype == object:
            frame[col] = frame[col].astype(str)
    return write_parquet(path, frame)


__all__ = ["Recommendations", "parse_user_spec", "recommend", "recommend_embeddings",
           "user_index", "write_recommendations"]
