"""The numbers behind the paper's Figure 1, for the user's own runs.

Without normalization, an item's embedding grows at a rate proportional to its
popularity, so popular items win on magnitude alone (popularity bias) and the
norms keep rising instead of converging. Four views make that visible:

(a) mean raw item-embedding norm per popularity group over epochs (from the
    run's ``history.parquet``, columns ``item_norm_g0..``);
(b) mean positive-pair score over epochs (``pos_score`` in the history);
(c) recall@K contribution per popularity group of the checkpoint (same
    evaluation code as ``adaptau evaluate``);
(d) raw item norm vs training popularity of the checkpoint, with Spearman's rho.

(a) and (b) need the history; a bare checkpoint gives (c) and (d) only, and the
result says so in ``notes``. ``write_magnitude_json`` writes the numbers as
``magnitude.json`` (``analyze-magnitude``: next to its plots, by default in
``default_plots_dir``, ``plots/`` of the first run).
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from adaptau_cli.base.errors import UserError
from adaptau_cli.base.files import write_json
from adaptau_cli.base.runtime import resolve_device
from adaptau_cli.base.settings import EvaluateConfig
from adaptau_cli.eval.groups import popularity_groups
from adaptau_cli.workflows.evaluate import (
    check_config,
    evaluate_dataset,
    open_runs,
    run_info,
    run_label,
)

_NORM_COL = re.compile(r"^item_norm_g(\d+)$")


@dataclasses.dataclass
class RunMagnitude:
    """Figure 1 data of one run."""

    label: str
    info: dict[str, Any]
    k: int
    split: str
    n_groups: int
    grouping: str
    # (a), (b): from history.parquet (None when the run has no history)
    epochs: list[int] | None
    group_norms: list[list[float]] | None        # [epoch][group], g0 = least popular
    pos_score: list[float] | None
    # (c): the checkpoint on the split
    recall: float
    group_recall: list[float]                    # recall@k contribution per group (sums to recall)
    # (d): the checkpoint's raw item norms against training popularity
    spearman: float
    checkpoint_group_norms: list[float]          # mean raw norm per group now
    popularity: np.ndarray = dataclasses.field(repr=False)
    item_norms: np.ndarray = dataclasses.field(repr=False)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def has_history(self) -> bool:
        return self.epochs is not None and len(self.epochs) > 0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("popularity")
        d.pop("item_norms")
        return d


def history_series(history) -> tuple[list[int], list[list[float]] | None, list[float] | None]:
    """(epochs, per-group norms per epoch, positive score per epoch) from a history frame."""
    if history is None or len(history) == 0:
        return [], None, None
    if "epoch" in history.columns:
        history = history.sort_values("epoch")
        epochs = [int(e) for e in history["epoch"]]
    else:
        epochs = list(range(len(history)))
    cols = sorted((int(m.group(1)), c) for c in history.columns if (m := _NORM_COL.match(str(c))))
    norms = history[[c for _, c in cols]].to_numpy(dtype=np.float64).tolist() if cols else None
    pos = history["pos_score"].to_numpy(dtype=np.float64).tolist() if "pos_score" in history.columns else None
    return epochs, norms, pos


def group_means(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean of ``values`` per group (nan for an empty group)."""
    sums = np.bincount(groups, weights=values, minlength=n_groups)
    counts = np.bincount(groups, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); nan when either side is constant."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(spearmanr(x, y).statistic)


