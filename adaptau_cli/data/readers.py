"""Readers: turn a user's interaction file (or folder) into plain id/rating/time arrays.

Supported layouts (``--format``, auto-detected when left at ``auto``):

* ``lightgcn`` -- ``user item item ...`` per line, integer ids (a folder with
  ``train.txt``, ``test.txt`` and optional ``valid.txt`` keeps its given split);
* ``csv`` / ``tsv`` -- a header row (or none, then columns are named ``0, 1, ...``)
  with ``--user-col/--item-col/--rating-col/--time-col`` (common names such as
  ``user_id``, ``userId``, ``item_id``, ``movieId``, ``rating``, ``timestamp`` are found
  without flags); ids may be integers or any strings;
* ``recbole`` -- RecBole atomic ``.inter`` files with a typed header
  (``user_id:token  item_id:token  rating:float  timestamp:float``);
* ``movielens`` -- ``ratings.dat`` with ``user::item::rating::timestamp``;
* ``udata`` -- MovieLens-100K ``u.data``: tab-separated user, item, rating, timestamp;
* ``parquet`` -- any parquet file with user and item columns.

Why the two speeds: every reader parses with pyarrow's vectorized CSV engine
(ML-1M in well under a second), and only when that fast parse rejects the file
do we re-scan it line by line in Python, to name the exact file and line that is
wrong. Values are validated here too (non-numeric ids in numeric formats,
negative or 64-bit-overflowing ids, NaN/inf ratings, missing fields), because the
reader is the last place that still knows which line a value came from.

What bytes are accepted, before any format is parsed (``_plain_input``):

* **line ends** -- LF, CRLF and a bare CR all end a line, in every text format
  and on both the fast and the slow path (Python's universal newlines: a CR in
  the middle of a line splits it there; only a CR inside a quoted CSV field is
  part of the value). How many of each a file had is recorded in
  ``RawData.inputs[role]`` (``lf``, ``crlf``, ``cr``), so a split line is never silent;
* **compression** -- gzip, bzip2 and xz (and zstd when the optional ``zstandard``
  module is importable), recognised by their magic bytes whatever the file is
  called, decompressed to a temporary file and then parsed as usual; messages
  still name the original file, lines are lines of the decompressed text;
* **encodings** -- UTF-8 (with or without a byte-order mark); UTF-16 and UTF-32
  (by their BOM, or BOM-less UTF-16 by its zero bytes) are transcoded to UTF-8
  first; anything else that is not valid UTF-8 is refused naming its line;
* **refused at once, in one line** -- pipes, FIFOs, ``/dev/stdin`` and other
  non-regular files (they would block forever), archives (zip, tar, 7z, rar),
  binary files; an error never echoes raw bytes or control characters, it says
  what the file looks like ("gzip-compressed", "UTF-16 text", "binary data");
* **quotes** -- a CSV quote left open is named at the line that opened it (not at
  the later line where the runaway field ends), and ids may not hold line breaks
  or control characters (they only get there through such a quote, or corruption).

The normal input (uncompressed UTF-8) is parsed in place: besides pyarrow's
parse the only extra work is a 64 KiB sniff, a numpy count of line-end bytes over
a memory map, and (string ids only) a numpy scan of the ids' bytes for control
characters -- a few milliseconds per 10 MB, no per-line Python loop.
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import csv
import dataclasses
import gzip
import lzma
import math
import mmap
import os
import re
import stat
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from adaptau_cli.base.errors import AdaptauError, DataError, UserError

FORMATS = ("lightgcn", "csv", "tsv", "recbole", "movielens", "udata", "parquet")
FORMAT_HELP = "auto|" + "|".join(FORMATS)
PARTS = ("train", "valid", "test")

INT64_MAX = np.iinfo(np.int64).max
_INT_RE = re.compile(r"^-?[0-9]+$")             # as pyarrow reads them: ASCII digits, no '+' sign
_FLOAT_RE = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$|^[+-]?(inf|infinity|nan)$",
                       re.IGNORECASE)           # what pyarrow parses as a float (float() also takes '1_0')

# Column names recognised without flags (compared case-insensitively, ':type' suffix ignored).
USER_CANDIDATES = ("user_id", "userid", "user", "uid", "u", "reviewer_id", "reviewerid", "customer_id", "user_id:token")
ITEM_CANDIDATES = ("item_id", "itemid", "item", "iid", "i", "movie_id", "movieid", "product_id", "asin",
                   "business_id", "track_id", "artist_id", "book_id", "poi_id")
RATING_CANDIDATES = ("rating", "ratings", "score", "stars", "preference", "overall")
TIME_CANDIDATES = ("timestamp", "time", "ts", "datetime", "date", "unix_timestamp", "unixreviewtime")


@dataclasses.dataclass
class Table:
    """One file's interactions: original ids (int64 or str objects), optional rating and time."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray | None = None
    timestamp: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.user.shape[0])


@dataclasses.dataclass
class InputInfo:
    """How one input file's bytes were turned into text before parsing.

    ``lf``/``crlf``/``cr`` count the line ends of each kind; every kind ends a
    line (a bare ``cr`` too: universal newlines). Both zero for parquet.
    """

    compression: str | None = None   # "gzip", "bz2", "xz", "zstd" or None
    encoding: str = "utf-8"          # "utf-8", "utf-8-sig" (BOM), "utf-16-le", "utf-16-be", "utf-32-le", ... or "parquet"
    lf: int = 0
    crlf: int = 0
    cr: int = 0

    def notes(self) -> list[str]:
        """Plain-words remarks on anything besides plain UTF-8 with LF (or CRLF) line ends."""
        out = []
        if self.compression:
            out.append(f"{_COMPRESSION_LABEL[self.compression]}, decompressed before reading")
        if self.encoding.startswith(("utf-16", "utf-32")):
            out.append(f"{self.encoding.upper()} text, transcoded to UTF-8")
        if self.cr:
            kinds = ", ".join(f"{n} {k}" for k, n in (("LF", self.lf), ("CRLF", self.crlf)) if n)
            out.append(f"{self.cr} bare CR line end(s) read as line breaks" + (f" (besides {kinds})" if kinds else ""))
        return out


@dataclasses.dataclass
class RawData:
    """What a source holds: one table (``all``) or a given split (``train``/``valid``/``test``)."""

    parts: dict[str, Table]
    files: dict[str, Path]           # role -> file read (role = part name or "all")
    format: str
    inputs: dict[str, InputInfo] = dataclasses.field(default_factory=dict)   # role -> how its bytes were decoded

    @property
    def notes(self) -> list[str]:
        """One line per remark on how an input was decoded (compression, encoding, bare CR line ends)."""
        return [f"{self.files[role].name}: {note}" for role, info in self.inputs.items() if role in self.files
                for note in info.notes()]

    @property
    def given_split(self) -> bool:
        return "train" in self.parts

    @property
    def has_rating(self) -> bool:
        return all(t.rating is not None for t in self.parts.values())

    @property
    def has_timestamp(self) -> bool:
        return all(t.timestamp is not None for t in self.parts.values())

    @property
    def rows(self) -> int:
        return sum(len(t) for t in self.parts.values())


@dataclasses.dataclass
class Columns:
    """Which columns hold what (CSV/TSV/parquet/.inter); ``None`` = detect or absent."""

    user: str | None = None
    item: str | None = None
    rating: str | None = None
    time: str | None = None
    sep: str | None = None
    time_format: str | None = None   # strftime format of date-string timestamps (None: ISO or inferred)


# ---------------------------------------------------------------------------
# Input bytes: regular files only; compression and encoding by content
# ---------------------------------------------------------------------------

