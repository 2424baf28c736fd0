"""The training loop: epochs, temperatures, validation, early stopping, checkpoints, resume.

One call, ``train(train_cfg, data_cfg, dataset, out)``, turns a prepared
dataset into a run directory:

    out/config.toml          [dataset] + [train]: `adaptau train --config out/config.toml` reruns it
    out/checkpoint-best.pt   the selected epoch (model, optimizer, RNG states, τ state, fingerprint)
    out/checkpoint-last.pt   the latest epoch (what --resume continues from)
    out/history.parquet      one row per epoch (loss, τ0, τ_u quantiles, metrics, item norms ...)
    out/report.json|md       the final numbers of the best checkpoint

Per epoch: refresh τ0 (the warm-up prior until the monitored metric has not
gained for ``warmup_patience`` evaluations, at most ``warmup_epochs`` epochs,
then the closed form on the current embeddings, guarded) and τ_u (from the previous
epoch's per-user loss at τ = 1); one pass over the shuffled training pairs;
the per-user loss scatter-averaged for the next epoch; validation every
``eval_every`` epochs; early stopping (never during the warm-up, counted from
its end); the checkpoint(s) written atomically.

Reproducibility: every random draw (shuffling, negatives) comes from one
``torch.Generator`` seeded with ``seed``; dropout uses the global torch RNG,
seeded too. Checkpoints keep all RNG states, the optimizer, the τ state and
the early-stopping state, so ``resume`` continues exactly as if the run had
never stopped (tested). Epochs are numbered from 1 in every output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from adaptau_cli.base import files as io
from adaptau_cli.base.console import err_console, info, make_progress
from adaptau_cli.base.errors import TrainingDiverged, UserError
from adaptau_cli.base.locks import exclusive_lock
from adaptau_cli.base.runtime import resolve_device
from adaptau_cli.base.settings import PreprocessConfig, TrainConfig, run_config_toml, to_dict
from adaptau_cli.data.dataset import PreparedDataset
from adaptau_cli.engine import checkpoint
from adaptau_cli.engine import distributed as dist
from adaptau_cli.engine.backbone import check_backbone, scoring_embeddings
from adaptau_cli.engine.optimizers import OPTIMIZERS, make_optimizer, row_lookup
from adaptau_cli.eval.groups import popularity_groups
from adaptau_cli.eval.metrics import evaluate_embeddings, metric_names, metric_sums, split_masks
from adaptau_cli.method import tau as taumod
from adaptau_cli.method.losses import (
    LOSSES,
    NEGATIVES,
    NORMS,
    AdapTauLoss,
    BatchLoss,
    gather_batch,
    group_bounds,
    l2_penalty,
)
from adaptau_cli.method.rivals import check_rival_settings, learned_temperature, make_criterion
from adaptau_cli.method.temperature import (
    TAU_MODES,
    TemperatureController,
)
from adaptau_cli.models import MODELS, build_model

PUBLISHED_LABEL = "test (published protocol)"
RUN_LOCK = ".adaptau.lock"   # held by the one process writing a run directory
CUSTOM_PREFIX = "custom:"   # a run of a user's own backbone records its model as custom:ClassName


def custom_model_name(model: torch.nn.Module) -> str:
    return CUSTOM_PREFIX + type(model).__name__


def selection_label(select_on: str) -> str:
    """How the best epoch was chosen, as shown everywhere (history, report, CLI)."""
    return PUBLISHED_LABEL if select_on == "test" else "valid"


@dataclasses.dataclass
class TrainResult:
    run_dir: Path
    best_epoch: int
    epochs_run: int
    best_metrics: dict[str, float]          # selection split metrics at the best epoch
    test_metrics: dict[str, float]          # test split metrics of the best checkpoint
    valid_metrics: dict[str, float] | None  # validation metrics of the best checkpoint (if a valid split)
    tau0: float                             # τ0 of the last epoch
    selection: str                          # "valid" or "test (published protocol)"
    stopped_early: bool
    positive_in_denominator: bool
    history: pd.DataFrame
    report: dict[str, Any]


# ---------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------

def check_config(cfg: TrainConfig) -> TrainConfig:
    """Reject settings that cannot work with one readable line (UserError)."""
    def choice(name, value, allowed):
        if value not in allowed:
            raise UserError(f"unknown {name} {value!r} (expected one of {', '.join(allowed)})")

    if not cfg.model.startswith(CUSTOM_PREFIX):
        choice("model", cfg.model, MODELS)
    choice("negatives", cfg.negatives, NEGATIVES)
    choice("loss", cfg.loss, LOSSES)
    choice("norm", cfg.norm, NORMS)
    choice("tau mode", cfg.tau_mode, TAU_MODES)
    choice("tau baseline", cfg.tau_baseline, ("mean", "quantile"))
    choice("tau0 formula", cfg.tau0_formula, ("simplified", "full"))
    choice("select-on", cfg.select_on, ("valid", "test"))
    choice("grouping", cfg.grouping, ("mass", "count"))
    choice("optimizer", cfg.optimizer, OPTIMIZERS)
    if cfg.optimizer == "sparse-adam":
        _check_sparse_settings(cfg)
    checks = [
        (cfg.epochs >= 0, f"--epochs must be >= 0, got {cfg.epochs}"),
        (cfg.batch_size >= 1, f"--batch-size must be >= 1, got {cfg.batch_size}"),
        (cfg.num_negatives >= 1, f"--num-negatives must be >= 1, got {cfg.num_negatives}"),
        (cfg.negative_groups >= 1, f"--negative-groups must be >= 1, got {cfg.negative_groups}"),
        (cfg.dim >= 1, f"--dim must be >= 1, got {cfg.dim}"),
        (0 <= cfg.seed < 2**63, f"--seed must be a non-negative integer, got {cfg.seed}"),
        (cfg.layers >= 0, f"--layers must be >= 0, got {cfg.layers}"),
        (cfg.lr > 0, f"--lr must be > 0, got {cfg.lr}"),
        (cfg.l2 >= 0, f"--l2 must be >= 0, got {cfg.l2}"),
        (0 <= cfg.dropout < 1, f"--dropout must be in [0, 1), got {cfg.dropout}"),
        (cfg.tau > 0 and math.isfinite(cfg.tau), f"--tau must be a positive number, got {cfg.tau}"),
        (0 < cfg.tau_min < cfg.tau_max, f"need 0 < tau_min < tau_max, got {cfg.tau_min} and {cfg.tau_max}"),
        (cfg.tau_scale > 0, f"--tau-scale must be > 0, got {cfg.tau_scale}"),
        (0 < cfg.tau_quantile < 1, f"--tau-quantile must be in (0, 1), got {cfg.tau_quantile}"),
        (0 <= cfg.user_quantile_filter < 1, f"user_quantile_filter must be in [0, 1), got {cfg.user_quantile_filter}"),
        (cfg.warmup_epochs >= 0, f"--warmup-epochs must be >= 0, got {cfg.warmup_epochs}"),
        (cfg.warmup_patience >= 0, f"--warmup-patience must be >= 0, got {cfg.warmup_patience}"),
        (cfg.warmup_gap > 0, f"warmup_gap must be > 0, got {cfg.warmup_gap}"),
        (cfg.eval_every >= 1, f"--eval-every must be >= 1, got {cfg.eval_every}"),
        (cfg.patience >= 1, f"--patience must be >= 1, got {cfg.patience}"),
        (0 < cfg.lr_decay <= 1, f"--lr-decay must be in (0, 1], got {cfg.lr_decay}"),
        (cfg.lr_decay_patience >= 1, f"--lr-decay-patience must be >= 1, got {cfg.lr_decay_patience}"),
        (cfg.lr_min >= 0, f"lr_min must be >= 0, got {cfg.lr_min}"),
        (cfg.groups >= 1, f"groups must be >= 1, got {cfg.groups}"),
        (bool(cfg.ks) and all(int(k) >= 1 for k in cfg.ks), f"ks must be positive, got {cfg.ks}"),
        (cfg.threads is None or cfg.threads >= 1, f"--threads must be >= 1, got {cfg.threads}"),
        (cfg.time_limit >= 0 and math.isfinite(cfg.time_limit),
         f"--time-limit must be >= 0 minutes, got {cfg.time_limit}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    check_rival_settings(cfg.parts().loss, cfg.tau_mode)   # the rival losses and logq (method/rivals.py)
    metric, _, k = cfg.monitor.partition("@")
    if metric not in metric_names() or not k.isdigit() or int(k) not in {int(x) for x in cfg.ks}:
        raise UserError(f"--monitor {cfg.monitor!r} is not one of the computed metrics",
                        hint=f"use METRIC@K with METRIC in {', '.join(metric_names())} and K in {list(cfg.ks)}")
    return cfg


SPARSE_HINT = "use --optimizer adam (dense Adam, as published)"


def _check_row_tables(model: torch.nn.Module, cfg: TrainConfig, world: dist.World, device: str) -> None:
    """sparse-adam needs a backbone whose ``forward()`` hands back its raw tables, so that rows are looked up.

    MF does (without dropout, which makes a new full table each step);
    LightGCN's tables come out of a propagation over the whole graph, so every
    row has a gradient and a row-wise update would be dense Adam done slowly.
    """
    if world.active and device.startswith("cuda"):
        raise UserError("--optimizer sparse-adam with several processes needs the gloo backend (--device cpu): "
                        "its row exchange has been built and tested on gloo only", hint=SPARSE_HINT)
    was_training = model.training
    model.train()
    with torch.no_grad():
        user_table, item_table = model()
    model.train(was_training)
    raw_users, raw_items = model.raw_tables()
    if user_table is not raw_users or item_table is not raw_items:
        raise UserError(f"--optimizer sparse-adam needs a model whose forward() returns its raw embedding "
                        f"tables (mf); {cfg.model} computes its tables from all rows, so every row gets a "
                        "gradient", hint=SPARSE_HINT)


def _check_sparse_settings(cfg: TrainConfig) -> None:
    """What sparse-adam cannot honour, refused before anything is written: every row would get a gradient."""
    why = None
    if cfg.negatives in ("per-row", "all"):
        why = f"--negatives {cfg.negatives}: it scores the whole item table"
    elif cfg.dropout > 0:
        why = f"--dropout {cfg.dropout}: dropout on the user table makes a new full table every step"
    elif cfg.model == "lightgcn":
        why = "--model lightgcn: its tables are propagated over the whole graph"
    if why:
        raise UserError(f"--optimizer sparse-adam cannot be used with {why}, so every row gets a gradient",
                        hint=SPARSE_HINT)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_states(gen: torch.Generator, device: str) -> dict[str, Any]:
    states = {"torch": torch.get_rng_state(), "sampler": gen.get_state(), "sampler_device": gen.device.type,
              "numpy": checkpoint.numpy_rng_state(), "python": random.getstate()}
    if device.startswith("cuda"):
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any], gen: torch.Generator, device: str, seed: int, epoch: int,
                    quiet: bool) -> None:
    """Restore every random stream; a sampler stream from another device type is restarted.

    CPU and CUDA generators have incompatible states, so a run trained on one
    and resumed on the other cannot continue the same stream of negatives: it
    reseeds the sampler from (seed, epoch) and says so (the run stays
    reproducible, but differs from one that never moved).
    """
    torch.set_rng_state(states["torch"])
    if states.get("sampler_device", "cpu") == gen.device.type:
        gen.set_state(states["sampler"])
    else:
        gen.manual_seed(seed * 1_000_003 + epoch)
        info(f"[yellow]note:[/] checkpoint trained on {states.get('sampler_device', 'cpu')}, resumed on "
             f"{gen.device.type}: the negative sampler restarts from seed {seed} and epoch {epoch}", quiet)
    checkpoint.set_numpy_rng_state(states["numpy"])
    random.setstate(states["python"])
    if device.startswith("cuda") and "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])


# ---------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------

def _checkpoint(model, optimizer, gen, device, epoch, temperatures, early, history, cfg, data_cfg, dataset,
                resumes, criterion=None):
    return {
        "format": checkpoint.CHECKPOINT_FORMAT,
        "train_config": to_dict(cfg),
        "data_config": to_dict(data_cfg),
        "dataset_fingerprint": dataset.fingerprint,
        "dataset_name": dataset.name,
        "n_users": dataset.n_users,
        "n_items": dataset.n_items,
        "epoch": epoch,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "rng": _rng_states(gen, device),
        **temperatures.state_dict(),          # tau_state, warmup
        "early_stopping": dict(early),
        "history": list(history),
        "resumes": list(resumes),             # each resume: after which epoch, which settings changed
        "selection": selection_label(cfg.select_on),
        **_criterion_state(criterion),        # a loss's own parameters (learned τ); none for softmax/bpr
    }


def _criterion_state(criterion: torch.nn.Module | None) -> dict[str, Any]:
    """``{"criterion": state}`` when the loss module has state to resume (a learned τ), else nothing."""
    state = criterion.state_dict() if criterion is not None else {}
    return {"criterion": {k: v.detach().cpu() for k, v in state.items()}} if state else {}


def _history_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def _write_config(out: Path, cfg: TrainConfig, data_cfg: PreprocessConfig) -> None:
    io.write_text(out / "config.toml", run_config_toml(data_cfg, cfg))


def _check_inputs(cfg: TrainConfig, dataset: PreparedDataset, quiet: bool) -> str:
    """The split epochs are selected on; UserError when the data cannot support the run."""
    if dataset.n_users == 0 or dataset.n_items == 0 or len(dataset.train) == 0:
        raise UserError(f"dataset {dataset.name!r} has no training interactions")
    select_split = "test" if cfg.select_on == "test" else "valid"
    if len(dataset.split(select_split)) == 0:
        raise UserError(f"dataset {dataset.name!r} has no {select_split} split to select the best epoch on",
                        hint="prepare it with --valid-ratio 0.1 (or a 3-way --split), "
                             "or use --select-on test (the published protocol)" if select_split == "valid" else None)
    if cfg.norm == "none" and cfg.tau_mode.startswith("adap"):
        info("[yellow]note:[/] adaptive temperatures assume normalized scores; with --norm none "
             "use --tau-mode none for the plain inner-product baseline", quiet)
    return select_split


def _open_run_dir(out: Path, cfg: TrainConfig, data_cfg: PreprocessConfig, dataset: PreparedDataset,
                  resume: bool, write: bool = True) -> dict[str, Any] | None:
    """Create ``out`` (or check the run to resume in it); the checkpoint to resume from, if any.

    ``write=False`` (a rank other than 0): check and read only.
    """
    last_path = out / checkpoint.LAST
    ckpt = None
    if resume:
        if not last_path.is_file():
            raise UserError(f"nothing to resume: {last_path} not found")
        ckpt = checkpoint.load(last_path)
        if ckpt["dataset_fingerprint"] != dataset.fingerprint:
            raise UserError(f"{last_path} was trained on dataset {ckpt.get('dataset_name')!r} "
                            f"(fingerprint {ckpt['dataset_fingerprint']}), not on {dataset.name!r} "
                            f"({dataset.fingerprint})", hint="resume with the same dataset options")
        changed = _changed_settings(ckpt["train_config"], cfg)
        refused = {k: v for k, v in changed.items() if k not in RESUME_MAY_CHANGE}
        if refused:
            what = ", ".join(f"{k} was {old!r}, now {new!r}" for k, (old, new) in sorted(refused.items()))
            raise UserError(f"cannot resume {out} with other settings: {what}",
                            hint="a resumed run continues with its own settings (only "
                                 f"{', '.join(sorted(RESUME_MAY_CHANGE))} may change); start a new run "
                                 "with --out to try others")
        ckpt["resumes"] = list(ckpt.get("resumes", [])) + [
            {"after_epoch": int(ckpt["epoch"]), "changed": {k: list(v) for k, v in changed.items()}}]
    elif last_path.exists():
        raise UserError(f"{out} already holds a run", hint=f"use --resume {out} to continue it, or another --out")
    if write:
        out.mkdir(parents=True, exist_ok=True)
        _write_config(out, cfg, data_cfg)
    return ckpt


# What a resumed run may change: how long and where it runs, not what it computes per epoch.
RESUME_MAY_CHANGE = frozenset({"epochs", "time_limit", "threads", "device", "patience"})


def _changed_settings(old: dict[str, Any], cfg: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """Settings of ``cfg`` that differ from the checkpoint's (keys the checkpoint predates are skipped)."""
    new = to_dict(cfg)
    return {k: (old[k], new[k]) for k in old if k in new and _plain(old[k]) != _plain(new[k])}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class _Batches:
    """The training pairs, cut into fixed batch bounds, and the negatives each batch draws."""

    def __init__(self, cfg: TrainConfig, dataset: PreparedDataset, device: str):
        self.cfg, self.n_items, self.device = cfg, dataset.n_items, device
        self.users = torch.as_tensor(np.array(dataset.train.users, dtype=np.int64), device=device)
        self.items = torch.as_tensor(np.array(dataset.train.items, dtype=np.int64), device=device)
        self.n_pairs = self.users.shape[0]
        bounds = list(range(0, self.n_pairs, cfg.batch_size)) + [self.n_pairs]
        if cfg.negatives == "in-batch" and len(bounds) > 2 and bounds[-1] - bounds[-2] < 2:
            del bounds[-2]  # a one-row batch has no in-batch negative: merge it into the previous one
        self.bounds = bounds
        self.count = len(bounds) - 1

    def __call__(self, gen: torch.Generator):
        """Yield (users, positives, negatives) for one shuffled epoch."""
        cfg = self.cfg
        perm = torch.randperm(self.n_pairs, generator=gen, device=self.device)
        for b in range(self.count):
            idx = perm[self.bounds[b]:self.bounds[b + 1]]
            users, pos = self.users[idx], self.items[idx]
            negs = None  # in-batch: the batch's own positives
            if cfg.negatives == "per-row":
                negs = torch.randint(0, self.n_items, (users.shape[0], cfg.num_negatives), generator=gen,
                                     device=self.device)
            elif cfg.negatives == "shared":
                negs = torch.randint(0, self.n_items, (cfg.num_negatives,), generator=gen, device=self.device)
            elif cfg.negatives == "grouped":
                groups = min(cfg.negative_groups, users.shape[0])
                negs = torch.randint(0, self.n_items, (groups, cfg.num_negatives), generator=gen,
                                     device=self.device)
            yield users, pos, negs


