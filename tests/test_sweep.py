"""``adaptau sweep`` end to end through the CLI: a 2-point τ grid, Adap-τ0, Adap-τ and the baseline on
synthetic-tiny, 2 epochs each, every training its own ``adaptau train`` process."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pandas as pd
import pytest
from cli_helpers import run_cli

from adaptau_cli.workflows.sweep import threads_per_training

NAMES = ["tau-0.1", "tau-0.2", "adap-tau0", "adap-tau", "no-norm"]
GRID = {"tau-0.1": 0.1, "tau-0.2": 0.2}
KEYS = ("recall@20", "ndcg@20")
QUICK = ["--epochs", "2", "--batch-size", "256", "--num-negatives", "32", "--lr", "0.01", "--warmup-epochs", "1",
         "--warmup-patience", "0", "--negatives", "shared", "--device", "cpu", "--threads", "1", "--seed", "7"]
RUN_FILES = ("checkpoint-last.pt", "checkpoint-best.pt", "report.json", "history.parquet")


def sweep_args(out, store, *extra, taus="0.2,0.1", baseline=True):
    return ["sweep", "synthetic-tiny", "--taus", taus, *(["--with-baseline"] if baseline else []), *QUICK,
            "--home", str(store), "--out", str(out), *extra]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One sweep (grid given out of order, with the baseline), trained one run at a time."""
    root = tmp_path_factory.mktemp("sweep")
    store, out = root / "store", root / "out"
    args = sweep_args(out, store)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADAPTAU_HOME", str(store))
        code, _, err = run_cli(args)
    assert code == 0, err
    return {"root": root, "store": store, "out": out, "args": args, "err": err}


def load(out):
    return json.loads((out / "sweep.json").read_text())


def report(out, name):
    return json.loads((out / "runs" / name / "report.json").read_text())


def mtimes(out):
    return {p: p.stat().st_mtime_ns for name in NAMES for p in (out / "runs" / name / f for f in RUN_FILES)
            if p.exists()}


def numbers(doc):
    """What must not depend on how the runs were scheduled: every metric, τ0, the epochs."""
    keep = ("name", "tau", "tau0_final", "valid_metrics", "test_metrics", "rel_test_recall@20", "best_epoch",
            "epochs_run")
    return [{k: row[k] for k in keep} for row in doc["runs"]]


def copy_runs(world, dest, skip=()):
    shutil.copytree(world["out"] / "runs", dest / "runs", ignore=lambda d, names: [n for n in names if n in skip])


def test_outputs_exist_parse_and_agree_with_each_runs_report(world):
    out = world["out"]
    doc = load(out)
    assert [r["name"] for r in doc["runs"]] == NAMES and {r["status"] for r in doc["runs"]} == {"trained"}
    for row in doc["runs"]:
        rep = report(out, row["name"])
        cfg = rep["train_config"]
        for key in KEYS:
            assert row[f"test_{key}"] == rep["test_metrics"][key] and row[f"valid_{key}"] == rep["valid_metrics"][key]
        assert row["test_metrics"] == rep["test_metrics"] and row["valid_metrics"] == rep["valid_metrics"]
        assert (row["best_epoch"], row["epochs_run"]) == (rep["best_epoch"], rep["epochs_run"])
        assert row["epochs_run"] == 2
        assert rep["selection"] == "valid" and cfg["threads"] == 1 and cfg["seed"] == 7
        assert row["wall_seconds"] > 0 and row["epoch_seconds"] > 0
        if row["name"] in GRID:
            assert (cfg["tau_mode"], cfg["tau"], cfg["norm"]) == ("fixed", GRID[row["name"]], "both")
            assert row["tau"] == GRID[row["name"]] and row["tau0_final"] is None
        elif row["name"] == "no-norm":
            assert (cfg["tau_mode"], cfg["norm"]) == ("none", "none") and row["tau0_final"] is None
        else:
            assert (cfg["tau_mode"], cfg["norm"]) == (row["name"], "both")
            assert row["tau0_final"] == rep["tau0_final"]
            hist = pd.read_parquet(out / "runs" / row["name"] / "history.parquet")
            assert row["tau0_final"] == pytest.approx(hist["tau0"].iloc[-1], abs=1e-12)
            assert hist["tau0"].iloc[-1] != hist["tau0"].iloc[0]       # the closed form took over from the prior
    rows = list(csv.DictReader(io.StringIO((out / "sweep.csv").read_text())))
    assert [r["name"] for r in rows] == NAMES
    for row, js in zip(rows, doc["runs"]):
        for col in ("test_recall@20", "test_ndcg@20", "valid_recall@20", "rel_test_recall@20", "tau0_final", "tau"):
            assert (float(row[col]) if row[col] else None) == js[col]
        assert int(row["epochs_run"]) == 2 and row["status"] == "trained"
    md = (out / "sweep.md").read_text()
    assert "| run | τ | valid Recall@20 | valid NDCG@20 | test Recall@20 | test NDCG@20 | rel. test Recall@20 |" in md
    for js in doc["runs"]:
        assert f"| {js['name']} | " in md and f"| {js['test_recall@20']:.4f} | {js['test_ndcg@20']:.4f} | " in md
    tau0 = doc["runs"][2]["tau0_final"]
    assert f"| adap-tau0 | τ0 → {tau0:.4f} |" in md and "![relative test Recall@20 vs τ](plots/sweep.png)" in md
    png = out / "plots" / "sweep.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and doc["outputs"]["plot"] == str(png)
    for name in NAMES:                                  # one progress line per finished run
        test = report(out, name)["test_metrics"]["recall@20"]
        assert world["err"].count(f"{name}: test Recall@20 {test:.4f} (trained, ") == 1
        assert (out / "logs" / f"{name}.log").is_file() and (out / "configs" / f"{name}.toml").is_file()


