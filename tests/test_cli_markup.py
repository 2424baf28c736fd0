"""User text printed through rich stays as written: square brackets survive, control characters are shown.

Rich reads ``[...]`` as a style tag; unescaped, ``data[v2]/x.csv`` printed as
``data/x.csv`` and ``got [nan, 0.5, 0.5]`` as ``got ``. Driven through the real
console entry point, as a user's shell would.
"""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import run_cli

FAST = ["--epochs", "1", "--batch-size", "64", "--num-negatives", "4", "--dim", "8", "--warmup-epochs", "1",
        "--device", "cpu", "--threads", "1", "--seed", "3", "--split", "0.6,0.2,0.2"]


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


def test_a_missing_source_with_brackets_is_named_intact(tmp_path):
    code, out, err = run_cli(["preprocess", "--source", str(tmp_path / "data[v2]" / "x.csv")])
    assert code == 2 and out == ""
    assert "data[v2]/x.csv" in one_error_line(err)


def test_bad_split_ratios_are_quoted_in_full():
    code, _, err = run_cli(["preprocess", "synthetic-tiny", "--split", "nan,0.5,0.5"])
    assert code == 2
    assert "got [nan, 0.5, 0.5]" in one_error_line(err)


def test_control_characters_are_written_out_not_sent_to_the_terminal(tmp_path):
    code, _, err = run_cli(["preprocess", "--source", str(tmp_path / "evil\x1b[2J\rname.csv")])
    assert code == 2
    line = one_error_line(err)
    assert "evil\\x1b[2J\\x0dname.csv" in line
    assert "\x1b" not in err and "\r" not in err


def _bracketed_log(path: Path) -> Path:
    """20 users x 6 of 12 items, every id with square brackets (and one emoji code)."""
    items = [f"Blade Runner [cut {i}]" for i in range(11)] + ["Alien [director's cut] :alien:"]
    rows = ["user,item"]
    for u in range(20):
        rows += [f"fan [{u}],{items[(u * 5 + j * 7) % len(items)]}" for j in range(6)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_recommend_table_shows_bracketed_ids_as_they_are(tmp_path):
    src = _bracketed_log(tmp_path / "log.csv")
    run = tmp_path / "run [a]"
    code, out, err = run_cli(["train", "--source", str(src), *FAST, "--out", str(run), "--quiet"])
    assert code == 0, err
    users = "fan [0],fan [7]"
    code, out, err = run_cli(["recommend", str(run), "--users", users, "--k", "3", "--json", "-q"])
    assert code == 0, err
    payload = json.loads(out)
    items = {str(item) for u in payload["users"] for item in u["items"]}
    assert [u["user"] for u in payload["users"]] == ["fan [0]", "fan [7]"] and len(items) >= 3
    code, out, err = run_cli(["recommend", str(run), "--users", users, "--k", "3"])
    assert code == 0, err
    assert "fan [0]" in err and "fan [7]" in err and "(run [a])" in err
    for item in items:                                           # each row keeps its item name whole
        assert item in err, err