@dataclasses.dataclass
class _EpochPass:
    """What one pass over the training pairs measured."""
    loss: float                         # mean row loss at the run's temperatures
    pos_score: float                    # mean positive-pair score
    seconds: float


def _train_epoch(model, optimizer, gen, cfg: TrainConfig, batches: _Batches, criterion: AdapTauLoss,
                 temperatures: TemperatureController, progress, epoch: int, out: Path,
                 done_epochs: int, early: dict[str, Any], world: dist.World = dist.SINGLE,
                 trained: torch.nn.Module | None = None) -> _EpochPass:
    """One optimizer pass over the shuffled pairs; raises TrainingDiverged on a non-finite loss.

    With several ranks each takes its slice of every global batch (``_shard``), its
    loss scaled by its share so that DDP's gradient average is the one-process
    gradient; the logged loss, the epoch sums and Adap-τ's per-user L_u are summed
    over the ranks, so every rank (and the history) sees what one process would.
    """
    device = batches.device
    trained = model if trained is None else trained
    track = temperatures.tracks_user_loss
    tau0 = temperatures.epoch.tau0
    neg_l2_weight = cfg.num_negatives / batches.n_items
    lookup = row_lookup(cfg.optimizer)
    model.train()
    t0 = time.perf_counter()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    pos_sum = torch.zeros((), dtype=torch.float64, device=device)
    task = progress.add_task(f"epoch {epoch}/{cfg.epochs}", total=batches.count, stats="")
    for b, (users, pos, negs) in enumerate(batches(gen)):
        bounds, share = None, 1.0
        if world.active:
            users, pos, negs, bounds, share = _shard(users, pos, negs, cfg.negatives, world)
        user_table, item_table = trained()
        if users.shape[0] == 0:                  # an empty shard still joins DDP's gradient average,
            # with zero gradients of the kind the other ranks' lookups give (dense, or sparse for sparse-adam)
            loss = (lookup(user_table, users).sum() + lookup(item_table, pos).sum()) * 0.0
            _global_value(loss, world)           # the other ranks' loss all-reduce
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            _average_undistributed(model, criterion, cfg, world)
            optimizer.step()
            continue
        res = _batch_objective(model, (user_table, item_table), criterion, temperatures, cfg, (users, pos, negs),
                               bounds, track, neg_l2_weight)
        if world.active:
            res.loss = res.loss * share
            value = _global_value(res.loss, world)
        else:
            value = float(res.loss.detach())
        _check_loss(value, early, out, epoch, b, tau0, done_epochs)
        optimizer.zero_grad(set_to_none=True)
        res.loss.backward()
        _average_undistributed(model, criterion, cfg, world)
        optimizer.step()
        loss_sum += res.row_loss.sum(dtype=torch.float64)
        pos_sum += res.pos_score.sum(dtype=torch.float64)
        temperatures.observe(users, res.row_loss_tau1)
        if progress.live.is_started and (b % 8 == 0 or b == batches.count - 1):
            rate = (b + 1) / max(time.perf_counter() - t0, 1e-9)
            progress.update(task, completed=b + 1,
                            stats=f"{rate:.1f} batch/s  loss {value:.4f}  τ0 {tau0:.4f}")
    progress.remove_task(task)
    if world.active:
        dist.all_sum(loss_sum, world)
        dist.all_sum(pos_sum, world)
        totals = temperatures.user_loss_totals()
        if totals is not None:
            for t in totals:
                dist.all_sum(t, world)
    epoch_loss = float(loss_sum) / batches.n_pairs
    if not math.isfinite(epoch_loss):
        _diverged(out, epoch, batches.count - 1, f"the epoch's loss became {epoch_loss}", tau0, done_epochs)
    return _EpochPass(epoch_loss, float(pos_sum) / batches.n_pairs, time.perf_counter() - t0)


