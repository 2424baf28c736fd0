"""Atomic writes: all or nothing, and the usual file mode (not mkstemp's 0600)."""

import os
import stat

import pytest

from adaptau_cli.base import files as io


def test_atomic_write_gives_usual_mode_and_content(tmp_path):
    old = os.umask(0o022)
    try:
        path = io.write_json(tmp_path / "sub" / "a.json", {"x": 1})
    finally:
        os.umask(old)
    assert path.read_text().strip() == '{\n  "x": 1\n}'
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    dest = tmp_path / "b.txt"
    io.write_text(dest, "old")
    with pytest.raises(RuntimeError):
        with io.atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["b.txt"]
