"""``adaptau sweep``: the paper's Figure 2 and Table 2 on the user's data (issue #17).

How much does a normalized model's accuracy depend on τ, and does Adap-τ find
a good one without the search? The sweep trains a grid of fixed temperatures
(``--tau-mode fixed --tau t``), Adap-τ0 and Adap-τ (and, with the baseline, the
un-normalized model: ``--norm none --tau-mode none``) with the same settings
otherwise, each selecting its epoch on validation, and measures each once on
test. Test Recall@20 is shown relative to the best grid point: the paper's
Figure 2 (``plots/sweep.png``), with the τ0 each adaptive run settled at.

Every training is its own ``adaptau train`` process (``--jobs N`` side by
side, the machine's CPUs split between them), so one that fails or is killed
does not take the sweep down: it is reported in one line with its log, the
others finish, and the sweep exits non-zero. Runs live in
``OUT/runs/<name>``; a finished run is reused, an interrupted one resumed
(``workflows.training.run_state``), so a rerun costs only what is missing.
Settings shared by all runs are checked once, before any training.

Outputs (atomic): ``OUT/sweep.md``, ``sweep.csv``, ``sweep.json``,
``OUT/plots/sweep.png``; per run ``OUT/configs/<name>.toml`` (its settings)
and ``OUT/logs/<name>.log`` (its output).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import io
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any, Mapping, Sequence

from adaptau_cli.base.console import err_console, plain
from adaptau_cli.base.errors import AdaptauError, UserError
from adaptau_cli.base.files import ensure_dir, write_json, write_text
from adaptau_cli.base.settings import PreprocessConfig, TrainConfig, read_toml, run_config_toml, to_dict
from adaptau_cli.engine.rundir import CONFIG_NAME
from adaptau_cli.workflows.training import dataset_for_training, read_report, refuse_other_settings, run_state

DEFAULT_TAUS = (0.04, 0.08, 0.12, 0.16, 0.2, 0.3, 0.5)   # around the paper's Figure 2 grid
MAIN = "recall@20"                                        # what "relative" and the progress lines read
KEYS = ("recall@20", "ndcg@20")                           # the table's metrics (json holds every one)
REL = "rel_test_recall@20"
POLL_SECONDS = 0.2
CSV_FIELDS = ("name", "kind", "tau_mode", "norm", "tau", "tau0_final", "valid_recall@20", "valid_ndcg@20",
              "test_recall@20", "test_ndcg@20", REL, "best_epoch", "epochs_run", "wall_seconds", "epoch_seconds",
              "status", "run_dir")
KIND_LABELS = {"fixed": "fixed τ", "adap-tau0": "Adap-τ0", "adap-tau": "Adap-τ", "no-norm": "no norm"}


# ---------------------------------------------------------------------------
# What to train
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SweepSettings:
    """The grid and how it runs; every other setting is the TrainConfig the sweep is given."""

    taus: tuple[float, ...] = DEFAULT_TAUS
    with_baseline: bool = False      # also the un-normalized model (--norm none --tau-mode none)
    jobs: int = 1                    # trainings side by side, one process each


@dataclasses.dataclass(frozen=True)
class SweepPoint:
    """One run of the sweep: its folder name, its kind and the settings it changes."""

    name: str
    kind: str                        # fixed | adap-tau0 | adap-tau | no-norm
    overrides: Mapping[str, Any]


def sweep_points(taus: Sequence[float], with_baseline: bool) -> list[SweepPoint]:
    """The grid in increasing τ, then Adap-τ0 and Adap-τ, then the baseline; names are folder names."""
    points = [SweepPoint(f"tau-{t!r}", "fixed", {"tau_mode": "fixed", "tau": float(t)}) for t in sorted(taus)]
    points += [SweepPoint("adap-tau0", "adap-tau0", {"tau_mode": "adap-tau0"}),
               SweepPoint("adap-tau", "adap-tau", {"tau_mode": "adap-tau"})]
    if with_baseline:
        points.append(SweepPoint("no-norm", "no-norm", {"norm": "none", "tau_mode": "none"}))
    return points


def check_request(settings: SweepSettings, train_cfg: TrainConfig) -> None:
    """Refuse, in one line, a sweep that cannot be made: before the dataset is read or anything trains."""
    taus = settings.taus
    if not taus:
        raise UserError("--taus needs at least one temperature, e.g. 0.04,0.08,0.16")
    bad = [t for t in taus if not (math.isfinite(t) and t > 0)]
    if bad:
        raise UserError(f"--taus must be positive numbers, got {', '.join(map(repr, bad))}")
    twice = sorted({t for t in taus if taus.count(t) > 1})
    if twice:
        raise UserError(f"--taus lists the same temperature twice: {', '.join(map(repr, twice))}")
    if settings.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {settings.jobs}")
    if train_cfg.norm == "none":
        raise UserError("the sweep's τ grid is of a normalized model, not --norm none",
                        hint="--with-baseline adds the un-normalized model")
    if 20 not in {int(k) for k in train_cfg.ks}:
        raise UserError(f"the sweep reports Recall@20 and NDCG@20, but ks is {list(train_cfg.ks)}",
                        hint="include 20 in the config's ks")


# ---------------------------------------------------------------------------
# The plan: each run's settings and folder state, checked before any training
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PlannedRun:
    """A sweep point with its settings, its folder and what is left to do there."""

    point: SweepPoint
    train_cfg: TrainConfig
    run_dir: Path
    state: str                       # new | interrupted | finished (workflows.training.run_state)

    @property
    def name(self) -> str:
        return self.point.name


def folder_state(run_dir: Path, train_cfg: TrainConfig, fingerprint: str) -> str:
    """``run_state``, and for a run killed before its report: refuse a folder of other settings now.

    Its config.toml (written when it started) says what it was; without this
    the refusal would come from its training process, after the others ran.
    """
    state = run_state(run_dir, train_cfg, fingerprint)
    own = run_dir / CONFIG_NAME
    if state == "interrupted" and read_report(run_dir) is None and own.is_file():
        refuse_other_settings(run_dir, read_toml(own).get("train") or {}, train_cfg)
    return state


def plan_runs(points: Sequence[SweepPoint], train_cfg: TrainConfig, fingerprint: str, out: Path) -> list[PlannedRun]:
    """Every point's settings checked (UserError, exit 2) and its folder's state read, before any training."""
    from adaptau_cli.engine.trainer import check_config

    plans = []
    for point in points:
        cfg = check_config(dataclasses.replace(train_cfg, **point.overrides))
        run_dir = out / "runs" / point.name
        plans.append(PlannedRun(point, cfg, run_dir, folder_state(run_dir, cfg, fingerprint)))
    return plans


def check_dataset(dataset: Any, train_cfg: TrainConfig) -> None:
    """UserError unless the dataset has the splits every run needs (one to select on, a test split)."""
    select = "test" if train_cfg.select_on == "test" else "valid"
    for split in dict.fromkeys((select, "test")):
        if len(dataset.split(split)) == 0:
            raise UserError(f"dataset {dataset.name!r} has no {split} split, which every run of the sweep needs",
                            hint="prepare it with a 3-way --split (or --valid-ratio 0.1)")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threads_per_training(jobs: int, n_to_train: int, given: int | None, cpus: int | None = None) -> int:
    """``--threads`` when given; else the CPUs split evenly over the trainings that run at once (at least 1)."""
    if given:
        return int(given)
    side_by_side = max(1, min(jobs, n_to_train))
    return max(1, (cpus or available_cpus()) // side_by_side)


# ---------------------------------------------------------------------------
# Training: one `adaptau train` process per run, N at a time
# ---------------------------------------------------------------------------

def say(message: str, quiet: bool, **values: Any) -> None:
    """``console.info`` that never wraps: a progress or failure line stays one line, for grep and for logs."""
    if not quiet:
        err_console.print(message.format(**{k: plain(v) for k, v in values.items()}), highlight=False, soft_wrap=True)


@dataclasses.dataclass
class Outcome:
    """What one training process did in this invocation."""

    status: str                      # trained | resumed | failed | time-limited
    seconds: float                   # its wall time
    log: Path
    error: str | None = None         # a failure's last line of output, with the exit code


def config_file(out: Path, name: str) -> Path:
    return out / "configs" / f"{name}.toml"


def log_file(out: Path, name: str) -> Path:
    return out / "logs" / f"{name}.log"


def wall_file(out: Path, name: str) -> Path:
    return out / "logs" / f"{name}.wall.json"


def read_wall_seconds(out: Path, name: str) -> float | None:
    """The wall time of the run's training processes so far (None: none ended under a sweep)."""
    try:
        return finite(json.loads(wall_file(out, name).read_text(encoding="utf-8")).get("wall_seconds"))
    except (OSError, ValueError, AttributeError):
        return None