def _batch_objective(model: torch.nn.Module, tables: tuple[torch.Tensor, torch.Tensor], criterion: AdapTauLoss,
                     temperatures: TemperatureController, cfg: TrainConfig, batch: tuple, bounds, track: bool,
                     neg_l2_weight: float) -> BatchLoss:
    """One batch's loss from the model's (user, item) ``tables``: each table read once (``gather_batch``), the
    criterion at the rows' 1/τ, and the L2 term on the raw tables, which reuses the gathered rows when the
    tables are the raw ones (MF without dropout). ``benchmarks/bench_scale.py`` times this same call."""
    users, pos, negs = batch
    user_table, item_table = tables
    w_neg, w_pos = temperatures.inverse_temperatures(users)
    rows = gather_batch(user_table, item_table, users, pos, cfg.negatives, negs, bounds, row_lookup(cfg.optimizer))
    res = criterion(rows.users, rows.pos, rows.negatives, w_neg, w_pos, track)
    if cfg.l2 > 0:
        raw_users, raw_items = model.raw_tables()
        own = raw_users is user_table and raw_items is item_table
        res.loss = res.loss + l2_penalty(cfg.l2, raw_users, raw_items, users, pos, cfg.negatives, negs,
                                         neg_l2_weight, bounds, rows if own else None)
    return res


