"""Evaluating runs: one model on one split (accuracy, popularity view, bias), one run, several runs.

The pieces live in the eval layer (``eval.topk``: the exact top-K in bounded
memory; ``eval.metrics``: the ranking metrics; ``eval.popularity``: the
popularity view and bias metrics); this module puts them together for a
dataset split and for run directories, with their provenance.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from adaptau_cli.base.errors import UserError
from adaptau_cli.base.runtime import resolve_device
from adaptau_cli.base.settings import EvaluateConfig
from adaptau_cli.eval.groups import (
    GROUPINGS,
    group_summary,
    head_mask,
    popularity_groups,
)
from adaptau_cli.eval.metrics import hit_matrix, per_user_metrics, ranking_metrics, split_masks
from adaptau_cli.eval.popularity import bias_metrics, group_view
from adaptau_cli.eval.topk import score_topk

# ---------------------------------------------------------------------------
# Popularity view and popularity-bias metrics of the top-K lists
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# One split of a dataset, one run, several runs
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class SplitEvaluation:
    """Everything ``adaptau evaluate`` reports for one model on one split."""

    label: str
    split: str
    ks: tuple[int, ...]
    n_users: int
    n_items: int
    metrics: dict[str, float]                 # "recall@20" -> value
    bias: dict[str, float]                    # "arp@20", "aplt@20", "coverage@20", "gini@20"
    groups: dict[str, dict[str, list[float]]]  # "20" -> group_view(...)
    n_groups: int
    grouping: str
    group_info: dict[str, list]               # items / interactions / popularity range per group
    head_share: float
    tail_items: int
    seconds: float
    info: dict[str, Any] = dataclasses.field(default_factory=dict)  # run provenance
    topk: np.ndarray | None = dataclasses.field(default=None, repr=False)
    users: np.ndarray | None = dataclasses.field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("topk")
        d.pop("users")
        d["ks"] = list(self.ks)
        return d


def item_norm_power(score: str) -> float | None:
    """The power A of ‖e_i‖ in the ranking score: None for ``model``, 1 for ``raw``, A for ``raw^A``.

    Ranking a user's items by ‖e_i‖^A · cos(e_u, e_i) interpolates between the
    cosine a normalized model was trained with (A = 0) and its raw inner product
    (A = 1; ‖e_u‖ does not change a user's ranking): how much of the item
    magnitudes, which the loss never saw, to let back into the score.
    """
    if score == "model":
        return None
    if score == "raw":
        return 1.0
    head, sep, tail = score.partition("^")
    try:
        power = float(tail) if head == "raw" and sep else math.nan
    except ValueError:
        power = math.nan
    if not (math.isfinite(power) and power >= 0):
        raise UserError(f"unknown score {score!r} (expected model, raw, or raw^A with a number A >= 0, "
                        "e.g. raw^0.25)")
    return power


def check_config(cfg: EvaluateConfig) -> EvaluateConfig:
    """Reject settings that would give nonsense with one readable line."""
    if cfg.split not in ("valid", "test"):
        raise UserError(f"unknown split {cfg.split!r} (expected 'valid' or 'test')")
    if not cfg.ks or any(int(k) < 1 for k in cfg.ks):
        raise UserError(f"--k needs positive cut-offs such as 10,20,50, got {cfg.ks!r}")
    if cfg.groups < 1:
        raise UserError(f"--groups must be >= 1, got {cfg.groups}")
    if cfg.grouping not in GROUPINGS:
        raise UserError(f"unknown grouping {cfg.grouping!r} (expected 'mass' or 'count')")
    if cfg.batch_users < 1:
        raise UserError(f"--batch-users must be >= 1, got {cfg.batch_users}")
    if not 0.0 < cfg.head_share < 1.0:
        raise UserError(f"head share must be between 0 and 1, got {cfg.head_share}")
    item_norm_power(cfg.score)
    return cfg


def evaluate_dataset(dataset, user_emb: torch.Tensor, item_emb: torch.Tensor,
                     cfg: EvaluateConfig | None = None, label: str = "model",
                     info: dict[str, Any] | None = None) -> SplitEvaluation:
    """Accuracy, popularity view and bias metrics of scoring-ready embeddings on one split."""
    cfg = check_config(cfg or EvaluateConfig())
    if user_emb.shape[0] != dataset.n_users or item_emb.shape[0] != dataset.n_items:
        raise UserError(f"{label}: embeddings are {user_emb.shape[0]} users x {item_emb.shape[0]} items "
                        f"but the dataset has {dataset.n_users} x {dataset.n_items}")
    ks = tuple(sorted({int(k) for k in cfg.ks}))
    t0 = time.perf_counter()
    heldout, exclude = split_masks(dataset, cfg.split)
    # the same steps as evaluate_embeddings (training's validation), keeping the hits
    n_rel_all = np.diff(heldout.indptr)
    users = np.flatnonzero(n_rel_all > 0)
    topk = score_topk(user_emb, item_emb, users, exclude, max(ks), cfg.batch_users,
                      int(cfg.max_block_mb * 2**20) if cfg.max_block_mb else None)
    hits = hit_matrix(topk, users, heldout)
    n_rel = n_rel_all[users]
    metrics = ranking_metrics(hits, n_rel, ks)
    pop = np.asarray(dataset.item_popularity, dtype=np.int64)
    item_groups = popularity_groups(pop, cfg.groups, cfg.grouping)
    tail = ~head_mask(pop, cfg.head_share)
    bias: dict[str, float] = {}
    groups: dict[str, dict[str, list[float]]] = {}
    for k in ks:
        bias.update(bias_metrics(topk, pop, tail, k))
        groups[str(k)] = group_view(topk, hits, n_rel, item_groups, cfg.groups, k)
    return SplitEvaluation(
        label=label, split=cfg.split, ks=ks, n_users=len(users), n_items=dataset.n_items,
        metrics=metrics, bias=bias, groups=groups, n_groups=cfg.groups, grouping=cfg.grouping,
        group_info=group_summary(pop, item_groups, cfg.groups), head_share=cfg.head_share,
        tail_items=int(tail.sum()), seconds=time.perf_counter() - t0, info=dict(info or {}),
        topk=topk, users=users)


def user_metrics(evaluation: SplitEvaluation, dataset) -> dict[str, np.ndarray]:
    """Every registered metric @K of each counted user, rows in the order of ``evaluation.users``.

    Their means are ``evaluation.metrics``; paired tests between models
    (``adaptau compare``) need the per-user values. Recomputed from the top-K
    lists the evaluation keeps, so what ``evaluate_dataset`` returns stays as it is.
    """
    if evaluation.topk is None or evaluation.users is None:
        raise ValueError(f"{evaluation.label}: this evaluation kept no top-K lists to read per-user metrics from")
    heldout = dataset.csr(evaluation.split)
    hits = hit_matrix(evaluation.topk, evaluation.users, heldout)
    n_rel = np.diff(heldout.indptr)[evaluation.users]
    return {key: np.asarray(values, dtype=np.float64)
            for key, values in per_user_metrics(hits, n_rel, evaluation.ks).items()}


def run_label(run) -> str:
    """A short name for a run: its folder, or the checkpoint file's stem."""
    if getattr(run, "run_dir", None) is not None:
        return Path(run.run_dir).name
    return Path(run.checkpoint_path).stem


def run_info(run) -> dict[str, Any]:
    """Provenance shown next to a run's numbers (what was trained, which epoch, how selected)."""
    tc = run.train_config
    select_on = getattr(tc, "select_on", "valid")
    return {
        "run_dir": str(run.run_dir) if run.run_dir is not None else None,
        "checkpoint": str(run.checkpoint_path),
        "epoch": int(run.epoch),
        "model": tc.model, "norm": tc.norm, "tau_mode": tc.tau_mode, "loss": tc.loss,
        "selection": "test (published protocol)" if select_on == "test" else "valid",
        "dataset": run.data_config.dataset or run.data_config.source,
        "dataset_fingerprint": run.dataset_fingerprint,
    }


def _load(run_or_checkpoint, device: str):
    from adaptau_cli.engine.runs import load_run

    if isinstance(run_or_checkpoint, (str, Path)):
        return load_run(run_or_checkpoint, device=device)
    return run_or_checkpoint


def evaluate_run(run_or_checkpoint, cfg: EvaluateConfig | None = None, dataset=None,
                 label: str | None = None) -> SplitEvaluation:
    """Evaluate a run directory, a checkpoint file or a ``LoadedRun`` on ``cfg.split``.

    The dataset is opened from the run's own data settings (and refused if its
    fingerprint differs from the one the model was trained on) unless given.
    """
    cfg = check_config(cfg or EvaluateConfig())
    run = _load(run_or_checkpoint, resolve_device(cfg.device))
    if dataset is None:
        from adaptau_cli.engine.runs import open_run_dataset

        dataset = open_run_dataset(run)
    elif dataset.fingerprint != run.dataset_fingerprint:
        raise UserError(f"{run_label(run)}: the model was trained on dataset {run.dataset_fingerprint}, "
                        f"not on {dataset.name} ({dataset.fingerprint})")
    info = run_info(run)
    notes = []
    if cfg.split == "test" and info["selection"].startswith("test"):
        notes.append("epoch selected on the test split (published protocol): test numbers are optimistic")
    power = item_norm_power(cfg.score)
    if power is None:
        user_emb, item_emb = run.scoring_embeddings(dataset)
    elif power == 1.0:
        user_emb, item_emb = run.raw_embeddings(dataset)
        if run.train_config.norm != "none":
            notes.append("ranked by the raw inner product, not the normalized score the model was trained with")
    else:
        user_emb, item_emb = run.norm_power_embeddings(dataset, power)
        notes.append(f"ranked by ‖e_i‖^{power:g} · cos(e_u, e_i), not the score the model was trained with")
    info["score"] = cfg.score
    if notes:
        info["note"] = "; ".join(notes)
    return evaluate_dataset(dataset, user_emb, item_emb, cfg, label=label or run_label(run), info=info)


def unique_labels(labels: Sequence[str]) -> list[str]:
    """Make run labels distinct for a side-by-side table (``name``, ``name#2`` ...)."""
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
        out.append(lab if seen[lab] == 1 else f"{lab}#{seen[lab]}")
    return out


def open_runs(paths: Sequence[str | Path], cfg: EvaluateConfig,
              what: str = "evaluate") -> list[tuple[Any, str, Any]]:
    """Load several runs: ``(run, unique label, dataset)`` each, every dataset opened once."""
    from adaptau_cli.engine.runs import open_run_dataset

    if not paths:
        raise UserError(f"give at least one run directory or checkpoint to {what}")
    device = resolve_device(cfg.device)
    runs = [_load(p, device) for p in paths]
    labels = unique_labels([run_label(r) for r in runs])
    datasets: dict[str, Any] = {}
    for run in runs:
        if run.dataset_fingerprint not in datasets:
            datasets[run.dataset_fingerprint] = open_run_dataset(run)
    return [(run, label, datasets[run.dataset_fingerprint]) for run, label in zip(runs, labels)]


def evaluate_runs(paths: Sequence[str | Path], cfg: EvaluateConfig | None = None,
                  progress=None) -> list[SplitEvaluation]:
    """Evaluate several runs with the same settings (datasets opened once per fingerprint)."""
    cfg = check_config(cfg or EvaluateConfig())
    opened = open_runs(paths, cfg)
    out = []
    for run, label, dataset in opened:
        out.append(evaluate_run(run, cfg, dataset, label=label))
        if progress is not None:
            progress(label)
    datasets = {id(d) for _, _, d in opened}
    if len(datasets) > 1:
        for ev in out:
            ev.info["note"] = (ev.info.get("note", "") + "; " if ev.info.get("note") else "") + \
                "runs were trained on different datasets: compare with care"
    return out