def record_wall_seconds(out: Path, run: PlannedRun, seconds: float) -> None:
    """Add a finished process's wall time to the run's total, kept beside its log so a reused run still has it.

    A run started afresh (``new``) starts the total over: an older total was of a run since removed.
    """
    before = read_wall_seconds(out, run.name) if run.state == "interrupted" else None
    write_json(wall_file(out, run.name), {"wall_seconds": (before or 0.0) + seconds})


def train_command(run: PlannedRun, config: Path, threads: int) -> list[str]:
    """``adaptau train --config FILE --out DIR [--resume DIR] --threads T`` as this interpreter runs it."""
    cmd = [sys.executable, "-m", "adaptau_cli", "train", "--config", str(config), "--out", str(run.run_dir),
           "--threads", str(threads)]
    return cmd + (["--resume", str(run.run_dir)] if run.state == "interrupted" else [])


def child_env(threads: int) -> dict[str, str]:
    """The environment of a training: OpenMP and MKL pools of its share of the CPUs, waiting passively.

    Spinning OpenMP threads of N processes on a shared machine multiply each other's epochs' time.
    """
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


@dataclasses.dataclass
class Running:
    """A training process in flight."""

    run: PlannedRun
    process: subprocess.Popen
    log: IO[bytes]
    started: float


