"""The dataset store under faults: killed builds, two builders, unwritable stores, runs reopened by content hash.

Signals are sent to real ``adaptau preprocess`` subprocesses. To kill a build at
a known point, the child patches one store function to print ``paused`` and
sleep (after the split files are written into the temporary folder, or while
the raw data is being read); nothing in the package has a test hook.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from cli_helpers import run_cli

from adaptau_cli.base import locks
from adaptau_cli.base.errors import UserError
from adaptau_cli.base.settings import PreprocessConfig
from adaptau_cli.data import store
from adaptau_cli.data.prepare import prepare

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(locks.fcntl is None, reason="POSIX signals and locks")

CHILD = textwrap.dedent("""
    import sys, time
    from adaptau_cli.data import readers, store
    phase = sys.argv[1]
    if phase == "written":            # the temporary folder holds every file, the rename has not happened
        real = store.write_dataset_files
        def paused(folder, *args, **kwargs):
            real(folder, *args, **kwargs)
            print("paused", folder, flush=True)
            time.sleep(600)
        store.write_dataset_files = paused
    elif phase == "reading":          # the entry's lock is held, no temporary folder yet
        def paused_read(*args, **kwargs):
            print("paused", flush=True)
            time.sleep(600)
        readers.read_files = paused_read
    from adaptau_cli.cli.app import main
    main(sys.argv[2:])
""")


def given_split(tmp_path: Path) -> Path:
    """A LightGCN folder (train.txt + test.txt), 30 users."""
    src = tmp_path / "lg"
    src.mkdir()
    (src / "train.txt").write_text("".join(f"{u} " + " ".join(str((u * 3 + k) % 25) for k in range(6)) + "\n"
                                           for u in range(30)))
    (src / "test.txt").write_text("".join(f"{u} {(u * 3 + 7) % 25}\n" for u in range(30)))
    return src


def start_child(phase: str, args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", CHILD, phase, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def wait_paused(proc: subprocess.Popen, timeout: float = 120.0) -> str:
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    line = got[0] if got else ""
    if not line.startswith("paused"):
        proc.kill()
        raise AssertionError(f"child did not pause: {line!r}, stderr: {proc.communicate()[1]!r}")
    return line


def store_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def datasets(home: Path) -> list[str]:
    d = home / "datasets"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def reference_build(src: Path, tmp_path: Path) -> dict[str, bytes]:
    """The store folder's bytes from an uninterrupted build in a home of its own."""
    other = tmp_path / "reference-home"
    code, out, err = run_cli(["preprocess", "--source", str(src), "--home", str(other), "--json", "-q"])
    assert code == 0, err
    return store_files(Path(json.loads(out)["path"]))


# ---------------------------------------------------------------- killed builds

def test_sigterm_while_writing_removes_the_temp_folder_and_the_lock(tmp_path, adaptau_home):
    src = given_split(tmp_path)
    child = start_child("written", ["preprocess", "--source", str(src), "-q"])
    try:
        tmp_folder = Path(wait_paused(child).split(" ", 1)[1].strip())
        assert tmp_folder.is_dir() and (tmp_folder / "manifest.json").is_file()
        assert f".{child.pid}@" in tmp_folder.name                 # the owner is in the name
        assert any(n.endswith(".lock") for n in datasets(adaptau_home))
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == -signal.SIGTERM
    finally:
        child.kill()
        child.wait()
    assert datasets(adaptau_home) == []                              # no temp folder, no lock, no entry

    code, out, err = run_cli(["preprocess", "--source", str(src), "--json", "-q"])
    assert code == 0, err
    result = json.loads(out)
    assert not result["reused"]
    assert datasets(adaptau_home) == [Path(result["path"]).name]     # nothing else left
    assert store_files(Path(result["path"])) == reference_build(src, tmp_path)


def test_sigterm_while_reading_removes_the_lock(tmp_path, adaptau_home):
    src = given_split(tmp_path)
    child = start_child("reading", ["preprocess", "--source", str(src), "-q"])
    try:
        wait_paused(child)
        assert [n for n in datasets(adaptau_home) if n.endswith(".lock")]
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == -signal.SIGTERM
    finally:
        child.kill()
        child.wait()
    assert datasets(adaptau_home) == []


