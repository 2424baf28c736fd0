"""Golden runs: fixed-seed trainings of every mode, recorded before a refactor and compared after.

``python tests/golden_cases.py`` (re)records ``tests/golden/*.json`` from the
current code; ``tests/test_golden.py`` retrains each case and requires the
same history and metrics, bit for bit (timings aside). Record only when a
change of numbers is intended, and say so in the commit.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"
TIMING = ("train_seconds", "eval_seconds")

BASE = dict(epochs=3, batch_size=256, num_negatives=64, lr=0.01, warmup_epochs=1, warmup_patience=0, device="cpu",
            threads=1, negatives="shared",
            ks=(10, 20), seed=7)

CASES: dict[str, dict] = {
    "mf-fixed-shared": dict(tau_mode="fixed", tau=0.2),
    "mf-adaptau0-shared": dict(tau_mode="adap-tau0"),
    "mf-adaptau-shared": dict(tau_mode="adap-tau", dropout=0.1),
    "mf-none-nonorm": dict(tau_mode="none", norm="none", l2=1e-4),
    "mf-adaptau-perrow": dict(tau_mode="adap-tau", negatives="per-row", num_negatives=16, l2=1e-3),
    "mf-adaptau-grouped": dict(tau_mode="adap-tau", negatives="grouped", negative_groups=4),
    "mf-adaptau-all": dict(tau_mode="adap-tau", negatives="all"),
    "mf-adaptau-inbatch": dict(tau_mode="adap-tau", negatives="in-batch"),
    "mf-adaptau-published-rule": dict(tau_mode="adap-tau", tau_user_positive=False, positive_in_denominator=True,
                                      tau_baseline="quantile", tau_quantile=0.8, tau_scale=0.5),
    "mf-adaptau-warmup-rule": dict(tau_mode="adap-tau", epochs=6, warmup_epochs=5, warmup_patience=1, lr=0.05),
    "mf-bpr-shared": dict(tau_mode="fixed", tau=1.0, loss="bpr", num_negatives=4),
    "mf-adaptau-lrdecay-test": dict(tau_mode="adap-tau", lr=0.05, lr_decay=0.5, lr_decay_patience=1,
                                    select_on="test", epochs=5),
    "lightgcn-adaptau-inbatch": dict(model="lightgcn", tau_mode="adap-tau", negatives="in-batch", layers=2,
                                     dropout=0.1),
    "lightgcn-fixed-shared": dict(model="lightgcn", tau_mode="fixed", tau=0.15, layers=1),
}


def _plain(value):
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def run_case(name: str, home: str, out: Path) -> dict:
    """Train case ``name`` on synthetic-tiny; its history (no timings) and final report numbers."""
    from adaptau_cli.base.settings import PreprocessConfig, TrainConfig
    from adaptau_cli.data.prepare import prepare_dataset
    from adaptau_cli.engine.trainer import train

    data_cfg = PreprocessConfig(dataset="synthetic-tiny", home=home)
    ds = prepare_dataset(data_cfg)
    result = train(TrainConfig(**{**BASE, **CASES[name]}), data_cfg, ds, out)
    history = [{k: _plain(v) for k, v in row.items() if k not in TIMING}
               for row in result.history.to_dict(orient="records")]
    return {"history": history, "best_epoch": result.best_epoch, "test_metrics": result.test_metrics,
            "valid_metrics": result.valid_metrics, "tau0": result.tau0}


def record() -> None:
    GOLDEN.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in CASES:
            got = run_case(name, tmp + "/home", Path(tmp) / name)
            (GOLDEN / f"{name}.json").write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
            print("recorded", name, file=sys.stderr)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    record()
