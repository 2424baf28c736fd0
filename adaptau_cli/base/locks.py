"""One writer at a time, and clean-up on SIGTERM: the two guards of a build that must leave nothing behind.

``exclusive_lock(path, what)`` holds an exclusive advisory lock (``fcntl.flock``)
on a small lock file while a block runs; the file holds the holder's pid, so a
second process that finds it busy (after waiting up to ``wait`` seconds) is
told in one line who holds it::

    with exclusive_lock(folder.parent / f".{folder.name}.lock", f"dataset store entry {folder}"):
        ...build folder...

The operating system releases the lock when its process dies, however it dies
(even ``kill -9``), so a lock file left by a dead process is simply taken over.
On release the lock file is removed. Removing a lock file is safe because every
acquirer checks, once it holds the lock, that the path still names the file it
locked (and starts over if not). Locks are advisory: only code that uses this
helper is kept out. On a system without ``fcntl`` (Windows) ``msvcrt`` locks
the file's first byte instead and the file is left in place.

``sigterm_cleanup()`` turns a SIGTERM into an exception (``Terminated``) while a
block runs, so ``finally`` and ``except BaseException`` clean-ups run on
``kill PID`` as they do on Ctrl-C; once they ran, the process ends of SIGTERM as
it would have without the guard (the parent sees the usual signal status).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from adaptau_cli.base.errors import UserError

try:                                    # POSIX
    import fcntl
except ImportError:                     # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

_POLL_SECONDS = 0.05
_BUSY = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES, getattr(errno, "EDEADLOCK", errno.EDEADLK)}


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, what: str, wait: float = 0.0) -> Iterator[Path]:
    """Hold an exclusive lock on the file ``path`` (created if needed) for the ``with`` block.

    ``what`` names the thing being protected in the error message. When another
    process holds the lock, retry for up to ``wait`` seconds, then raise
    ``UserError("<what> is in use by pid N ...")``. A lock whose process is dead
    is free (the kernel dropped it), and is taken over. Locks are per open file,
    so a second ``exclusive_lock`` on the same path in the same process also waits.
    Yields the lock file's path. Raises ``UserError`` naming the folder when the
    lock file cannot be created there.
    """
    path = Path(path)
    deadline = time.monotonic() + max(0.0, float(wait))
    while True:
        fd = _open(path, what)
        try:
            if _try_lock(fd):
                if _same_file(fd, path):
                    break
                # the previous holder removed the file between our open and our lock: start over
            elif time.monotonic() >= deadline:
                holder = _read_pid(fd)
                who = f"pid {holder}" if holder else "another process"
                raise UserError(f"{what} is in use by {who} (lock file {path})",
                                hint="wait for that process to finish and rerun, or stop it")
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        time.sleep(_POLL_SECONDS)
    try:
        _write_pid(fd)
        yield path
    finally:
        if fcntl is not None:
            with contextlib.suppress(OSError):
                if _same_file(fd, path):
                    os.unlink(path)         # while still locked: see the module docstring
        _unlock(fd)
        os.close(fd)


def lock_holder(path: str | os.PathLike) -> int | None:
    """The pid recorded in a lock file that is locked right now; ``None`` when it is free or absent."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None
    try:
        if _try_lock(fd):
            _unlock(fd)
            return None
        return _read_pid(fd) or -1
    finally:
        os.close(fd)


def remove_stale_lock(path: str | os.PathLike) -> bool:
    """Remove the lock file ``path`` if no process holds it (left by a killed process); True if removed."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        if not _try_lock(fd):
            return False
        try:
            if fcntl is None or not _same_file(fd, path):
                return False
            os.unlink(path)
            return True
        except OSError:
            return False
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (one we may not signal counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


# ---------------------------------------------------------------------------
# SIGTERM
# ---------------------------------------------------------------------------

class Terminated(BaseException):
    """SIGTERM arrived inside ``sigterm_cleanup``: unwinds like KeyboardInterrupt."""


@contextlib.contextmanager
def sigterm_cleanup() -> Iterator[None]:
    """Inside the block, SIGTERM raises ``Terminated``; after the clean-ups it ends the process of SIGTERM.

    Does nothing outside the main thread, where SIGTERM is already handled by
    the program (a handler of its own, or ignored), or inside an outer
    ``sigterm_cleanup`` (the outer one handles it). A second SIGTERM during the
    clean-up is ignored so that the clean-up finishes.
    """
    sig = getattr(signal, "SIGTERM", None)
    if sig is None or threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(sig) is not signal.SIG_DFL:
        yield
        return

    def _raise(signum, frame):
        signal.signal(sig, signal.SIG_IGN)
        raise Terminated(f"terminated by signal {signum}")

    signal.signal(sig, _raise)
    try:
        yield
    except Terminated:
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)            # die of SIGTERM, as without the guard
        time.sleep(1)                        # pragma: no cover - the signal is delivered first
        raise
    finally:
        signal.signal(sig, signal.SIG_DFL)


# ---------------------------------------------------------------------------
# Platform details
# ---------------------------------------------------------------------------

def _open(path: Path, what: str) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"cannot create the lock file of {what} in {path.parent}: {exc.strerror or exc}",
                        hint="make that folder writable, or point --home/ADAPTAU_HOME elsewhere") from None


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover - Windows
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except (BlockingIOError, PermissionError):
        return False
    except OSError as exc:
        if exc.errno in _BUSY:               # held by someone else
            return False
        raise
    return True


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        else:  # pragma: no cover - Windows
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _write_pid(fd: int) -> None:
    with contextlib.suppress(OSError):
        data = f"{os.getpid()}\n".encode()
        if fcntl is not None:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        else:  # pragma: no cover - Windows: the locked first byte stays; write the pid after it
            os.lseek(fd, 1, os.SEEK_SET)
            os.write(fd, data)


def _read_pid(fd: int) -> int | None:
    try:
        if fcntl is not None:
            text = os.pread(fd, 64, 0)
        else:  # pragma: no cover - Windows
            os.lseek(fd, 1, os.SEEK_SET)
            text = os.read(fd, 64)
        return int(text.decode("ascii", "replace").strip() or 0) or None
    except (OSError, ValueError):
        return None
