"""The public API: curated, importable without side effects, and the real path a custom model trains on."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from golden_cases import TIMING

import adaptau_cli as at

REPO = Path(__file__).resolve().parents[1]


def test_every_public_name_resolves_and_is_documented():
    for name in at.__all__:
        value = getattr(at, name)
        assert value is not None
        if callable(value) and name != "__version__":
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"
    with pytest.raises(AttributeError):
        at.not_a_public_name  # noqa: B018


def test_importing_the_package_changes_nothing_in_the_process():
    code = ("import os, sys; before = dict(os.environ); import adaptau_cli; "
            "print(dict(os.environ) == before, 'torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                         check=True).stdout.split()
    assert out == ["True", "False"]


class EmbeddingTower(torch.nn.Module):
    """A user's own model that happens to be MF: two free tables, built in MF's order."""

    def __init__(self, n_users, n_items, dim):
        super().__init__()
        self.u = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(n_users, dim)))
        self.i = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(n_items, dim)))

    def raw_tables(self):
        return self.u, self.i

    def forward(self):
        return self.u, self.i


@pytest.mark.parametrize("negatives", ["shared", "per-row"])
def test_a_custom_embedding_tower_trains_bit_for_bit_like_the_builtin_mf(sample, tmp_path, negatives):
    data_cfg, ds = sample
    settings = at.TrainConfig(epochs=3, batch_size=256, num_negatives=16, lr=0.01, warmup_epochs=1, threads=1,
                              ks=(10, 20), seed=11, tau_mode="adap-tau", negatives=negatives, l2=1e-3)
    builtin = at.train(settings, data_cfg, ds, tmp_path / "mf")
    torch.manual_seed(settings.seed)             # the trainer seeds the same way before building MF
    tower = EmbeddingTower(ds.n_users, ds.n_items, settings.dim)
    custom = at.train(settings, data_cfg, ds, tmp_path / "tower", model=tower)
    pd.testing.assert_frame_equal(builtin.history.drop(columns=list(TIMING)),
                                  custom.history.drop(columns=list(TIMING)))
    assert custom.test_metrics == builtin.test_metrics
    assert custom.report["train_config"]["model"] == "custom:EmbeddingTower"


def test_a_custom_run_reloads_only_with_its_model(sample, tmp_path):
    data_cfg, ds = sample
    settings = at.TrainConfig(epochs=1, batch_size=256, num_negatives=16, threads=1, ks=(20,))
    tower = EmbeddingTower(ds.n_users, ds.n_items, settings.dim)
    at.train(settings, data_cfg, ds, tmp_path / "run", model=tower)
    with pytest.raises(at.UserError, match="custom model"):
        at.load_run(tmp_path / "run")
    run = at.load_run(tmp_path / "run", model=EmbeddingTower(ds.n_users, ds.n_items, settings.dim))
    users, items = run.scoring_embeddings(ds)
    want_u, want_i, _ = at.scoring_embeddings(tower, "both")
    assert torch.equal(users, want_u) and torch.equal(items, want_i)


def test_a_module_that_is_no_backbone_is_refused_in_one_line(sample, tmp_path):
    data_cfg, ds = sample
    with pytest.raises(at.UserError, match="is not a backbone"):
        at.train(at.TrainConfig(epochs=1), data_cfg, ds, tmp_path / "x", model=torch.nn.Linear(2, 2))


def test_the_custom_model_example_runs_and_reports_the_package_metrics(tmp_path):
    env = dict(os.environ, ADAPTAU_HOME=str(tmp_path / "home"))
    out = subprocess.run([sys.executable, "examples/custom_model.py", "--dataset", "synthetic-tiny", "--epochs", "3",
                          "--out", str(tmp_path / "tt")], capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    found = re.search(r"test Recall@20 (\d\.\d{4})  NDCG@20 (\d\.\d{4})", out.stdout)
    assert found, out.stdout
    report = json.loads((tmp_path / "tt" / "report.json").read_text())
    assert abs(report["test_metrics"]["recall@20"] - float(found.group(1))) < 1e-4
    assert abs(report["test_metrics"]["ndcg@20"] - float(found.group(2))) < 1e-4
    assert (tmp_path / "tt" / "plots" / "norms_by_group.png").is_file()


def test_the_readme_python_snippet_runs(tmp_path):
    text = (REPO / "README.md").read_text(encoding="utf-8")
    snippet = text.split("<!-- readme-python -->", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    env = dict(os.environ, ADAPTAU_HOME=str(tmp_path / "home"))
    out = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    recall = float(re.search(r"test recall@20 (\S+)", out.stdout).group(1))
    assert 0.05 < recall <= 1.0
    assert (tmp_path / "runs" / "readme-tower" / "report.json").is_file()


def test_the_cli_entry_point_sets_the_passive_thread_policy_unless_the_user_did():
    code = ("import os\nfrom adaptau_cli.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    run = lambda e: subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e,  # noqa: E731
                                   cwd=REPO, check=True).stdout.split()[-1]
    assert run(env) == "PASSIVE"
    assert run({**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