def magnitude_from_arrays(dataset, user_emb, item_emb, raw_item_norms: np.ndarray, history=None,
                          cfg: EvaluateConfig | None = None, k: int = 20, label: str = "model",
                          info: dict[str, Any] | None = None) -> RunMagnitude:
    """Figure 1 data from scoring-ready embeddings, raw item norms and an optional history."""
    cfg = check_config(cfg or EvaluateConfig())
    cfg = dataclasses.replace(cfg, ks=(int(k),))
    pop = np.asarray(dataset.item_popularity, dtype=np.int64)
    raw = np.asarray(raw_item_norms, dtype=np.float64)
    if raw.shape != pop.shape:
        raise UserError(f"{label}: {raw.shape[0]} item norms for a dataset of {pop.shape[0]} items")
    ev = evaluate_dataset(dataset, user_emb, item_emb, cfg, label=label)
    groups = popularity_groups(pop, cfg.groups, cfg.grouping)
    epochs, norms, pos = history_series(history)
    notes = []
    if history is None:
        notes.append("no history.parquet: (a) norms over epochs and (b) positive score over epochs "
                      "are not available for this run, only (c) and (d) from the checkpoint")
    else:
        if norms is None:
            notes.append("history.parquet has no item_norm_g* columns: (a) not available")
        if pos is None:
            notes.append("history.parquet has no pos_score column: (b) not available")
    return RunMagnitude(
        label=label, info=dict(info or {}), k=int(k), split=cfg.split, n_groups=cfg.groups,
        grouping=cfg.grouping, epochs=epochs if (norms is not None or pos is not None) else None,
        group_norms=norms, pos_score=pos, recall=ev.metrics[f"recall@{k}"],
        group_recall=ev.groups[str(k)]["recall_contribution"],
        spearman=spearman(pop, raw), checkpoint_group_norms=group_means(raw, groups, cfg.groups).tolist(),
        popularity=pop, item_norms=raw, notes=notes)


def analyze_run(run_or_checkpoint, cfg: EvaluateConfig | None = None, k: int = 20, dataset=None,
                label: str | None = None) -> RunMagnitude:
    """Figure 1 data of a run directory, a checkpoint file or a ``LoadedRun``."""
    cfg = check_config(cfg or EvaluateConfig())
    run = run_or_checkpoint
    if isinstance(run, (str, Path)):
        from adaptau_cli.engine.runs import load_run

        run = load_run(run, device=resolve_device(cfg.device))
    if dataset is None:
        from adaptau_cli.engine.runs import open_run_dataset

        dataset = open_run_dataset(run)
    user_emb, item_emb = run.scoring_embeddings(dataset)
    return magnitude_from_arrays(dataset, user_emb, item_emb, run.raw_item_norms(dataset), run.history,
                                 cfg, k, label or run_label(run), run_info(run))


def analyze_runs(paths: Sequence[str | Path], cfg: EvaluateConfig | None = None,
                 k: int = 20) -> list[RunMagnitude]:
    """Figure 1 data of several runs (datasets opened once per fingerprint)."""
    cfg = check_config(cfg or EvaluateConfig())
    return [analyze_run(run, cfg, k, dataset, label) for run, label, dataset in open_runs(paths, cfg, "analyze")]


def summary_rows(results: Sequence[RunMagnitude]) -> list[dict[str, Any]]:
    """One row per run for the terminal table and the JSON summary."""
    rows = []
    for r in results:
        last = r.group_norms[-1] if r.group_norms else None
        first = r.group_norms[0] if r.group_norms else None
        rows.append({
            "run": r.label,
            "norm": r.info.get("norm"),
            "tau_mode": r.info.get("tau_mode"),
            "epochs": len(r.epochs) if r.epochs else 0,
            "norm_least_popular_first": first[0] if first else None,
            "norm_least_popular_last": last[0] if last else None,
            "norm_most_popular_first": first[-1] if first else None,
            "norm_most_popular_last": last[-1] if last else None,
            "pos_score_first": r.pos_score[0] if r.pos_score else None,
            "pos_score_last": r.pos_score[-1] if r.pos_score else None,
            f"recall@{r.k}": r.recall,
            f"recall@{r.k}_least_popular": r.group_recall[0],
            f"recall@{r.k}_most_popular": r.group_recall[-1],
            "checkpoint_norm_ratio_popular_vs_unpopular": (
                r.checkpoint_group_norms[-1] / r.checkpoint_group_norms[0]
                if r.checkpoint_group_norms[0] else float("nan")),
            "spearman_norm_popularity": r.spearman,
        })
    return rows


MAGNITUDE_JSON = "magnitude.json"


def default_plots_dir(runs: Sequence[str | Path]) -> Path:
    """Where the plots go unless told: ``plots/`` in the first run's directory (or the checkpoint's folder)."""
    first = Path(runs[0])
    return (first if first.is_dir() else first.parent) / "plots"


def write_magnitude_json(results: Sequence[RunMagnitude], out_dir: str | Path) -> Path:
    """``out_dir/magnitude.json``: every run's Figure 1 data and the summary rows, written atomically."""
    return write_json(Path(out_dir) / MAGNITUDE_JSON,
                      {"runs": [r.to_dict() for r in results], "summary": summary_rows(results)})
