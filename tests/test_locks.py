"""adaptau_cli.base.locks: one holder at a time across processes, dead holders taken over, SIGTERM cleans up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from adaptau_cli.base import locks
from adaptau_cli.base.errors import UserError

pytestmark = pytest.mark.skipif(locks.fcntl is None, reason="POSIX locks (fcntl)")

REPO = Path(__file__).resolve().parents[1]


def _child(code: str) -> subprocess.Popen:
    """A Python child running ``code`` (with ``locks`` imported), its stdout a pipe we read lines from."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    src = "import os, sys, time\nfrom adaptau_cli.base import locks\n" + textwrap.dedent(code)
    return subprocess.Popen([sys.executable, "-c", src], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def _wait_line(proc: subprocess.Popen, want: str, timeout: float = 60.0) -> str:
    """Block until the child prints a line starting with ``want`` (it prints nothing else before)."""
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    line = result[0] if result else ""
    assert line.startswith(want), f"child said {line!r}; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
    return line


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_lock_file_holds_our_pid_and_is_removed_on_release(tmp_path):
    path = tmp_path / ".thing.lock"
    with locks.exclusive_lock(path, "the thing") as held:
        assert held == path
        assert path.read_text().strip() == str(os.getpid())
        assert locks.lock_holder(path) == os.getpid()
    assert not path.exists()
    assert locks.lock_holder(path) is None


def test_a_second_lock_in_the_same_process_is_refused(tmp_path):
    path = tmp_path / ".thing.lock"
    with locks.exclusive_lock(path, "the thing"), \
            pytest.raises(UserError, match=rf"the thing is in use by pid {os.getpid()}"), \
            locks.exclusive_lock(path, "the thing", wait=0.1):
        pass                                                  # pragma: no cover
    with locks.exclusive_lock(path, "the thing"):             # free again
        pass


def test_another_process_holding_it_is_named_by_pid_then_taken_over_when_killed(tmp_path):
    path = tmp_path / ".run.lock"
    child = _child(f"""
        with locks.exclusive_lock({str(path)!r}, "the run"):
            print("locked", flush=True)
            time.sleep(120)
    """)
    try:
        _wait_line(child, "locked")
        start = time.monotonic()
        with pytest.raises(UserError) as err, locks.exclusive_lock(path, "the run directory runs/x", wait=0.3):
            pass                                              # pragma: no cover
        assert time.monotonic() - start >= 0.25               # it waited before giving up
        line = err.value.one_line()
        assert f"the run directory runs/x is in use by pid {child.pid}" in line
        assert str(path) in line and "\n" not in line
        assert locks.lock_holder(path) == child.pid
    finally:
        child.kill()                                          # SIGKILL: no clean-up runs in the child
        child.wait()
    assert path.exists()                                      # left behind by the killed holder ...
    assert locks.lock_holder(path) is None                    # ... but nobody holds it
    with locks.exclusive_lock(path, "the run", wait=0):       # a dead process's lock is taken over at once
        assert path.read_text().strip() == str(os.getpid())
    assert not path.exists()


def test_a_waiter_gets_the_lock_when_the_holder_finishes(tmp_path):
    path = tmp_path / ".entry.lock"
    child = _child(f"""
        with locks.exclusive_lock({str(path)!r}, "the entry"):
            print("locked", flush=True)
            time.sleep(0.5)
    """)
    try:
        _wait_line(child, "locked")
        with locks.exclusive_lock(path, "the entry", wait=60):
            assert child.wait(timeout=60) == 0                # we only got in after the holder left
            assert path.read_text().strip() == str(os.getpid())
            assert locks.lock_holder(path) == os.getpid()     # the file we hold is the one at the path
    finally:
        child.kill()
        child.wait()
    assert not path.exists()


def test_a_stale_lock_file_of_a_dead_pid_is_taken_over(tmp_path):
    path = tmp_path / ".entry.lock"
    dead = _dead_pid()
    path.write_text(f"{dead}\n")
    assert not locks.pid_alive(dead)
    with locks.exclusive_lock(path, "the entry", wait=0):
        assert path.read_text().strip() == str(os.getpid())
    assert not path.exists()


def test_remove_stale_lock_only_removes_unheld_files(tmp_path):
    stale = tmp_path / ".a.lock"
    stale.write_text("123\n")
    assert locks.remove_stale_lock(stale) and not stale.exists()
    assert not locks.remove_stale_lock(stale)                 # absent: nothing to do
    held = tmp_path / ".b.lock"
    with locks.exclusive_lock(held, "b"):
        assert not locks.remove_stale_lock(held)
        assert held.exists()


def test_lock_in_a_missing_or_unwritable_folder_is_one_user_error(tmp_path):
    where = tmp_path / "not-here"
    with pytest.raises(UserError, match=rf"cannot create the lock file of the thing in {where}"), \
            locks.exclusive_lock(where / ".x.lock", "the thing"):
        pass                                                  # pragma: no cover
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(UserError, match="cannot create the lock file"), \
            locks.exclusive_lock(afile / ".x.lock", "the thing"):
        pass                                                  # pragma: no cover


def test_pid_alive():
    assert locks.pid_alive(os.getpid())
    assert not locks.pid_alive(_dead_pid())
    assert not locks.pid_alive(0) and not locks.pid_alive(-5)


def test_sigterm_inside_the_guard_runs_the_clean_up_then_ends_of_sigterm(tmp_path):
    marker = tmp_path / "half-written"
    child = _child(f"""
        from pathlib import Path
        marker = Path({str(marker)!r})
        with locks.sigterm_cleanup():
            try:
                marker.write_text("partial")
                print("ready", flush=True)
                time.sleep(120)
            finally:
                marker.unlink()
        print("not reached", flush=True)
    """)
    try:
        _wait_line(child, "ready")
        assert marker.exists()
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == -signal.SIGTERM       # dies of SIGTERM, as without the guard
    finally:
        child.kill()
        child.wait()
    assert not marker.exists()                                 # the finally block ran
    assert "not reached" not in child.stdout.read()


def test_sigterm_guard_restores_the_default_and_leaves_other_handlers_alone():
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with locks.sigterm_cleanup():
        inner = signal.getsignal(signal.SIGTERM)
        assert callable(inner)
        with locks.sigterm_cleanup():                          # nested: the outer guard stays in charge
            assert signal.getsignal(signal.SIGTERM) is inner
        assert signal.getsignal(signal.SIGTERM) is inner
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    def own(signum, frame):                                    # a program's own handler is kept
        pass

    previous = signal.signal(signal.SIGTERM, own)
    try:
        with locks.sigterm_cleanup():
            assert signal.getsignal(signal.SIGTERM) is own
        assert signal.getsignal(signal.SIGTERM) is own
    finally:
        signal.signal(signal.SIGTERM, previous)
