"""Input bytes the readers must survive (issue #15): line ends, compression, encodings, pipes, quotes.

Every reader is driven through ``read_source`` and, for what a user sees, through the
real CLI (``adaptau preprocess --source``): a user error is exit code 2 and one line on
stderr, never a traceback, never raw bytes or control characters.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import json
import lzma
import os
import random
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from cli_helpers import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaptau_cli.base.errors import DataError, UserError
from adaptau_cli.data import readers
from adaptau_cli.data.readers import detect_file_format, read_source

REPO = Path(__file__).resolve().parents[1]
TEXT_FORMATS = ("lightgcn", "csv", "tsv", "recbole", "movielens", "udata")
COMPRESS = {"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}
SUFFIX = {"gzip": ".gz", "bz2": ".bz2", "xz": ".xz", "zstd": ".zst"}
FILE_NAME = {"lightgcn": "train.txt", "csv": "data.csv", "tsv": "data.tsv", "recbole": "data.inter",
             "movielens": "ratings.dat", "udata": "u.data"}

# The same six interactions in every text format: (user, item, rating, timestamp).
ROWS = [(1, 10, 5.0, 100), (1, 11, 3.0, 101), (2, 10, 4.0, 102), (3, 12, 1.0, 103), (3, 10, 2.0, 104),
        (3, 13, 5.0, 105)]


def render(fmt: str, rows=ROWS) -> list[str]:
    """``rows`` as the lines of a file of format ``fmt`` (no line ends)."""
    if fmt == "lightgcn":
        by_user: dict[int, list[int]] = {}
        for u, i, _, _ in rows:
            by_user.setdefault(u, []).append(i)
        return [" ".join(str(x) for x in [u, *items]) for u, items in by_user.items()]
    if fmt == "movielens":
        return [f"{u}::{i}::{r:g}::{t}" for u, i, r, t in rows]
    if fmt == "udata":
        return [f"{u}\t{i}\t{r:g}\t{t}" for u, i, r, t in rows]
    sep = "," if fmt == "csv" else "\t"
    head = (["user_id:token", "item_id:token", "rating:float", "timestamp:float"] if fmt == "recbole"
            else ["user_id", "item_id", "rating", "timestamp"])
    return [sep.join(head)] + [sep.join([str(u), str(i), f"{r:g}", str(t)]) for u, i, r, t in rows]


def pairs(raw) -> list[tuple[str, str]]:
    t = raw.parts["all"]
    return [(str(u), str(i)) for u, i in zip(t.user.tolist(), t.item.tolist())]


EXPECTED_PAIRS = [(str(u), str(i)) for u, i, _, _ in ROWS]


def cli_error(args: list[str]) -> str:
    """Run the CLI, check it failed as a user error should, return its one stderr line."""
    code, out, err = run_cli(args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err and out == ""
    assert lines[0].isprintable(), repr(lines[0])        # no raw bytes or control characters
    return lines[0]


def preprocess(path: Path) -> dict:
    code, out, err = run_cli(["preprocess", "--source", str(path), "--split", "0.6,0.2,0.2", "--json", "--quiet"])
    assert code == 0, err
    return json.loads(out)


BIG_PAIRS = [(u, (u * 7 + k * 3) % 50) for u in range(40) for k in range(8)]   # enough for the CLI's split


def big_log() -> bytes:
    lines = ["user_id,item_id,rating"] + [f"u{u},i{i},{1 + (u + i) % 5}" for u, i in BIG_PAIRS]
    return ("\n".join(lines) + "\n").encode()


@contextlib.contextmanager
def no_hang(seconds: int):
    """Fail (instead of hanging the suite) if the block blocks for longer than ``seconds``."""
    def expire(signum, frame):
        raise TimeoutError(f"still blocked after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------- 1. line ends

@pytest.mark.parametrize("fmt", TEXT_FORMATS)
@pytest.mark.parametrize("ends", [["\r"], ["\r\n"], ["\n", "\r", "\r\n"]], ids=["cr", "crlf", "mixed"])
def test_cr_crlf_and_lf_end_lines_alike_in_every_text_format(tmp_path, fmt, ends):
    lines = render(fmt)
    text = "".join(line + ends[k % len(ends)] for k, line in enumerate(lines))
    f = tmp_path / FILE_NAME[fmt]
    f.write_bytes(text.encode())
    raw = read_source(f)
    assert raw.format == fmt
    assert pairs(raw) == EXPECTED_PAIRS
    info = raw.inputs["all"]
    assert (info.lf, info.crlf, info.cr) == (text.count("\n") - text.count("\r\n"), text.count("\r\n"),
                                             text.count("\r") - text.count("\r\n"))
    if info.cr:                           # a bare CR splitting lines is never silent
        assert any("bare CR line end" in note for note in raw.notes)


def test_a_bare_cr_inside_a_line_ends_it_on_the_fast_and_the_slow_path(tmp_path):
    f = tmp_path / "train.txt"
    f.write_bytes(b"0 1 2\r3 4\n5 6\n")                          # universal newlines: three lines
    raw = read_source(f)
    assert raw.parts["all"].user.tolist() == [0, 0, 3, 5] and raw.parts["all"].item.tolist() == [1, 2, 4, 6]
    assert raw.inputs["all"].cr == 1
    assert raw.notes == ["train.txt: 1 bare CR line end(s) read as line breaks (besides 2 LF)"]
    # the slow path counts lines the same way: the bad token is on line 3, after the bare CR
    f.write_bytes(b"0 1 2\r3 4\n5 x\n")
    with pytest.raises(DataError, match=r"train\.txt:3: non-numeric id 'x'"):
        read_source(f)
    g = tmp_path / "x.csv"
    g.write_bytes(b"user,item,rating\r1,2,3\r\n4,5,6\r7,8\n")
    with pytest.raises(DataError, match=r"x\.csv:4: expected 3 fields"):
        read_source(g)


def test_line_ends_are_counted_across_scan_chunks(tmp_path, monkeypatch):
    data = b"a\r\nb\rc\n" * 5 + b"\r" + b"\n\r" * 3
    f = tmp_path / "x"
    f.write_bytes(data)
    expected = (data.count(b"\n") - data.count(b"\r\n"), data.count(b"\r\n"), data.count(b"\r") - data.count(b"\r\n"))
    for chunk in (1, 2, 3, 7, 1 << 24):                     # every CRLF split by some chunk boundary
        monkeypatch.setattr(readers, "_SCAN_CHUNK", chunk)
        assert readers._count_line_ends(f) == expected


# --------------------------------------------------------------------------- 2. compression

@pytest.mark.parametrize("fmt", TEXT_FORMATS)
@pytest.mark.parametrize("codec", list(COMPRESS))
@pytest.mark.parametrize("named", [True, False], ids=["suffix", "content-only"])
def test_compressed_text_of_every_format_is_read_by_its_magic_bytes(tmp_path, fmt, codec, named):
    data = ("\n".join(render(fmt)) + "\n").encode()
    # named: ratings.dat.gz; content-only: a name that says nothing of the compression (nor, for the
    # formats whose content is enough, of the format)
    name = FILE_NAME[fmt] + SUFFIX[codec] if named else (FILE_NAME[fmt] if fmt in ("csv", "tsv") else "interactions")
    f = tmp_path / name
    f.write_bytes(COMPRESS[codec](data))
    raw = read_source(f)
    assert raw.format == fmt
    assert pairs(raw) == EXPECTED_PAIRS
    assert raw.inputs["all"].compression == codec
    assert any("decompressed before reading" in note for note in raw.notes)


def test_compressed_parquet(tmp_path):
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"user_id": [1, 2], "item_id": [3, 4]}), buf)
    f = tmp_path / "x.parquet.gz"
    f.write_bytes(gzip.compress(buf.getvalue()))
    raw = read_source(f)
    assert raw.format == "parquet" and pairs(raw) == [("1", "3"), ("2", "4")]


def test_streamed_transcoding_keeps_characters_split_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "_COPY_CHUNK", 3)           # every code unit and surrogate pair cut somewhere
    text = "user,item\nJosé,caf\u00e9\n\U0001f600,\u4e2d\u6587\r\n"
    for encoding in ("utf-16", "utf-16-be", "utf-32"):
        f = tmp_path / f"{encoding}.csv"
        data = text.encode(encoding)
        f.write_bytes(b"\xfe\xff" + data if encoding == "utf-16-be" else data)
        assert pairs(read_source(f)) == [("José", "café"), ("\U0001f600", "\u4e2d\u6587")]
        f.write_bytes(gzip.compress(f.read_bytes()))
        assert pairs(read_source(f)) == [("José", "café"), ("\U0001f600", "\u4e2d\u6587")]


def test_a_compressed_split_folder(tmp_path):
    (tmp_path / "train.txt.gz").write_bytes(gzip.compress(b"0 1 2\n1 2 3\n"))
    (tmp_path / "test.txt.xz").write_bytes(lzma.compress(b"0 3\n1 1\n"))
    raw = read_source(tmp_path)
    assert raw.format == "lightgcn" and set(raw.parts) == {"train", "test"}
    assert raw.parts["test"].item.tolist() == [3, 1]


def test_errors_in_compressed_files_name_the_original_file_and_line(tmp_path):
    f = tmp_path / "log.csv.gz"
    f.write_bytes(gzip.compress(b"user,item,rating\na,b,1\nc,d\n"))
    with pytest.raises(DataError) as err:
        read_source(f)
    assert err.value.message.startswith(f"{f}:3: expected 3 fields")
    assert "adaptau-read-" not in err.value.message               # never the temporary copy


def test_a_plain_file_with_a_compression_suffix_is_read_as_plain(tmp_path):
    f = tmp_path / "ratings.dat.gz"                          # pyarrow alone would gunzip it by its name
    f.write_bytes(b"1::2::3::4\n")
    raw = read_source(f)
    assert raw.format == "movielens" and raw.inputs["all"].compression is None and pairs(raw) == [("1", "2")]


def zstd_frame(content: bytes) -> bytes:
    """A valid one-block zstd frame holding ``content`` raw (built by hand: zstandard is optional)."""
    assert len(content) < 256
    header = b"\x28\xb5\x2f\xfd" + b"\x20" + bytes([len(content)])   # single segment, 1-byte content size
    block = (1 | (len(content) << 3)).to_bytes(3, "little")              # last block, raw
    return header + block + content


def test_zstd_is_read_with_zstandard_or_refused_with_a_hint(tmp_path):
    f = tmp_path / "ratings.dat.zst"
    f.write_bytes(zstd_frame(b"1::2::3::4\n5::6::7::8\n"))
    try:
        import zstandard  # noqa: F401
    except ImportError:
        with pytest.raises(UserError) as err:
            read_source(f)
        assert "zstd-compressed" in err.value.message and "pip install zstandard" in err.value.hint
        assert "pip install zstandard" in cli_error(["preprocess", "--source", str(f), "--json", "--quiet"])
    else:
        raw = read_source(f)
        assert raw.inputs["all"].compression == "zstd" and pairs(raw) == [("1", "2"), ("5", "6")]


@pytest.mark.parametrize("make,expect", [
    (lambda: b"\x1f\x8b\x08" + bytes(range(200)), "is gzip-compressed but cannot be decompressed"),
    (lambda: gzip.compress(b"user,item\n" + b"1,2\n" * 5000)[:-40], "is gzip-compressed but cannot be decompressed"),
    (lambda: gzip.compress(bytes(range(256)) * 20), "looks like binary data (gzip-compressed)"),
    (lambda: gzip.compress(gzip.compress(b"0 1\n")), "is compressed twice (gzip inside gzip)"),
    (lambda: b"\x04\x22\x4d\x18" + bytes(40), "is lz4-compressed, which is not read directly"),
    (lambda: bz2.compress(b"0 1\n" * 100)[:20] + bytes(30), "is bzip2-compressed but cannot be decompressed"),
    (lambda: gzip.compress(b""), "file is empty"),
], ids=["gzip-garbage", "gzip-truncated", "gzip-of-binary", "gzip-twice", "lz4", "bz2-garbage", "gzip-of-nothing"])
def test_broken_compressed_files_say_what_they_are(tmp_path, make, expect):
    f = tmp_path / "data.csv"
    f.write_bytes(make())
    with pytest.raises(UserError) as err:
        read_source(f)
    assert expect in err.value.message and str(f) in err.value.message
    assert expect in cli_error(["preprocess", "--source", str(f), "--json", "--quiet"])


def test_compressed_and_utf16_sources_through_the_cli(tmp_path):
    data = big_log()
    plain = tmp_path / "plain.csv"
    plain.write_bytes(data)
    expected = preprocess(plain)
    for name, blob in (("a.csv.gz", gzip.compress(data)), ("b.csv", bz2.compress(data)),
                       ("c.csv", data.decode().encode("utf-16")), ("d.csv.xz", lzma.compress(data.replace(b"\n", b"\r")))):
        (tmp_path / name).write_bytes(blob)
        got = preprocess(tmp_path / name)
        assert (got["n_users"], got["n_items"]) == (expected["n_users"], expected["n_items"]) == \
               (40, len({i for _, i in BIG_PAIRS}))
        assert got["stats"]["all"] == expected["stats"]["all"]


# --------------------------------------------------------------------------- 3. detection

@pytest.mark.parametrize("text,fmt", [
    ("0\t1 2\n1\t3\n", "lightgcn"),                  # the case: tab after the user, spaces between items
    ("0 1\t2\n1 2 3\n", "lightgcn"),
    ("0\t1\t2\t3\n1 2 3\n2 4 5 6 7\n", "lightgcn"),   # a first line that alone would look like u.data
    ("0\t1\t2\n1\t3\t4 5\n2\t6\n", "lightgcn"),
    ("1\t2\t3\t4\n5\t6\t7\t8\n", "udata"),           # clean tab tables keep their formats
    ("1\t2\n3\t4\n", "tsv"),
    ("1\t2\t3\t4\n5\t6\t7\n", "udata"),              # no format fits every line: the first line's, to name line 2
    ("0 1 2\n1 2\n", "lightgcn"),
    ("1\t2\t3\t 4\n5\t 6\t7\t8\n", "udata"),      # a space padding a tab-separated field is not a separator
])
def test_detection_prefers_the_format_that_parses_the_whole_sample(tmp_path, text, fmt):
    f = tmp_path / "data.txt"
    f.write_text(text)
    assert detect_file_format(f) == fmt


def test_mixed_tabs_and_spaces_read_as_lightgcn(tmp_path):
    f = tmp_path / "train.txt"
    f.write_text("0\t1 2\n1\t3  4\t5\n2 6\t7\n")
    raw = read_source(f)
    assert raw.format == "lightgcn"
    assert raw.parts["all"].user.tolist() == [0, 0, 1, 1, 1, 2, 2]
    assert raw.parts["all"].item.tolist() == [1, 2, 3, 4, 5, 6, 7]
    by_user: dict[int, list[int]] = {}
    for u, i in BIG_PAIRS:
        by_user.setdefault(u, []).append(i)
    seps = ["\t", " ", " \t", "  "]
    g = tmp_path / "big.txt"
    g.write_text("".join(str(u) + "".join(seps[(u + k) % 4] + str(i) for k, i in enumerate(its)) + "\n"
                         for u, its in by_user.items()))
    got = preprocess(g)
    assert got["source"]["format"] == "lightgcn"
    assert (got["n_users"], got["n_items"]) == (40, len({i for _, i in BIG_PAIRS}))


def test_a_broken_udata_line_is_still_named_not_reread_as_lightgcn(tmp_path):
    f = tmp_path / "ratings.txt"
    f.write_text("1\t2\t3\t4\n5\t6\t7\t8\n9\t10\t11\n12\t13\t14\t15\n")
    with pytest.raises(DataError, match=r"ratings\.txt:3: expected 4 tab-separated fields"):
        read_source(f)


# --------------------------------------------------------------------------- 4. encodings, binary

@pytest.mark.parametrize("fmt", TEXT_FORMATS)
@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_bom_utf16_and_utf32_text_is_transcoded(tmp_path, fmt, encoding):
    text = "\r\n".join(render(fmt)) + "\r\n"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data                       # BOM-less "utf-16-le" is detected by its zero bytes
    f = tmp_path / FILE_NAME[fmt]
    f.write_bytes(data)
    raw = read_source(f)
    assert raw.format == fmt and pairs(raw) == EXPECTED_PAIRS
    assert raw.inputs["all"].crlf == len(render(fmt))
    assert raw.inputs["all"].encoding == {"utf-16": "utf-16-le", "utf-32": "utf-32-le"}.get(encoding, encoding)
    if encoding.startswith("utf-16"):
        assert raw.notes == [f"{f.name}: {raw.inputs['all'].encoding.upper()} text, transcoded to UTF-8"]


def test_errors_after_a_bom_name_the_right_line(tmp_path):
    f = tmp_path / "ratings.dat"
    f.write_bytes(b"\xef\xbb\xbf1::2::3::4\n5::6::7::8\n9::x::1::2\n")
    with pytest.raises(DataError, match=r"ratings\.dat:3: non-numeric item id 'x'"):
        read_source(f)
    g = tmp_path / "u16.csv"
    g.write_bytes("user,item,rating\na,b,1\nc,d,oops\n".encode("utf-16"))
    with pytest.raises(DataError) as err:
        read_source(g)
    assert err.value.message == f"{g}:3: unreadable rating 'oops'"


def test_invalid_utf8_is_named_at_its_line_across_chunks(tmp_path, monkeypatch):
    f = tmp_path / "x.csv"
    f.write_bytes("user,item\r\na,1\r\nb,2\r\nJosé,3\n".encode("latin-1"))
    for chunk in (1, 3, 5, 1 << 24):
        monkeypatch.setattr(readers, "_SCAN_CHUNK", chunk)
        with pytest.raises(DataError) as err:
            read_source(f)
        assert err.value.message == f"{f}:4: not valid UTF-8 text (byte 0xe9)"
    g = tmp_path / "train.txt"
    g.write_bytes(b"0 1\n1 2\n2 \xff\n")
    with pytest.raises(DataError, match=r"train\.txt:3: not valid UTF-8 text \(byte 0xff\)"):
        read_source(g)


@pytest.mark.parametrize("make,expect", [
    (lambda: bytes(range(256)) * 4, "looks like binary data"),
    (lambda: random.Random(15).randbytes(4096), "looks like binary data"),
    (lambda: b"\xff\xfe" + "user,item\n1,2\n".encode("utf-16-le") + b"\x00\xd8\x00", "looks like UTF-16 text but is not valid"),
    (lambda: b"PK\x03\x04" + bytes(100), "is a zip archive; archives are not read directly"),
    (lambda: b"PAR1" + bytes(100), "is a parquet file, not csv text"),
], ids=["bytes", "random", "bad-utf16", "zip", "parquet-as-csv"])
def test_binary_input_says_what_it_looks_like_without_echoing_bytes(tmp_path, make, expect):
    f = tmp_path / "data.csv"
    f.write_bytes(make())
    with pytest.raises(UserError) as err:
        read_source(f, fmt="csv" if "parquet" in expect else "auto")
    assert expect in err.value.message
    line = err.value.one_line()
    assert line.isprintable() and "\ufffd" not in line
    args = ["preprocess", "--source", str(f), "--json", "--quiet"] + (["--format", "csv"] if "parquet" in expect else [])
    assert expect in cli_error(args)


def test_control_characters_in_a_failing_file_are_escaped(tmp_path):
    f = tmp_path / "train.txt"
    f.write_bytes(b"0 1\n1 2\x1f3\n")               # \x1f: the fast path's column delimiter
    with pytest.raises(DataError) as err:
        read_source(f)
    assert err.value.message == f"{f}:2: contains the control character \\x1f (unit separator)"
    g = tmp_path / "x.csv"
    g.write_bytes(b"user,item\n1,2\n3\x07,4,5\n")
    with pytest.raises(DataError) as err:
        read_source(g)
    assert err.value.one_line().isprintable() and ":3: expected 2 fields" in err.value.message


@pytest.mark.parametrize("name,data,expect", [
    ("x.csv", b"user,item\na,b\nc\x00,d\n", ":3: the user id contains the control character \\x00"),
    ("x.tsv", b"user\titem\na\tb\x1f\n", ":2: the item id contains the control character \\x1f"),
    ("ratings.dat", b"1::2::3::4\n1\x1f::2::3::4\n", ":2: contains the control character \\x1f"),
    ("x.csv", b"user,item,time\na,b,2020-01-01\nc,d,2020-01-0\xff\n", ":3: not valid UTF-8 text (byte 0xff)"),
    ("x.csv", b"user,item,rating\na,b,1\nc,d, \n", ":3: missing rating (an empty field)"),
    ("x.csv", b'user,item,"rating,time\na,b,1,5\nc,d,2,6\n', ":1: unclosed quote in the header"),
    ("train.txt", b"0 1\n1 +2\n", ":2: id '+2' has a '+' sign"),
], ids=["nul-in-id", "unit-separator-in-id", "control-in-number", "bad-utf8-in-dates", "blank-rating",
        "quote-in-header", "plus-sign"])
def test_damage_found_by_fuzzing_is_named_by_line(tmp_path, name, data, expect):
    f = tmp_path / name
    f.write_bytes(data)
    with pytest.raises(DataError) as err:
        read_source(f)
    assert err.value.message.startswith(f"{f}{expect}"), err.value.message
    assert err.value.one_line().isprintable()


def test_dates_outside_the_nanosecond_range_do_not_crash(tmp_path):
    f = tmp_path / "old.csv"
    f.write_text("user,item,timestamp\na,b,1000-01-01\nc,d,3000-01-01 00:00:01\n")
    assert read_source(f).parts["all"].timestamp.tolist() == [-30610224000, 32503680001]


# --------------------------------------------------------------------------- 5. pipes, FIFOs, stdin

def test_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "events.csv"
    os.mkfifo(fifo)
    with no_hang(20):
        with pytest.raises(UserError) as err:
            read_source(fifo)
        line = cli_error(["preprocess", "--source", str(fifo), "--json", "--quiet"])
    assert err.value.message == f"{fifo}: is a pipe (FIFO), not a regular file; streams are not read"
    assert "save it to a file first" in err.value.hint and "save it to a file first" in line


def test_a_character_device_and_dash_are_refused(tmp_path):
    with no_hang(20):
        with pytest.raises(UserError, match="is a character device, not a regular file"):
            read_source("/dev/null")
        assert "(standard input) is not supported" in cli_error(["preprocess", "--source", "-", "--quiet"])


def run_with_open_stdin(args: list[str]) -> tuple[int, str]:
    """Run ``args`` with stdin a pipe that stays open (reading it would block forever): (code, stderr)."""
    env = {**os.environ}
    env.pop("ADAPTAU_MIRROR", None)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=out, stderr=err, env=env, cwd=REPO)
        try:
            code = proc.wait(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdin.close()
        err.seek(0)
        return code, err.read().decode()


def test_dev_stdin_as_a_pipe_does_not_hang():
    script = ("import sys\nfrom adaptau_cli.data.readers import read_source\n"
              "try:\n    read_source('/dev/stdin')\nexcept Exception as e:\n"
              "    print(type(e).__name__, e.one_line(), file=sys.stderr)")
    code, message = run_with_open_stdin([sys.executable, "-c", script])
    assert code == 0, message
    assert message.startswith("UserError /dev/stdin (standard input): is a pipe (FIFO), not a regular file")
    assert "save it to a file first" in message
    # the CLI resolves the path first (/dev/stdin -> /proc/<pid>/fd/pipe:[N]): still a pipe, still at once
    code, message = run_with_open_stdin([sys.executable, "-m", "adaptau_cli", "preprocess", "--source", "/dev/stdin",
                                         "--json", "--quiet"])
    assert code == 2, message
    assert message.strip().count("\n") == 0 and "Traceback" not in message
    assert "is a pipe (standard input or a shell pipe)" in message and "save it to a file first" in message


# --------------------------------------------------------------------------- 6. unclosed quotes

@pytest.mark.parametrize("text,line,detail", [
    ('user,item\n"a,b\n1,2\n3,4,5\n', 2, "runs on to the end of the file"),
    ('user,item\n1,2\n"a,b\n1,2\n3,4"\n5,6\n', 3, "runs on to line 5"),
    ('user,item\n1,2\n3,"4\n5,6\n7,8\n', 3, "the item id runs on over the following lines"),   # fields fit: fast path
    ('user,item,rating\n1,2,3\n\n"x,y,1\n4,5,6\n', 4, "runs on to the end of the file"),
], ids=["to-eof", "closed-later", "swallowing-lines", "after-blank"])
def test_an_unclosed_quote_is_blamed_on_the_line_that_opened_it(tmp_path, text, line, detail):
    f = tmp_path / "q.csv"
    f.write_text(text)
    with pytest.raises(DataError) as err:
        read_source(f)
    assert err.value.message.startswith(f"{f}:{line}: unclosed quote: the '\"' opened on this line is not closed")
    assert detail in err.value.message
    assert f"q.csv:{line}: unclosed quote" in cli_error(["preprocess", "--source", str(f), "--json", "--quiet"])


def test_closed_quotes_still_read(tmp_path):
    f = tmp_path / "q.csv"
    f.write_text('user,item\r"a,1",b\r"c",d\r')
    assert pairs(read_source(f)) == [("a,1", "b"), ("c", "d")]


# --------------------------------------------------------------------------- 7. properties

ENDS = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def interaction_files(draw):
    """(format, the file's text lines with their ends, the clean rows it holds)."""
    fmt = draw(st.sampled_from(TEXT_FORMATS))
    n = draw(st.integers(1, 12))
    string_ids = fmt in ("csv", "tsv", "recbole") and draw(st.booleans())
    users = draw(st.lists(st.integers(0, 9), min_size=n, max_size=n))
    items = draw(st.lists(st.integers(0, 30), min_size=n, max_size=n))
    ratings = draw(st.lists(st.sampled_from([1.0, 2.5, 3.0, 4.0, 5.0]), min_size=n, max_size=n))
    if fmt == "lightgcn":
        by_user: dict[int, list[int]] = {}
        for u, i in zip(users, items):
            by_user.setdefault(u, []).append(i)
        rows, lines = [], []
        for k, (u, its) in enumerate(by_user.items()):
            seps = draw(st.lists(st.sampled_from([" ", "\t", "  ", " \t"]), min_size=len(its), max_size=len(its)))
            if k == 0:
                seps[0] = " "                  # a first line of tabs only would be a TSV/u.data (ambiguous)
            lines.append(str(u) + "".join(s + str(i) for s, i in zip(seps, its)))
            rows += [(u, i, None) for i in its]
    else:
        uid = (lambda u: f"u{u}") if string_ids else str
        iid = (lambda i: f"i{i}") if string_ids else str
        rows = list(zip(users, items, ratings))
        body = [(uid(u), iid(i), f"{r:g}", str(1000 + k)) for k, (u, i, r) in enumerate(rows)]
        if fmt == "movielens":
            lines = ["::".join(b) for b in body]
        elif fmt == "udata":
            lines = ["\t".join(b) for b in body]
        else:
            sep = "," if fmt == "csv" else "\t"
            typed = ":token", ":token", ":float", ":float"
            head = [n + (t if fmt == "recbole" else "") for n, t in zip(("user_id", "item_id", "rating", "timestamp"),
                                                                        typed)]
            quote = fmt == "csv" and string_ids and draw(st.booleans())
            lines = [sep.join(head)] + [sep.join(f'"{x}"' if quote and c < 2 else x for c, x in enumerate(b))
                                        for b in body]
    blank_after = draw(st.sets(st.integers(0, len(lines) - 1), max_size=2))   # empty lines, never first
    text = ""
    for k, line in enumerate(lines):
        text += line + draw(ENDS)
        if k in blank_after:
            text += draw(ENDS)
    if draw(st.booleans()):
        text = text.rstrip("\r\n")              # no line end after the last line
    return fmt, text, rows


def encode(draw, fmt: str, text: str) -> tuple[bytes, str, str]:
    """The file's bytes (maybe BOM / UTF-16, maybe compressed) and its name."""
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16"]))
    data = text.encode(encoding)
    codec = draw(st.sampled_from([None, None, "gzip", "bz2", "xz"]))
    name = FILE_NAME[fmt]
    if codec:
        data = COMPRESS[codec](data)
        if draw(st.booleans()):
            name += SUFFIX[codec]
    return data, name, codec or ""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=interaction_files(), data=st.data(), explicit=st.booleans())