def test_relative_recall_is_against_the_best_grid_point(world):
    doc = load(world["out"])
    test = {name: report(world["out"], name)["test_metrics"]["recall@20"] for name in NAMES}
    best = max(GRID, key=lambda n: test[n])
    assert doc["best_grid_point"] == best
    valid = {n: report(world["out"], n)["valid_metrics"]["recall@20"] for n in GRID}
    assert doc["best_grid_point_on_valid"] == max(GRID, key=lambda n: valid[n])
    for row in doc["runs"]:
        assert row["rel_test_recall@20"] == pytest.approx(test[row["name"]] / test[best], rel=1e-12)
    assert max(r["rel_test_recall@20"] for r in doc["runs"] if r["name"] in GRID) == 1.0


def test_a_rerun_reuses_every_run(world):
    before, first = mtimes(world["out"]), load(world["out"])
    code, out, err = run_cli(world["args"] + ["--json"])
    assert code == 0, err
    assert mtimes(world["out"]) == before                          # nothing retrained or rewritten
    assert err.count("reusing the finished run") == len(NAMES) and "training" not in err
    doc = load(world["out"])
    assert json.loads(out) == doc
    assert {r["status"] for r in doc["runs"]} == {"reused"} and numbers(doc) == numbers(first)
    assert [r["wall_seconds"] for r in doc["runs"]] == [r["wall_seconds"] for r in first["runs"]]


def test_a_run_killed_before_its_report_is_resumed(world, tmp_path):
    copy_runs(world, tmp_path)
    (tmp_path / "runs" / "adap-tau" / "report.json").unlink()     # killed after its last epoch, before the report
    code, _, err = run_cli(sweep_args(tmp_path, world["store"], "--quiet"))
    assert code == 0, err
    doc = load(tmp_path)
    status = {r["name"]: r["status"] for r in doc["runs"]}
    assert status.pop("adap-tau") == "resumed" and set(status.values()) == {"reused"}
    assert numbers(doc) == numbers(load(world["out"]))             # exact resume: the same numbers


def test_more_epochs_resume_the_runs(world, tmp_path):
    copy_runs(world, tmp_path)
    args = sweep_args(tmp_path, world["store"], taus="0.1", baseline=False)
    args[args.index("--epochs") + 1] = "3"
    code, _, err = run_cli(args)
    assert code == 0, err
    doc = load(tmp_path)
    assert [r["name"] for r in doc["runs"]] == ["tau-0.1", "adap-tau0", "adap-tau"]
    assert {r["status"] for r in doc["runs"]} == {"resumed"} and err.count("resuming") == 3
    for row in doc["runs"]:
        rep = report(tmp_path, row["name"])
        assert rep["epochs_run"] == row["epochs_run"] == 3 and rep["resumes"][0]["after_epoch"] == 2
        assert row["test_recall@20"] == rep["test_metrics"]["recall@20"]
    assert doc["runs"][0]["rel_test_recall@20"] == 1.0                # the only grid point is the best