_HEAD_BYTES = 1 << 16                 # what detection looks at (decompressed)
_SAMPLE_LINES = 1000                  # at most this many sample lines are checked by detection
_COPY_CHUNK = 1 << 22                 # decompression / transcoding buffer
_SCAN_CHUNK = 1 << 24                 # byte scans (line-end counts, locating bad UTF-8)
_LINE_END = re.compile(r"\r\n|\r|\n")  # universal newlines, as Python's text mode and pyarrow's CSV parser

_COMPRESSION_LABEL = {"gzip": "gzip-compressed", "bz2": "bzip2-compressed", "xz": "xz-compressed",
                      "zstd": "zstd-compressed"}
_COMPRESSION_SUFFIXES = (".gz", ".gzip", ".bz2", ".xz", ".lzma", ".zst", ".zstd")
_ARCHIVES = ((b"PK\x03\x04", "a zip archive"), (b"PK\x05\x06", "a zip archive"),
             (b"7z\xbc\xaf\x27\x1c", "a 7z archive"), (b"Rar!\x1a\x07", "a rar archive"),
             (b"\x04\x22\x4d\x18", "lz4-compressed data"))
_CONTROL_BYTES = bytes(c for c in range(32) if c not in (9, 10, 11, 12, 13, 27))   # not in text
_ANON_PIPE = re.compile(r"^(pipe|socket|anon_inode):\[\d+\]$")   # what /proc/<pid>/fd/N links to
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_STDIN_PATHS = ("/dev/stdin", "/dev/fd/0", "/proc/self/fd/0")
_ENCODING_LABEL = {"utf-8": "UTF-8 text", "utf-8-sig": "UTF-8 text with a byte-order mark",
                   "utf-16-le": "UTF-16 text", "utf-16-be": "UTF-16 text",
                   "utf-32-le": "UTF-32 text", "utf-32-be": "UTF-32 text"}


@dataclasses.dataclass
class _Sniff:
    """What the first bytes of a file say it is."""

    compression: str | None        # gzip | bz2 | xz | zstd | None
    encoding: str | None           # a key of _ENCODING_LABEL, None when not text
    bom: bool                      # the text starts with a byte-order mark
    looks: str                     # "text", "parquet", "binary" or an archive ("a zip archive", ...)
    head: bytes                    # the first _HEAD_BYTES of the (decompressed) content
    truncated: bool                # the content goes on after ``head``

    def describe(self) -> str:
        """E.g. "gzip-compressed UTF-16 text", "binary", "a tar archive (gzip-compressed)"."""
        comp = _COMPRESSION_LABEL[self.compression] if self.compression else ""
        if self.looks == "text":
            return " ".join(w for w in (comp, _ENCODING_LABEL.get(self.encoding or "", "text")) if w)
        what = {"binary": "binary data", "parquet": "a parquet file"}.get(self.looks, self.looks)
        return f"{what} ({comp})" if comp else what

    def text(self) -> str:
        if self.encoding is None:
            return ""
        codec = self.encoding.replace("-sig", "")
        text = self.head.decode(codec, errors="replace")
        return text.removeprefix("\ufeff")

    def lines(self) -> list[str]:
        """The sample's non-blank lines (split as universal newlines; a cut-off last line dropped)."""
        lines = _LINE_END.split(self.text())
        if self.truncated and len(lines) > 1:
            lines = lines[:-1]
        return [line for line in lines if line.strip()][:_SAMPLE_LINES]