def _average_undistributed(model: torch.nn.Module, criterion: torch.nn.Module, cfg: TrainConfig,
                           world: dist.World) -> None:
    """Average over the ranks the gradients DDP does not: the loss's parameters, and sparse-adam's tables."""
    if world.active:
        if cfg.optimizer == "sparse-adam":
            dist.average_gradients(model.parameters(), world)
        dist.average_gradients(criterion.parameters(), world)


def _shard(users: torch.Tensor, pos: torch.Tensor, negs: torch.Tensor | None, negatives: str, world: dist.World):
    """This rank's rows of a global batch: (users, positives, negatives, grouped bounds, loss share).

    Per-row negatives follow their rows; a shared block (or the catalogue) is the
    same for every rank; grouped blocks go with the rows they serve, each block's
    slice cut to the shard (``bounds``). ``share`` = rows·ranks/batch: DDP divides
    the summed gradient by the number of ranks, so each rank's mean row loss is
    weighed by its part of the batch.
    """
    rows = users.shape[0]
    start, end = dist.row_shard(rows, world)
    bounds = None
    if negatives == "per-row":
        negs = negs[start:end]
    elif negatives == "grouped":
        kept, bounds = [], []
        for g, (a, b) in enumerate(group_bounds(rows, negs.shape[0])):
            lo, hi = max(a, start), min(b, end)
            if hi > lo:
                kept.append(g)
                bounds.append((lo - start, hi - start))
        negs = negs[kept]
    return users[start:end], pos[start:end], negs, bounds, (end - start) * world.size / rows


