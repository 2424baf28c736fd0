"""Figure 1 of the paper for the user's runs, drawn with matplotlib (Agg, no display needed).

Each panel is its own PNG with every run in it, so that the contrast between a
no-norm run and an Adap-τ run is one glance:

- ``norms_by_group.png``  (a) mean raw item-embedding norm per popularity group
  over epochs: one small plot per run (shared y axis), one line per group,
  colour ramp from unpopular (dark) to popular (bright), explained by a colour bar;
- ``positive_score.png``  (b) mean positive-pair score over epochs, one line per run;
- ``group_recall.png``    (c) recall@K contribution per popularity group, bars side by side;
- ``norm_vs_popularity.png`` (d) raw item norm vs training popularity (log x),
  one small plot per run, Spearman's rho in each title.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot global state)
with constrained layout, so titles, labels and legends do not overlap, and are
saved at a fixed size (``panel_size``) atomically.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from adaptau_cli.base.files import atomic_path, ensure_dir
from adaptau_cli.workflows.magnitude import RunMagnitude

DPI = 110
PANEL_W, PANEL_H = 4.2, 3.8
MAX_SCATTER_POINTS = 20000
FILES = {"a": "norms_by_group.png", "b": "positive_score.png", "c": "group_recall.png",
         "d": "norm_vs_popularity.png"}


def group_colors(n_groups: int) -> np.ndarray:
    """RGBA colour per group: dark purple (least popular) to yellow-orange (most popular)."""
    return colormaps["plasma"](np.linspace(0.0, 0.88, max(n_groups, 1)))


def panel_size(panel: str, n_runs: int, n_groups: int = 10) -> tuple[float, float]:
    """Figure size in inches of a panel (pixel size = inches x DPI)."""
    if panel in ("a", "d"):
        return (PANEL_W * max(n_runs, 1) + 1.2, PANEL_H)
    if panel == "b":
        return (6.4, 4.0)
    return (max(6.4, 0.35 * n_groups * max(n_runs, 1) + 2.0), 4.0)


def _wrap(text: str, width: int = 34) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def _run_title(r: RunMagnitude) -> str:
    bits = [r.info.get("norm") and f"norm {r.info['norm']}", r.info.get("tau_mode") and f"τ {r.info['tau_mode']}"]
    extra = ", ".join(b for b in bits if b)
    return _wrap(r.label) + (f"\n({extra})" if extra else "")


def _group_colorbar(fig: Figure, axes, n_groups: int) -> None:
    cmap = ListedColormap(group_colors(n_groups))
    norm = BoundaryNorm(np.arange(-0.5, n_groups + 0.5), n_groups)
    sm = ScalarMappable(norm=norm, cmap=cmap)
    cbar = fig.colorbar(sm, ax=axes, pad=0.02, fraction=0.05, aspect=25)
    step = max(1, n_groups // 10)
    cbar.set_ticks(np.arange(0, n_groups, step))
    cbar.set_label("popularity group (0 = least popular)")


def plot_norms_by_group(results: Sequence[RunMagnitude]) -> Figure | None:
    """(a) One subplot per run with history; one line per popularity group."""
    runs = [r for r in results if r.has_history and r.group_norms]
    if not runs:
        return None
    fig = Figure(figsize=panel_size("a", len(runs)), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(runs), sharey=True, squeeze=False)[0]
    n_groups = max(len(r.group_norms[0]) for r in runs)
    colors = group_colors(n_groups)
    for ax, r in zip(axes, runs):
        norms = np.asarray(r.group_norms, dtype=np.float64)
        for g in range(norms.shape[1]):
            ax.plot(r.epochs, norms[:, g], color=colors[g], linewidth=1.4, label=f"g{g}")
        ax.set_title(_run_title(r), fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean raw item-embedding norm\n(L2, unitless)")
    fig.suptitle("(a) item-embedding magnitude per popularity group over training", fontsize=11)
    _group_colorbar(fig, list(axes), n_groups)
    return fig


def plot_positive_score(results: Sequence[RunMagnitude]) -> Figure | None:
    """(b) Mean positive-pair score over epochs, one line per run."""
    runs = [r for r in results if r.has_history and r.pos_score]
    if not runs:
        return None
    fig = Figure(figsize=panel_size("b", len(runs)), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    cycle = colormaps["tab10"](np.arange(10))
    for i, r in enumerate(runs):
        ax.plot(r.epochs, r.pos_score, color=cycle[i % 10], linewidth=1.6, marker="o" if len(r.epochs) < 15 else None,
                markersize=3, label=_run_title(r).replace("\n", " "))
    ax.set_title("(b) mean score of positive (user, item) pairs over training", fontsize=11)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("mean positive-pair score\n(model's own score: inner product or cosine)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def plot_group_recall(results: Sequence[RunMagnitude]) -> Figure:
    """(c) Recall@K contribution per popularity group, bars of the runs side by side."""
    n_groups = max(r.n_groups for r in results)
    k = results[0].k
    fig = Figure(figsize=panel_size("c", len(results), n_groups), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(len(results), 1)
    x = np.arange(n_groups)
    cycle = colormaps["tab10"](np.arange(10))
    for i, r in enumerate(results):
        vals = np.asarray(r.group_recall + [np.nan] * (n_groups - len(r.group_recall)))
        ax.bar(x - 0.4 + width * (i + 0.5), vals, width=width, color=cycle[i % 10],
               label=f"{_run_title(r).replace(chr(10), ' ')}: recall@{k} = {r.recall:.4f}")
    ax.set_xticks(x, [f"g{g}" for g in range(n_groups)])
    ax.set_xlabel(f"popularity group (g0 = least popular, {results[0].grouping} grouping)")
    ax.set_ylabel(f"recall@{k} contribution\n(groups sum to recall@{k})")
    ax.set_title(f"(c) where the hits come from: recall@{k} per popularity group ({results[0].split} split)",
                 fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def plot_norm_vs_popularity(results: Sequence[RunMagnitude], seed: int = 0) -> Figure:
    """(d) Raw item norm vs training popularity (log x), one subplot per run, Spearman in the title."""
    fig = Figure(figsize=panel_size("d", len(results)), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    n_groups = max(r.n_groups for r in results)
    colors = group_colors(n_groups)
    rng = np.random.default_rng(seed)
    from adaptau_cli.eval.groups import popularity_groups

    for ax, r in zip(axes, results):
        pop, norms = r.popularity, r.item_norms
        idx = np.arange(len(pop))
        if len(idx) > MAX_SCATTER_POINTS:
            idx = np.sort(rng.choice(len(pop), MAX_SCATTER_POINTS, replace=False))
        groups = popularity_groups(pop, r.n_groups, r.grouping)
        ax.scatter(pop[idx] + 1, norms[idx], s=6, alpha=0.55, c=colors[groups[idx]], linewidths=0)
        ax.set_xscale("log")
        rho = "n/a" if np.isnan(r.spearman) else f"{r.spearman:.2f}"
        ax.set_title(f"{_run_title(r)}\nSpearman ρ = {rho}", fontsize=9)
        ax.set_xlabel("training interactions + 1 (log scale)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("raw item-embedding norm\n(L2, unitless)")
    fig.suptitle("(d) item-embedding norm vs popularity (checkpoint)", fontsize=11)
    _group_colorbar(fig, list(axes), n_groups)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write a PNG atomically at the figure's own size (no tight bbox: the size is predictable)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=fig.dpi)
    return path


def write_magnitude_plots(results: Sequence[RunMagnitude], out_dir: str | Path) -> tuple[dict[str, Path], list[str]]:
    """Draw every panel the runs allow into ``out_dir``; return (panel -> file, skipped-panel notes)."""
    out_dir = ensure_dir(out_dir, "plots folder")
    written: dict[str, Path] = {}
    skipped: list[str] = []
    builders = {"a": plot_norms_by_group, "b": plot_positive_score, "c": plot_group_recall,
                "d": plot_norm_vs_popularity}
    for panel, build in builders.items():
        fig = build(results)
        if fig is None:
            skipped.append(f"({panel}) skipped: no run given has a training history "
                           f"({'item_norm_g* columns' if panel == 'a' else 'pos_score column'} "
                           "in history.parquet) — a checkpoint alone gives (c) and (d) only")
            continue
        written[panel] = save_figure(fig, out_dir / FILES[panel])
    return written, skipped
