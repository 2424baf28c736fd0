"""adaptau: normalized-embedding recommenders with an adaptive temperature (Adap-τ, WWW 2023).

The public API, for a model of your own (see ``examples/custom_model.py`` and
the README's "From Python")::

    import adaptau_cli as at

    data = at.prepare_dataset(at.PreprocessConfig(dataset="synthetic"))
    result = at.train(at.TrainConfig(tau_mode="adap-tau"), None, data, "runs/mine", model=MyTwoTower(...))
    users, items, _ = at.scoring_embeddings(model, "both")
    print(at.evaluate(data, users, items).metrics["recall@20"])

Pieces: ``TemperatureController`` (τ0 and τ_u for any training loop),
``AdapTauLoss`` with ``Negatives``, ``gather_batch`` and ``l2_penalty`` (the loss as a module),
``RowwiseAdam`` with ``sparse_rows`` (lazy Adam over sparse row gradients, for
large catalogues),
``Backbone`` (what a model must offer: ``forward()`` and ``raw_tables()``),
``train`` (the trainer, for the built-in MF / LightGCN or any backbone),
``evaluate`` / ``analyze_magnitude`` / ``recommend_embeddings`` on in-memory
embeddings, and ``load_run`` / ``evaluate_run`` / ``recommend`` on run
directories. Names are loaded on first use, so ``import adaptau_cli`` is cheap
and changes nothing in the process (no environment variable, no thread setting).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute)
_API: dict[str, tuple[str, str]] = {
    # errors and settings
    "AdaptauError": ("adaptau_cli.base.errors", "AdaptauError"),
    "UserError": ("adaptau_cli.base.errors", "UserError"),
    "DataError": ("adaptau_cli.base.errors", "DataError"),
    "TrainingDiverged": ("adaptau_cli.base.errors", "TrainingDiverged"),
    "PreprocessConfig": ("adaptau_cli.base.settings", "PreprocessConfig"),
    "TrainConfig": ("adaptau_cli.base.settings", "TrainConfig"),
    "EvaluateConfig": ("adaptau_cli.base.settings", "EvaluateConfig"),
    # data
    "prepare_dataset": ("adaptau_cli.data.prepare", "prepare_dataset"),
    "PreparedDataset": ("adaptau_cli.data.dataset", "PreparedDataset"),
    "synthetic_item_features": ("adaptau_cli.data.synthetic", "item_features"),
    # the method
    "TemperatureController": ("adaptau_cli.method.temperature", "TemperatureController"),
    "TemperatureSettings": ("adaptau_cli.base.settings", "TemperatureSettings"),
    "EpochTemperatures": ("adaptau_cli.method.temperature", "EpochTemperatures"),
    "AdapTauLoss": ("adaptau_cli.method.losses", "AdapTauLoss"),
    "Negatives": ("adaptau_cli.method.losses", "Negatives"),
    "l2_penalty": ("adaptau_cli.method.losses", "l2_penalty"),
    "gather_batch": ("adaptau_cli.method.losses", "gather_batch"),
    "sparse_rows": ("adaptau_cli.method.losses", "sparse_rows"),
    "RowwiseAdam": ("adaptau_cli.engine.optimizers", "RowwiseAdam"),
    "make_criterion": ("adaptau_cli.method.rivals", "make_criterion"),
    "CosineContrastiveLoss": ("adaptau_cli.method.rivals", "CosineContrastiveLoss"),
    "DirectAULoss": ("adaptau_cli.method.rivals", "DirectAULoss"),
    "BilateralSoftmaxLoss": ("adaptau_cli.method.rivals", "BilateralSoftmaxLoss"),
    "LearnedTauSoftmaxLoss": ("adaptau_cli.method.rivals", "LearnedTauSoftmaxLoss"),
    "LogQSoftmaxLoss": ("adaptau_cli.method.rivals", "LogQSoftmaxLoss"),
    # models
    "Backbone": ("adaptau_cli.models.protocol", "Backbone"),
    "MF": ("adaptau_cli.models.mf", "MF"),
    "LightGCN": ("adaptau_cli.models.lightgcn", "LightGCN"),
    # the engine
    "train": ("adaptau_cli.engine.trainer", "train"),
    "TrainResult": ("adaptau_cli.engine.trainer", "TrainResult"),
    "scoring_embeddings": ("adaptau_cli.engine.backbone", "scoring_embeddings"),
    "load_run": ("adaptau_cli.engine.runs", "load_run"),
    # workflows
    "evaluate": ("adaptau_cli.workflows.evaluate", "evaluate_dataset"),
    "evaluate_run": ("adaptau_cli.workflows.evaluate", "evaluate_run"),
    "analyze_magnitude": ("adaptau_cli.workflows.magnitude", "magnitude_from_arrays"),
    "analyze_run": ("adaptau_cli.workflows.magnitude", "analyze_run"),
    "write_magnitude_plots": ("adaptau_cli.workflows.plots", "write_magnitude_plots"),
    "recommend_embeddings": ("adaptau_cli.workflows.recommend", "recommend_embeddings"),
    "recommend": ("adaptau_cli.workflows.recommend", "recommend"),
    "estimate_tau": ("adaptau_cli.workflows.estimate", "estimate_tau"),
    # research workflows and serving
    "compare": ("adaptau_cli.workflows.compare", "compare"),
    "wilcoxon": ("adaptau_cli.eval.significance", "wilcoxon"),
    "paired_t": ("adaptau_cli.eval.significance", "paired_t"),
    "holm": ("adaptau_cli.eval.significance", "holm"),
    "sweep": ("adaptau_cli.workflows.sweep", "sweep"),
    "tune": ("adaptau_cli.workflows.tune", "tune"),
    "export_run": ("adaptau_cli.workflows.export", "export_run"),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _API[name]
    except KeyError:
        raise AttributeError(f"module 'adaptau_cli' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