def _global_value(loss: torch.Tensor, world: dist.World) -> float:
    """The global batch loss from the ranks' scaled parts (their mean), the same on every rank."""
    t = loss.detach().to(torch.float64).reshape(1).clone()
    return float(dist.all_sum(t, world)) / world.size


def _update_early(early: dict[str, Any], metrics: dict[str, float], epoch: int, cfg: TrainConfig,
                  warmup_end: int | None) -> bool:
    """Record ``epoch`` if it beats the best monitored value; flag the stop. True when improved.

    The best is kept over every epoch, warm-up included, but the stop waits for the
    warm-up's end (``warmup_end``, None while it runs) and counts from the later of the
    best epoch and that end: a run must not stop before the closed form was tried.
    """
    value = metrics[cfg.monitor]
    improved = value > early["best_value"] or early["best_epoch"] == 0
    if improved:
        early.update(best_epoch=epoch, best_value=value, best_metrics=dict(metrics))
    if warmup_end is not None and epoch - max(early["best_epoch"], warmup_end) >= cfg.patience:
        early["stopped"] = True
    return improved


def _maybe_decay_lr(early: dict[str, Any], optimizer: torch.optim.Optimizer, epoch: int,
                    cfg: TrainConfig) -> float | None:
    """Reduce-on-plateau: the new lr if ``epoch`` ends ``lr_decay_patience`` epochs without gain, else None.

    The count starts at the later of the best epoch and the last decay (kept in
    ``early``, so a resumed run decays exactly when the uninterrupted one would);
    the lr itself lives in the optimizer state, which the checkpoint holds.
    """
    if cfg.lr_decay >= 1 or early["stopped"]:
        return None
    since = max(early["best_epoch"], early.get("last_decay", 0))
    current = optimizer.param_groups[0]["lr"]
    if epoch - since < cfg.lr_decay_patience or current <= cfg.lr_min:
        return None
    new = max(current * cfg.lr_decay, cfg.lr_min)
    for group in optimizer.param_groups:
        group["lr"] = new
    early["last_decay"] = epoch
    return new


def _epoch_line(cfg: TrainConfig, label: str, ks: tuple[int, ...], row: dict[str, Any],
                metrics: dict[str, float], improved: bool) -> str:
    """The one console line printed per epoch when not quiet."""
    text = f"epoch {row['epoch']}/{cfg.epochs}  loss {row['loss']:.4f}  τ0 {row['tau0']:.4f} ({row['tau_source']})"
    if cfg.tau_mode == "adap-tau":
        text += f"  τ_u {row['tau_u_q10']:.3f}..{row['tau_u_q90']:.3f}"
    if metrics:
        text += f"  │ {label} " + "  ".join(f"{m}@{k} {metrics[f'{m}@{k}']:.4f}"
                                           for m in ("recall", "ndcg") for k in ks if k == 20 or len(ks) == 1)
    text += f"  │ {row['train_seconds']:.1f}s + {row['eval_seconds']:.1f}s"
    if improved:
        text += "  [green]★ best[/]"
    return text


def train(train_cfg: TrainConfig, data_cfg: PreprocessConfig | None, dataset: PreparedDataset, out: Path | str,
          resume: bool = False, quiet: bool = True, model: torch.nn.Module | None = None,
          on_epoch: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train, validate and checkpoint a model on ``dataset``; write the run directory ``out``.

    ``model``: any backbone (``models.protocol.Backbone``) to train instead of
    the built-in ``train_cfg.model``; the run records it as ``custom:ClassName``
    (a run directory of a custom model is evaluated from Python, with the model
    in hand). ``data_cfg``: how the dataset was prepared (recorded in
    config.toml; None for an in-memory dataset). ``resume=True`` continues from
    ``out/checkpoint-last.pt`` (same dataset fingerprint required) up to
    ``train_cfg.epochs``. Raises ``UserError`` for bad settings,
    ``TrainingDiverged`` when the loss becomes NaN/inf (the last good
    checkpoint is kept). ``on_epoch(row)`` is called after each epoch is
    checkpointed, with that epoch's history row (loss, τ0, metrics ...): a
    tracker logs it, a tuner reports it; an exception it raises (an Optuna
    prune) ends the run there, the run directory intact and resumable.
    """
    if model is not None:
        train_cfg = dataclasses.replace(train_cfg, model=custom_model_name(model))
    data_cfg = data_cfg if data_cfg is not None else PreprocessConfig()
    cfg = check_config(train_cfg)
    out = Path(out)
    world = dist.world_from_env()
    if world.active and cfg.negatives == "in-batch":
        raise UserError("in-batch negatives are the other positives of the whole batch; split over processes "
                        "they would be each shard's", hint="use --negatives shared, grouped or per-row with "
                                                           "several processes, or train in one")
    device = dist.rank_device(resolve_device(cfg.device), world)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    quiet = quiet or not world.main                      # rank 0 alone reports progress
    select_split = _check_inputs(cfg, dataset, quiet)
    world = dist.init_world(device)
    if world.active and dist.restarted() and (out / checkpoint.LAST).is_file() and not resume:
        info(f"torchrun restarted the group: resuming {out} from its last checkpoint", quiet)
        resume = True
    _make_run_dir(out)
    # one writer per run directory: rank 0 holds the lock for the group
    lock = exclusive_lock(out / RUN_LOCK, f"run directory {out}") if world.main else contextlib.nullcontext()
    with lock:
        return _train_locked(cfg, data_cfg, dataset, out, resume, quiet, model, device, select_split, on_epoch,
                             world)


def _make_run_dir(out: Path) -> None:
    """Create the run directory, or say in one line why it cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the run directory {out}: {exc.strerror or exc}",
                        hint="choose another --out") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"the run directory {out} is not writable", hint="choose another --out")