def test_sigkill_leftovers_are_swept_by_the_next_build(tmp_path, adaptau_home):
    src = given_split(tmp_path)
    child = start_child("written", ["preprocess", "--source", str(src), "-q"])
    try:
        tmp_folder = Path(wait_paused(child).split(" ", 1)[1].strip())
        child.send_signal(signal.SIGKILL)                            # no clean-up can run
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        child.kill()
        child.wait()
    left = datasets(adaptau_home)
    assert tmp_folder.name in left and any(n.endswith(".lock") for n in left)   # what the kill left

    code, out, err = run_cli(["preprocess", "--source", str(src), "--json", "-q"])
    assert code == 0, err
    path = Path(json.loads(out)["path"])
    assert datasets(adaptau_home) == [path.name]                     # swept at once, not after 24 h
    assert store_files(path) == reference_build(src, tmp_path)


def test_sweep_removes_only_what_dead_processes_left(tmp_path):
    parent = tmp_path / "datasets"
    parent.mkdir()
    host = store._owner().split("@", 1)[1]
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        live_tmp = parent / f".x-1.{sleeper.pid}@{host}.abc.tmp"
        dead_tmp = parent / f".x-1.{dead.pid}@{host}.abc.tmp"
        dead_old = parent / f".x-1.{dead.pid}@{host}.0123abcd.old"
        foreign = parent / f".x-1.{dead.pid}@some-other-host.abc.tmp"   # pid means nothing here: kept a day
        legacy = parent / ".x-1.abcdef.tmp"                             # no owner in the name: kept a day
        for d in (live_tmp, dead_tmp, dead_old, foreign, legacy):
            d.mkdir()
            (d / "train.parquet").write_bytes(b"x")
        complete = parent / "x-1"
        complete.mkdir()
        (parent / ".y-2.lock").write_text(f"{dead.pid}\n")              # unheld lock file
        removed = store.sweep_leftovers(parent)
        assert sorted(p.name for p in removed) == sorted([dead_tmp.name, dead_old.name, ".y-2.lock"])
        assert sorted(p.name for p in parent.iterdir()) == sorted(
            [live_tmp.name, foreign.name, legacy.name, complete.name])
        old = 2 * 24 * 3600
        for d in (foreign, legacy):
            os.utime(d, (d.stat().st_atime - old, d.stat().st_mtime - old))
        store.sweep_leftovers(parent)
        assert sorted(p.name for p in parent.iterdir()) == sorted([live_tmp.name, complete.name])
    finally:
        sleeper.kill()
        sleeper.wait()


# ---------------------------------------------------------------- one writer per entry

def test_a_second_builder_is_told_the_holders_pid(tmp_path, adaptau_home, monkeypatch):
    src = given_split(tmp_path)
    monkeypatch.setattr(store, "LOCK_WAIT_SECONDS", 0.3)
    child = start_child("written", ["preprocess", "--source", str(src), "-q"])
    try:
        wait_paused(child)
        code, out, err = run_cli(["preprocess", "--source", str(src)])
        assert code == 2 and out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert f"is in use by pid {child.pid}" in lines[0] and "dataset store entry" in lines[0]
        assert "Traceback" not in err
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)
    finally:
        child.kill()
        child.wait()
    code, out, err = run_cli(["preprocess", "--source", str(src), "--json", "-q"])
    assert code == 0 and not json.loads(out)["reused"], err