def start_training(run: PlannedRun, data_cfg: PreprocessConfig, out: Path, threads: int) -> Running:
    """Write the run's settings file and start its ``adaptau train`` process, its output to its log."""
    cfg = dataclasses.replace(run.train_cfg, threads=threads)
    config = write_text(config_file(out, run.name), run_config_toml(data_cfg, cfg))
    cmd = train_command(run, config, threads)
    path = log_file(out, run.name)
    ensure_dir(path.parent, "logs folder")
    log = open(path, "ab")
    log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
    log.flush()
    process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               env=child_env(threads))
    return Running(run, process, log, time.monotonic())


def last_line(path: Path) -> str:
    """The last non-empty line a training printed (its one-line error), for the sweep's own line."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    text = next((ln.strip() for ln in reversed(lines) if ln.strip() and not ln.startswith("=== ")), "")
    return text[:300]


def finish_training(job: Running, out: Path, quiet: bool) -> Outcome:
    """The outcome of an ended process, announced in one progress line (name, test Recall@20, wall time)."""
    job.log.close()
    seconds = time.monotonic() - job.started
    name, log, code = job.run.name, log_file(out, job.run.name), job.process.returncode
    report = read_report(job.run.run_dir) if code == 0 else None
    if report is None:
        error = f"exit {code}: {last_line(log)}" if code else "exit 0 but no report.json was written"
        say("[bold red]{name} failed[/] ({error}); log {log}", quiet, name=name, error=error, log=log)
        return Outcome("failed", seconds, log, error)
    status = "time-limited" if report.get("time_limited") else \
        ("resumed" if job.run.state == "interrupted" else "trained")
    record_wall_seconds(out, job.run, seconds)
    say("{name}: test Recall@20 {recall} ({status}, {seconds} s)", quiet, name=name, status=status,
        recall=fmt_value((report.get("test_metrics") or {}).get(MAIN)), seconds=f"{seconds:.1f}")
    return Outcome(status, seconds, log)


def stop_all(running: Sequence[Running]) -> None:
    """Ctrl-C or an error in the sweep: stop the trainings still running (each resumable) and wait for them."""
    for job in running:
        if job.process.poll() is None:
            job.process.terminate()
    for job in running:
        job.process.wait()
        job.log.close()


def run_trainings(runs: Sequence[PlannedRun], data_cfg: PreprocessConfig, out: Path, jobs: int, threads: int,
                  quiet: bool) -> dict[str, Outcome]:
    """Train the runs, ``jobs`` processes at a time; one outcome per run, whatever the others did."""
    pending = collections.deque(runs)
    running: list[Running] = []
    outcomes: dict[str, Outcome] = {}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                run = pending.popleft()
                say("{name}: {what} {dir}", quiet, name=run.name, dir=run.run_dir,
                    what="resuming" if run.state == "interrupted" else "training")
                running.append(start_training(run, data_cfg, out, threads))
            ended = [job for job in running if job.process.poll() is not None]
            if not ended:
                time.sleep(POLL_SECONDS)
            for job in ended:
                running.remove(job)
                outcomes[job.run.name] = finish_training(job, out, quiet)
    finally:
        stop_all(running)
    return outcomes


# ---------------------------------------------------------------------------
# The table (pure)
# ---------------------------------------------------------------------------

def finite(value: Any) -> float | None:
    """A number for the tables, None for a missing, NaN or infinite one (JSON has no NaN)."""
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def epoch_seconds(report: Mapping[str, Any]) -> float | None:
    """The run's time in its epochs (training + validation, every session), from its report."""
    train, evals = finite(report.get("train_seconds")), finite(report.get("eval_seconds"))
    return None if train is None else train + (evals or 0.0)