def _train_locked(cfg: TrainConfig, data_cfg: PreprocessConfig, dataset: PreparedDataset, out: Path,
                  resume: bool, quiet: bool, model: torch.nn.Module | None, device: str,
                  select_split: str, on_epoch: Callable[[dict[str, Any]], None] | None = None,
                  world: dist.World = dist.SINGLE) -> TrainResult:
    """``train`` once the run directory is this process's (this group's, with several ranks)."""
    ckpt = _open_run_dir(out, cfg, data_cfg, dataset, resume, write=world.main)

    # --- model, optimizer, randomness -------------------------------------------------
    _seed_everything(cfg.seed)
    if model is None:
        model = build_model(cfg.model, dataset.n_users, dataset.n_items, cfg.dim, cfg.layers, cfg.dropout)
    elif cfg.dropout:
        raise UserError("dropout is a setting of the built-in models; a custom model applies its own",
                        hint="leave dropout at 0 and put dropout layers in your model")
    check_backbone(model, dataset.n_users, dataset.n_items)
    bind = getattr(model, "bind", None)
    if callable(bind):                     # a graph model attaches the training graph (LightGCN)
        bind(dataset.train.users, dataset.train.items)
    model.to(device)
    sparse = cfg.optimizer == "sparse-adam"
    if sparse:
        _check_row_tables(model, cfg, world, device)
        dist.broadcast_parameters(model, world)
    trained = model if sparse else dist.wrap(model, world)   # DDP averages dense gradients over ranks
    criterion = make_criterion(cfg.parts().loss, dataset.item_popularity, AdapTauLoss).to(device)
    optimizer = make_optimizer(model, cfg.lr, criterion.parameters(), cfg.optimizer)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed)
    temperatures = TemperatureController(cfg.parts().temperature, dataset.n_users,
                                         dataset.n_items, dataset.train.users, dataset.train.items, device)
    early = {"best_epoch": 0, "best_value": -math.inf, "best_metrics": {}, "stopped": False}
    history: list[dict[str, Any]] = []
    resumes: list[dict[str, Any]] = []
    start = 0
    if ckpt is not None:
        resumes = list(ckpt.get("resumes", []))
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if "criterion" in ckpt:               # absent from older checkpoints and for losses without state
            criterion.load_state_dict(ckpt["criterion"])
        _set_rng_states(ckpt["rng"], gen, device, cfg.seed, int(ckpt["epoch"]), quiet)
        temperatures.load_state_dict({"tau_state": ckpt["tau_state"],
                                      "warmup": _restored_warmup(ckpt, temperatures.warmup).to_dict()})
        early = dict(ckpt["early_stopping"])
        history = list(ckpt["history"])
        start = int(ckpt["epoch"])
        info(f"resuming {out} after epoch {start}", quiet)

    groups = popularity_groups(dataset.item_popularity, cfg.groups, cfg.grouping)
    group_sizes = np.bincount(groups, minlength=cfg.groups)
    heldout, exclude = split_masks(dataset, select_split)
    ks = tuple(sorted({int(k) for k in cfg.ks}))
    label = selection_label(cfg.select_on)
    batches = _Batches(cfg, dataset, device)

    from rich.progress import TextColumn
    progress = make_progress(quiet, TextColumn("{task.fields[stats]}"))
    last_epoch = start if early["stopped"] else cfg.epochs
    started = time.perf_counter()
    time_limited = False
    with progress:
        for epoch in range(start + 1, last_epoch + 1):
            u_start, i_start, _ = scoring_embeddings(model, cfg.norm)
            temps = temperatures.open_epoch(epoch, u_start, i_start)
            del u_start, i_start
            if temps.reason:
                info(f"[yellow]epoch {epoch}:[/] {temps.reason}", quiet)
            done = _train_epoch(model, optimizer, gen, cfg, batches, criterion, temperatures, progress,
                                epoch, out, len(history), early, world, trained)

            # --- evaluation and bookkeeping ---------------------------------------------
            t1 = time.perf_counter()
            u_emb, i_emb, raw_items = scoring_embeddings(model, cfg.norm)
            norms = raw_items.norm(dim=1).double().cpu().numpy()
            row: dict[str, Any] = {"epoch": epoch, "loss": done.loss, "lr": optimizer.param_groups[0]["lr"],
                                   "tau0": temps.tau0, "w0": 1.0 / temps.tau0, "tau_source": temps.source,
                                   "warmup": temps.warmup}
            if temps.stats is not None:
                row.update(tau0_closed=temps.closed, mu_pos=temps.stats.mu_pos, mu=temps.stats.mu,
                           score_gap=temps.stats.mu_pos - temps.stats.mu)
            row.update(temperatures.summary())
            if (learned_tau := learned_temperature(criterion)) is not None:   # --loss learned-tau
                row["learned_tau"] = learned_tau
            evaluated = epoch % cfg.eval_every == 0 or epoch == cfg.epochs
            metrics = _metrics(u_emb, i_emb, heldout, exclude, ks, world) if evaluated else {}
            for k in ks:
                for m in metric_names():
                    row[f"{select_split}_{m}@{k}"] = metrics.get(f"{m}@{k}", float("nan"))
            group_norm = np.bincount(groups, weights=norms, minlength=cfg.groups) / np.maximum(group_sizes, 1)
            for g in range(cfg.groups):
                row[f"item_norm_g{g}"] = float(group_norm[g])
            row["pos_score"] = done.pos_score
            row["positive_in_denominator"] = bool(cfg.positive_in_denominator)
            row["selection"] = label
            row["train_seconds"] = done.seconds
            row["eval_seconds"] = time.perf_counter() - t1
            history.append(row)

            improved = _update_early(early, metrics, epoch, cfg, temperatures.warmup.ended_after) \
                if evaluated else False
            ended = temperatures.close_epoch(epoch, metrics.get(cfg.monitor) if evaluated else None, cfg.monitor)
            if ended:
                info(f"epoch {epoch}: warm-up ends ({ended}); the closed form takes over "
                     f"(it reads tau0 = {temps.closed:.4g} now, the prior was {temperatures.prior:.4g})", quiet)
            new_lr = _maybe_decay_lr(early, optimizer, epoch, cfg) if evaluated else None
            if new_lr is not None:
                info(f"epoch {epoch}: no {cfg.monitor} gain for {cfg.lr_decay_patience} epochs, "
                     f"lr -> {new_lr:.3g}", quiet)
            if world.main:
                state = _checkpoint(model, optimizer, gen, device, epoch, temperatures, early, history, cfg,
                                    data_cfg, dataset, resumes, criterion)
                if improved:
                    checkpoint.save(out / checkpoint.BEST, state)
                checkpoint.save(out / checkpoint.LAST, state)
                io.write_parquet(out / "history.parquet", _history_frame(history))
            if not quiet:
                err_console.print(_epoch_line(cfg, label, ks, row, metrics, improved), highlight=False,
                                  soft_wrap=True)
            if on_epoch is not None and world.main:
                on_epoch(dict(row))
            if early["stopped"]:
                since = temperatures.warmup.ended_after or 0
                counted = f" since the warm-up ended after epoch {since}" if since > early["best_epoch"] else ""
                info(f"early stop: no {cfg.monitor} gain for {cfg.patience} epochs{counted} "
                     f"(best epoch {early['best_epoch']})", quiet)
                break
            if cfg.time_limit and epoch < last_epoch and dist.any_flag(
                    time.perf_counter() - started >= 60 * cfg.time_limit, world):   # every rank stops together
                time_limited = True
                info(f"time limit of {cfg.time_limit:g} min reached after epoch {epoch}: "
                     f"continue with --resume {out}", quiet)
                break

    dist.barrier(world)                        # rank 0's last checkpoint is on disk for every rank
    return _finish(out, cfg, data_cfg, dataset, model, history, early, temperatures, device, quiet,
                   time_limited, resumes, world)