def _inner_name(name: str) -> str:
    """``ratings.dat.gz`` -> ``ratings.dat`` (the name of what a compressed file holds)."""
    lower = name.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _check_regular(path: Path) -> None:
    """Refuse pipes, FIFOs, devices and sockets at once: reading them would block or never end."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    kind = ("a pipe (FIFO)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file")
    what = f"{path} (standard input)" if str(path) in _STDIN_PATHS else str(path)
    raise UserError(f"{what}: is {kind}, not a regular file; streams are not read",
                    hint="save it to a file first (e.g. `... > data.csv`) and pass that file to --source")


def _compression_of(magic: bytes) -> str | None:
    if magic[:3] == b"\x1f\x8b\x08":
        return "gzip"
    if magic[:3] == b"BZh" and magic[3:4] in b"123456789" and len(magic) >= 4:
        return "bz2"
    if magic[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if magic[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    return None


def _open_decompressed(path: Path, compression: str) -> IO[bytes]:
    if compression == "gzip":
        return gzip.open(path, "rb")
    if compression == "bz2":
        return bz2.open(path, "rb")
    if compression == "xz":
        return lzma.open(path, "rb")
    try:
        import zstandard
    except ImportError:
        raise UserError(f"{path}: is zstd-compressed, and reading that needs the optional zstandard module",
                        hint="pip install zstandard, or decompress it first: zstd -d FILE") from None
    return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)


@contextlib.contextmanager
def _decompression_errors(path: Path, compression: str):
    """Corrupt or truncated compressed data: one line saying so (never the raw bytes)."""
    errors: tuple = (OSError, EOFError, lzma.LZMAError, zlib.error)
    try:
        import zstandard
        errors += (zstandard.ZstdError,)
    except ImportError:
        pass
    try:
        yield
    except UserError:
        raise
    except errors as exc:
        detail = _printable(str(exc).splitlines()[0][:120]) if str(exc) else type(exc).__name__
        raise DataError(f"{path}: is {_COMPRESSION_LABEL[compression]} but cannot be decompressed ({detail})",
                        hint="the file is corrupt or cut short; download or compress it again") from None


def _encoding_of(head: bytes) -> tuple[str | None, bool]:
    """(encoding, has a BOM) from the first bytes; encoding None: not text."""
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig", True
    if head.startswith(b"\xff\xfe\x00\x00"):
        return "utf-32-le", True
    if head.startswith(b"\x00\x00\xfe\xff"):
        return "utf-32-be", True
    if head.startswith(b"\xff\xfe"):
        return "utf-16-le", True
    if head.startswith(b"\xfe\xff"):
        return "utf-16-be", True
    if b"\x00" in head:
        even, odd = head[0::2], head[1::2]
        # BOM-less UTF-16: (mostly) every other byte zero -- the high bytes of ASCII and Latin text
        if len(head) >= 8 and odd.count(0) > 0.7 * len(odd) and even.count(0) < 0.05 * len(even):
            return "utf-16-le", False
        if len(head) >= 8 and even.count(0) > 0.7 * len(even) and odd.count(0) < 0.05 * len(odd):
            return "utf-16-be", False
        if head.count(0) > max(0.01 * len(head), 2):
            return None, False                   # a stray NUL or two is left to the parser to name by line
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    if controls > 0.05 * len(head) and controls >= 4:      # a stray control character is not binary
        return None, False
    return "utf-8", False


def _sniff(path: Path) -> _Sniff:
    """Read the first bytes (decompressing them if need be) and say what the file is."""
    _check_regular(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD_BYTES + 1)
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    compression = _compression_of(head[:8])
    if compression:
        with _decompression_errors(path, compression), _open_decompressed(path, compression) as fh:
            head = fh.read(_HEAD_BYTES + 1)
    truncated = len(head) > _HEAD_BYTES
    head = head[:_HEAD_BYTES]
    looks = "text"
    if head.startswith(b"PAR1"):
        looks = "parquet"
    elif compression and _compression_of(head[:8]):
        looks = f"{_COMPRESSION_LABEL[_compression_of(head[:8])]} data"
    elif len(head) > 262 and head[257:262] == b"ustar":
        looks = "a tar archive"
    else:
        looks = next((what for magic, what in _ARCHIVES if head.startswith(magic)), "text")
    encoding, bom = _encoding_of(head) if looks == "text" else (None, False)
    if looks == "text" and encoding is None:
        looks = "binary"
    return _Sniff(compression, encoding, bom, looks, head, truncated)


def _refuse_unreadable(path: Path, sniff: _Sniff, fmt: str | None) -> None:
    """Archives, binary data, parquet read as text: one line saying what the file looks like."""
    if sniff.looks.startswith(("a zip", "a 7z", "a rar", "a tar")):
        raise UserError(f"{path}: is {sniff.describe()}; archives are not read directly",
                        hint="unpack it and pass the data file to --source")
    if sniff.looks.endswith("compressed data"):
        inner = sniff.looks.split("-")[0]
        if sniff.compression:
            raise UserError(f"{path}: is compressed twice ({inner} inside {sniff.compression}), "
                            "which is not read directly", hint="decompress it once and pass the result")
        raise UserError(f"{path}: is {inner}-compressed, which is not read directly",
                        hint="decompress it first (gzip, bzip2 and xz files are read as they are)")
    if sniff.looks == "parquet" and fmt not in (None, "parquet"):
        raise DataError(f"{path}: is a parquet file, not {fmt} text", hint="pass --format parquet (or auto)")
    if sniff.looks not in ("text", "parquet") and fmt != "parquet":
        raise DataError(f"{path}: looks like {sniff.describe()}, not a text file of interactions",
                        hint=f"pass a text file ({', '.join(FORMATS[:-1])}) or a parquet file")


def _plain_input(path: Path, fmt: str, stack: contextlib.ExitStack) -> tuple[Path, InputInfo]:
    """The file a parser should open -- ``path`` itself, or a decompressed / UTF-8 copy -- and what was done.

    Uncompressed UTF-8 (BOM or not) is parsed in place; anything else is
    streamed once into a temporary file (removed when ``stack`` closes).
    """
    sniff = _sniff(path)
    _refuse_unreadable(path, sniff, fmt)
    info = InputInfo(compression=sniff.compression, encoding="parquet" if fmt == "parquet" else sniff.encoding)
    transcode = fmt != "parquet" and sniff.encoding not in ("utf-8", "utf-8-sig")
    plain = path
    if sniff.compression or transcode:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="adaptau-read-")))
        plain = folder / (_inner_name(path.name) or "data")
        if transcode:
            _transcode(path, sniff, plain)
        else:
            with _decompression_errors(path, sniff.compression), \
                    _open_decompressed(path, sniff.compression) as src, open(plain, "wb") as dst:
                while chunk := src.read(_COPY_CHUNK):
                    dst.write(chunk)
        if plain.stat().st_size == 0:
            raise DataError(f"{path}: file is empty (once decompressed)")
    if fmt != "parquet":
        info.lf, info.crlf, info.cr = _count_line_ends(plain)
    return plain, info


def _transcode(path: Path, sniff: _Sniff, out: Path) -> None:
    """UTF-16/UTF-32 (maybe compressed) -> UTF-8, streamed; invalid data is named by its encoding."""
    codec = sniff.encoding.rsplit("-", 1)[0] if sniff.bom else sniff.encoding    # "utf-16" eats its BOM
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    label = _ENCODING_LABEL[sniff.encoding]
    done = 0
    try:
        with contextlib.ExitStack() as stack:
            if sniff.compression:
                stack.enter_context(_decompression_errors(path, sniff.compression))
                src = stack.enter_context(_open_decompressed(path, sniff.compression))
            else:
                src = stack.enter_context(open(path, "rb"))
            dst = stack.enter_context(open(out, "wb"))
            while True:
                chunk = src.read(_COPY_CHUNK)
                text = decoder.decode(chunk, final=not chunk)
                dst.write(text.encode("utf-8"))
                done += len(chunk)
                if not chunk:
                    break
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: looks like {label} but is not valid {label.split()[0]} "
                        f"(bad bytes near byte {done + exc.start})",
                        hint="save the file as UTF-8 (or valid UTF-16) and try again") from None


def _count_line_ends(path: Path) -> tuple[int, int, int]:
    """(LF, CRLF, bare CR) line ends of a UTF-8 file: numpy over a memory map, a window at a time.

    No per-line loop and no copy: about 1.5 ms per 10 MB, and a file without any
    CR (the usual case) is recognised by one ``memchr``-speed search.
    """
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return 0, 0, 0
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            has_cr = mm.find(b"\r") >= 0
            data = np.frombuffer(mm, dtype=np.uint8)
            window = None
            try:
                lf = cr = crlf = 0
                for start in range(0, data.size, _SCAN_CHUNK):
                    window = data[start:start + _SCAN_CHUNK]
                    lf += int(np.count_nonzero(window == 10))
                    if has_cr:
                        at = np.flatnonzero(window == 13) + start + 1      # the byte after each CR
                        cr += at.size
                        at = at[at < data.size]
                        crlf += int(np.count_nonzero(data[at] == 10))
            finally:
                del window, data               # release the map before it closes
    return lf - crlf, crlf, cr - crlf


def _printable(text: str) -> str:
    """``text`` with every control or other unprintable character written as an escape (\\x00, \\r ...)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _relabel(exc: AdaptauError, plain: Path, original: Path) -> AdaptauError:
    """The same error naming the user's file (not a temporary copy), with no raw control characters."""
    def fix(text: str | None) -> str | None:
        if text is None:
            return None
        if plain != original:
            text = text.replace(str(plain), str(original))
        return _printable(text)

    message, hint = fix(exc.message), fix(exc.hint)
    if message == exc.message and hint == exc.hint:
        return exc
    return type(exc)(message, hint=hint)


# ---------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------

def resolve_layout(path: str | Path, fmt: str = "auto") -> tuple[str, dict[str, Path]]:
    """Find the files to read and their format, without parsing them (cheap).

    Returns ``(format, {role: file})`` where role is ``all`` or ``train``/``valid``/``test``.
    A pipe, FIFO, ``/dev/stdin`` or device is refused at once (reading it would block).
    """
    path = Path(path).expanduser()
    fmt = (fmt or "auto").lower()
    if fmt not in FORMATS and fmt != "auto":
        raise UserError(f"unknown format {fmt!r}", hint=f"use one of {FORMAT_HELP}")
    if not path.exists():
        if path.name == "-":
            raise UserError("--source - (standard input) is not supported; streams are not read",
                            hint="save the data to a file first and pass that file to --source")
        if _ANON_PIPE.match(path.name):        # /dev/stdin or <(...) with its link already followed
            raise UserError(f"{path}: is a pipe (standard input or a shell pipe), not a regular file; "
                            "streams are not read",
                            hint="save it to a file first (e.g. `... > data.csv`) and pass that file to --source")
        raise UserError(f"source not found: {path}", hint="check the path given to --source")
    _check_regular(path)
    if path.is_dir():
        files = _folder_files(path)
        first = files.get("train") or files["all"]
    else:
        files = {"all": path}
        first = path
    for f in files.values():
        _check_regular(f)
    if fmt == "auto":
        fmt = detect_file_format(first)
    for f in files.values():
        if f.stat().st_size == 0:
            raise DataError(f"{f}: file is empty")
    return fmt, files


