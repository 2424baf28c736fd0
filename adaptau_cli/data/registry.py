"""Known public datasets: where their files live, how to check them, how to fetch them.

A registry entry lists the canonical public URL of each file with its size and
checksum (sha256 where known, md5 where that is all the publisher gives). A
download streams into ``<store>/downloads/<name>/<file>.part`` with a progress
bar, is verified, and only then renamed into place; a checksum mismatch deletes
the partial file and fails with one line. Machines without internet point
``--mirror DIR`` (or ``ADAPTAU_MIRROR``) at a folder holding the same files,
either as ``DIR/<name>/<file>`` or ``DIR/<file>``; mirrored files are verified
and read in place. ``file://`` URLs work like any other URL.

Archives (the GroupLens zips) are unpacked: only the ratings member is
extracted, next to the archive, atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from adaptau_cli.base.errors import DataError, UserError
from adaptau_cli.base.files import atomic_path
from adaptau_cli.data.store import ensure_writable, path_error

USER_AGENT = "adaptau (https://github.com/adaptau; dataset download)"
# OSErrors of writing the download cache (not of the network): reported as the cache folder's problem
_LOCAL_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC)}


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    name: str                        # file name in the cache and in a mirror
    urls: tuple[str, ...]            # tried in order
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None          # bytes, when published
    member: str | None = None        # for a zip: the member to extract (saved under its base name)

    @property
    def checksum(self) -> tuple[str, str]:
        if self.sha256:
            return "sha256", self.sha256
        if self.md5:
            return "md5", self.md5
        raise ValueError(f"registry file {self.name} has no checksum")  # pragma: no cover


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    description: str
    kind: str                        # "download" | "synthetic"
    format: str | None = None        # reader format of the (extracted) files
    files: tuple[RemoteFile, ...] = ()
    homepage: str | None = None
    stats: str | None = None         # published size, for the listing


GROUPLENS = "https://files.grouplens.org/datasets/movielens"
LIGHTGCN = "https://raw.githubusercontent.com/kuandeng/LightGCN/master/Data"
LIGHTGCN_PT = "https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/master/data"


def _lightgcn(name: str, train: dict, test: dict, stats: str) -> Entry:
    files = tuple(
        RemoteFile(name=f"{part}.txt", urls=(f"{LIGHTGCN}/{name}/{part}.txt", f"{LIGHTGCN_PT}/{name}/{part}.txt"),
                   **meta)
        for part, meta in (("train", train), ("test", test)))
    return Entry(name=name, kind="download", format="lightgcn", files=files,
                 description=f"{name}: the standard LightGCN train/test split (implicit feedback)",
                 homepage="https://github.com/kuandeng/LightGCN", stats=stats)


REGISTRY: dict[str, Entry] = {
    "ml-100k": Entry(
        name="ml-100k", kind="download", format="udata",
        description="MovieLens 100K (GroupLens): 943 users, 1,682 movies, 100,000 ratings 1-5 with timestamps",
        files=(RemoteFile(name="ml-100k.zip", urls=(f"{GROUPLENS}/ml-100k.zip",),
                          md5="0e33842e24a9c977be4e0107933c0723", member="ml-100k/u.data"),),
        homepage="https://grouplens.org/datasets/movielens/100k/", stats="943 users / 1,682 items / 100,000 ratings"),
    "ml-1m": Entry(
        name="ml-1m", kind="download", format="movielens",
        description="MovieLens 1M (GroupLens): 6,040 users, 3,706 movies, 1,000,209 ratings 1-5 with timestamps",
        files=(RemoteFile(name="ml-1m.zip", urls=(f"{GROUPLENS}/ml-1m.zip",),
                          sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
                          md5="c4d9eecfca2ab87c1945afe126590906", member="ml-1m/ratings.dat"),),
        homepage="https://grouplens.org/datasets/movielens/1m/", stats="6,040 users / 3,706 items / 1,000,209 ratings"),
    "gowalla": _lightgcn(
        "gowalla",
        dict(size=4_633_414, sha256="7244696fdeb23911319cf7b689f2e15a3c4c92549c873a5677b44e3f13cc3e62"),
        dict(size=1_372_559, sha256="099a2a73924e4b754dc6efd730d764f492321b53c38eb93298850c83acf57be3"),
        "29,858 users / 40,981 items / 810,128 + 217,242 pairs"),
    "yelp2018": _lightgcn(
        "yelp2018",
        dict(size=6_904_880, sha256="1e9568725a9e833d0ac3bae01c94cd95367f73b3bb6104fd26b5f65ea5054093"),
        dict(size=1_986_152, sha256="9cd9b37926cd1447a06625ffa7914527573fb097c10cb0bbdb1d1b8ded3742fe"),
        "31,668 users / 38,048 items / 1,237,259 + 324,147 pairs"),
    "amazon-book": _lightgcn(
        "amazon-book",
        dict(size=14_125_691, md5="c916ecac04ca72300a016228258b41ed"),
        dict(size=3_848_611, sha256="6250754994dd953b91b48dccdd77a73f318e0634b4757c2abfcc9d33a54ab0f5"),
        "52,643 users / 91,599 items / 2,380,730 + 603,378 pairs"),
    "synthetic": Entry(
        name="synthetic", kind="synthetic",
        description="built-in long-tailed sample (2,500 users, 1,500 items, ~125k interactions); trains in ~1 min",
        stats="2,500 users / 1,500 items / ~125,000 interactions"),
    "synthetic-tiny": Entry(
        name="synthetic-tiny", kind="synthetic",
        description="built-in tiny sample (300 users, 200 items, ~6k interactions) for fast end-to-end tests",
        stats="300 users / 200 items / ~6,000 interactions"),
    "synthetic-amazon-book": Entry(
        name="synthetic-amazon-book", kind="synthetic",
        description="generated at Amazon-Book's shape and long tail, for scale benchmarks (about 6 s to generate)",
        stats="52,643 users / 91,599 items / ~2,986,000 interactions"),
}


def get_entry(name: str) -> Entry:
    key = name.strip().lower()
    if key not in REGISTRY:
        raise UserError(f"unknown dataset {name!r}",
                        hint=f"known: {', '.join(REGISTRY)}; or pass your own data with --source PATH")
    return REGISTRY[key]


def downloads_dir(root: Path, name: str) -> Path:
    return Path(root) / "downloads" / name


def file_digest(path: Path, algorithm: str, chunk: int = 1 << 20) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def mismatch(path: Path, rf: RemoteFile) -> str | None:
    """Why ``path`` is not the registry's file (size or checksum), or None when it is."""
    algorithm, expected = rf.checksum
    size = path.stat().st_size
    if rf.size is not None and size != rf.size:
        return f"size {size:,} bytes, expected {rf.size:,}"
    actual = file_digest(path, algorithm)
    if actual != expected:
        return f"{algorithm} {actual}, expected {expected}"
    return None


