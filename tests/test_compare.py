"""``adaptau compare`` end to end through the CLI: 2 methods x 2 seeds of very short runs on synthetic-tiny."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil

import numpy as np
import pytest
import scipy.stats as st
from cli_helpers import run_cli

from adaptau_cli.base.errors import UserError
from adaptau_cli.base.settings import PreprocessConfig, TrainConfig, from_dict
from adaptau_cli.engine.runs import load_run, open_run_dataset
from adaptau_cli.engine.trainer import check_config
from adaptau_cli.workflows.compare import run_state
from adaptau_cli.workflows.evaluate import evaluate_run, user_metrics
from adaptau_cli.workflows.training import train_run

KEYS = ["recall@20", "ndcg@20"]
SEEDS = (1, 2)
TRAIN = """[dataset]
dataset = "synthetic-tiny"
home = "{home}"

[train]
epochs = 2
batch_size = 256
num_negatives = 32
lr = 0.01
warmup_epochs = 1
warmup_patience = 0
negatives = "shared"
device = "cpu"
threads = 1
ks = [10, 20]
tau_mode = "{tau_mode}"
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two configs (Adap-τ, fixed τ) trained for seeds 1 and 2 by one ``adaptau compare`` call."""
    root = tmp_path_factory.mktemp("compare")
    store = root / "store"
    configs = {}
    for name, mode in (("adaptau", "adap-tau"), ("fixed", "fixed")):
        configs[name] = root / f"{name}.toml"
        configs[name].write_text(TRAIN.format(home=store, tau_mode=mode))
    args = ["compare", "--method", f"adaptau={configs['adaptau']}", "--method", f"fixed={configs['fixed']}",
            "--seeds", "1,2", "--home", str(store), "--out", str(root / "out")]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADAPTAU_HOME", str(store))
        code, _, err = run_cli(args)
    assert code == 0, err
    runs = {name: [root / "out" / "runs" / f"{name}-seed{s}" for s in SEEDS] for name in configs}
    return {"root": root, "store": store, "out": root / "out", "args": args, "runs": runs, "err": err}


def load(out):
    return json.loads((out / "compare.json").read_text())


def test_outputs_exist_parse_and_agree_with_the_runs_reports(world):
    out = world["out"]
    doc = load(out)
    assert doc["metrics"] == KEYS and [m["name"] for m in doc["methods"]] == ["adaptau", "fixed"]
    for m in doc["methods"]:
        assert m["seeds"] == list(SEEDS) and {r["status"] for r in m["runs"]} == {"trained"}
        reports = [json.loads((d / "report.json").read_text())["test_metrics"] for d in world["runs"][m["name"]]]
        for key in KEYS:
            per_seed = [r[key] for r in reports]
            assert m["summary"][key]["per_seed"] == pytest.approx(per_seed, abs=1e-12)
            assert m["summary"][key]["mean"] == pytest.approx(np.mean(per_seed), abs=1e-12)
            assert m["summary"][key]["sd"] == pytest.approx(np.std(per_seed, ddof=1), abs=1e-12)
    rows = list(csv.DictReader(io.StringIO((out / "compare.csv").read_text())))
    assert len(rows) == 2 * len(KEYS) + 1 * len(KEYS)            # per method and metric, per pair and metric
    by_method = {(r["method"], r["metric"]): r for r in rows if r["section"] == "method"}
    assert float(by_method[("fixed", "ndcg@20")]["mean"]) == doc["methods"][1]["summary"]["ndcg@20"]["mean"]
    md = (out / "compare.md").read_text()
    assert "| method | seeds | recall@20 | ndcg@20 |" in md and "| adaptau | fixed | recall@20 |" in md
    mean, sd = (doc["methods"][0]["summary"]["recall@20"][k] for k in ("mean", "sd"))
    assert f"| adaptau | 1, 2 | {mean:.4f} ± {sd:.4f} |" in md
    for key in KEYS:
        png = out / "plots" / f"compare_{key}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert doc["outputs"]["plots"][key] == str(png)
    assert "training" in world["err"] and "reusing" not in world["err"]


def test_the_pairs_are_the_tests_of_the_seed_averaged_per_user_metrics(world):
    doc = load(world["out"])
    per_user = {}
    for name, dirs in world["runs"].items():
        values = []
        for d in dirs:
            ev = evaluate_run(d)
            values.append(user_metrics(ev, _dataset(world)))
            assert np.mean(values[-1]["recall@20"]) == pytest.approx(ev.metrics["recall@20"], abs=1e-12)
        per_user[name] = {k: np.mean([v[k] for v in values], axis=0) for k in KEYS}
    pairs = {p["metric"]: p for p in doc["pairs"]}
    assert set(pairs) == set(KEYS) and all((p["a"], p["b"]) == ("adaptau", "fixed") for p in pairs.values())
    for key, p in pairs.items():
        a, b = per_user["adaptau"][key], per_user["fixed"][key]
        assert p["n_users"] == len(a) == doc["dataset"]["test_users"]
        assert p["wilcoxon"]["p"] == pytest.approx(st.wilcoxon(a - b).pvalue, rel=1e-12)
        assert p["t_test"]["p"] == pytest.approx(st.ttest_rel(a, b).pvalue, rel=1e-12)
        assert p["wilcoxon"]["p_holm"] == p["wilcoxon"]["p"]   # one pair: a family of one
        assert p["mean_a"] == pytest.approx(doc["methods"][0]["summary"][key]["mean"], abs=1e-12)


def _dataset(world):
    return open_run_dataset(load_run(world["runs"]["adaptau"][0]))


def _mtimes(world):
    return {p: p.stat().st_mtime_ns for dirs in world["runs"].values() for d in dirs
            for p in (d / "checkpoint-last.pt", d / "checkpoint-best.pt", d / "report.json", d / "history.parquet")}


def test_a_rerun_reuses_the_runs(world):
    before, first = _mtimes(world), load(world["out"])
    code, _, err = run_cli(world["args"])
    assert code == 0, err
    assert _mtimes(world) == before                                  # nothing retrained or rewritten
    assert err.count("reusing the finished run") == 4 and "training" not in err
    doc = load(world["out"])
    assert all(r["status"] == "reused" for m in doc["methods"] for r in m["runs"])
    assert doc["pairs"] == first["pairs"]


def test_run_directories_give_the_same_comparison(world, tmp_path):
    runs = world["runs"]
    code, out, err = run_cli(["compare", "--method", "adaptau=" + ",".join(map(str, runs["adaptau"])),
                              "--method", "fixed=" + ",".join(map(str, runs["fixed"])), "--out", str(tmp_path),
                              "--json", "--quiet"])
    assert code == 0, err
    doc = json.loads(out)
    assert doc == load(tmp_path)
    assert doc["pairs"] == load(world["out"])["pairs"]
    assert [m["seeds"] for m in doc["methods"]] == [list(SEEDS)] * 2
    assert all(r["status"] == "given" for m in doc["methods"] for r in m["runs"])


def test_an_interrupted_run_is_resumed_not_retrained(world, tmp_path):
    shutil.copytree(world["out"] / "runs", tmp_path / "runs")
    victim = tmp_path / "runs" / "fixed-seed2"
    report = json.loads((victim / "report.json").read_text())
    (victim / "report.json").unlink()                                 # killed after its last epoch, before the report
    args = [tmp_path if a == str(world["out"]) else a for a in world["args"]]
    code, _, err = run_cli([str(a) for a in args] + ["--quiet"])
    assert code == 0, err
    doc = load(tmp_path)
    status = {(m["name"], r["seed"]): r["status"] for m in doc["methods"] for r in m["runs"]}
    assert status.pop(("fixed", 2)) == "resumed" and set(status.values()) == {"reused"}
    again = json.loads((victim / "report.json").read_text())
    assert again["epochs_run"] == 2 and again["test_metrics"] == report["test_metrics"]
    assert doc["pairs"] == load(world["out"])["pairs"]


def test_what_counts_as_finished(world, tmp_path):
    """Reused: a report not cut by a time limit, of a run that stopped early or reached its epochs; else resumed."""
    run = tmp_path / "run"
    shutil.copytree(world["runs"]["fixed"][0], run)
    report = json.loads((run / "report.json").read_text())
    cfg = check_config(from_dict(TrainConfig, report["train_config"]))
    fp = report["dataset"]["fingerprint"]
    assert run_state(run, cfg, fp) == "finished"
    assert run_state(run, dataclasses.replace(cfg, epochs=3), fp) == "interrupted"     # --epochs 3: continue it
    assert run_state(tmp_path / "nothing", cfg, fp) == "new"
    with pytest.raises(UserError, match="another dataset"):
        run_state(run, cfg, "0123456789abcdef")
    with pytest.raises(UserError, match="tau_mode was 'fixed', now 'adap-tau'"):
        run_state(run, dataclasses.replace(cfg, tau_mode="adap-tau"), fp)
    (run / "report.json").write_text(json.dumps({**report, "time_limited": True}))
    assert run_state(run, cfg, fp) == "interrupted"
    (run / "report.json").write_text("{half a file")
    assert run_state(run, cfg, fp) == "interrupted"


@pytest.fixture(scope="module")
def other_dataset_run(world):
    """One 1-epoch run on synthetic-tiny split with another seed: another dataset fingerprint."""
    out = world["root"] / "other"
    cfg = TrainConfig(epochs=1, batch_size=256, num_negatives=32, threads=1, device="cpu", ks=(20,), seed=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADAPTAU_HOME", str(world["store"]))
        train_run(cfg, PreprocessConfig(dataset="synthetic-tiny", home=str(world["store"]), seed=99), out)
    return out


def _bad_inputs(world, other):
    a1, a2 = (str(p) for p in world["runs"]["adaptau"])
    f1, f2 = (str(p) for p in world["runs"]["fixed"])
    cfg = str(world["root"] / "fixed.toml")
    return {
        "one method": (["--method", f"a={a1},{a2}"], "at least 2 methods"),
        "a name twice": (["--method", f"a={a1}", "--method", f"a={f1}"], "used twice: a"),
        "unknown run": (["--method", f"a={a1}", "--method", f"b={world['root']}/nope"], "not found"),
        "seed counts": (["--method", f"a={a1},{a2}", "--method", f"b={f1}"], "same number of seeds"),
        "no =": (["--method", a1, "--method", f"b={f1}"], "NAME=RUN_DIR"),
        "config without seeds": (["--method", f"a={cfg}", "--method", f"b={f1}"], "--seeds"),
        "seeds twice": (["--method", f"a={cfg}", "--method", "b=" + cfg, "--seeds", "1,1"], "seed twice"),
        "unknown metric": (["--method", f"a={a1}", "--method", f"b={f1}", "--metric", "recal"], "unknown metric"),
        "a method over two datasets": (["--method", f"a={a1},{other}", "--method", f"b={f1},{f2}"],
                                       "method a: its runs use different datasets"),
        "methods on two datasets": (["--method", f"a={a1}", "--method", f"b={other}"],
                                    "methods a and b use different datasets"),
        "a run folder of other settings": (["--method", f"adaptau={cfg}", "--method", f"fixed={cfg}",
                                            "--seeds", "1,2", "--home", str(world["store"])], "other settings"),
        "a config on another dataset, before training": (["--method", f"new={cfg}", "--method", f"b={other}",
                                                          "--seeds", "7", "--home", str(world["store"])],
                                                         "methods new and b use different datasets"),
    }


@pytest.mark.parametrize("case", ["one method", "a name twice", "unknown run", "seed counts", "no =",
                                  "config without seeds", "seeds twice", "unknown metric",
                                  "a method over two datasets", "methods on two datasets",
                                  "a run folder of other settings", "a config on another dataset, before training"])
def test_bad_input_is_one_line_and_exit_2(world, other_dataset_run, case):
    args, says = _bad_inputs(world, other_dataset_run)[case]
    before, folders = _mtimes(world), sorted((world["out"] / "runs").iterdir())
    code, _, err = run_cli(["compare", *args, "--out", str(world["out"])])
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and says in err and "Traceback" not in err
    assert _mtimes(world) == before and sorted((world["out"] / "runs").iterdir()) == folders   # nothing trained


def test_out_is_required(world):
    a1, f1 = str(world["runs"]["adaptau"][0]), str(world["runs"]["fixed"][0])
    code, _, err = run_cli(["compare", "--method", f"a={a1}", "--method", f"b={f1}"])
    assert code == 2 and "--out" in err and len(err.strip().splitlines()) == 1