def run_row(run: PlannedRun, status: str, report: Mapping[str, Any] | None, log: Path | None,
            wall_seconds: float | None) -> dict[str, Any]:
    """One run of sweep.json / .csv / .md, read off its own report.json (None: it failed)."""
    cfg, report = run.train_cfg, report or {}
    valid, test = report.get("valid_metrics") or {}, report.get("test_metrics") or {}
    adaptive = run.point.kind in ("adap-tau0", "adap-tau")
    return {
        "name": run.name, "kind": run.point.kind, "tau_mode": cfg.tau_mode, "norm": cfg.norm,
        "tau": cfg.tau if cfg.tau_mode == "fixed" else None,
        "tau0_final": finite(report.get("tau0_final")) if adaptive else None,
        **{f"valid_{k}": finite(valid.get(k)) for k in KEYS}, **{f"test_{k}": finite(test.get(k)) for k in KEYS},
        REL: None, "best_epoch": report.get("best_epoch"), "epochs_run": report.get("epochs_run"),
        "wall_seconds": wall_seconds, "epoch_seconds": epoch_seconds(report), "status": status,
        "selection": report.get("selection"), "run_dir": str(run.run_dir), "log": str(log) if log else None,
        "valid_metrics": {k: finite(v) for k, v in valid.items()},
        "test_metrics": {k: finite(v) for k, v in test.items()}}


def sweep_rows(plans: Sequence[PlannedRun], outcomes: Mapping[str, Outcome], out: Path) -> list[dict[str, Any]]:
    """Every run's row, in plan order, with its relative recall; a failed run has no numbers (no stale report)."""
    rows = []
    for plan in plans:
        status = outcomes[plan.name].status if plan.name in outcomes else "reused"
        log = log_file(out, plan.name)
        report = None if status == "failed" else read_report(plan.run_dir)
        wall = read_wall_seconds(out, plan.name) if report is not None else None
        rows.append(run_row(plan, status, report, log if log.is_file() else None, wall))
    add_relative(rows)
    return rows


def best_grid_point(rows: Sequence[Mapping[str, Any]], split: str) -> dict[str, Any] | None:
    """The fixed-τ run with the highest Recall@20 on ``split`` (the first of equals; None: no grid result)."""
    grid = [r for r in rows if r["kind"] == "fixed" and r[f"{split}_{MAIN}"] is not None]
    if not grid:
        return None
    return dict(max(grid, key=lambda r: r[f"{split}_{MAIN}"]))


def add_relative(rows: list[dict[str, Any]]) -> None:
    """Each run's test Recall@20 divided by the best grid point's (None when either is missing or zero)."""
    best = best_grid_point(rows, "test")
    top = best[f"test_{MAIN}"] if best else None
    for row in rows:
        value = row[f"test_{MAIN}"]
        row[REL] = value / top if value is not None and top else None


