"""``adaptau compare``: per-user paired tests between methods, over seeds (issue #17)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from adaptau_cli.base.errors import UserError
from adaptau_cli.cli.options import DeviceOpt, HomeOpt, JsonOpt, MirrorOpt, QuietOpt, SourceOpt, ThreadsOpt, parse_ks

MethodOpt = Annotated[Optional[list[str]], typer.Option(
    "--method", help="NAME=RUN_DIR,RUN_DIR,... (one run per seed) or NAME=CONFIG.toml (trained for each of "
                     "--seeds into OUT/runs/NAME-seedK); repeat once per method, at least twice.",
    show_default=False, metavar="NAME=RUNS|CONFIG")]
OutOpt = Annotated[Optional[Path], typer.Option(
    "--out", help="Folder for compare.md / .csv / .json, plots/ and the trained runs/.", show_default=False)]
SeedsOpt = Annotated[Optional[str], typer.Option(
    "--seeds", help="Training seeds of the methods given as a config, comma-separated, e.g. 1,2,3.")]
MetricOpt = Annotated[Optional[str], typer.Option(
    "--metric", help="Metrics, comma-separated (default recall,ndcg; also precision, hit, mrr, map).")]
KOpt = Annotated[Optional[str], typer.Option("--k", help="Cut-offs, comma-separated (default 20).")]
EpochsOpt = Annotated[Optional[int], typer.Option(
    "--epochs", help="Override the configs' maximum epochs (a finished run with fewer is resumed).")]


def parse_seeds(text: str | None) -> tuple[int, ...]:
    """``--seeds 1,2,3`` as a tuple of ints, in the given order (empty when not given)."""
    if text is None:
        return ()
    try:
        seeds = tuple(int(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        raise UserError(f"--seeds expects integers such as 1,2,3, got {text!r}") from None
    if not seeds:
        raise UserError(f"--seeds expects integers such as 1,2,3, got {text!r}")
    return seeds


def parse_metrics(text: str | None) -> tuple[str, ...]:
    """``--metric recall,ndcg`` as metric names (checked against the registry by the workflow)."""
    from adaptau_cli.workflows.compare import DEFAULT_METRICS

    if text is None:
        return DEFAULT_METRICS
    return tuple(dict.fromkeys(t.strip().lower() for t in text.split(",") if t.strip()))


def compare_cmd(
    method: MethodOpt = None, out: OutOpt = None, seeds: SeedsOpt = None, metric: MetricOpt = None,
    k: KOpt = None, source: SourceOpt = None, mirror: MirrorOpt = None, home: HomeOpt = None,
    epochs: EpochsOpt = None, threads: ThreadsOpt = None, device: DeviceOpt = None,
    quiet: QuietOpt = False, as_json: JsonOpt = False,
) -> None:
    """Is the difference real? Paired Wilcoxon and t-tests over test users between methods, over seeds."""
    from adaptau_cli.base.console import emit
    from adaptau_cli.workflows.compare import DEFAULT_KS, CompareSettings, compare, parse_method

    if out is None:
        raise UserError("compare needs --out FOLDER (for its reports, plots and trained runs)")
    methods = [parse_method(m) for m in method or []]
    data = {"source": str(source) if source else None, "mirror": str(mirror) if mirror else None,
            "home": str(home) if home else None}
    settings = CompareSettings(metrics=parse_metrics(metric), ks=parse_ks(k) or DEFAULT_KS, seeds=parse_seeds(seeds),
                               device=device or "auto", data_overrides=data,
                               train_overrides={"epochs": epochs, "threads": threads, "device": device})
    result = compare(methods, settings, out, quiet=quiet)
    emit(result.to_dict(), as_json, None if quiet else render_compare)


def render_compare(p: dict[str, Any]) -> None:
    """Rich tables on stderr: the seeds' mean ± sd per method, then each metric's pairs."""
    from rich import box
    from rich.table import Table

    from adaptau_cli.base.console import err_console, plain
    from adaptau_cli.workflows.compare import fmt_value

    err_console.print(f"[bold]{plain(p['dataset']['name'])}[/], test split, {p['dataset']['test_users']} users: "
                      "mean ± sd over seeds", highlight=False)
    summary = Table(box=box.SIMPLE_HEAD)
    summary.add_column("method")
    for key in p["metrics"]:
        summary.add_column(key, justify="right")
    for m in p["methods"]:
        summary.add_row(plain(m["name"]), *[f"{fmt_value(m['summary'][k]['mean'])} ± "
                                           f"{fmt_value(m['summary'][k]['sd'])}" for k in p["metrics"]])
    err_console.print(summary)
    for key in p["metrics"]:
        err_console.print(pairs_table(key, [r for r in p["pairs"] if r["metric"] == key]))
    err_console.print("W = Wilcoxon signed-rank, r = rank-biserial, t = paired t-test, Holm = adjusted over "
                      f"the pairs of the metric; real? = W Holm p < {p['alpha']:g}", highlight=False)
    err_console.print(f"written: {plain(p['outputs']['md'])} (also .csv, .json), plots in "
                      f"{plain(Path(p['out']) / 'plots')}/", highlight=False, soft_wrap=True)


def pairs_table(key: str, rows: list[dict[str, Any]]):
    """One metric's pairs: A − B per test user, both tests, their Holm-adjusted p and effect sizes."""
    from rich import box
    from rich.table import Table

    from adaptau_cli.base.console import plain
    from adaptau_cli.workflows.compare import fmt_diff, fmt_effect, fmt_p

    table = Table(title=f"{key}: A − B per test user", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("A − B", "Δ mean", "W p", "Holm", "r", "t p", "Holm", "d_z", "real?"):
        table.add_column(col, justify="left" if col == "A − B" else "right")
    for row in rows:
        w, t = row["wilcoxon"], row["t_test"]
        table.add_row(f"{plain(row['a'])} − {plain(row['b'])}", fmt_diff(row["mean_diff"]), fmt_p(w["p"]),
                      fmt_p(w["p_holm"]), fmt_effect(w["rank_biserial"]), fmt_p(t["p"]), fmt_p(t["p_holm"]),
                      fmt_effect(t["cohen_dz"]), "yes" if row["differs"] else "no")
    return table


COMMANDS = {"compare": compare_cmd}
