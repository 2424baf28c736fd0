"""Figure 1 data: history parsing, per-group means, Spearman, and a checkpoint-only run."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from analysis_fakes import FakeRun, fake_history, long_tail_dataset
from scipy.stats import rankdata

from adaptau_cli.base.settings import EvaluateConfig
from adaptau_cli.eval.groups import popularity_groups
from adaptau_cli.workflows.evaluate import evaluate_dataset
from adaptau_cli.workflows.magnitude import (
    analyze_run,
    group_means,
    history_series,
    spearman,
    summary_rows,
)


def test_history_series_orders_groups_numerically_and_epochs():
    h = fake_history(4, 12)
    h = h[list(reversed(h.columns))].iloc[::-1]          # scrambled columns and rows
    epochs, norms, pos = history_series(h)
    assert epochs == [0, 1, 2, 3]
    assert len(norms) == 4 and len(norms[0]) == 12
    assert norms[3] == [1.0 + 0.1 * (g + 1) * 3 for g in range(12)]   # g10, g11 after g9
    assert pos == [0.0, 0.5, 1.0, 1.5]


def test_history_without_columns():
    epochs, norms, pos = history_series(pd.DataFrame({"epoch": [0, 1], "loss": [1.0, 0.5]}))
    assert epochs == [0, 1] and norms is None and pos is None
    assert history_series(None) == ([], None, None)


def test_group_means_against_loop():
    rng = np.random.default_rng(0)
    v, g = rng.random(50), rng.integers(0, 4, 50)
    g[g == 2] = 3                                                      # group 2 empty
    got = group_means(v, g, 4)
    for k in (0, 1, 3):
        assert got[k] == pytest.approx(v[g == k].mean())
    assert math.isnan(got[2])


def test_spearman_is_pearson_of_average_ranks():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 6, 40).astype(float)                           # many ties
    y = x * 0.5 + rng.random(40)
    rx, ry = rankdata(x), rankdata(y)
    ref = np.corrcoef(rx, ry)[0, 1]
    assert spearman(x, y) == pytest.approx(ref)
    assert spearman(x, -y) == pytest.approx(-ref)
    assert math.isnan(spearman(np.ones(5), np.arange(5)))


def test_analyze_run_growing_norms_vs_normalized():
    ds = long_tail_dataset()
    cfg = EvaluateConfig(groups=5)
    grow = analyze_run(FakeRun(ds, "nonorm", growing=True, history=fake_history(5, 5)), cfg, k=20, dataset=ds)
    flat = analyze_run(FakeRun(ds, "adaptau", growing=False, norm="both",
                               history=fake_history(5, 5, growing=False)), cfg, k=20, dataset=ds)
    # (d): norms follow popularity only for the growing model
    assert grow.spearman > 0.6
    assert abs(flat.spearman) < 0.3
    assert grow.checkpoint_group_norms[-1] > 2 * grow.checkpoint_group_norms[0]
    # (c): the group recall is the evaluation code's recall contribution
    ev = evaluate_dataset(ds, *FakeRun(ds, growing=True).scoring_embeddings(ds),
                          EvaluateConfig(groups=5, ks=(20,)))
    assert grow.group_recall == pytest.approx(ev.groups["20"]["recall_contribution"])
    assert sum(grow.group_recall) == pytest.approx(grow.recall)
    # (a), (b) from history
    assert grow.has_history and len(grow.group_norms) == 5 and len(grow.pos_score) == 5
    assert grow.notes == []
    rows = summary_rows([grow, flat])
    assert rows[0]["norm"] == "none" and rows[1]["norm"] == "both"
    assert rows[0]["norm_most_popular_last"] > rows[0]["norm_least_popular_last"]
    assert rows[0]["spearman_norm_popularity"] == pytest.approx(grow.spearman)
    d = grow.to_dict()
    assert "popularity" not in d and d["label"] == "nonorm"


def test_checkpoint_only_run_says_so():
    ds = long_tail_dataset()
    r = analyze_run(FakeRun(ds, history=None), EvaluateConfig(), k=10, dataset=ds)
    assert not r.has_history and r.group_norms is None and r.pos_score is None
    assert any("no history.parquet" in n for n in r.notes)
    assert len(r.group_recall) == 10 and not math.isnan(r.spearman)
    # the checkpoint norms per group agree with a direct computation
    g = popularity_groups(ds.item_popularity, 10, "mass")
    norms = FakeRun(ds).raw_item_norms(ds)
    assert r.checkpoint_group_norms[9] == pytest.approx(norms[g == 9].mean())
