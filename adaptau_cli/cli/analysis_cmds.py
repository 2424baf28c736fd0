"""Analysis commands: ``evaluate``, ``analyze-magnitude`` and ``recommend``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adaptau_cli.cli.options import (
    BatchUsersOpt,
    ConfigOpt,
    DeviceOpt,
    EvalSplitOpt,
    GroupingOpt,
    GroupsOpt,
    JsonOpt,
    QuietOpt,
    RunArg,
    RunsArg,
    parse_ks,
)

KsOpt = Annotated[Optional[str], typer.Option("--k", help="Cut-offs, comma-separated (default 10,20,50).")]
ScoreOpt = Annotated[Optional[str], typer.Option(
    "--score", help="model (default: rank as trained, cosine if normalized) | raw (the un-normalized "
                    "inner product: puts the item magnitudes back into a normalized model's score) | "
                    "raw^A (rank by ‖e_i‖^A·cos: A = 0 cosine, 1 raw).")]
ReportOpt = Annotated[Optional[Path], typer.Option(
    "--out", help="Also write the table to report.md, report.csv or report.json.")]
PlotsOpt = Annotated[Optional[Path], typer.Option(
    "--out", help="Folder for the PNGs (default: plots/ in the first run's directory).")]
GroupKOpt = Annotated[Optional[int], typer.Option("--k", help="Cut-off of the per-group recall (default 20).")]
UsersOpt = Annotated[str, typer.Option(
    "--users", help="User ids as in your data: comma-separated, or a file (.txt one per line, .csv/.parquet "
                    "with a user column).", show_default=False)]
TopKOpt = Annotated[int, typer.Option("--k", help="Items per user.")]
RecsOutOpt = Annotated[Optional[Path], typer.Option(
    "--out", help="Write to FILE.csv, FILE.parquet or FILE.json (columns user, rank, item, score).")]
SkipUnknownOpt = Annotated[bool, typer.Option(
    "--skip-unknown", help="Leave out ids the dataset does not know instead of failing.")]
ExcludeSeenOpt = Annotated[bool, typer.Option(
    "--exclude-seen", help="Also exclude the user's validation and test items (training items always are).")]
IndexDirOpt = Annotated[Optional[Path], typer.Option(
    "--index", help="Folder of `adaptau export --index` for this run: top-K from its FAISS index (over-fetched "
                    "and filtered; a user left short is scored exactly). Needs the optional faiss-cpu package.")]


def _eval_settings(config, **flags):
    """EvaluateConfig: defaults < the [evaluate] section of --config (or its top level) < flags."""
    from adaptau_cli.base.settings import EvaluateConfig, build

    return build(EvaluateConfig, config, "evaluate", flags)


def evaluate_cmd(
    runs: RunsArg, split: EvalSplitOpt = None, k: KsOpt = None, groups: GroupsOpt = None,
    grouping: GroupingOpt = None, batch_users: BatchUsersOpt = None, device: DeviceOpt = None,
    score: ScoreOpt = None, out: ReportOpt = None, quiet: QuietOpt = False, as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Full-ranking metrics, per-popularity-group view and popularity bias of one or more runs."""
    from adaptau_cli.base.console import emit, info
    from adaptau_cli.base.files import check_writable_file
    from adaptau_cli.cli.render import render_evaluation
    from adaptau_cli.workflows.evaluate import evaluate_runs
    from adaptau_cli.workflows.reports import evaluation_payload, write_evaluation_report

    cfg = _eval_settings(config, split=split, ks=parse_ks(k), groups=groups, grouping=grouping,
                         batch_users=batch_users, device=device, score=score)
    if out is not None:
        check_writable_file(out)                      # before the work, not after it
    evals = evaluate_runs(runs, cfg, progress=lambda label: info("evaluated {label}", quiet, label=label))
    if out is not None:
        write_evaluation_report(evals, out)
        info("report written to {out}", quiet, out=out)
    emit(evaluation_payload(evals), as_json, None if quiet else (lambda _: render_evaluation(evals)))


def analyze_magnitude_cmd(
    runs: RunsArg, out: PlotsOpt = None, k: GroupKOpt = None, split: EvalSplitOpt = None,
    groups: GroupsOpt = None, grouping: GroupingOpt = None, device: DeviceOpt = None,
    quiet: QuietOpt = False, as_json: JsonOpt = False, config: ConfigOpt = None,
) -> None:
    """The paper's Figure 1 for your runs: item-norm growth, positive score, per-group recall, norm vs popularity."""
    from adaptau_cli.base.console import emit
    from adaptau_cli.base.files import ensure_dir
    from adaptau_cli.cli.render import magnitude_payload, render_magnitude
    from adaptau_cli.workflows.magnitude import analyze_runs, default_plots_dir, write_magnitude_json
    from adaptau_cli.workflows.plots import write_magnitude_plots

    cfg = _eval_settings(config, split=split, groups=groups, grouping=grouping, device=device)
    if out is not None:
        ensure_dir(out, "plots folder")
    results = analyze_runs(runs, cfg, k=k or 20)
    out = out if out is not None else default_plots_dir(runs)
    written, skipped = write_magnitude_plots(results, out)
    write_magnitude_json(results, out)
    emit(magnitude_payload(results, out, written, skipped), as_json,
         None if quiet else (lambda p: render_magnitude(p, k or 20)))


def recommend_cmd(
    run: RunArg, users: UsersOpt, k: TopKOpt = 20, out: RecsOutOpt = None,
    skip_unknown: SkipUnknownOpt = False, exclude_seen: ExcludeSeenOpt = False, device: DeviceOpt = None,
    index: IndexDirOpt = None, quiet: QuietOpt = False, as_json: JsonOpt = False,
) -> None:
    """Top-K unseen items for given users, with your original user and item ids."""
    from adaptau_cli.base.console import emit, info
    from adaptau_cli.base.files import check_writable_file
    from adaptau_cli.base.runtime import resolve_device
    from adaptau_cli.cli.render import render_recommendations
    from adaptau_cli.workflows.recommend import recommend, write_recommendations

    if out is not None:
        check_writable_file(out)
    recs = recommend(run, users, k=k, skip_unknown=skip_unknown, exclude_seen=exclude_seen,
                     device=resolve_device(device or "auto"), index=index)
    if recs.unknown:
        info("[yellow]skipped {n} unknown user id(s):[/] {ids}", quiet, n=len(recs.unknown),
             ids=", ".join(recs.unknown[:10]))
    if out is not None:
        write_recommendations(recs, out)
        info("{n} recommendations for {users} user(s) written to {out}", quiet, n=len(recs.frame),
             users=recs.frame["user"].nunique(), out=out)
    emit(recs.to_dict(), as_json, None if (quiet or out is not None) else (lambda _: render_recommendations(recs, k)))


COMMANDS = {"evaluate": evaluate_cmd, "analyze-magnitude": analyze_magnitude_cmd, "recommend": recommend_cmd}