def _metrics(u_emb: torch.Tensor, i_emb: torch.Tensor, heldout, exclude, ks: tuple[int, ...],
             world: dist.World) -> dict[str, float]:
    """Full-ranking metrics; with several ranks each ranks a shard of the users and the sums are combined."""
    if not world.active:
        return evaluate_embeddings(u_emb, i_emb, heldout, exclude, ks).metrics
    users = np.flatnonzero(np.diff(heldout.indptr) > 0)
    start, end = dist.row_shard(len(users), world)
    names, sums = metric_sums(u_emb, i_emb, heldout, exclude, ks, users[start:end])
    total = dist.all_sum(torch.as_tensor(sums, dtype=torch.float64, device=u_emb.device), world)
    return {n: float(v) / len(users) for n, v in zip(names, total.cpu().tolist())} if len(users) else \
        {n: float("nan") for n in names}


def _restored_warmup(ckpt: dict[str, Any], fresh: taumod.Warmup) -> taumod.Warmup:
    """The warm-up state of a checkpoint; older ones had a fixed count (no rule): rebuilt from the epoch."""
    if "warmup" in ckpt:
        return taumod.Warmup.from_dict(ckpt["warmup"])
    epoch = int(ckpt["epoch"])
    if fresh.ended_after is None and epoch >= fresh.max_epochs:
        fresh.ended_after, fresh.reason = fresh.max_epochs, f"{fresh.max_epochs} warm-up epochs done"
    return fresh


# A batch loss this many times the run's first one (at least 1) is an explosion, not learning: the
# softmax starts near log M and only falls; un-normalized scores that run away (--norm none with a
# large lr) reach 1e27 while staying finite.
EXPLODE_FACTOR = 1e4


def _check_loss(value: float, early: dict[str, Any], out: Path, epoch: int, batch: int, tau0: float,
                start_epoch: int) -> None:
    """Stop on a non-finite loss, or on one that exploded past ``EXPLODE_FACTOR`` x the first batch's."""
    if not math.isfinite(value):
        _diverged(out, epoch, batch, f"the loss became {value}", tau0, start_epoch)
    first = early.setdefault("first_loss", value)
    if value > EXPLODE_FACTOR * max(abs(first), 1.0):
        _diverged(out, epoch, batch, f"the loss exploded to {value:.4g} (more than {EXPLODE_FACTOR:g}x the first batch's "
                                     f"{first:.4g})", tau0, start_epoch)


def _diverged(out: Path, epoch: int, batch: int, what: str, tau0: float, start_epoch: int) -> None:
    last = out / checkpoint.LAST
    kept = (f"the last good checkpoint is kept at {last} (epoch {start_epoch})" if last.is_file()
            else "no checkpoint had been written yet")
    raise TrainingDiverged(f"training diverged: {what} at epoch {epoch}, batch {batch + 1} "
                           f"(tau0 = {tau0:.4g}); {kept}",
                           hint="lower --lr, use a larger --tau or tau_min, or add --l2")