def _folder_files(folder: Path) -> dict[str, Path]:
    """A folder either holds a given split (train.*, test.*, valid.*) or one data file.

    Compressed files count by the name of what they hold (``train.txt.gz`` is a train file).
    """
    entries = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    inner = {p: Path(_inner_name(p.name)) for p in entries}
    by_stem: dict[str, list[Path]] = {}
    for p in entries:
        by_stem.setdefault(inner[p].stem.lower(), []).append(p)
    if "train" in by_stem and "test" in by_stem:
        if len(by_stem["train"]) > 1 or len(by_stem["test"]) > 1:
            raise UserError(f"{folder}: several train.* or test.* files; keep one of each")
        files = {"train": by_stem["train"][0], "test": by_stem["test"][0]}
        valid = by_stem.get("valid") or by_stem.get("val") or by_stem.get("validation")
        if valid:
            files["valid"] = valid[0]
        return files
    if "train" in by_stem or "test" in by_stem:
        missing = "test" if "train" in by_stem else "train"
        raise UserError(f"{folder}: a given split needs both train and test files; {missing}.* is missing")
    for name in ("ratings.dat", "u.data"):
        hit = [p for p in entries if inner[p].name.lower() == name]
        if hit:
            return {"all": hit[0]}
    for suffixes in ((".inter",), (".parquet", ".pq"), (".csv",), (".tsv",)):
        hit = [p for p in entries if inner[p].suffix.lower() in suffixes]
        if len(hit) == 1:
            return {"all": hit[0]}
        if len(hit) > 1:
            raise UserError(f"{folder}: several {suffixes[0]} files ({', '.join(p.name for p in hit[:4])})",
                            hint="pass the file itself to --source")
    raise UserError(f"{folder}: no interaction file found",
                    hint="expected train.txt + test.txt, ratings.dat, u.data, a .inter, .csv, .tsv or .parquet file")


def detect_file_format(path: Path) -> str:
    """Guess a file's format from its name and content (decompressed and decoded first).

    Names decide first (``.parquet``, ``.inter``, ``u.data``, also inside ``.gz``
    and the like), then the content: parquet by its magic bytes, ``::`` ->
    movielens, a typed tab header -> recbole. Among the rest the format that
    parses the whole sample (the first 64 KiB) is preferred: integer tokens
    separated by a mix of tabs and spaces are LightGCN lines, not a TSV whose
    fields hold spaces; a 4-field numeric tab table is u.data, another tab table
    TSV. When no format fits every line, the one the first line fits is taken,
    so that its reader names the bad line.
    """
    sniff = _sniff(path)
    name = _inner_name(path.name).lower()
    suffix = Path(name).suffix
    if sniff.looks == "parquet" or suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".zip":
        raise UserError(f"{path}: zip archives are not read directly", hint="unzip it and pass the data file")
    _refuse_unreadable(path, sniff, None)
    if suffix == ".inter":
        return "recbole"
    if name == "u.data":
        return "udata"
    lines = sniff.lines()
    if not lines:
        raise DataError(f"{path}: file is empty")
    head = lines[0]
    if "::" in head:
        return "movielens"
    if "\t" in head and re.search(r":(token|float|token_seq|float_seq)\b", head):
        return "recbole"
    int_lines = [all(_INT_RE.match(t) for t in line.split()) for line in lines]
    integer_tokens = all(int_lines)                       # every sample line is integer tokens
    spaced = integer_tokens and any(_spaced(line) for line in lines)   # some tokens separated by spaces
    if suffix in (".csv", ".tsv"):
        fmt = suffix[1:]
        sep = "\t" if fmt == "tsv" else _sniff_sep(head)
        if integer_tokens and any(len(line.split()) > 1 for line in lines) and \
                _fitting_rows(lines, sep, integer_tokens) * 2 <= len(lines):
            return "lightgcn"
        return fmt
    if "\t" in head:
        n_udata = sum(_fits_udata(line) for line in lines)
        if int_lines[0] and _spaced(head):   # a tab *and* a space between integer tokens: LightGCN
            return "lightgcn"
        if integer_tokens:
            n_tsv = _fitting_rows(lines, "\t", True)
            if n_udata == len(lines):
                return "udata"
            if n_tsv == len(lines):
                return "tsv"
            if spaced and max(n_udata, n_tsv) * 2 <= len(lines):
                return "lightgcn"
        return "udata" if _fits_udata(head) else "tsv"
    if "," in head or ";" in head:
        return "csv"
    if int_lines[0]:
        return "lightgcn"
    if "\ufffd" in head:                      # undecodable bytes: never shown as garbage
        raise DataError(f"{path}: cannot tell the file format: its first line is not valid UTF-8 text",
                        hint=_UTF8_HINT)
    raise UserError(f"{path}: cannot tell the file format from its first line {_printable(head[:60])!r}",
                    hint=f"pass --format ({FORMAT_HELP})")


def _spaced(line: str) -> bool:
    """Whether a space separates two tokens (not just pads a tab-separated field)."""
    return any(" " in field.strip() for field in line.split("\t"))


def _fits_udata(line: str) -> bool:
    fields = line.strip("\r\n").split("\t")
    return len(fields) == 4 and all(_is_number(f) for f in fields)


def _fitting_rows(lines: list[str], sep: str, integer_tokens: bool) -> int:
    """How many lines have the first line's field count (>= 2) for ``sep``.

    With integer tokens a field holding a space does not fit (it is LightGCN's
    whitespace-separated list, not one value).
    """
    def fields(line: str) -> list[str]:
        return line.strip().split(sep) if sep != "," else next(csv.reader([line.strip()]), [])

    width = len(fields(lines[0]))
    if width < 2:
        return 0
    return sum(1 for line in lines
               if len(f := fields(line)) == width and not (integer_tokens and any(" " in x.strip() for x in f)))


def _first_line(path: Path) -> str | None:
    """The first non-blank line of a plain UTF-8 file (BOM dropped; CR, CRLF or LF ends it)."""
    with open(path, "rb") as fh:
        chunk = fh.read(_HEAD_BYTES)
    if chunk.startswith(b"\xef\xbb\xbf"):
        chunk = chunk[3:]                        # UTF-8 byte-order mark (spreadsheet exports)
    for raw in re.split(rb"\r\n|\r|\n", chunk):
        if raw.strip():
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as err:
                if len(chunk) == _HEAD_BYTES and err.reason == "unexpected end of data":   # cut by the chunk
                    return raw[:err.start].decode("utf-8")
                _raise_bad_utf8(path)
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_arrow_csv(path: Path, **options) -> pa.Table:
    """pyarrow's CSV parse of ``path`` opened as plain bytes: given a name, pyarrow would guess a codec
    from its extension (``.gz``), while compression is recognised here by content and undone before."""
    with pa.OSFile(str(path), "rb") as src:
        return pacsv.read_csv(src, **options)


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------

def read_source(path: str | Path, fmt: str = "auto", columns: Columns | None = None) -> RawData:
    """Read a file or folder into ``RawData`` (raises ``DataError`` naming file and line)."""
    fmt, files = resolve_layout(path, fmt)
    return read_files(files, fmt, columns)


def read_files(files: dict[str, Path], fmt: str, columns: Columns | None = None) -> RawData:
    """Read an explicit layout ``{role: file}`` (role ``all`` or ``train``/``valid``/``test``).

    Each file is first made plain UTF-8 text (decompressed, transcoded: see the
    module docstring); errors name the original file and never echo control characters.
    """
    columns = columns or Columns()
    if fmt in ("lightgcn", "movielens", "udata") and (columns.user or columns.item or columns.rating or columns.time):
        raise UserError(f"--user-col/--item-col/--rating-col/--time-col do not apply to the {fmt} format",
                        hint="they are for csv, tsv, recbole and parquet files")
    reader = READERS[fmt]
    parts: dict[str, Table] = {}
    inputs: dict[str, InputInfo] = {}
    with contextlib.ExitStack() as stack:
        for role, f in files.items():
            f = Path(f)
            plain = f
            try:
                plain, inputs[role] = _plain_input(f, fmt, stack)
                parts[role] = reader(plain, columns)
            except AdaptauError as exc:
                fixed = _relabel(exc, plain, f)
                if fixed is exc:
                    raise
                raise fixed from None
    _check_same_columns(parts, files)
    return RawData(parts=parts, files=files, format=fmt, inputs=inputs)


