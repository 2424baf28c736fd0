"""Reading a finished (or interrupted) run back: its settings, model, history and dataset.

``load_run(path)`` accepts a run directory (its ``checkpoint-best.pt``, else
``checkpoint-last.pt``) or a checkpoint file, and returns a ``LoadedRun``
whose model is in eval mode on the requested device. The dataset is not
stored in a checkpoint, only its fingerprint: ``open_run_dataset`` prepares
(or reuses) it from the run's own ``[dataset]`` settings and refuses it if the
content differs, and ``scoring_embeddings`` refuses any other dataset — a
model is meaningless on a dataset whose user/item indices mean something else.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from adaptau_cli.base.errors import UserError
from adaptau_cli.base.settings import PreprocessConfig, TrainConfig, from_dict
from adaptau_cli.data.dataset import PreparedDataset
from adaptau_cli.engine import checkpoint
from adaptau_cli.engine.backbone import scoring_embeddings
from adaptau_cli.engine.trainer import CUSTOM_PREFIX
from adaptau_cli.models import build_model


@dataclasses.dataclass(eq=False)
class LoadedRun:
    run_dir: Path | None
    checkpoint_path: Path
    train_config: TrainConfig
    data_config: PreprocessConfig
    dataset_fingerprint: str
    dataset_name: str
    epoch: int
    model: torch.nn.Module
    history: pd.DataFrame | None
    tau_state: dict[str, Any]
    warmup: dict[str, Any] = dataclasses.field(default_factory=dict)   # when and why the warm-up ended
    device: str = "cpu"
    _cache: dict = dataclasses.field(default_factory=dict, repr=False)

    def check_dataset(self, dataset: PreparedDataset) -> None:
        """UserError unless ``dataset`` is the one this model was trained on."""
        if dataset.fingerprint != self.dataset_fingerprint:
            raise UserError(f"{self.checkpoint_path} was trained on dataset {self.dataset_name!r} "
                            f"(fingerprint {self.dataset_fingerprint}), not on {dataset.name!r} "
                            f"(fingerprint {dataset.fingerprint})",
                            hint="use the dataset options the run was trained with (see its config.toml)")

    def _embeddings(self, dataset: PreparedDataset, norm: str | None = None):
        """(users, items, raw items) normalized per ``norm`` (default: as trained), cached per ``norm``."""
        self.check_dataset(dataset)
        norm = self.train_config.norm if norm is None else norm
        if norm not in self._cache:
            bind = getattr(self.model, "bind", None)
            if callable(bind) and not self._cache:   # a graph model (LightGCN) rebuilds its training graph
                bind(dataset.train.users, dataset.train.items)
            self._cache[norm] = scoring_embeddings(self.model, norm)
        return self._cache[norm]

    def scoring_embeddings(self, dataset: PreparedDataset) -> tuple[torch.Tensor, torch.Tensor]:
        """(users, items) as the model scores them (normalized per ``norm``): ranking = inner product."""
        u, i, _ = self._embeddings(dataset)
        return u, i

    def raw_embeddings(self, dataset: PreparedDataset) -> tuple[torch.Tensor, torch.Tensor]:
        """(users, items) before any normalization: ranking = the raw inner product.

        For a cosine-trained model this ranks by ‖e_i‖ cos(e_u, e_i) (‖e_u‖ does not
        change a user's ranking), i.e. it lets the item magnitudes back into the score.
        """
        u, i, _ = self._embeddings(dataset, "none")
        return u, i

    def norm_power_embeddings(self, dataset: PreparedDataset, power: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(unit users, unit items × ‖e_i‖^power): ranking = ‖e_i‖^power · cos(e_u, e_i).

        ``power`` 0 is the cosine, 1 ranks as ``raw_embeddings`` does; in between, a
        partial popularity prior for a cosine-trained model whose norms follow popularity.
        """
        u, i = self.raw_embeddings(dataset)
        norms = i.norm(dim=1, keepdim=True)
        unit = i / norms.clamp(min=1e-12)
        return torch.nn.functional.normalize(u, dim=1), unit * norms.pow(power)

    def raw_item_norms(self, dataset: PreparedDataset) -> np.ndarray:
        """‖e_i‖ of the item embeddings before normalization (LightGCN: after propagation)."""
        _, _, raw = self._embeddings(dataset)
        return raw.norm(dim=1).double().cpu().numpy()


def _resolve_checkpoint(path: Path) -> tuple[Path | None, Path]:
    if path.is_dir():
        for name in (checkpoint.BEST, checkpoint.LAST):
            if (path / name).is_file():
                return path, path / name
        raise UserError(f"{path} holds no checkpoint (checkpoint-best.pt or checkpoint-last.pt)")
    if path.is_file():
        parent = path.parent
        run_dir = parent if (parent / "config.toml").is_file() else None
        return run_dir, path
    raise UserError(f"run not found: {path}")


def load_run(path: str | Path, device: str = "cpu", model: torch.nn.Module | None = None) -> LoadedRun:
    """Load a run directory or a checkpoint file; the model comes back in eval mode on ``device``.

    ``model``: a fresh instance of the backbone a custom run trained (its weights
    are loaded into it); the built-in models are rebuilt from the run's settings.
    """
    run_dir, ckpt_path = _resolve_checkpoint(Path(path))
    ckpt = checkpoint.load(ckpt_path)
    train_cfg = from_dict(TrainConfig, ckpt["train_config"], origin=str(ckpt_path))
    data_cfg = from_dict(PreprocessConfig, ckpt["data_config"], origin=str(ckpt_path))
    if model is None:
        if train_cfg.model.startswith(CUSTOM_PREFIX):
            raise UserError(f"{ckpt_path} was trained with a custom model ({train_cfg.model[len(CUSTOM_PREFIX):]})",
                            hint="load it from Python: adaptau_cli.load_run(path, model=YourModel(...))")
        model = build_model(train_cfg.model, int(ckpt["n_users"]), int(ckpt["n_items"]), train_cfg.dim,
                            train_cfg.layers, train_cfg.dropout)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise UserError(f"{ckpt_path}: the weights do not fit {type(model).__name__} "
                        f"({str(exc).splitlines()[0][:160]})") from None
    model.to(device).eval()
    history = None
    if run_dir is not None and (run_dir / "history.parquet").is_file():
        history = pd.read_parquet(run_dir / "history.parquet")
    elif ckpt.get("history"):
        history = pd.DataFrame(ckpt["history"])
    return LoadedRun(run_dir=run_dir, checkpoint_path=ckpt_path, train_config=train_cfg, data_config=data_cfg,
                     dataset_fingerprint=ckpt["dataset_fingerprint"], dataset_name=ckpt.get("dataset_name", "?"),
                     epoch=int(ckpt["epoch"]), model=model, history=history, tau_state=ckpt.get("tau_state", {}),
                     warmup=ckpt.get("warmup", {}), device=device)


def open_run_dataset(run: LoadedRun) -> PreparedDataset:
    """The run's dataset: found in the store by its content hash first, else prepared from its settings.

    The store holds the prepared data, so a moved or deleted source file does not
    break a run (nor does a changed one build a new store folder); the raw source is
    read only when the store entry is gone. UserError if the content changed.
    """
    from adaptau_cli.data.store import find_by_content_hash

    cfg = run.data_config
    stored = find_by_content_hash(cfg.home, run.dataset_fingerprint)
    if stored is not None:
        return stored
    if not cfg.dataset and not cfg.source:
        raise UserError(f"{run.checkpoint_path} was trained on an in-memory dataset ({run.dataset_name!r}); "
                        "its data cannot be reopened from the run's settings",
                        hint="pass the dataset explicitly")
    from adaptau_cli.data.prepare import prepare_dataset

    dataset = prepare_dataset(cfg, quiet=True)
    run.check_dataset(dataset)
    return dataset