def _finish(out, cfg, data_cfg, dataset, model, history, early, temperatures, device, quiet,
            time_limited: bool = False, resumes: list | None = None, world: dist.World = dist.SINGLE) -> TrainResult:
    """Reload the best checkpoint, measure it on valid and test, write report.json / report.md.

    A run cut by ``--time-limit`` gets a report too (flagged ``time_limited``), so
    what it reached so far is usable; ``--resume`` continues it and rewrites the report.
    """
    best_path = out / checkpoint.BEST
    if best_path.is_file():
        model.load_state_dict(checkpoint.load(best_path)["model"])
    u_emb, i_emb, _ = scoring_embeddings(model, cfg.norm)
    ks = tuple(sorted({int(k) for k in cfg.ks}))
    valid_metrics = None
    if len(dataset.split("valid")):
        heldout, exclude = split_masks(dataset, "valid")
        valid_metrics = _metrics(u_emb, i_emb, heldout, exclude, ks, world)
    test_metrics: dict[str, float] = {}
    if len(dataset.split("test")):
        heldout, exclude = split_masks(dataset, "test")
        test_metrics = _metrics(u_emb, i_emb, heldout, exclude, ks, world)
    frame = _history_frame(history)
    label = selection_label(cfg.select_on)
    last_tau0 = float(history[-1]["tau0"]) if history else float("nan")
    warmup = temperatures.warmup
    report = {
        "selection": label,
        "monitor": cfg.monitor,
        "best_epoch": int(early["best_epoch"]),
        "best_value": float(early["best_value"]) if early["best_epoch"] else None,
        "epochs_run": len(history),
        "stopped_early": bool(early["stopped"]),
        "time_limited": bool(time_limited),
        "best_metrics": early["best_metrics"],
        "valid_metrics": valid_metrics,
        "test_metrics": test_metrics,
        "test_note": ("the epoch was selected on the test split (published protocol): "
                      "test numbers are optimistic") if cfg.select_on == "test" else
                     "epoch selected on the validation split; test measured once on the best checkpoint",
        "tau0_final": last_tau0,
        "resumes": list(resumes or []),
        "warmup": {"ended_after_epoch": warmup.ended_after, "reason": warmup.reason,
                   "rule": (f"prior until {warmup.patience} evaluations without a {cfg.monitor} gain, "
                            f"at most {warmup.max_epochs} epochs") if warmup.patience else
                           f"prior for {warmup.max_epochs} epochs"},
        "tau_mode": cfg.tau_mode,
        "positive_in_denominator": bool(cfg.positive_in_denominator),
        "tau_user_positive": bool(cfg.tau_user_positive),
        "train_seconds": float(frame["train_seconds"].sum()) if len(frame) else 0.0,
        "eval_seconds": float(frame["eval_seconds"].sum()) if len(frame) else 0.0,
        "device": device,
        "threads": torch.get_num_threads(),
        "dataset": {"name": dataset.name, "fingerprint": dataset.fingerprint, "n_users": dataset.n_users,
                    "n_items": dataset.n_items, "train": len(dataset.train), "valid": len(dataset.split("valid")),
                    "test": len(dataset.split("test"))},
        "train_config": to_dict(cfg),
        "data_config": to_dict(data_cfg),
        "run_dir": str(out),
    }
    report["processes"] = world.size
    if world.main:
        io.write_json(out / "report.json", report)
        io.write_text(out / "report.md", render_report_md(report))
    return TrainResult(run_dir=out, best_epoch=int(early["best_epoch"]), epochs_run=len(history),
                       best_metrics=dict(early["best_metrics"]), test_metrics=test_metrics,
                       valid_metrics=valid_metrics, tau0=last_tau0, selection=label,
                       stopped_early=bool(early["stopped"]),
                       positive_in_denominator=bool(cfg.positive_in_denominator), history=frame, report=report)


def _negatives_text(cfg: dict[str, Any], n_items: int) -> str:
    """How the run drew its negatives, for the report (``all`` has no M of its own)."""
    if cfg["negatives"] == "all":
        return f"all (every one of the {n_items} items; L2 weighted as M = {cfg['num_negatives']} draws)"
    if cfg["negatives"] == "in-batch":
        return "in-batch (the batch's other positives)"
    if cfg["negatives"] == "grouped":
        return f"grouped ({cfg.get('negative_groups', 16)} blocks of M = {cfg['num_negatives']}, one per batch slice)"
    return f"{cfg['negatives']} (M = {cfg['num_negatives']})"


def render_report_md(report: dict[str, Any]) -> str:
    """The human summary of a run (report.md)."""
    cfg = report["train_config"]
    lines = [f"# Training report: {Path(report['run_dir']).name}", "",
             f"- dataset: {report['dataset']['name']} ({report['dataset']['n_users']} users, "
             f"{report['dataset']['n_items']} items, fingerprint {report['dataset']['fingerprint']})",
             f"- model: {cfg['model']} dim {cfg['dim']}, norm {cfg['norm']}, loss {cfg['loss']}, "
             f"negatives {_negatives_text(cfg, report['dataset']['n_items'])}, tau mode {cfg['tau_mode']}",
             f"- positive in the softmax denominator: {'yes' if report['positive_in_denominator'] else 'no'}; "
             f"tau_u on the positive logit: {'yes' if report['tau_user_positive'] else 'no'}",
             f"- epoch selection: {report['selection']} on {report['monitor']}; best epoch "
             f"{report['best_epoch']} of {report['epochs_run']}"
             + (" (early stop)" if report["stopped_early"] else "")
             + (" (time limit reached: resumable)" if report.get("time_limited") else ""),
             f"- final tau0: {report['tau0_final']:.4f}",
             f"- time: {report['train_seconds']:.1f} s training, {report['eval_seconds']:.1f} s evaluation "
             f"on {report['device']}", ""]
    tables = [("validation", report.get("valid_metrics")),
              ("test" + (" (published protocol: epoch chosen on test)" if report["selection"] != "valid" else ""),
               report.get("test_metrics"))]
    for title, metrics in tables:
        if not metrics:
            continue
        ks = sorted({int(k.split("@")[1]) for k in metrics})
        lines += [f"## {title}", "", "| metric | " + " | ".join(f"@{k}" for k in ks) + " |",
                  "|---|" + "---|" * len(ks)]
        for m in metric_names():
            lines.append(f"| {m} | " + " | ".join(f"{metrics.get(f'{m}@{k}', float('nan')):.4f}" for k in ks) + " |")
        lines.append("")
    lines.append(f"_{report['test_note']}_")
    return "\n".join(lines) + "\n"