def test_a_builder_that_waited_reuses_what_the_holder_built(tmp_path, adaptau_home, monkeypatch):
    src = given_split(tmp_path)
    cfg = PreprocessConfig(source=str(src))
    reference = tmp_path / "ref"
    built = prepare(PreprocessConfig(source=str(src), home=str(reference))).path
    real_lock = store.entry_lock

    def lock_after_the_other_finished(final, wait=None):
        shutil.copytree(built, final)            # the other process completed the entry while we waited
        return real_lock(final, wait)

    monkeypatch.setattr(store, "entry_lock", lock_after_the_other_finished)
    monkeypatch.setattr(store, "write_dataset_files", lambda *a, **k: pytest.fail("built twice"))
    result = prepare(cfg)
    assert result.reused and result.path.name == built.name
    assert datasets(adaptau_home) == [built.name]


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, adaptau_home):
    src = given_split(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    key_name = Path(prepare(PreprocessConfig(source=str(src), home=str(tmp_path / "probe"))).path).name
    (adaptau_home / "datasets").mkdir(parents=True)
    lock = adaptau_home / "datasets" / f".{key_name}.lock"
    lock.write_text(f"{dead.pid}\n")
    code, _, err = run_cli(["preprocess", "--source", str(src), "--json", "-q"])
    assert code == 0, err
    assert datasets(adaptau_home) == [key_name]


# ---------------------------------------------------------------- unwritable stores

def one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and "internal error" not in err
    return lines[0]


def test_home_that_is_a_file_fails_before_any_work(tmp_path, monkeypatch):
    src = given_split(tmp_path)
    afile = tmp_path / "home.txt"
    afile.write_text("not a folder")
    monkeypatch.setenv("ADAPTAU_HOME", str(afile))
    line = one_line_error(*run_cli(["preprocess", "--source", str(src)])[::2])
    assert f"the dataset store {afile} is a file, not a folder" in line and "ADAPTAU_HOME" in line
    monkeypatch.setenv("ADAPTAU_HOME", str(afile / "sub"))
    line = one_line_error(*run_cli(["preprocess", "--source", str(src)])[::2])
    assert f"{afile / 'sub'} cannot be created: {afile} is a file" in line
    assert afile.read_text() == "not a folder"
    # the registry path is checked as early: no download is attempted
    line = one_line_error(*run_cli(["preprocess", "ml-100k"])[::2])
    assert "is a file, not a folder" in line
    monkeypatch.setenv("ADAPTAU_HOME", str(afile))
    for args in (["datasets"], ["preprocess", "--list"]):
        line = one_line_error(*run_cli(args)[::2])
        assert f"the dataset store {afile} is a file" in line


def test_a_full_disk_during_a_download_names_the_cache_not_the_network(tmp_path, monkeypatch):
    import hashlib

    from adaptau_cli.data import registry

    payload = b"0 1 2\n"
    source = tmp_path / "remote.txt"
    source.write_bytes(payload)
    rf = registry.RemoteFile("train.txt", (source.as_uri(),), sha256=hashlib.sha256(payload).hexdigest())
    dest = tmp_path / "cache" / "toy" / "train.txt"

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(registry.os, "fsync", full)
    with pytest.raises(UserError) as err:
        registry.download(rf, dest)
    line = err.value.one_line()
    assert f"cannot write the download cache at {dest.parent}: No space left on device" in line
    assert "connection" not in line
    assert list(dest.parent.iterdir()) == []                         # no .part file left


def test_a_file_where_the_datasets_folder_goes_is_named(tmp_path, adaptau_home):
    src = given_split(tmp_path)
    (adaptau_home / "datasets").write_text("oops")
    line = one_line_error(*run_cli(["preprocess", "--source", str(src)])[::2])
    assert f"cannot write the dataset store at {adaptau_home / 'datasets'}" in line


def _unprivileged(args: list[str], env: dict) -> subprocess.CompletedProcess:
    """Run the CLI where permission bits apply: as root, without the capabilities that bypass them."""
    cmd = [sys.executable, "-c", "from adaptau_cli.cli.app import main; main()", *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: permission bits cannot be tested")
        cmd = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=dict(env, PYTHONPATH=str(REPO)), timeout=300,
                          check=False)


def test_read_only_store_fails_in_one_line_but_still_serves_what_it_holds(tmp_path):
    src = given_split(tmp_path)
    home = tmp_path / "shared-store"
    built = prepare(PreprocessConfig(source=str(src), home=str(home))).path
    env = dict(os.environ, ADAPTAU_HOME=str(home))
    other = tmp_path / "other.txt"
    other.write_text("0 1 2\n1 2 3\n0 3\n1 1\n")
    for d in (home / "datasets", home):
        d.chmod(0o555)
    try:
        before = datasets(home)
        # a prepared dataset is served from the read-only store
        done = _unprivileged(["preprocess", "--source", str(src), "--json", "-q"], env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["reused"] and json.loads(done.stdout)["path"] == str(built)
        # a new one fails at once, naming the folder
        done = _unprivileged(["preprocess", "--source", str(other)], env)
        line = one_line_error(done.returncode, done.stderr)
        assert f"cannot write the dataset store at {home / 'datasets'}" in line and "writable" in line
        # and so does a download into the read-only cache, before any network access
        done = _unprivileged(["preprocess", "ml-100k"], env)
        line = one_line_error(done.returncode, done.stderr)
        assert f"cannot write the download cache at {home / 'downloads' / 'ml-100k'}" in line
        assert datasets(home) == before
    finally:
        for d in (home, home / "datasets"):
            d.chmod(0o755)


def test_a_write_error_mid_build_is_one_line_and_leaves_nothing(tmp_path, adaptau_home, monkeypatch):
    src = given_split(tmp_path)
    real = store.write_table

    def disk_full(path, columns):
        if Path(path).name == "users.parquet":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, columns)

    monkeypatch.setattr(store, "write_table", disk_full)
    line = one_line_error(*run_cli(["preprocess", "--source", str(src)])[::2])
    assert "cannot write the dataset store entry at" in line and "(users.parquet): No space left on device" in line
    assert "free some disk space" in line
    assert datasets(adaptau_home) == []


def test_an_unreadable_input_is_one_user_error(tmp_path, monkeypatch):
    from adaptau_cli.data import prepare as P

    src = given_split(tmp_path)

    def denied(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(P, "sha256_file", denied)
    with pytest.raises(UserError) as err:
        prepare(PreprocessConfig(source=str(src)))
    assert f"cannot read {src / 'test.txt'}: Permission denied" in err.value.one_line()


# ---------------------------------------------------------------- opening by content hash

def test_find_by_content_hash_opens_the_store_without_the_source(tmp_path, adaptau_home):
    src = given_split(tmp_path)
    ds = prepare(PreprocessConfig(source=str(src))).dataset
    shutil.rmtree(src)                                          # the source is gone
    found = store.find_by_content_hash(None, ds.fingerprint)
    assert found is not None and found.path == ds.path and found.fingerprint == ds.fingerprint
    assert found.n_items == ds.n_items and len(found.splits["test"]) == len(ds.splits["test"])
    assert store.find_by_content_hash(str(adaptau_home), ds.fingerprint).path == ds.path   # explicit home
    assert store.find_by_content_hash(None, "0" * 16) is None
    assert store.find_by_content_hash(None, "") is None
    assert store.find_by_content_hash(str(tmp_path / "empty-home"), ds.fingerprint) is None


def test_find_by_content_hash_skips_corrupt_and_lying_entries(tmp_path, adaptau_home):
    src = given_split(tmp_path)
    ds = prepare(PreprocessConfig(source=str(src))).dataset
    base = adaptau_home / "datasets"
    (base / "aaa-corrupt").mkdir()
    (base / "aaa-corrupt" / "manifest.json").write_text("{not json")
    (base / "aab-list").mkdir()
    (base / "aab-list" / "manifest.json").write_text("[1, 2]")
    damaged = base / "aac-damaged"                              # says it holds the data, files broken
    shutil.copytree(ds.path, damaged)
    (damaged / "train.parquet").write_bytes(b"garbage")
    lying = base / "aad-lying"                                  # loads, but holds other data
    shutil.copytree(ds.path, lying)
    shutil.copy(lying / "test.parquet", lying / "train.parquet")
    hidden = base / f".{ds.path.name}.1@h.x.tmp"                # a temporary folder is never opened
    shutil.copytree(ds.path, hidden)
    found = store.find_by_content_hash(None, ds.fingerprint)
    assert found is not None and found.path == ds.path
    shutil.rmtree(ds.path)
    assert store.find_by_content_hash(None, ds.fingerprint) is None


# ---------------------------------------------------------------- store keys

def test_store_keys_of_existing_datasets_do_not_move(tmp_path):
    """Keys recorded before drop_cold and the holdout fix: stores prepared without them are reused."""
    src = tmp_path / "keyfix"
    src.mkdir()
    (src / "train.txt").write_text("0 1 2 3\n1 2 3\n2 1 3\n")
    (src / "test.txt").write_text("0 4\n1 1\n2 2\n")
    log = tmp_path / "log.csv"
    log.write_text("user,item,timestamp\n" + "".join(f"u{u},i{(u * 7 + k) % 11},{1000 + k}\n"
                                                     for u in range(6) for k in range(5)))
    home = str(tmp_path / "h")
    assert prepare(PreprocessConfig(source=str(src), home=home)).path.name == "keyfix-aaa906e841ba"
    assert prepare(PreprocessConfig(source=str(src), home=home, drop_cold=False)).path.name == "keyfix-aaa906e841ba"
    assert prepare(PreprocessConfig(source=str(src), home=home, valid_ratio=0.5)).path.name == "keyfix-f1a6721e2167"
    assert prepare(PreprocessConfig(source=str(log), home=home, split="loo-last")).path.name == "log-e479287bec9e"
    # the random split changed for users with 3-4 interactions: its old stores must not be reused
    assert prepare(PreprocessConfig(source=str(log), home=home)).path.name != "log-9b2a14083cdc"
    assert prepare(PreprocessConfig(source=str(src), home=home, drop_cold=True)).path.name != "keyfix-aaa906e841ba"
