"""`adaptau train --log-to tensorboard|mlflow`: every epoch's numbers, the settings once, resume continues the steps."""

from __future__ import annotations

import json
import math
import sys

import pandas as pd
import pytest
from cli_helpers import run_cli

from adaptau_cli.engine.tracking import epoch_numbers, metric_key, parse_backends

FAST = ["--epochs", "2", "--batch-size", "256", "--num-negatives", "32", "--lr", "0.01", "--warmup-epochs", "1",
        "--device", "cpu", "--threads", "1", "--seed", "3", "--quiet"]


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:"), err
    return lines[0]


def _expected(run_dir) -> dict[str, dict[int, float]]:
    """What the logs must hold: every number of every history row, by logged name, by epoch."""
    history = pd.read_parquet(run_dir / "history.parquet")
    expected: dict[str, dict[int, float]] = {}
    for row in history.to_dict("records"):
        for key, value in epoch_numbers(row).items():
            expected.setdefault(key, {})[int(row["epoch"])] = value
    return expected


def _tensorboard_scalars(log_dir) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags()["scalars"]:
        events = acc.Scalars(tag)
        steps = [e.step for e in events]
        assert len(steps) == len(set(steps)), f"{tag}: a step logged twice: {steps}"
        out[tag] = {e.step: e.value for e in events}
    return out


def _assert_same(logged: dict[str, dict[int, float]], expected: dict[str, dict[int, float]], rel: float) -> None:
    assert set(logged) == set(expected)
    for key, per_epoch in expected.items():
        assert set(logged[key]) == set(per_epoch), key
        for epoch, value in per_epoch.items():
            assert logged[key][epoch] == pytest.approx(value, rel=rel, abs=1e-30), (key, epoch)


def test_tensorboard_and_mlflow_hold_every_epoch_and_a_resume_continues_them(tmp_path):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    run = tmp_path / "run"
    code, _, err = run_cli(["train", "synthetic-tiny", *FAST, "--out", str(run), "--log-to", "tensorboard",
                            "--log-to", "mlflow"])
    assert code == 0, err
    code, _, err = run_cli(["train", "--resume", str(run), "--epochs", "4", "--quiet",
                            "--log-to", "tensorboard,mlflow"])
    assert code == 0, err
    expected = _expected(run)
    assert all(set(v) <= {1, 2, 3, 4} for v in expected.values())
    assert {"loss", "tau0", "tau_u_q10", "tau_u_q90", "valid_recall_at_20", "valid_ndcg_at_20", "item_norm_g0",
            "item_norm_g9", "train_seconds", "eval_seconds", "warmup"} <= set(expected)
    assert set(expected["loss"]) == {1, 2, 3, 4}

    # TensorBoard: float32 scalars, one events file per invocation, steps 1..4 with none twice
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 2
    _assert_same(_tensorboard_scalars(run / "tensorboard"), expected, rel=1e-6)

    # MLflow: one run (the resume continued it), exact values, the settings as params, finished
    saved = json.loads((run / "mlflow.json").read_text())
    assert saved["tracking_uri"] == (run / "mlruns").resolve().as_uri()
    client = MlflowClient(tracking_uri=saved["tracking_uri"])
    runs = client.search_runs([saved["experiment_id"]])
    assert [r.info.run_id for r in runs] == [saved["run_id"]]
    logged = {key: {m.step: m.value for m in client.get_metric_history(saved["run_id"], key)}
              for key in runs[0].data.metrics}
    _assert_same(logged, expected, rel=1e-12)
    params = runs[0].data.params
    assert (params["lr"], params["batch_size"], params["tau_mode"], params["dataset.dataset"]) == \
        ("0.01", "256", "adap-tau", "synthetic-tiny")
    assert runs[0].info.status == "FINISHED"


def test_a_resume_that_starts_tracking_logs_the_earlier_epochs_first(tmp_path):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "synthetic-tiny", *FAST, "--epochs", "1", "--out", str(run)])
    assert code == 0, err
    assert not (run / "tensorboard").exists()
    # a run the trainer refuses (the folder holds one) writes no logs into it
    code, _, err = run_cli(["train", "synthetic-tiny", *FAST, "--out", str(run), "--log-to", "tensorboard"])
    assert code == 2 and "already holds a run" in err
    assert not (run / "tensorboard").exists()
    code, _, err = run_cli(["train", "--resume", str(run), "--epochs", "2", "--quiet", "--log-to", "tensorboard"])
    assert code == 0, err
    _assert_same(_tensorboard_scalars(run / "tensorboard"), _expected(run), rel=1e-6)


@pytest.mark.parametrize("backend,modules,hint", [
    ("tensorboard", ("torch.utils.tensorboard",), "pip install 'adaptau[tensorboard]'"),
    ("mlflow", ("mlflow", "mlflow.tracking"), "pip install 'adaptau[mlflow]'"),
])
def test_a_missing_extra_is_one_line_before_anything_runs(tmp_path, monkeypatch, backend, modules, hint):
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)          # importing it raises ImportError
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "synthetic-tiny", *FAST, "--out", str(run), "--log-to", backend])
    assert code == 2
    assert hint in _one_error_line(err)
    assert not run.exists()


@pytest.mark.parametrize("args,needle", [
    (["--log-to", "wandb"], "unknown --log-to 'wandb'"),
    (["--mlflow-uri", "file:///tmp/nowhere"], "--mlflow-uri needs --log-to mlflow"),
])
def test_bad_tracking_options_exit_2(tmp_path, args, needle):
    code, _, err = run_cli(["train", "synthetic-tiny", *FAST, "--out", str(tmp_path / "run"), *args])
    assert code == 2
    assert needle in _one_error_line(err)


def test_what_a_row_logs():
    row = {"epoch": 3, "loss": 1.5, "tau_source": "closed-form", "warmup": True, "valid_recall@20": 0.25,
           "valid_ndcg@20": math.nan, "tau0_closed": None, "lr": 1e-3}
    assert epoch_numbers(row) == {"loss": 1.5, "warmup": 1.0, "valid_recall_at_20": 0.25, "lr": 1e-3}
    assert metric_key("valid_recall@20") == "valid_recall_at_20"
    assert parse_backends(["tensorboard,mlflow", "tensorboard"]) == ("tensorboard", "mlflow")