def _check_same_columns(parts: dict[str, Table], files: dict[str, Path]) -> None:
    if len(parts) < 2:
        return
    for attr in ("rating", "timestamp"):
        have = {role for role, t in parts.items() if getattr(t, attr) is not None}
        if have and have != set(parts):
            missing = sorted(set(parts) - have)
            raise DataError(f"{files[missing[0]]}: has no {attr} column while the other split files do")


# ---------------------------------------------------------------------------
# LightGCN: "user item item ..." per line
# ---------------------------------------------------------------------------

def read_lightgcn(path: Path, columns: Columns | None = None) -> Table:
    try:
        table = _read_arrow_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=["line"], block_size=1 << 22),
            parse_options=pacsv.ParseOptions(delimiter="\x1f", quote_char=False, escape_char=False,
                                              ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(column_types={"line": pa.string()}, strings_can_be_null=False),
        )
        lines = table.column("line").combine_chunks() if table.num_rows else pa.array([], pa.string())
        lists = pc.utf8_split_whitespace(lines)
        parent = pc.list_parent_indices(lists).to_numpy()
        flat = pc.list_flatten(lists)
        nonempty = pc.greater(pc.utf8_length(flat), 0)
        if not pc.all(nonempty).as_py():
            keep = nonempty.to_numpy(zero_copy_only=False)
            flat = flat.filter(nonempty)
            parent = parent[keep]
        values = pc.cast(flat, pa.int64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
        _rescan(path, _check_lightgcn_line, exc)
        raise  # pragma: no cover  (_rescan always raises)
    if values.size and values.min() < 0:
        _rescan(path, _check_lightgcn_line, None)
    first = np.ones(parent.shape[0], dtype=bool)
    first[1:] = parent[1:] != parent[:-1]
    line_user = values[first]                     # one per non-empty line, in line order
    line_index = np.cumsum(first) - 1             # for each token: which non-empty line
    is_item = ~first
    users = line_user[line_index[is_item]]
    items = values[is_item]
    return Table(user=users.astype(np.int64, copy=False), item=items.astype(np.int64, copy=False))


def _check_lightgcn_line(line: str) -> str | None:
    if "\x1f" in line:                         # the fast path's column delimiter: no text holds it
        return "contains the control character \\x1f (unit separator)"
    for token in line.split():
        problem = _check_int_token(token, "id")
        if problem:
            return problem
    return None


def _check_int_token(token: str, what: str) -> str | None:
    if token.startswith("+") and _INT_RE.match(token[1:]):
        return f"{what} {token[:40]!r} has a '+' sign (write plain digits)"
    if not _INT_RE.match(token):
        return f"non-numeric {what} {token[:40]!r} (this format needs integer ids)"
    value = int(token)
    if value < 0:
        return f"negative {what} {value}"
    if value > INT64_MAX:
        return f"{what} {token[:40]} overflows a 64-bit integer"
    return None


# ---------------------------------------------------------------------------
# MovieLens ratings.dat ("::") and u.data (tabs)
# ---------------------------------------------------------------------------

def read_movielens(path: Path, columns: Columns | None = None) -> Table:
    # Splitting on ':' turns "u::i::r::t" into 7 columns whose odd ones must be empty.
    names = [f"c{k}" for k in range(7)]
    types = {"c0": pa.int64(), "c1": pa.null(), "c2": pa.int64(), "c3": pa.null(),
             "c4": pa.float64(), "c5": pa.null(), "c6": pa.int64()}
    table = _fast_numeric(path, ":", names, types, ["c0", "c2", "c4", "c6"], _check_movielens_line)
    return _numeric_table(path, table, "c0", "c2", "c4", "c6", _check_movielens_line)


def _check_movielens_line(line: str) -> str | None:
    if problem := _control_character(line):
        return problem
    fields = line.rstrip("\r\n").split("::")
    if len(fields) != 4:
        return f"expected 4 fields 'user::item::rating::timestamp', got {len(fields)}"
    return _check_urt(fields)


def read_udata(path: Path, columns: Columns | None = None) -> Table:
    names = ["user", "item", "rating", "timestamp"]
    types = {"user": pa.int64(), "item": pa.int64(), "rating": pa.float64(), "timestamp": pa.int64()}
    table = _fast_numeric(path, "\t", names, types, names, _check_udata_line)
    return _numeric_table(path, table, "user", "item", "rating", "timestamp", _check_udata_line)


def _check_udata_line(line: str) -> str | None:
    if problem := _control_character(line):
        return problem
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != 4:
        return f"expected 4 tab-separated fields 'user item rating timestamp', got {len(fields)}"
    return _check_urt(fields)


def _control_character(line: str) -> str | None:
    """A control character in a line (pyarrow refuses it in a number, Python's strip() would drop it)."""
    found = _CONTROL_RE.search(line.rstrip("\r\n"))
    return f"contains the control character {repr(found.group())[1:-1]}" if found else None


def _check_urt(fields: list[str]) -> str | None:
    # pyarrow trims spaces and tabs around a number, nothing else
    for token, what in ((fields[0], "user id"), (fields[1], "item id")):
        problem = _check_int_token(token.strip(" \t"), what)
        if problem:
            return problem
    problem = _check_rating_token(fields[2].strip(" \t"))
    if problem:
        return problem
    if not _INT_RE.match(fields[3].strip(" \t")):
        return f"unreadable timestamp {fields[3][:40]!r} (expected integer seconds)"
    return None


def _check_rating_token(token: str) -> str | None:
    if not token:
        return "missing rating (an empty field)"
    if not _FLOAT_RE.match(token):
        return f"unreadable rating {token[:40]!r}"
    value = float(token)
    if not math.isfinite(value):
        return f"rating is {token} (NaN/inf ratings are not allowed)"
    return None


def _fast_numeric(path: Path, delimiter: str, names: list[str], types: dict, include: list[str],
                  check_line: Callable[[str], str | None]) -> pa.Table:
    try:
        return _read_arrow_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 22),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char=False, escape_char=False,
                                              ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(column_types=types, include_columns=list(types)),
        ).select(include)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
        _rescan(path, check_line, exc)
        raise  # pragma: no cover


def _numeric_table(path: Path, table: pa.Table, u: str, i: str, r: str, t: str,
                   check_line: Callable[[str], str | None]) -> Table:
    cols = {}
    for name in (u, i, r, t):
        col = table.column(name)
        if col.null_count:
            _rescan(path, check_line, None)
        cols[name] = col.to_numpy()
    bad = (cols[u] < 0).any() or (cols[i] < 0).any() or not np.isfinite(cols[r]).all()
    if bad:
        _rescan(path, check_line, None)
    return Table(user=cols[u], item=cols[i], rating=cols[r].astype(np.float64), timestamp=cols[t])


# ---------------------------------------------------------------------------
# CSV / TSV / RecBole .inter / parquet: named columns, ids of any type
# ---------------------------------------------------------------------------

def read_csv(path: Path, columns: Columns | None = None, *, default_sep: str | None = None) -> Table:
    columns = columns or Columns()
    head = _first_line(path) or ""
    sep = columns.sep or default_sep or _sniff_sep(head)
    if sep in ("\\t", "tab"):
        sep = "\t"
    if len(sep) != 1:
        raise UserError(f"--sep must be one character, got {sep!r}")
    header_fields = next(csv.reader([head], delimiter=sep)) if head else []
    header_fields = [f.strip() for f in header_fields]
    has_header = _looks_like_header(header_fields, columns)
    names = header_fields if has_header else [str(k) for k in range(len(header_fields))]
    if has_header and len(set(names)) != len(names):
        raise DataError(f"{path}:1: duplicate column names in the header {names}")
    chosen = _choose_columns(path, names, columns, has_header)
    return _read_named(path, sep, names, has_header, chosen, kind="csv", time_format=columns.time_format)


