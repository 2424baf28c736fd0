"""The exit-code contract: a user's mistake ends in exit 2 with one line, never exit 1 or a traceback."""

from __future__ import annotations

import pytest

from cli_helpers import run_cli


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A trained run, a file standing where folders are asked for, and bad TOML files."""
    root = tmp_path_factory.mktemp("world")
    import os
    os.environ["ADAPTAU_HOME"] = str(root / "home")
    code, _, err = run_cli(["train", "synthetic-tiny", "--epochs", "1", "--out", str(root / "run"), "--quiet"])
    assert code == 0, err
    (root / "afile").write_text("x")
    (root / "split5.toml").write_text("[dataset]\nsplit = 5\n")
    (root / "source5.toml").write_text("[dataset]\nsource = 5\n")
    (root / "lr.toml").write_text('[train]\nlr = "fast"\n')
    (root / "broken.toml").write_text("[train\nlr = 1\n")
    (root / "garbage.pt").write_bytes(b"\x00\x01 not a checkpoint")
    return root


CASES = [
    ["preprocess", "--source", "{root}/missing.csv"],
    ["preprocess", "synthetic-tiny", "--seed", "-1"],
    ["preprocess", "--config", "{root}/split5.toml", "synthetic-tiny"],
    ["preprocess", "--config", "{root}/source5.toml"],
    ["preprocess", "synthetic-tiny", "--split", "nan,0.5,0.5"],
    ["preprocess", "synthetic-tiny", "--user-core", "-2"],
    ["train", "synthetic-tiny", "--seed", "-1", "--epochs", "1", "--out", "{root}/r-seed"],
    ["train", "synthetic-tiny", "--config", "{root}/lr.toml", "--out", "{root}/r-lr"],
    ["train", "synthetic-tiny", "--config", "{root}/broken.toml", "--out", "{root}/r-broken"],
    ["train", "synthetic-tiny", "--epochs", "1", "--out", "{root}/afile/run"],
    ["train", "synthetic-tiny", "--epochs", "1", "--out", "{root}/run"],          # already holds a run
    ["train", "--resume", "{root}/nothing-here"],
    ["train", "--resume", "{root}/run", "--lr", "0.5"],                          # changed setting on resume
    ["train", "synthetic-tiny", "--negatives", "sometimes", "--out", "{root}/r-neg"],
    ["train", "synthetic-tiny", "--device", "tpu", "--out", "{root}/r-dev"],
    ["estimate-tau", "synthetic-tiny", "--checkpoint", "{root}/garbage.pt"],
    ["evaluate", "{root}/nothing-here"],
    ["evaluate", "{root}/garbage.pt"],
    ["evaluate", "{root}/run", "--out", "{root}/afile/report.md"],
    ["evaluate", "{root}/run", "--k", "0"],
    ["evaluate", "{root}/run", "--score", "raw^-1"],
    ["recommend", "{root}/run", "--users", "no-such-user"],
    ["recommend", "{root}/run", "--users", "0", "--out", "{root}/afile/recs.csv"],
    ["recommend", "{root}/run", "--users", "0", "--k", "0"],
    ["analyze-magnitude", "{root}/run", "--out", "{root}/afile/plots"],
    ["quickstart", "--small", "--out", "{root}/afile/qs"],
]


@pytest.mark.parametrize("args", CASES, ids=[" ".join(a[:3]) for a in CASES])
def test_a_user_mistake_is_exit_2_and_one_line(world, args):
    code, _, err = run_cli([a.format(root=world) for a in args])
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err
    assert err.strip().startswith("error:") and len(err.strip().splitlines()) == 1, err


def test_adaptau_home_pointing_at_a_file_is_exit_2(world, monkeypatch):
    monkeypatch.setenv("ADAPTAU_HOME", str(world / "afile"))
    code, _, err = run_cli(["preprocess", "synthetic-tiny"])
    assert code == 2 and "internal error" not in err
