"""`adaptau preprocess` and `adaptau datasets` driven as a user would: CliRunner and a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import run_cli  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def small_csv(tmp_path: Path) -> Path:
    rows = ["user,item,rating,timestamp"]
    for u in range(12):
        for k in range(6):
            rows.append(f"u{u},i{(u * 3 + k * 5) % 17},{1 + (u + k) % 5},{1000 + u * 10 + k}")
    return write(tmp_path / "log.csv", "\n".join(rows) + "\n")


def test_preprocess_synthetic_tiny_json(adaptau_home):
    code, out, err = run_cli(["preprocess", "synthetic-tiny", "--json", "--quiet"])
    assert code == 0, err
    payload = json.loads(out)
    assert payload["name"] == "synthetic-tiny" and payload["reused"] is False
    assert Path(payload["path"]).parent == adaptau_home / "datasets"
    assert payload["stats"]["test"]["interactions"] > 0 and payload["stats"]["valid"]["interactions"] > 0
    code, out, _ = run_cli(["preprocess", "synthetic-tiny", "--json"])
    assert json.loads(out)["reused"] is True
    code, out, err = run_cli(["preprocess", "synthetic-tiny", "--quiet"])     # quiet: no table either
    assert code == 0 and out == "" and err == ""
    code, out, err = run_cli(["preprocess", "synthetic-tiny"])
    assert code == 0 and "synthetic-tiny" in err


def test_preprocess_table_on_stderr_and_ratio_split(tmp_path):
    src = small_csv(tmp_path)
    code, out, err = run_cli(["preprocess", "--source", str(src), "--split", "0.6,0.2,0.2", "--min-rating", "2"])
    assert code == 0, err
    assert out == ""                                   # the table goes to stderr
    assert "train" in err and "popularity Gini" in err and "store:" in err
    code, out, err = run_cli(["preprocess", "--source", str(src), "--split", "0.6,0.2,0.2", "--min-rating", "2",
                              "--json"])
    opts = json.loads(out)["options"]
    assert opts["split"] == "random" and opts["ratios"] == [0.6, 0.2, 0.2] and opts["min_rating"] == 2.0


def test_config_file_with_flag_override(tmp_path):
    src = small_csv(tmp_path)
    cfg = write(tmp_path / "prep.toml", f'[dataset]\nsource = "{src}"\nsplit = "loo-last"\nseed = 5\n')
    code, out, err = run_cli(["preprocess", "--config", str(cfg), "--seed", "9", "--json"])
    assert code == 0, err
    opts = json.loads(out)["options"]
    assert opts["split"] == "loo-last" and opts["seed"] == 9


def test_datasets_and_list(adaptau_home):
    run_cli(["preprocess", "synthetic-tiny", "-q"])
    code, out, _ = run_cli(["datasets", "--json"])
    assert code == 0
    listing = json.loads(out)
    assert listing["root"] == str(adaptau_home)
    assert [p["name"] for p in listing["prepared"]] == ["synthetic-tiny"]
    code, out2, _ = run_cli(["preprocess", "--list", "--json"])
    assert code == 0 and json.loads(out2) == listing
    code, out, err = run_cli(["datasets"])
    assert code == 0 and "Registry" in err and "amazon-book" in err


BAD = {
    "missing file": (lambda p: ["--source", str(p / "nope.csv")], "source not found"),
    "unknown format": (lambda p: ["--source", str(write(p / "a.txt", "0 1\n")), "--format", "xml"],
                       "unknown format 'xml'"),
    "malformed line": (lambda p: ["--source", str(write(p / "a.txt", "0 1 2\n1 2\n2 3 4 y\n"))], "a.txt:3:"),
    "non-numeric id": (lambda p: ["--source", str(write(p / "ratings.dat", "1::2::3::4\nx::2::3::4\n"))],
                       "ratings.dat:2: non-numeric user id 'x'"),
    "nan rating": (lambda p: ["--source", str(write(p / "r.csv", "user,item,rating\na,b,nan\n"))],
                   "r.csv:2: rating is missing, NaN or infinite"),
    "negative id": (lambda p: ["--source", str(write(p / "u.data", "1\t2\t3\t4\n2\t-3\t3\t4\n"))],
                    "u.data:2: negative item id -3"),
    "overflowing id": (lambda p: ["--source", str(write(p / "a.txt", "0 1\n1 123456789012345678901\n"))],
                       "overflows a 64-bit integer"),
    "empty after filtering": (lambda p: ["--source", str(small_csv(p)), "--user-core", "50"],
                              "no interactions left"),
    "min-rating without ratings": (lambda p: ["--source", str(write(p / "a.txt", "0 1 2\n1 2 3\n")),
                                              "--min-rating", "4"], "no rating column"),
    "user with nothing in train": (
        lambda p: ["--source", str(write(p / "d" / "train.txt", "0 1 2\n1 2 3\n").parent)
                   if write(p / "d" / "test.txt", "0 3\n5 1\n") else ""],
        "nothing in train"),
    "dataset and source": (lambda p: ["synthetic", "--source", str(small_csv(p))], "not both"),
    "valid-ratio with random": (lambda p: ["synthetic", "--split", "random", "--valid-ratio", "0.1"],
                                "--valid-ratio only applies"),
    "ratios not summing to one": (lambda p: ["synthetic", "--split", "0.5,0.1,0.1"], "sum to 1"),
    "given split without one": (lambda p: ["synthetic", "--split", "given"], "needs a source with its own split"),
    "format with registry": (lambda p: ["synthetic", "--format", "csv"], "only apply to --source"),
    "unknown dataset": (lambda p: ["ml-20m"], "unknown dataset 'ml-20m'"),
    "nothing given": (lambda p: [], "no dataset given"),
    "bad config key": (lambda p: ["--config", str(write(p / "c.toml", "[dataset]\nsplt = 'random'\n"))],
                       "unknown setting(s) splt"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, adaptau_home):
    make_args, expect = BAD[case]
    code, out, err = run_cli(["preprocess", *make_args(tmp_path)])
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and expect in lines[0]
    assert "Traceback" not in err and out == ""
    datasets = adaptau_home / "datasets"
    assert not datasets.exists() or list(datasets.iterdir()) == []      # nothing half-written


def _subprocess(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ADAPTAU_HOME": str(home)}
    env.pop("ADAPTAU_MIRROR", None)
    return subprocess.run([sys.executable, "-m", "adaptau_cli", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)


def test_end_to_end_subprocess(tmp_path):
    home = tmp_path / "home"
    src = small_csv(tmp_path)
    first = _subprocess(["preprocess", "--source", str(src), "--split", "temporal-user", "--json", "--quiet"], home)
    assert first.returncode == 0, first.stderr
    payload = json.loads(first.stdout)
    folder = Path(payload["path"])
    assert folder.parent == home / "datasets" and (folder / "train.parquet").is_file()
    assert payload["n_users"] == 12 and payload["options"]["split"] == "temporal-user"
    second = _subprocess(["preprocess", "--source", str(src), "--split", "temporal-user", "--json"], home)
    assert json.loads(second.stdout)["reused"] is True and json.loads(second.stdout)["path"] == str(folder)
    listing = _subprocess(["datasets", "--json"], home)
    assert [p["path"] for p in json.loads(listing.stdout)["prepared"]] == [str(folder)]
    bad = _subprocess(["preprocess", "--source", str(write(tmp_path / "b.txt", "0 1\nzz 2\n"))], home)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "b.txt:2: non-numeric id 'zz'" in bad.stderr


def test_a_closed_pipe_is_not_an_error():
    """`adaptau ... | head` must not end in an 'internal error' line (the reader just left)."""
    cmd = f"'{sys.executable}' -m adaptau_cli preprocess --help | head -40 > /dev/null; echo rc=${{PIPESTATUS[0]}}"
    for _ in range(3):  # the pipe closes at a different point each time
        out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60)
        assert "internal error" not in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert out.stdout.strip() in ("rc=0", "rc=1", "rc=141")