def test_generated_files_parse_to_the_rows_they_were_made_of(case, data, explicit):
    fmt, text, rows = case
    blob, name, codec = encode(data.draw, fmt, text)
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / name
        f.write_bytes(blob)
        try:
            raw = read_source(f, fmt=fmt if explicit else "auto")
        except (DataError, UserError) as exc:          # allowed, if it is a clean one-line message
            assert str(f) in exc.message and exc.one_line().isprintable()
            pytest.fail(f"a valid {fmt} file was refused: {exc.one_line()}")
        t = raw.parts["all"]
        assert raw.format == fmt
        # independent computation on the clean rows the file was made of
        want_users = {str(u) for u, _, _ in rows}
        want_items = {str(i) for _, i, _ in rows}
        strip = (lambda x: str(x)[1:]) if isinstance(t.user[0], str) else str   # "u3" -> "3"
        assert {strip(u) for u in t.user.tolist()} == want_users
        assert {strip(i) for i in t.item.tolist()} == want_items
        assert [(strip(u), strip(i)) for u, i in zip(t.user.tolist(), t.item.tolist())] == \
               [(str(u), str(i)) for u, i, _ in rows]
        if rows[0][2] is not None:
            assert t.rating.tolist() == [r for _, _, r in rows]
        info = raw.inputs["all"]
        assert info.compression == (codec or None)
        clean = text.replace("\r\n", "\n")
        assert (info.cr, info.crlf) == (clean.count("\r"), text.count("\r\n"))


