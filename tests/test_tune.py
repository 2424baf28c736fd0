"""`adaptau tune` end to end: outputs, best.toml trains, pruning prunes, two processes share a study, refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import run_cli

optuna = pytest.importorskip("optuna")

from adaptau_cli.base.errors import UserError  # noqa: E402
from adaptau_cli.base.settings import TrainConfig  # noqa: E402
from adaptau_cli.workflows import tune as tune_mod  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FAST = ["--epochs", "3", "--batch-size", "256", "--num-negatives", "32", "--negatives", "shared",
        "--warmup-epochs", "1", "--warmup-patience", "0", "--device", "cpu", "--threads", "1"]
BASE_TOML = """
[dataset]
dataset = "synthetic-tiny"

[train]
epochs = 3
batch_size = 256
num_negatives = 32
negatives = "shared"
warmup_epochs = 1
warmup_patience = 0
device = "cpu"
threads = 1
ks = [10, 20]
"""


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:"), err
    return lines[0]


def test_tune_writes_every_output_best_toml_trains_and_a_rerun_continues(tmp_path):
    config = tmp_path / "tune.toml"
    config.write_text(BASE_TOML + """
[tune]
trials = 3
pruner = "none"
seed = 5

[tune.space]
lr = "1e-3:5e-2:log"
dropout = {low = 0.0, high = 0.3}
warmup_epochs = "1:2"
""")
    out = tmp_path / "search"
    code, stdout, err = run_cli(["tune", "--config", str(config), "--space", "dropout=0:0.1", "--out", str(out),
                                 "--quiet", "--json"])
    assert code == 0, err
    payload = json.loads(stdout)
    for name in ("study.db", "best.toml", "trials.parquet", "history.png", "importance.json", "importance.md"):
        assert (out / name).is_file(), name
    assert (out / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    trials = pd.read_parquet(out / "trials.parquet")
    assert trials["number"].tolist() == [0, 1, 2]
    assert set(trials["state"]) == {"COMPLETE"}
    assert {"value", "duration_s", "params_lr", "params_dropout", "params_warmup_epochs"} <= set(trials.columns)
    assert trials["params_lr"].between(1e-3, 5e-2).all()
    assert trials["params_dropout"].between(0, 0.1).all()                  # the flag replaced the file's range
    assert set(trials["params_warmup_epochs"]) <= {1, 2}                    # an int field: integer trials
    assert (trials["duration_s"] > 0).all()

    # the objective is each run's best validation value; the best is the best trial's run report's
    for row in trials.itertuples():
        report = json.loads((out / "trials" / str(row.number) / "report.json").read_text())
        assert report["selection"] == "valid"
        assert row.value == report["best_value"]
    best = trials.loc[trials["value"].idxmax()]
    best_report = json.loads((out / "trials" / str(best["number"]) / "report.json").read_text())
    assert payload["best"]["number"] == best["number"]
    assert payload["best"]["value"] == best_report["best_value"]
    assert payload["ran"] == 3 and payload["trials"]["total"] == 3

    importance = json.loads((out / "importance.json").read_text())
    assert importance["evaluator"].startswith("optuna.importance.")
    assert set(importance["importances"]) == {"lr", "dropout", "warmup_epochs"}
    assert sum(importance["importances"].values()) == pytest.approx(1.0)
    assert importance["evaluator"].split(".")[-1] in (out / "importance.md").read_text()

    # best.toml is a training config: the best trial's values on the base settings, and it retrains that run
    from adaptau_cli.base.settings import read_toml

    best_cfg = read_toml(out / "best.toml")
    assert best_cfg["train"]["lr"] == best["params_lr"]
    assert best_cfg["train"]["dropout"] == best["params_dropout"]
    assert best_cfg["train"]["warmup_epochs"] == best["params_warmup_epochs"]
    code, stdout, err = run_cli(["train", "--config", str(out / "best.toml"), "--out", str(tmp_path / "again"),
                                 "--quiet", "--json"])
    assert code == 0, err
    retrained = json.loads((tmp_path / "again" / "report.json").read_text())
    assert retrained["best_value"] == best_report["best_value"]
    assert retrained["best_epoch"] == best_report["best_epoch"]

    # the study persists: a rerun adds its trials to it (numbers go on, nothing is retrained)
    code, stdout, err = run_cli(["tune", "--config", str(config), "--trials", "1", "--out", str(out),
                                 "--quiet", "--json"])
    assert code == 0, err
    assert json.loads(stdout)["trials"]["total"] == 4
    assert pd.read_parquet(out / "trials.parquet")["number"].tolist() == [0, 1, 2, 3]
    # ... but only with the study's own base settings: other epochs would make trials incomparable
    code, _, err = run_cli(["tune", "--config", str(config), "--epochs", "2", "--trials", "0", "--out", str(out)])
    assert code == 2
    assert "has other base settings: epochs was 3, now 2" in _one_error_line(err)


def test_pruning_stops_an_obviously_bad_trial_after_its_first_epoch(tmp_path):
    """Deterministic: a good trial first, then one whose lr cannot move the embeddings in an epoch."""
    out = tmp_path / "search"
    out.mkdir()
    study = optuna.create_study(storage=f"sqlite:///{out / 'study.db'}", study_name="adaptau", direction="maximize")
    study.enqueue_trial({"lr": 0.05})
    study.enqueue_trial({"lr": 1e-6})
    code, stdout, err = run_cli(["tune", "synthetic-tiny", *FAST, "--space", "lr=1e-6:5e-2:log", "--trials", "2",
                                 "--pruner", "median", "--pruner-startup", "1", "--pruner-warmup", "0",
                                 "--out", str(out), "--quiet", "--json"])
    assert code == 0, err
    trials = pd.read_parquet(out / "trials.parquet").set_index("number")
    assert trials.loc[0, "state"] == "COMPLETE" and trials.loc[0, "last_epoch"] == 3
    assert trials.loc[1, "state"] == "PRUNED" and trials.loc[1, "last_epoch"] == 1
    pruned_run = out / "trials" / "1"
    assert len(pd.read_parquet(pruned_run / "history.parquet")) == 1      # stopped after epoch 1 ...
    assert (pruned_run / "checkpoint-last.pt").is_file()                   # ... with its checkpoint (resumable)
    assert json.loads(stdout)["best"]["number"] == 0


def test_a_diverging_trial_fails_and_the_search_goes_on(tmp_path):
    """--norm none with an absurd lr explodes (tests/test_train.py): each such trial is FAIL with its reason."""
    out = tmp_path / "search"
    code, stdout, err = run_cli(["tune", "synthetic-tiny", *FAST, "--epochs", "6", "--norm", "none", "--tau-mode",
                                 "none", "--space", "lr=40:60", "--trials", "2", "--pruner", "none", "--out", str(out),
                                 "--quiet", "--json"])
    assert code == 0, err
    payload = json.loads(stdout)
    assert payload["trials"] == {"total": 2, "fail": 2} and payload["best"] is None
    trials = pd.read_parquet(out / "trials.parquet")
    assert set(trials["state"]) == {"FAIL"}
    assert trials["error"].str.contains("training diverged").all()
    assert not (out / "best.toml").exists()                                  # nothing to train again
    assert "needs at least 2 completed trials" in (out / "importance.md").read_text()


def test_two_processes_share_one_sqlite_study(tmp_path):
    """Two real `adaptau tune` processes at once on OUT/study.db: their trials add up, no number twice."""
    out = tmp_path / "search"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-m", "adaptau_cli", "tune", "synthetic-tiny", *FAST,
                               "--epochs", "2", "--space", "lr=1e-3:5e-2:log", "--trials", "2", "--pruner", "none",
                               "--seed", str(seed), "--out", str(out), "--quiet", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
             for seed in (1, 2)]
    results = [p.communicate(timeout=600) for p in procs]
    for proc, (stdout, stderr) in zip(procs, results):
        assert proc.returncode == 0, stderr
        assert json.loads(stdout)["ran"] == 2
    study = optuna.load_study(study_name="adaptau", storage=f"sqlite:///{out / 'study.db'}")
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == [0, 1, 2, 3] and len(set(numbers)) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert sorted(int(p.name) for p in (out / "trials").iterdir()) == [0, 1, 2, 3]
    # whichever process finished last wrote the outputs from the whole study
    assert len(pd.read_parquet(out / "trials.parquet")) >= 2


def test_missing_optuna_gives_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)          # `import optuna` raises ImportError
    code, _, err = run_cli(["tune", "synthetic-tiny", "--space", "lr=1e-3:1e-2", "--trials", "1",
                            "--out", str(tmp_path / "s")])
    assert code == 2
    assert "pip install 'adaptau[tune]'" in _one_error_line(err)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("args,needle", [
    (["--space", "lr=1e-2:1e-4"], "is empty"),
    (["--space", "lr=0:1e-2:log"], "log range needs LOW > 0"),
    (["--space", "nonsense=1:2"], "not a numeric training setting"),
    (["--space", "model=1:2"], "not a numeric training setting"),
    (["--space", "lr=fast:slow"], "is not a number"),
    (["--space", "lr=1e-3"], "expected LOW:HIGH"),
    (["--space", "lr=1e-3:1e-2:cube"], "expected LOW:HIGH"),
    (["--space", "lr"], "expects NAME=LOW:HIGH"),
    (["--space", "warmup_epochs=1.5:3"], "takes integers"),
    (["--space", "dropout=0:1"], "dropout = 1 is refused"),
    (["--space", "threads=1:4"], "is not tuned"),
    ([], "needs a search space"),
    (["--space", "lr=1e-3:1e-2", "--trials", "-1"], "--trials must be >= 0"),
    (["--space", "lr=1e-3:1e-2", "--pruner", "patient"], "unknown pruner"),
    (["--space", "lr=1e-3:1e-2", "--select-on", "test"], "would tune on test"),
])
def test_bad_searches_exit_2_with_one_line_before_training(tmp_path, args, needle):
    budget = [] if "--trials" in args else ["--trials", "1"]
    code, _, err = run_cli(["tune", "synthetic-tiny", *FAST, *args, *budget, "--out", str(tmp_path / "s")])
    assert code == 2, err
    assert needle in _one_error_line(err)
    assert not (tmp_path / "s" / "trials").exists()


def test_a_timeout_alone_is_a_budget(tmp_path):
    """--timeout stops starting trials once it has passed; the trial under way finishes."""
    code, stdout, err = run_cli(["tune", "synthetic-tiny", *FAST, "--epochs", "1", "--space", "lr=1e-3:1e-2",
                                 "--timeout", "0.0001", "--out", str(tmp_path / "s"), "--quiet", "--json"])
    assert code == 0, err
    assert json.loads(stdout)["ran"] == 1


def test_no_budget_is_refused(tmp_path):
    code, _, err = run_cli(["tune", "synthetic-tiny", "--space", "lr=1e-3:1e-2", "--out", str(tmp_path / "s")])
    assert code == 2
    assert "--trials N and/or --timeout MINUTES" in _one_error_line(err)


def test_another_study_in_the_same_out_is_refused(tmp_path):
    settings = tune_mod.TuneSettings(space=(tune_mod.parse_space_text("lr=1e-3:1e-2"),), trials=1)
    tune_mod.claim_out(tmp_path, settings)
    tune_mod.claim_out(tmp_path, settings)                       # the same study: fine
    with pytest.raises(UserError, match="holds the trials of study 'adaptau'"):
        tune_mod.claim_out(tmp_path, tune_mod.TuneSettings(space=settings.space, trials=1, study="other"))


def test_space_syntax_kinds_and_table_form():
    p = tune_mod.parse_space_text("lr=1e-4:1e-2:log")
    assert (p.name, p.low, p.high, p.log, p.integer) == ("lr", 1e-4, 1e-2, True, False)
    assert tune_mod.parse_space_text("warmup-epochs=1:100").integer        # an int field, - or _
    assert tune_mod.parse_space_text("tau_scale=1:3:int:log").integer       # int steps on a float field
    table = tune_mod.param_from_toml("l2", {"low": 1e-6, "high": 1e-3, "log": True}, "f.toml")
    assert (table.low, table.high, table.log) == (1e-6, 1e-3, True)
    with pytest.raises(UserError, match=r"\[tune.space\] l2"):
        tune_mod.param_from_toml("l2", {"low": 1e-6}, "f.toml")
    fields = tune_mod.numeric_fields()
    assert {"lr", "l2", "dropout", "tau", "warmup_epochs", "tau_scale", "tau_quantile", "warmup_patience"} \
        <= set(fields)
    assert "positive_in_denominator" not in fields and "ks" not in fields and "threads" not in fields
    notes = tune_mod.space_notes((tune_mod.parse_space_text("tau=0.05:0.5"),), TrainConfig())
    assert notes and "tau_mode = 'fixed'" in notes[0]


def test_samplers_pruners_and_seeds():
    s = tune_mod.TuneSettings(space=(), trials=1, pruner="halving")
    assert isinstance(tune_mod.make_pruner(optuna, s), optuna.pruners.SuccessiveHalvingPruner)
    s = tune_mod.TuneSettings(space=(), trials=1, pruner="none")
    assert isinstance(tune_mod.make_pruner(optuna, s), optuna.pruners.NopPruner)
    s = tune_mod.TuneSettings(space=(), trials=1)
    assert isinstance(tune_mod.make_pruner(optuna, s), optuna.pruners.MedianPruner)
    assert isinstance(tune_mod.make_sampler(optuna, s, 0), optuna.samplers.TPESampler)

    def draws(n_existing):
        study = optuna.create_study(sampler=tune_mod.make_sampler(optuna, s, n_existing))
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
        return [t.params["x"] for t in study.trials]

    assert draws(0) == draws(0)                 # seeded
    assert draws(0) != draws(3)                 # a rerun on a study of 3 trials draws new start-up points
    assert tune_mod.redact("postgresql://me:secret@db.host/tune") == "postgresql://me:***@db.host/tune"