def read_tsv(path: Path, columns: Columns | None = None) -> Table:
    return read_csv(path, columns, default_sep="\t")


def read_recbole(path: Path, columns: Columns | None = None) -> Table:
    """RecBole atomic files: tab-separated, header ``name:type`` (token, float, token_seq, float_seq)."""
    columns = columns or Columns()
    head = _first_line(path) or ""
    fields = [f.strip() for f in head.split("\t")]
    names, kinds = [], {}
    for f in fields:
        if ":" not in f:
            raise DataError(f"{path}:1: RecBole header field {f!r} has no ':type'",
                            hint="atomic files start with e.g. 'user_id:token<TAB>item_id:token'")
        base, kind = f.rsplit(":", 1)
        if kind not in ("token", "float", "token_seq", "float_seq"):
            raise DataError(f"{path}:1: unknown RecBole field type {kind!r} in {f!r}")
        names.append(base)
        kinds[base] = kind
    chosen = _choose_columns(path, names, columns, True)
    for role in ("user", "item"):
        if kinds[chosen[role]] != "token":
            raise DataError(f"{path}:1: the {role} field {chosen[role]!r} is {kinds[chosen[role]]}, not a token")
    for role in ("rating", "time"):
        if chosen.get(role) and kinds[chosen[role]] != "float":
            raise DataError(f"{path}:1: the {role} field {chosen[role]!r} is {kinds[chosen[role]]}, not a float")
    return _read_named(path, "\t", names, True, chosen, kind="recbole", time_format=columns.time_format)


def read_parquet(path: Path, columns: Columns | None = None) -> Table:
    import pyarrow.parquet as pq

    columns = columns or Columns()
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a readable parquet file ({exc})") from None
    chosen = _choose_columns(path, list(schema.names), columns, True)
    wanted = [c for c in (chosen["user"], chosen["item"], chosen.get("rating"), chosen.get("time")) if c]
    try:
        table = pq.read_table(path, columns=wanted)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: cannot read parquet columns {wanted} ({exc})") from None
    where = lambda row: f"{path}: row {row + 1}"  # noqa: E731
    return _table_from_arrow(table, chosen, where, str(path), columns.time_format)


def _sniff_sep(head: str) -> str:
    counts = {s: head.count(s) for s in (",", "\t", ";", "|")}
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] else ","


def _looks_like_header(fields: list[str], columns: Columns) -> bool:
    """A first line is a header if it names a given column, or is not all numbers.

    Exception: when every column flag is a position (``--user-col 0``) and no
    field of the first line is a familiar column name, the file is taken as
    headerless even with string ids (``alice,book1,5``).
    """
    given = {c for c in (columns.user, columns.item, columns.rating, columns.time) if c}
    if given & set(fields):
        return True
    if all(_is_number(f) for f in fields if f != ""):
        return False
    known = {c.split(":")[0] for c in USER_CANDIDATES + ITEM_CANDIDATES + RATING_CANDIDATES + TIME_CANDIDATES}
    if given and all(c.isdigit() for c in given) and not ({f.lower() for f in fields} & known):
        return False
    return True


def _choose_columns(path: Path, names: list[str], columns: Columns, has_header: bool) -> dict[str, str | None]:
    """Map roles (user, item, rating, time) to column names, by flag, by common name, or by position."""
    lower = {n.lower().split(":")[0]: n for n in names}
    chosen: dict[str, str | None] = {}
    for role, flag, candidates in (("user", columns.user, USER_CANDIDATES), ("item", columns.item, ITEM_CANDIDATES),
                                   ("rating", columns.rating, RATING_CANDIDATES),
                                   ("time", columns.time, TIME_CANDIDATES)):
        if flag:
            if flag in names:
                chosen[role] = flag
            elif flag.lower() in lower:
                chosen[role] = lower[flag.lower()]
            elif flag.isdigit() and int(flag) < len(names):
                chosen[role] = names[int(flag)]
            else:
                raise UserError(f"{path}: no column {flag!r} for --{role}-col",
                                hint=f"columns are: {', '.join(names[:20])}")
            continue
        if has_header:
            chosen[role] = next((lower[c] for c in candidates if c in lower), None)
        else:
            # No header: user, item by position; rating and timestamp only for 3-4 columns.
            position = {"user": 0, "item": 1, "rating": 2, "time": 3}[role]
            usable = position < 2 or len(names) <= 4
            chosen[role] = names[position] if usable and position < len(names) else None
    for role in ("user", "item"):
        if not chosen.get(role):
            raise UserError(f"{path}: cannot find the {role} column (columns: {', '.join(names[:20])})",
                            hint=f"pass --{role}-col NAME")
    used = [c for c in chosen.values() if c]
    if len(set(used)) != len(used):
        raise UserError(f"{path}: the same column is used for two roles ({chosen})",
                        hint="check --user-col/--item-col/--rating-col/--time-col")
    return chosen


_NULL_VALUES = ("", "NA", "N/A", "NULL", "null", "None")   # missing values in csv/tsv/.inter fields


def _read_named(path: Path, sep: str, names: list[str], has_header: bool, chosen: dict[str, str | None],
                kind: str, time_format: str | None = None) -> Table:
    wanted = {chosen["user"]: pa.string(), chosen["item"]: pa.string()}
    if chosen.get("rating"):
        wanted[chosen["rating"]] = pa.float64()
    if chosen.get("time"):
        # inferred (integers, floats, ISO dates) unless a format is given: then parsed here, as text
        wanted[chosen["time"]] = pa.string() if time_format else None
    quote = '"' if kind == "csv" else False
    try:
        table = _read_arrow_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1 if has_header else 0,
                                           block_size=1 << 22),
            parse_options=pacsv.ParseOptions(delimiter=sep, quote_char=quote, ignore_empty_lines=True,
                                             newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={k: v for k, v in wanted.items() if v is not None},
                include_columns=list(wanted), strings_can_be_null=True,
                null_values=list(_NULL_VALUES)),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
        _rescan_delimited(path, sep, quote, len(names), has_header, chosen, names, exc)
        raise  # pragma: no cover

    def where(row: int) -> str:
        return f"{path}:{_line_of_record(path, sep, quote, row, has_header)}"

    if any(pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type) for f in table.schema):
        _raise_bad_utf8(path)                  # an inferred column that is not text: invalid UTF-8
    _refuse_broken_text(table, chosen, where, quote)
    return _table_from_arrow(table, chosen, where, str(path), time_format)


def _refuse_broken_text(table: pa.Table, chosen: dict[str, str | None], where: Callable[[int], str],
                        quote) -> None:
    """Ids (and date strings) holding a line break or a control character, named by their line.

    A line break comes from a quote left open: pyarrow reads the field on to the
    closing quote or the end of the file, swallowing the lines between; the line
    where the quote was opened is named. A control character (a NUL, ...) is
    corruption that would otherwise become part of an id. One vectorized regex
    pass per string column; numeric columns with either already failed to convert.
    """
    for role in ("user", "item", "time"):
        if not chosen.get(role):
            continue
        col = table.column(chosen[role])
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            continue
        if not _has_control_bytes(col):
            continue
        broken = pc.match_substring_regex(col, "[\\x00-\\x08\\x0a-\\x1f\\x7f]")
        if not pc.any(broken).as_py():
            continue
        flags = broken.combine_chunks().fill_null(False).to_numpy(zero_copy_only=False)
        row = int(np.flatnonzero(flags)[0])
        value = str(col[row].as_py())
        what = f"the {role} {'id' if role != 'time' else 'value'}"
        if quote and ("\n" in value or "\r" in value):
            raise DataError(f"{where(row)}: unclosed quote: the {quote!r} opened on this line is not closed on it "
                            f"({what} runs on over the following lines)",
                            hint="close the quote, or remove the stray quote character")
        found = _CONTROL_RE.search(value)
        char = repr(found.group())[1:-1] if found else repr(value)[1:-1][:40]
        raise DataError(f"{where(row)}: {what} contains the control character {char}",
                        hint="fix or remove that line")