def test_two_jobs_give_the_same_numbers_as_one(world, tmp_path):
    code, _, err = run_cli(sweep_args(tmp_path, world["store"], "--jobs", "2"))
    assert code == 0, err
    assert "2 at a time, 1 thread(s) each" in err
    doc = load(tmp_path)
    assert {r["status"] for r in doc["runs"]} == {"trained"}
    assert numbers(doc) == numbers(load(world["out"]))


def test_a_failed_training_is_one_line_and_the_others_finish(world, tmp_path):
    copy_runs(world, tmp_path, skip=("tau-0.2",))
    (tmp_path / "runs" / "tau-0.2").write_text("a file where the run folder goes")
    code, _, err = run_cli(sweep_args(tmp_path, world["store"]))
    assert code == 1, err
    log = tmp_path / "logs" / "tau-0.2.log"
    failed = [ln for ln in err.splitlines() if "tau-0.2 failed" in ln]
    assert len(failed) == 1 and "(exit 2: error: cannot create the run directory" in failed[0] and str(log) in err
    assert "1 of 5 trainings failed: tau-0.2" in err.strip().splitlines()[-1]
    doc = load(tmp_path)
    rows = {r["name"]: r for r in doc["runs"]}
    assert rows["tau-0.2"]["status"] == "failed" and rows["tau-0.2"]["test_recall@20"] is None
    assert {rows[n]["status"] for n in NAMES if n != "tau-0.2"} == {"reused"}
    assert doc["best_grid_point"] == "tau-0.1" and rows["tau-0.1"]["rel_test_recall@20"] == 1.0


def test_a_run_folder_of_other_settings_is_refused_before_training(world, tmp_path):
    copy_runs(world, tmp_path)
    (tmp_path / "runs" / "tau-0.1" / "report.json").unlink()       # an interrupted run, known by its config.toml
    before = mtimes(tmp_path)
    code, _, err = run_cli(sweep_args(tmp_path, world["store"], "--lr", "0.02"))
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "holds a run of other settings: lr was 0.01, now 0.02" in err
    assert mtimes(tmp_path) == before and not (tmp_path / "logs").exists()


BAD = {
    "empty --taus": (["--taus", ""], "--taus expects positive numbers"),
    "not a number": (["--taus", "0.1,abc"], "--taus expects positive numbers"),
    "an empty item": (["--taus", "0.1,,0.2"], "--taus expects positive numbers"),
    "τ = 0": (["--taus", "0,0.1"], "--taus must be positive numbers, got 0.0"),
    "τ < 0": (["--taus", "0.1,-0.2"], "--taus must be positive numbers, got -0.2"),
    "τ = nan": (["--taus", "nan"], "--taus must be positive numbers"),
    "duplicates": (["--taus", "0.1,0.2,0.10"], "the same temperature twice: 0.1"),
    "unknown dataset": (["nope"], "unknown dataset 'nope'"),
    "--tau-mode given": (["--tau-mode", "fixed"], "the sweep sets --tau-mode per run"),
    "--tau given": (["--tau", "0.1"], "the sweep sets --tau per run"),
    "--norm none": (["--norm", "none"], "--with-baseline adds the un-normalized model"),
    "--jobs 0": (["--jobs", "0"], "--jobs must be >= 1"),
    "a bad shared setting": (["--lr", "-1"], "--lr must be > 0"),
    "no --out": ([], "sweep needs --out"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_exit_2_before_any_training(world, tmp_path, case):
    extra, says = BAD[case]
    dataset = [] if case == "unknown dataset" else ["synthetic-tiny"]
    out = [] if case == "no --out" else ["--out", str(tmp_path / "out")]
    args = ["sweep", *dataset, "--taus", "0.1", *QUICK, "--home", str(world["store"]), *out, *extra]
    code, _, err = run_cli(args)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and says in err and "Traceback" not in err
    assert not (tmp_path / "out" / "runs").exists()


@pytest.mark.parametrize("jobs, left, given, cpus, expected", [
    (1, 9, None, 16, 16), (2, 9, None, 16, 8), (4, 2, None, 16, 8), (3, 9, None, 2, 1), (2, 0, None, 16, 16),
    (4, 9, 3, 16, 3)])
def test_the_threads_of_each_training(jobs, left, given, cpus, expected):
    assert threads_per_training(jobs, left, given, cpus) == expected
