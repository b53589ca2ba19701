"""Every file operation on a durable path goes through here, so tests can make any of them fail.

STYLE.md §9, after RocksDB's FaultInjectionTestFS: the WAL, the metadata
journal, checkpoints and learning call these functions instead of ``os``
directly. A test installs a :class:`Faults` plan with :func:`faults`; the plan
counts every call and fails the ones it names (an ``OSError`` with an errno
such as ENOSPC or EIO, or a short write that stores only part of the bytes
and then raises ENOSPC, as a full disk does).

Calls are counted per operation name (``"write"``, ``"fsync"``, ...), so a
test can first run an action with an empty plan to learn how many calls it
makes, then walk the failure point through each of them.
"""

from __future__ import annotations

import errno as _errno
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

OPS = (
    "open",
    "write",
    "fsync",
    "fdatasync",
    "rename",
    "unlink",
    "truncate",
    "mkdir",
    "rmtree",
    "link",
    # I/O that RocksDB does on its own, failed at the call that starts it (see ``point``)
    "rdb_open",
    "rdb_write",
    "rdb_flush",
    "rdb_checkpoint",
)


@dataclass
class Fault:
    """Fail the ``nth`` (1-based) call of ``op`` whose path contains ``path_part``."""

    op: str
    nth: int
    errno: int = _errno.EIO
    #: for "write": store this many bytes of the buffer first (a torn write)
    short: int | None = None
    path_part: str = ""


@dataclass
class Faults:
    """A plan of faults, and a count of every call made while it is installed."""

    plan: list[Fault] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    #: (op, path) of every call, in order
    log: list[tuple[str, str]] = field(default_factory=list)
    fired: list[Fault] = field(default_factory=list)

    def _check(self, op: str, path: str) -> Fault | None:
        self.log.append((op, path))
        self.calls[op] = self.calls.get(op, 0) + 1
        for f in self.plan:
            if f.op != op or f.path_part not in path or f in self.fired:
                continue
            seen = sum(1 for o, p in self.log if o == op and f.path_part in p)
            if seen == f.nth:
                self.fired.append(f)
                return f
        return None


_active: Faults | None = None
_lock = threading.Lock()
#: fd -> path, so faults on fd calls can be matched by path
_fd_paths: dict[int, str] = {}


@contextmanager
def faults(plan: Faults | list[Fault] | None = None) -> Iterator[Faults]:
    """Install a fault plan (tests only); yields it with its call counts."""
    global _active
    active = plan if isinstance(plan, Faults) else Faults(list(plan or []))
    with _lock:
        saved, _active = _active, active
    try:
        yield active
    finally:
        with _lock:
            _active = saved


def _maybe_fail(op: str, path: str) -> Fault | None:
    plan = _active
    if plan is None:
        return None
    with _lock:
        f = plan._check(op, path)
    if f is not None and f.short is None:
        raise OSError(f.errno, f"{os.strerror(f.errno)} (injected {op} #{f.nth})", path)
    return f


def _path_of(fd: int) -> str:
    return _fd_paths.get(fd, f"<fd {fd}>")


# -- the operations -------------------------------------------------------------


def open(path: str, flags: int, mode: int = 0o644) -> int:  # noqa: A001 - mirrors os.open
    _maybe_fail("open", path)
    fd = os.open(path, flags, mode)
    # recorded always: a plan installed later still matches faults on this fd by path
    _fd_paths[fd] = path
    return fd


def close(fd: int) -> None:
    _fd_paths.pop(fd, None)
    os.close(fd)


def write(fd: int, data: bytes | memoryview) -> int:
    """Write all of ``data`` or raise; a short write (a full disk) raises ENOSPC.

    The bytes of a failed write may be partly on disk: the caller decides
    whether to cut them off (the WAL and the journal do).
    """
    if _active is None:  # the write path: no plan, one syscall in the usual case
        n = os.write(fd, data)
        if n == len(data):
            return n
        if n <= 0:
            raise OSError(_errno.ENOSPC, "short write", _path_of(fd))
        return n + write(fd, memoryview(data)[n:])
    view = memoryview(data)
    f = _maybe_fail("write", _path_of(fd))
    if f is not None:  # an injected torn write
        os.write(fd, view[: min(f.short or 0, len(view))])
        raise OSError(f.errno if f.errno else _errno.ENOSPC, "injected short write", _path_of(fd))
    done = 0
    while done < len(view):
        n = os.write(fd, view[done:])
        if n <= 0:
            raise OSError(_errno.ENOSPC, "short write", _path_of(fd))
        done += n
    return done


def fsync(fd: int) -> None:
    if _active is not None:
        _maybe_fail("fsync", _path_of(fd))
    os.fsync(fd)


def fdatasync(fd: int) -> None:
    if _active is not None:
        _maybe_fail("fdatasync", _path_of(fd))
    os.fdatasync(fd)


def fdatasync_point(fd: int) -> None:
    """The fault point of an fdatasync done elsewhere (several at once, by the backend):
    raises what :func:`fdatasync` would for a planned fault, else nothing."""
    if _active is not None:
        _maybe_fail("fdatasync", _path_of(fd))


def replace(src: str, dst: str) -> None:
    _maybe_fail("rename", dst)
    os.replace(src, dst)


def rename(src: str, dst: str) -> None:
    _maybe_fail("rename", dst)
    os.rename(src, dst)


def link(src: str, dst: str) -> None:
    _maybe_fail("link", dst)
    os.link(src, dst)


def unlink(path: str) -> None:
    _maybe_fail("unlink", path)
    os.unlink(path)


def truncate(path_or_fd: str | int, length: int) -> None:
    where = path_or_fd if isinstance(path_or_fd, str) else _path_of(path_or_fd)
    _maybe_fail("truncate", where)
    if isinstance(path_or_fd, int):
        os.ftruncate(path_or_fd, length)
    else:
        os.truncate(path_or_fd, length)


def point(op: str, path: str) -> None:
    """A fault point for I/O a library does itself (RocksDB): a planned fault raises here.

    RocksDB's own file operations cannot be routed through this module; the
    storage layer calls ``point("rdb_write", ...)`` (etc.) just before it
    hands work to RocksDB, so a test can make that call fail as RocksDB
    would on a full or failing disk.
    """
    if _active is not None:
        _maybe_fail(op, path)


def rmtree(path: str, ignore_errors: bool = False) -> None:
    try:
        _maybe_fail("rmtree", path)
    except OSError:
        if ignore_errors:
            return  # as shutil does: nothing removed, nothing raised
        raise
    shutil.rmtree(path, ignore_errors=ignore_errors)


def write_file(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably (temp file, fsync, rename, fsync dir)."""
    tmp = path + ".tmp"
    fd = open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        write(fd, data)
        fsync(fd)
    finally:
        close(fd)
    replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")


def makedirs(path: str, exist_ok: bool = True) -> None:
    _maybe_fail("mkdir", path)
    os.makedirs(path, exist_ok=exist_ok)


def fsync_dir(path: str) -> None:
    _maybe_fail("fsync", path)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: str) -> None:
    """fsync every file below path, then each directory, deepest first."""
    for root, _dirs, files in os.walk(path, topdown=False):
        for name in files:
            full = os.path.join(root, name)
            _maybe_fail("fsync", full)
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(root)


__all__ = [
    "OPS",
    "Fault",
    "Faults",
    "close",
    "fdatasync",
    "faults",
    "fsync",
    "fsync_dir",
    "fsync_tree",
    "link",
    "makedirs",
    "open",
    "point",
    "rename",
    "replace",
    "rmtree",
    "truncate",
    "unlink",
    "write",
    "write_file",
]