MUTATIONS = st.sampled_from(["insert", "replace", "delete", "truncate", "quote"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=interaction_files(), data=st.data(), edits=st.lists(st.tuples(MUTATIONS, st.integers(0, 10 ** 6),
                                                                         st.binary(min_size=1, max_size=3)),
                                                               min_size=1, max_size=3))
def test_damaged_files_parse_or_raise_a_clean_user_error(case, data, edits):
    fmt, text, _ = case
    raw_bytes = bytearray(text.encode())
    for op, at, junk in edits:
        at %= max(len(raw_bytes), 1)
        if op == "insert":
            raw_bytes[at:at] = junk
        elif op == "replace":
            raw_bytes[at:at + len(junk)] = junk
        elif op == "delete":
            del raw_bytes[at:at + len(junk)]
        elif op == "truncate":
            del raw_bytes[at:]
        else:
            raw_bytes[at:at] = b'"'
    blob = bytes(raw_bytes)
    codec = data.draw(st.sampled_from([None, "gzip", "xz"]))
    if codec:
        blob = COMPRESS[codec](blob)
        if data.draw(st.booleans()):
            blob = blob[: len(blob) * 2 // 3]          # cut short
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / FILE_NAME[fmt]
        f.write_bytes(blob)
        try:
            raw = read_source(f, fmt=data.draw(st.sampled_from(["auto", fmt])))
        except (DataError, UserError) as exc:
            line = exc.one_line()
            assert str(f) in line and line.isprintable() and "\ufffd" not in line, line
            assert "adaptau-read-" not in line
            return
        t = raw.parts["all"]
        assert len(t.user) == len(t.item)
        if t.rating is not None:
            assert len(t.rating) == len(t.user)


@pytest.mark.parametrize("column", ["user_id", "item_id"])
def test_a_parquet_list_column_is_refused_in_one_line(tmp_path, column):
    import pyarrow as pa
    import pyarrow.parquet as pq

    values = {"user_id": [1, 1, 2, 2, 3, 3] * 4, "item_id": [1, 2, 3, 4, 5, 6] * 4}
    values[column] = [[v] for v in values[column]]                       # one list per row, as an export gives
    pq.write_table(pa.table(values), tmp_path / "lists.parquet")
    code, _, err = run_cli(["preprocess", "--source", str(tmp_path / "lists.parquet")])
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "list<" in lines[0] and "explode" in lines[0]


def test_a_symlink_loop_as_source_is_refused_in_one_line(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    code, _, err = run_cli(["preprocess", "--source", str(tmp_path / "a")])
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "--source" in lines[0] and "loop" in lines[0].lower()
