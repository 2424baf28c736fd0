"""examples/summarize_ml1m.py on run folders shaped like the reproduction's (a real subprocess)."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "summarize_ml1m.py"


def _report(folder: Path, name: str, best_value: float, recall: float, ndcg: float, *, epochs=10, best=7,
            tau0=0.17, time_limited=False, stopped_early=False) -> None:
    (folder / name).mkdir(parents=True)
    (folder / name / "report.json").write_text(json.dumps({
        "best_value": best_value, "best_epoch": best, "epochs_run": epochs, "tau0_final": tau0,
        "time_limited": time_limited, "stopped_early": stopped_early,
        "test_metrics": {"recall@20": recall, "ndcg@20": ndcg}, "train_seconds": 90.0, "eval_seconds": 30.0}))


def test_summary_picks_the_grid_best_marks_how_runs_ended_and_skips_variants(tmp_path):
    _report(tmp_path, "val-mf-fixed-0.1", 0.20, 0.25, 0.23)
    _report(tmp_path, "val-mf-fixed-0.16", 0.25, 0.26, 0.24, stopped_early=True)      # the grid's best on valid
    _report(tmp_path, "val-mf-fixed-0.25", 0.24, 0.27, 0.25)                          # best on test: not picked
    _report(tmp_path, "val-mf-adaptau", 0.26, 0.2697, 0.2527, tau0=0.164, time_limited=True)
    _report(tmp_path, "val-mf-adaptau-w10", 0.99, 0.99, 0.99)                         # a variant: ignored
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    md = (tmp_path / "summary.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| honest")]
    assert len(rows) == 2
    assert "| fixed τ (grid search) | 0.16 | 0.2600 | 0.2400 | 0.2789 / 0.2624 | 7 / 10 (early stop) | 2.0 |" in rows[0]
    assert "| Adap-τ | → 0.164 | 0.2697 | 0.2527 | 0.2815 / 0.2673 | 7 / 10 (time limit) |" in rows[1]
    assert "τ=0.1: 0.800, τ=0.16: 1.000, τ=0.25: 0.960" in md
    assert (tmp_path / "tau_sensitivity.png").stat().st_size > 1000
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [c["tau"] for c in summary["curves"]["honest-mf"]] == [0.1, 0.16, 0.25]