def verify(path: Path, rf: RemoteFile) -> None:
    """Raise DataError unless ``path`` has the registry checksum (and size, when known)."""
    problem = mismatch(path, rf)
    if problem:
        raise DataError(f"{path} is not the registry's {rf.name}: {problem}",
                        hint="replace it with a good copy")


def ensure_files(entry: Entry, root: Path, mirror: str | os.PathLike | None = None,
                 quiet: bool = True) -> list[Path]:
    """Paths of the entry's data files (extracted members for archives), fetching what is missing."""
    mirror = mirror or os.environ.get("ADAPTAU_MIRROR") or None
    out = []
    for rf in entry.files:
        archive = _ensure_file(entry, rf, root, mirror, quiet)
        out.append(_extract(archive, rf, downloads_dir(root, entry.name)) if rf.member else archive)
    return out


def _ensure_file(entry: Entry, rf: RemoteFile, root: Path, mirror, quiet: bool) -> Path:
    if mirror:
        mdir = Path(mirror).expanduser()
        if not mdir.is_dir():
            raise UserError(f"mirror folder not found: {mdir}", hint="check --mirror or ADAPTAU_MIRROR")
        for candidate in (mdir / entry.name / rf.name, mdir / rf.name):
            if candidate.is_file():
                verify(candidate, rf)
                return candidate
        raise UserError(f"{rf.name} for {entry.name} is not in the mirror {mdir}",
                        hint=f"put it at {mdir / entry.name / rf.name}")
    dest = downloads_dir(root, entry.name) / rf.name
    if dest.is_file():
        return dest                      # verified when it was downloaded (rename happens only after)
    ensure_writable(dest.parent, "the download cache")     # one line naming the folder, before any download
    return download(rf, dest, quiet=quiet, label=entry.name)


def download(rf: RemoteFile, dest: Path, quiet: bool = True, label: str | None = None) -> Path:
    """Fetch ``rf`` into ``dest`` (trying each URL), verify it, rename into place.

    The bytes go to ``dest.part``; on a checksum mismatch or any failure the
    partial file is deleted, so the cache only ever holds verified files.
    """
    from rich.progress import DownloadColumn, TransferSpeedColumn

    from adaptau_cli.base.console import make_progress

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    errors = []
    for url in rf.urls:
        try:
            with contextlib.ExitStack() as stack:
                stack.callback(_unlink_quietly, part)
                request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
                response = stack.enter_context(urllib.request.urlopen(request, timeout=60))
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else rf.size
                progress = stack.enter_context(make_progress(quiet, DownloadColumn(), TransferSpeedColumn()))
                task = progress.add_task(f"download {label or ''} {rf.name}".strip(), total=total)
                with open(part, "wb") as fh:
                    while block := response.read(1 << 18):
                        fh.write(block)
                        progress.advance(task, len(block))
                    fh.flush()
                    os.fsync(fh.fileno())
                problem = mismatch(part, rf)
                if problem:
                    raise DataError(f"download of {url} failed verification ({problem}); the file was deleted",
                                    hint="retry later, or use --mirror DIR with a known-good copy")
                os.replace(part, dest)
                return dest
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            if isinstance(exc, OSError) and not isinstance(exc, urllib.error.URLError) and exc.errno in _LOCAL_ERRNOS:
                raise path_error(exc, dest.parent, "the download cache") from None   # the disk, not the network
            reason = f"HTTP {exc.code} {exc.reason}" if isinstance(exc, urllib.error.HTTPError) else \
                getattr(exc, "reason", exc)
            errors.append(f"{url}: {reason}")
    raise UserError(f"could not download {rf.name} ({'; '.join(errors)})",
                    hint="check the connection, or point --mirror / ADAPTAU_MIRROR at a folder with the files")


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _extract(archive: Path, rf: RemoteFile, folder: Path) -> Path:
    """Extract ``rf.member`` from a verified zip once, atomically, into ``folder``."""
    dest = folder / Path(rf.member).name
    if dest.is_file():
        return dest
    try:
        with zipfile.ZipFile(archive) as zf, atomic_path(dest) as tmp:
            with zf.open(rf.member) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"{archive}: cannot extract {rf.member} ({exc})") from None
    except OSError as exc:
        raise path_error(exc, folder, "the download cache") from None
    return dest


def cached_downloads(root: Path) -> dict[str, list[str]]:
    """Registry names with files already in the download cache."""
    out = {}
    base = Path(root) / "downloads"
    if base.is_dir():
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.endswith(".part"))
            if names:
                out[folder.name] = names
    return out