# ---------------------------------------------------------------------------
# The whole sweep
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class SweepResult:
    """Everything the sweep found; ``to_dict()`` is sweep.json."""

    out: Path
    dataset: dict[str, Any]
    settings: dict[str, Any]
    rows: list[dict[str, Any]]
    outputs: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] == "failed"]

    def best(self, split: str = "test") -> dict[str, Any] | None:
        return best_grid_point(self.rows, split)

    def to_dict(self) -> dict[str, Any]:
        best, chosen = self.best("test"), self.best("valid")
        return {"out": str(self.out), "dataset": self.dataset, "settings": self.settings, "runs": self.rows,
                "best_grid_point": best and best["name"], "best_grid_point_on_valid": chosen and chosen["name"],
                "outputs": self.outputs, "definitions": DEFINITIONS}


DEFINITIONS = {
    "protocol": "every run selects its epoch on the validation split (unless --select-on test) by its monitor "
                "metric and is measured once on the test split: full ranking over all items, training (and for "
                "test, validation) items masked",
    REL: "the run's test Recall@20 divided by that of the best fixed-τ grid point (the grid's best on test)",
    "tau0_final": "the global τ0 of an adaptive run's last epoch (its report's tau0_final); Adap-τ's per-user "
                  "τ_u are spread around it",
    "wall_seconds": "wall time of the run's `adaptau train` processes under the sweep, summed over its sessions "
                    "(start-up, data loading and the final test included; runs side by side share the CPUs)",
    "epoch_seconds": "time in the run's epochs, training plus validation, summed over every session (its report)",
    "status": "trained / resumed / reused (a finished run in OUT/runs) / failed / time-limited, this invocation",
}


def prepare(data_cfg: PreprocessConfig, train_cfg: TrainConfig, quiet: bool) -> tuple[PreprocessConfig, Any]:
    """The dataset every run trains on, prepared once here (a validation split carved as ``train`` would)."""
    from adaptau_cli.base.runtime import resolve_device

    resolve_device(train_cfg.device)              # a device that is not there fails here, not in every run
    data_cfg, dataset = dataset_for_training(data_cfg, train_cfg, quiet)
    check_dataset(dataset, train_cfg)
    return data_cfg, dataset


def announce_plan(plans: Sequence[PlannedRun], jobs: int, threads: int, quiet: bool) -> None:
    """One line for the plan, then one per reused run (its test Recall@20)."""
    todo = [p for p in plans if p.state != "finished"]
    say("sweep: {n} runs, {t} to train, {r} reused; {j} at a time, {th} thread(s) each", quiet, n=len(plans),
        t=len(todo), r=len(plans) - len(todo), j=max(1, min(jobs, len(todo))), th=threads)
    for p in plans:
        if p.state == "finished":
            report = read_report(p.run_dir) or {}
            say("{name}: test Recall@20 {recall} (reusing the finished run {dir})", quiet, name=p.name,
                dir=p.run_dir, recall=fmt_value((report.get("test_metrics") or {}).get(MAIN)))