def _has_control_bytes(col: pa.ChunkedArray) -> bool:
    """Whether the bytes of a string column hold a control character (tab aside): numpy over its
    data buffers, ~2 ms per 10 MB (a sliced chunk may also show its neighbours' bytes: then the
    caller's exact regex pass decides)."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    for chunk in chunks:
        buffers = chunk.buffers()
        if len(buffers) < 3 or buffers[2] is None or buffers[2].size == 0:
            continue
        data = np.frombuffer(buffers[2], dtype=np.uint8)
        if np.count_nonzero(data < 32) != np.count_nonzero(data == 9) or (data == 127).any():
            return True
    return False


def _table_from_arrow(table: pa.Table, chosen: dict[str, str | None], where: Callable[[int], str],
                      label: str, time_format: str | None = None) -> Table:
    """Validate and convert arrow columns; ``where(row)`` names the place of a bad row."""
    user = _ids(table.column(chosen["user"]), "user id", where)
    item = _ids(table.column(chosen["item"]), "item id", where)
    rating = None
    if chosen.get("rating"):
        col = table.column(chosen["rating"])
        if not pa.types.is_floating(col.type) and not pa.types.is_integer(col.type):
            raise DataError(f"{label}: rating column {chosen['rating']!r} is not numeric ({col.type})",
                            hint="pick another column with --rating-col")
        rating = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
        finite = np.isfinite(rating)
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0])
            raise DataError(f"{where(row)}: rating is missing, NaN or infinite",
                            hint="fix or drop that line; ratings must be finite numbers")
    timestamp = None
    if chosen.get("time"):
        timestamp = _timestamps(table.column(chosen["time"]), where, time_format)
    return Table(user=user, item=item, rating=rating, timestamp=timestamp)


def _ids(col: pa.ChunkedArray, what: str, where: Callable[[int], str]) -> np.ndarray:
    """Ids as int64 (when every value is a plain non-negative integer) or as str objects."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if col.null_count:
        row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{where(row)}: missing {what}")
    t = col.type
    if pa.types.is_integer(t):
        if pa.types.is_uint64(t):
            values = _uint64_ids(col, what, where)
        else:
            values = col.to_numpy().astype(np.int64, copy=False)
        return _non_negative(values, what, where)
    if pa.types.is_floating(t):
        values = col.to_numpy()
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{where(row)}: {what} {values[row]!r} is not an integer")
        return _non_negative(values.astype(np.int64), what, where)
    if pa.types.is_dictionary(t):
        col = col.dictionary_decode()
        t = col.type
    if pa.types.is_nested(t):
        raise DataError(f"{where(0)}: the {what} column holds {t} values, not one id per row",
                        hint="explode it to one (user, item) pair per row first, e.g. pandas' "
                             "df.explode(column), or choose another column")
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        try:
            col = pc.cast(col, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise DataError(f"{where(0)}: the {what} column holds {t} values, which are not ids",
                            hint="choose another column (ids are integers or strings)") from None
    col = pc.utf8_trim_whitespace(col)
    empty = pc.equal(pc.utf8_length(col), 0)
    if pc.any(empty).as_py():
        row = int(np.flatnonzero(empty.to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{where(row)}: missing {what}")
    try:
        as_int = pc.cast(col, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        as_int = None
    if as_int is not None and pc.all(pc.equal(pc.cast(as_int, pa.string()), col)).as_py():
        return _non_negative(as_int.to_numpy(), what, where)
    return col.to_numpy(zero_copy_only=False).astype(object)


def _uint64_ids(col: pa.Array, what: str, where: Callable[[int], str]) -> np.ndarray:
    values = col.to_numpy()
    if values.size and values.max() > INT64_MAX:
        row = int(np.flatnonzero(values > INT64_MAX)[0])
        raise DataError(f"{where(row)}: {what} {values[row]} overflows a 64-bit integer")
    return values.astype(np.int64)


def _non_negative(values: np.ndarray, what: str, where: Callable[[int], str]) -> np.ndarray:
    if values.size and values.min() < 0:
        row = int(np.flatnonzero(values < 0)[0])
        raise DataError(f"{where(row)}: negative {what} {values[row]}",
                        hint="ids must be non-negative integers or non-numeric strings")
    return values


def _timestamps(col: pa.ChunkedArray, where: Callable[[int], str], time_format: str | None = None) -> np.ndarray:
    """Timestamps as int64 seconds (or float64 when fractional); date strings are parsed.

    Dates are converted by their unit, never by an assumed resolution: pandas 2
    parses to nanoseconds, pandas 3 to microseconds (or seconds), and arrow
    timestamps carry their own unit (``datetime_seconds``).
    """
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if col.null_count:
        row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{where(row)}: missing timestamp")
    t = col.type
    if time_format and not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        col, t = pc.cast(col, pa.string()), pa.string()
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        secs = pc.cast(col, pa.timestamp("s"), safe=False)
        return pc.cast(secs, pa.int64()).to_numpy()
    if pa.types.is_integer(t):
        return col.to_numpy().astype(np.int64, copy=False)
    if pa.types.is_floating(t):
        values = col.to_numpy()
        if not np.isfinite(values).all():
            row = int(np.flatnonzero(~np.isfinite(values))[0])
            raise DataError(f"{where(row)}: timestamp is NaN or infinite")
        if (values == np.round(values)).all() and np.abs(values).max(initial=0) < 2 ** 62:
            return values.astype(np.int64)
        return values.astype(np.float64)
    return _date_strings(col.to_numpy(zero_copy_only=False), where, time_format)


# A numeric date whose first two fields may be day and month in either order: 01/02/2020, 1.2.20, 01-02-2020
_NUMERIC_DATE = re.compile(r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-]\d{2,4}\b")
_ISO_HINT = "use Unix seconds, ISO dates such as 2020-01-31 12:00:00, or --time-format"


def _date_strings(texts: np.ndarray, where: Callable[[int], str], time_format: str | None) -> np.ndarray:
    """Parse date strings: with ``time_format`` strictly, else ISO / inferred, refusing a day-month ambiguity."""
    import pandas as pd

    series = pd.Series(texts, dtype=object)
    if time_format:
        kwargs: dict = {"format": time_format}
        hint = f"check --time-format {time_format!r} (strftime codes such as %d/%m/%Y %H:%M:%S)"
    else:
        kwargs = {"format": "mixed", "dayfirst": _day_first(texts, where)}
        hint = _ISO_HINT
    try:
        parsed = pd.to_datetime(series, utc=True, **kwargs)
    except (ValueError, TypeError, OverflowError):
        parsed = pd.to_datetime(series, utc=True, errors="coerce", **kwargs)
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0]) if parsed.isna().any() else 0
        raise DataError(f"{where(row)}: unreadable timestamp {str(texts[row])[:60]!r}", hint=hint) from None
    return datetime_seconds(parsed)


def _day_first(texts: np.ndarray, where: Callable[[int], str]) -> bool:
    """Whether numeric dates such as 03/04/2020 are day-first, decided by the values themselves.

    A field above 12 can only be a day. When no value decides (every first and
    second field is <= 12) the column is ambiguous and we refuse rather than
    guess: reading it the wrong way round reorders events and changes
    temporal and leave-one-out splits without a word.
    """
    first_day = second_day = None
    ambiguous_row = None
    for row, text in enumerate(texts):
        match = _NUMERIC_DATE.match(str(text))
        if not match:
            continue
        a, b = int(match.group(1)), int(match.group(2))
        if a > 12 and first_day is None:
            first_day = row
        elif b > 12 and second_day is None:
            second_day = row
        elif ambiguous_row is None:
            ambiguous_row = row
    if first_day is not None and second_day is not None:
        later = max(first_day, second_day)
        raise DataError(f"{where(later)}: timestamp {str(texts[later])[:60]!r} puts the day second while "
                        f"{where(min(first_day, second_day))} puts it first",
                        hint="make the dates consistent or pass --time-format")
    if first_day is not None:
        return True
    if second_day is not None or ambiguous_row is None:
        return False
    raise DataError(f"{where(ambiguous_row)}: timestamp {str(texts[ambiguous_row])[:60]!r} could be day/month or "
                    "month/day, and no value in the column decides",
                    hint="pass --time-format '%d/%m/%Y %H:%M:%S' (day first) or '%m/%d/%Y %H:%M:%S' (month first)")


def datetime_seconds(parsed) -> np.ndarray:
    """Seconds since the Unix epoch of a tz-aware pandas datetime Series, whatever its resolution.

    int64 when every value is a whole second, float64 otherwise (as numeric timestamps).
    """
    import pandas as pd

    unit = getattr(parsed.dt, "unit", "ns")
    # epoch and second in the values' own unit: mixing in nanoseconds would overflow for dates
    # before 1677 or after 2262 (which pandas 3 and arrow's second/microsecond units can hold)
    delta = parsed - pd.Timestamp(0, tz="UTC").as_unit(unit)
    second = pd.Timedelta(seconds=1).as_unit(unit)
    whole = (delta // second).to_numpy(dtype=np.int64)
    rest = (delta % second).to_numpy()
    if (rest == np.timedelta64(0)).all():
        return whole
    return whole.astype(np.float64) + rest / np.timedelta64(1, "s")


# ---------------------------------------------------------------------------
# Slow paths: only run when the fast parse failed, to name the line
# ---------------------------------------------------------------------------
#
# Lines are split as universal newlines (LF, CRLF and a bare CR), as pyarrow's
# parser does, so a line number here is the line pyarrow read.

_UTF8_HINT = "save the file as UTF-8 (it may be Latin-1 or Windows-1252 text)"


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8-sig", errors="strict", newline=None) as fh:
        try:
            yield from enumerate(fh, start=1)
        except UnicodeDecodeError:
            _raise_bad_utf8(path)


def _raise_bad_utf8(path: Path):
    """A DataError naming the line and byte of the first invalid UTF-8 sequence.

    (A text-mode reader fails when it decodes a whole buffer, lines before the bad
    byte; so the place is found again on the bytes, a chunk at a time.)
    """
    line, carry, last_cr = 1, b"", False
    with open(path, "rb") as fh:
        while True:
            data = fh.read(_SCAN_CHUNK)
            buf = carry + data
            if not buf:
                break
            try:
                buf.decode("utf-8")
                good, bad, carry = len(buf), None, b""
            except UnicodeDecodeError as err:
                if data and err.reason == "unexpected end of data":     # a sequence cut by the chunk
                    good, bad, carry = err.start, None, buf[err.start:]
                else:
                    good, bad = err.start, err.start
            done = buf[:good]
            line += done.count(b"\n") + done.count(b"\r") - done.count(b"\r\n")
            if last_cr and done[:1] == b"\n":
                line -= 1
            last_cr = done[-1:] == b"\r" if done else last_cr
            if bad is not None:
                raise DataError(f"{path}:{line}: not valid UTF-8 text (byte 0x{buf[bad]:02x})", hint=_UTF8_HINT)
            if not data:
                break
    raise DataError(f"{path}: not valid UTF-8 text", hint=_UTF8_HINT)


def _rescan(path: Path, check_line: Callable[[str], str | None], exc: Exception | None):
    """Find the first bad line of a line-oriented file and raise a DataError naming it."""
    for lineno, line in _iter_lines(path):
        if not line.strip("\r\n"):                 # empty lines are skipped (pyarrow: ignore_empty_lines)
            continue
        problem = check_line(line)
        if problem:
            raise DataError(f"{path}:{lineno}: {problem}", hint="fix or remove that line")
    detail = f" ({str(exc).splitlines()[0][:200]})" if exc and str(exc) else ""
    raise DataError(f"{path}: could not parse the file{detail}")


def _csv_records(fh, sep: str, quote) -> Iterator[tuple[int, int, list[str]]]:
    """``(first line, last line, fields)`` of each record; a record runs over several lines only
    when a quote opened on its first line is not closed there."""
    reader = csv.reader(fh, delimiter=sep, quotechar=quote or '"',
                        quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE)
    end = 0
    for record in reader:
        start, end = end + 1, reader.line_num
        yield start, end, record


def _rescan_delimited(path: Path, sep: str, quote, n_fields: int, has_header: bool,
                      chosen: dict[str, str | None], names: list[str], exc: Exception):
    """Find the first record with a wrong field count or an unreadable rating.

    A record with the wrong field count that runs over several lines is blamed
    on the line where its quote was opened (the unclosed quote is the mistake,
    not the field count of the line where the runaway field happens to end).
    """
    rating_at = names.index(chosen["rating"]) if chosen.get("rating") else None
    with open(path, encoding="utf-8-sig", errors="strict", newline="") as fh:
        records = _csv_records(fh, sep, quote)
        lineno = 0
        try:
            for start, end, record in records:
                lineno = start
                if has_header and start == 1:
                    if end > start:             # the header's quote swallowed the lines below it
                        raise DataError(f"{path}:1: unclosed quote in the header: the {quote!r} opened on "
                                        "this line is not closed on it",
                                        hint="close the quote, or remove the stray quote character")
                    continue
                if not record:
                    continue
                if len(record) != n_fields:
                    if end > start:
                        at_end = next(records, None) is None
                        raise DataError(f"{path}:{start}: unclosed quote: the {quote!r} opened on this line is "
                                        f"not closed on it (the field runs on to "
                                        f"{'the end of the file' if at_end else f'line {end}'})",
                                        hint="close the quote, or remove the stray quote character")
                    got = "a line of only spaces" if len(record) == 1 and not record[0].strip() else len(record)
                    raise DataError(f"{path}:{start}: expected {n_fields} fields separated by {sep!r}, got {got}",
                                    hint="fix or remove that line, or check --sep")
                if rating_at is not None and record[rating_at] not in _NULL_VALUES:   # as pyarrow: exact match
                    problem = _check_rating_token(record[rating_at].strip(" \t"))
                    if problem:
                        raise DataError(f"{path}:{start}: {problem}")
        except UnicodeDecodeError:
            _raise_bad_utf8(path)
        except csv.Error as err:
            raise DataError(f"{path}:{lineno}: {err}") from None
    raise DataError(f"{path}: could not parse the file ({str(exc).splitlines()[0][:200]})")


def _line_of_record(path: Path, sep: str, quote, row: int, has_header: bool) -> int:
    """The 1-based line where data record ``row`` (0-based, empty lines skipped) starts."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        seen = -1
        try:
            for start, _end, record in _csv_records(fh, sep, quote):
                if (has_header and start == 1) or not record:
                    continue
                seen += 1
                if seen == row:
                    return start
        except csv.Error:                     # e.g. a field over csv's size limit: fall back to a count
            pass
    return row + 1 + int(has_header)


READERS: dict[str, Callable[[Path, Columns], Table]] = {
    "lightgcn": read_lightgcn,
    "csv": read_csv,
    "tsv": read_tsv,
    "recbole": read_recbole,
    "movielens": read_movielens,
    "udata": read_udata,
    "parquet": read_parquet,
}
