"""Figure 1 panels: valid PNG files of the promised size, and the expected lines / bars / points."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from analysis_fakes import FakeRun, fake_history, long_tail_dataset
from matplotlib.container import BarContainer

from adaptau_cli.base.settings import EvaluateConfig
from adaptau_cli.workflows.magnitude import analyze_run
from adaptau_cli.workflows.plots import (
    DPI,
    FILES,
    MAX_SCATTER_POINTS,
    group_colors,
    panel_size,
    plot_group_recall,
    plot_norm_vs_popularity,
    plot_norms_by_group,
    plot_positive_score,
    write_magnitude_plots,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def results():
    ds = long_tail_dataset()
    cfg = EvaluateConfig(groups=6)
    return [analyze_run(FakeRun(ds, "mf-nonorm", growing=True, history=fake_history(7, 6)), cfg, 20, ds),
            analyze_run(FakeRun(ds, "mf-adaptau", growing=False, norm="both",
                                history=fake_history(7, 6, growing=False)), cfg, 20, ds),
            analyze_run(FakeRun(ds, "checkpoint-only", growing=True, history=None), cfg, 20, ds)]


def _data_axes(fig):
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def test_panel_a_one_subplot_per_run_with_history_and_one_line_per_group(results):
    fig = plot_norms_by_group(results)
    axes = _data_axes(fig)
    assert len(axes) == 2                                      # the checkpoint-only run has no history
    for ax, r in zip(axes, results[:2]):
        lines = ax.get_lines()
        assert len(lines) == 6
        assert r.label in ax.get_title()
        assert lines[0].get_xdata().tolist() == list(range(7))
        # colour ramp: each group's colour is the ramp's colour, unpopular first
        assert np.allclose([ln.get_color() for ln in lines], group_colors(6))
    assert "epoch" in axes[0].get_xlabel() and "norm" in axes[0].get_ylabel()
    assert len(fig.axes) == 3                                  # plus the colour bar


def test_panel_b_one_line_per_run(results):
    fig = plot_positive_score(results)
    (ax,) = fig.axes
    assert len(ax.get_lines()) == 2
    assert len(ax.get_legend().get_texts()) == 2
    assert ax.get_xlabel() == "epoch" and "score" in ax.get_ylabel()


def test_panel_c_bars_side_by_side(results):
    fig = plot_group_recall(results)
    (ax,) = fig.axes
    containers = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(containers) == 3 and all(len(c) == 6 for c in containers)
    heights = [bar.get_height() for bar in containers[0]]
    assert heights == pytest.approx(results[0].group_recall)
    # bars of one group do not overlap
    xs = [containers[i][0].get_x() for i in range(3)]
    assert xs[1] >= xs[0] + containers[0][0].get_width() - 1e-9
    assert len(ax.get_legend().get_texts()) == 3


def test_panel_d_scatter_per_run_log_x_and_spearman_title(results):
    fig = plot_norm_vs_popularity(results)
    axes = _data_axes(fig)
    assert len(axes) == 3
    for ax, r in zip(axes, results):
        (coll,) = ax.collections
        assert len(coll.get_offsets()) == min(len(r.popularity), MAX_SCATTER_POINTS)
        assert ax.get_xscale() == "log"
        assert f"Spearman ρ = {r.spearman:.2f}" in ax.get_title()


def test_written_pngs_exist_with_expected_pixel_size(results, tmp_path):
    written, skipped = write_magnitude_plots(results, tmp_path / "plots")
    assert set(written) == {"a", "b", "c", "d"} and skipped == []
    n_runs = {"a": 2, "b": 2, "c": 3, "d": 3}
    for panel, path in written.items():
        assert path == tmp_path / "plots" / FILES[panel]
        w, h = panel_size(panel, n_runs[panel], 6)
        assert png_size(path) == (round(w * DPI), round(h * DPI))
    assert not list((tmp_path / "plots").glob(".*.tmp"))       # atomic writes leave no temp files


def test_checkpoint_only_run_gives_c_and_d_and_says_why(results, tmp_path):
    written, skipped = write_magnitude_plots(results[2:], tmp_path)
    assert set(written) == {"c", "d"}
    assert len(skipped) == 2 and all("checkpoint alone" in s for s in skipped)
    assert png_size(written["d"]) == tuple(round(v * DPI) for v in panel_size("d", 1))