def sweep(data_cfg: PreprocessConfig, train_cfg: TrainConfig, settings: SweepSettings, out: str | Path,
          quiet: bool = True) -> SweepResult:
    """Train (or reuse, or resume) every run of the grid, write sweep.md / .csv / .json and plots/sweep.png.

    Every refusal of the settings comes before any training (UserError, exit
    2). A training that fails is reported and the others finish; then, with
    the outputs written from the runs that did, ``AdaptauError`` (exit 1).
    """
    check_request(settings, train_cfg)
    out = ensure_dir(Path(out).resolve(), "output folder")
    data_cfg, dataset = prepare(data_cfg, train_cfg, quiet)
    plans = plan_runs(sweep_points(settings.taus, settings.with_baseline), train_cfg, dataset.fingerprint, out)
    todo = [p for p in plans if p.state != "finished"]
    threads = threads_per_training(settings.jobs, len(todo), train_cfg.threads)
    announce_plan(plans, settings.jobs, threads, quiet)
    outcomes = run_trainings(todo, data_cfg, out, settings.jobs, threads, quiet)
    rows = sweep_rows(plans, outcomes, out)
    result = SweepResult(out=out, rows=rows, dataset={
        "name": dataset.name, "fingerprint": dataset.fingerprint, "n_users": dataset.n_users,
        "n_items": dataset.n_items, "train": len(dataset.train), "valid": len(dataset.split("valid")),
        "test": len(dataset.split("test"))}, settings={
        "taus": sorted(settings.taus), "with_baseline": settings.with_baseline, "jobs": settings.jobs,
        "threads_per_training": threads, "model": train_cfg.model, "norm": train_cfg.norm,
        "train_config": to_dict(train_cfg), "data_config": to_dict(data_cfg)})
    write_outputs(result)
    if result.failed:
        names = ", ".join(r["name"] for r in result.failed)
        raise AdaptauError(f"{len(result.failed)} of {len(rows)} trainings failed: {names} (logs in {out / 'logs'})",
                           hint=f"the others' results are in {result.outputs['md']}; fix and rerun to train "
                                "only what is missing")
    return result


# ---------------------------------------------------------------------------
# Writers: Markdown, CSV, JSON, the plot
# ---------------------------------------------------------------------------

def fmt_value(v: Any, digits: int = 4) -> str:
    return "n/a" if finite(v) is None else f"{v:.{digits}f}"


def tau_cell(row: Mapping[str, Any], short: bool = False) -> str:
    """τ of a grid point, the final τ0 of an adaptive run, '—' for the un-normalized one (short: a terminal's)."""
    if row["kind"] == "fixed":
        return f"{row['tau']:g}"
    if row["kind"] == "no-norm":
        return "—" if short else "— (inner product)"
    return f"τ0 {fmt_value(row['tau0_final'], 3)}" if short else f"τ0 → {fmt_value(row['tau0_final'])}"


def protocol_text(settings: Mapping[str, Any]) -> str:
    """How the runs chose their epoch and were measured, in one sentence of sweep.md."""
    cfg = settings["train_config"]
    where = ("the test split (the published protocol: the test numbers are optimistic)" if cfg["select_on"] == "test"
             else "the validation split")
    return (f"Every run selects its epoch on {where} by {cfg['monitor']} and is measured once on the test split "
            "(full ranking over all items, training and validation items masked).")


