"""One writer per run directory; a run reopens its data from the store; unwritable outputs are user errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cli_helpers import run_cli

REPO = Path(__file__).resolve().parents[1]


def _adaptau(args, env):
    return subprocess.Popen([sys.executable, "-m", "adaptau_cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def test_a_second_writer_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path, adaptau_home):
    env = dict(os.environ, ADAPTAU_HOME=str(adaptau_home))
    run = tmp_path / "run"
    first = _adaptau(["train", "synthetic-tiny", "--epochs", "400", "--batch-size", "64", "--threads", "1",
                      "--out", str(run), "--quiet"], env)
    try:
        deadline = time.time() + 120
        while not (run / "checkpoint-last.pt").is_file():       # the first process is training
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.2)
        second = _adaptau(["train", "--resume", str(run), "--epochs", "400", "--quiet"], env)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2, err
        assert f"is in use by pid {first.pid}" in err and len(err.strip().splitlines()) == 1
        fresh = _adaptau(["train", "synthetic-tiny", "--epochs", "1", "--out", str(run), "--quiet"], env)
        _, err = fresh.communicate(timeout=120)
        assert fresh.returncode == 2 and "in use by pid" in err
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    code, out, err = run_cli(["train", "--resume", str(run), "--epochs", "1", "--json"])  # stale lock: taken over
    assert code == 0, err
    assert not (run / ".adaptau.lock").exists()


def test_a_run_opens_its_dataset_from_the_store_when_the_source_is_gone(tmp_path):
    src = tmp_path / "log.csv"
    rows = ["user,item"] + [f"u{u},i{(u * 7 + k * 3) % 40}" for u in range(40) for k in range(8)]
    src.write_text("\n".join(rows) + "\n")
    code, _, err = run_cli(["train", "--source", str(src), "--epochs", "1", "--out", str(tmp_path / "r"),
                            "--quiet"])
    assert code == 0, err
    before = json.loads(run_cli(["evaluate", str(tmp_path / "r"), "--json"])[1])
    src.unlink()
    code, out, err = run_cli(["evaluate", str(tmp_path / "r"), "--json"])
    assert code == 0, err
    assert json.loads(out)["runs"][0]["metrics"] == before["runs"][0]["metrics"]


def test_an_unwritable_run_directory_is_one_line_and_exit_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(["train", "synthetic-tiny", "--epochs", "1", "--out", str(blocker / "run")])
    assert code == 2 and "cannot create the run directory" in err and len(err.strip().splitlines()) == 1