def sweep_markdown(r: SweepResult) -> str:
    """sweep.md: how the runs were measured, the table, the figure."""
    best, chosen = r.best("test"), r.best("valid")
    d = r.dataset
    lines = [f"# τ sensitivity on {d['name']}: fixed τ vs Adap-τ0 vs Adap-τ", "",
             f"{r.settings['model']} backbone, norm {r.settings['norm']}; {d['n_users']} users × {d['n_items']} "
             f"items ({d['train']} train / {d['valid']} valid / {d['test']} test interactions). "
             f"{protocol_text(r.settings)} rel. = test Recall@20 / the best grid point's"
             + (f" ({best['name']}, test Recall@20 {fmt_value(best['test_' + MAIN])})" if best else "") + "."]
    if chosen:
        lines[-1] += (f" Validation alone would have picked τ = {chosen['tau']:g} "
                      f"(rel. {fmt_value(chosen[REL], 3)}).")
    lines += ["", "| run | τ | valid Recall@20 | valid NDCG@20 | test Recall@20 | test NDCG@20 | rel. test Recall@20 "
              "| best epoch / run | wall time (s) | status |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in r.rows:
        epochs = f"{row['best_epoch']} / {row['epochs_run']}" if row["epochs_run"] is not None else "n/a"
        lines.append(f"| {row['name']} | {tau_cell(row)} | {fmt_value(row['valid_recall@20'])} | "
                     f"{fmt_value(row['valid_ndcg@20'])} | {fmt_value(row['test_recall@20'])} | "
                     f"{fmt_value(row['test_ndcg@20'])} | {fmt_value(row[REL], 3)} | {epochs} | "
                     f"{fmt_value(row['wall_seconds'], 1)} | {row['status']} |")
    lines += ["", f"τ0 → x: {DEFINITIONS['tau0_final']}. Wall time: {DEFINITIONS['wall_seconds']}; the epochs' "
              "own time is `epoch_seconds` in sweep.csv.", ""]
    if r.outputs.get("plot"):
        lines += ["![relative test Recall@20 vs τ](plots/sweep.png)", ""]
    lines += [f"- **{row['name']}**: `{os.path.relpath(row['run_dir'], r.out)}`"
              + (f", log `{os.path.relpath(row['log'], r.out)}`" if row["log"] else "") for row in r.rows]
    return "\n".join(lines) + "\n"


def sweep_csv(r: SweepResult) -> str:
    """sweep.csv: one row per run, the table's columns (floats written exactly)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_FIELDS), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in r.rows:
        writer.writerow({k: repr(v) if isinstance(v, float) else ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def plot_sweep(r: SweepResult):
    """Figure 2: relative test Recall@20 vs τ (log x) for the grid; the adaptive runs as lines, their τ0 marked."""
    from matplotlib.figure import Figure

    from adaptau_cli.workflows.plots import DPI

    grid = [row for row in r.rows if row["kind"] == "fixed" and row[REL] is not None]
    if not grid:
        return None
    fig = Figure(figsize=(6.4, 4.2), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    taus = [row["tau"] for row in grid]
    ax.plot(taus, [row[REL] for row in grid], marker="o", color="tab:blue", linewidth=1.6, label="fixed τ")
    styles = {"adap-tau0": ("tab:orange", "--"), "adap-tau": ("tab:red", "-"), "no-norm": ("tab:gray", "-.")}
    marked = list(taus)
    for row in r.rows:
        if row["kind"] not in styles or row[REL] is None:
            continue
        color, style = styles[row["kind"]]
        tau0 = row["tau0_final"]
        extra = f", τ0 → {tau0:.3f}" if tau0 is not None else ""
        ax.axhline(row[REL], color=color, linestyle=style, linewidth=1.4, zorder=3 if style == "--" else 2,
                   label=f"{KIND_LABELS[row['kind']]}: {row[REL]:.3f}{extra}")
        if tau0 is not None:
            marked.append(tau0)
            ax.axvline(tau0, color=color, linestyle=":", linewidth=1.0, alpha=0.7)
            hollow = row["kind"] == "adap-tau0"          # visible when both runs settled at the same τ0
            ax.plot([tau0], [0.0], marker="^", markersize=11 if hollow else 8, color=color, clip_on=False,
                    markerfacecolor="none" if hollow else color, markeredgewidth=1.5, zorder=5 if hollow else 4,
                    transform=ax.get_xaxis_transform())
    values = [row[REL] for row in r.rows if row[REL] is not None]
    pad = max(0.02, 0.06 * (max(values) - min(values)))       # horizontal lines are not autoscaled: leave room
    ax.set_ylim(min(values) - pad, max(values) + pad)
    ax.set_xscale("log")
    ax.set_xlim(min(marked) / 1.25, max(marked) * 1.25)
    ax.set_xticks(taus, labels=[f"{t:g}" for t in taus])
    ax.minorticks_off()
    ax.set_xlabel("τ (log scale); ▲ the τ0 an adaptive run settled at")
    ax.set_ylabel("test Recall@20 relative to\nthe best fixed τ")
    ax.set_title(f"τ sensitivity on {r.dataset['name']} ({r.settings['model']})", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def write_outputs(r: SweepResult) -> None:
    """sweep.md, sweep.csv, sweep.json and plots/sweep.png, each written atomically."""
    from adaptau_cli.workflows.plots import save_figure

    fig = plot_sweep(r)
    plot = save_figure(fig, r.out / "plots" / "sweep.png") if fig is not None else None
    r.outputs = {"md": str(r.out / "sweep.md"), "csv": str(r.out / "sweep.csv"), "json": str(r.out / "sweep.json"),
                 "plot": str(plot) if plot is not None else None}
    write_text(r.out / "sweep.md", sweep_markdown(r))
    write_text(r.out / "sweep.csv", sweep_csv(r))
    write_json(r.out / "sweep.json", r.to_dict())
