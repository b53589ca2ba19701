"""``wal.head``: durable evidence of a partition's newest WAL file (docs/wal-format.md).

Nothing else records which log file is the newest: without this, deleting it
(or the whole log behind a flushed RocksDB) would open silently with
acknowledged writes missing. The file sits beside ``wal/`` and holds
``"<index> <first_decree>\\n"``, replaced atomically each time a log file is
started; a log without it (written before it existed) is not checked.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .. import fileio
from ..errors import WalCorruptionError, WalGapError

HEAD_NAME = "wal.head"


def head_path(wal_dir: str) -> str:
    return os.path.join(os.path.dirname(wal_dir), HEAD_NAME)


def stage(wal_dir: str, index: int, first_decree: int, durable: bool = True) -> str:
    """Write the new HEAD to a temp file, durable unless the log itself is not (wal_sync="none");
    returns its path (``publish`` renames it)."""
    tmp = head_path(wal_dir) + ".tmp"
    fd = fileio.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        fileio.write(fd, b"%d %d\n" % (index, first_decree))
        if durable:
            fileio.fdatasync(fd)
    finally:
        fileio.close(fd)
    return tmp


def publish(wal_dir: str, tmp: str, durable: bool = True) -> None:
    path = head_path(wal_dir)
    fileio.replace(tmp, path)
    if durable:
        fileio.fsync_dir(os.path.dirname(path))


def read(wal_dir: str) -> tuple[int, int] | None:
    path = head_path(wal_dir)
    try:
        with open(path, "rb") as f:
            index, first = f.read().split()
        return int(index), int(first)
    except FileNotFoundError:
        return None
    except ValueError:
        raise WalCorruptionError(path, 0, "unreadable WAL head") from None


def check(wal_dir: str, newest_index: int, start_decree: int, last_decree: int) -> None:
    """WalGapError when the log lost its newest file, or no longer reaches the decree before it.

    ``newest_index``: the newest log file found (0: none); ``start_decree``:
    the first decree RocksDB lacks; ``last_decree``: the last one in the log.
    """
    head = read(wal_dir)
    if head is None:
        return
    index, first = head
    if newest_index < index:
        raise WalGapError(os.path.join(wal_dir, f"log.{index}.*"), first, 0)
    if max(start_decree - 1, last_decree) < first - 1:
        # decree first-1 was committed before that file began; neither RocksDB nor the log has it
        raise WalGapError(wal_dir, max(start_decree, last_decree + 1), first)


#: called with a log's directory before it is removed (the cluster's shared log, slog.py, lets
#: none of its entries outlive the log they were for)
_removal_hooks: list[Callable[[str], None]] = []


def add_removal_hook(hook: Callable[[str], None]) -> None:
    _removal_hooks.append(hook)


def remove_removal_hook(hook: Callable[[str], None]) -> None:
    try:
        _removal_hooks.remove(hook)
    except ValueError:
        pass


def remove(wal_dir: str) -> None:
    """Remove a log and its head (the head first: a log without one is only unverified)."""
    for hook in list(_removal_hooks):
        hook(wal_dir)
    head = head_path(wal_dir)
    if os.path.lexists(head):
        fileio.unlink(head)
        fileio.fsync_dir(os.path.dirname(head))
    fileio.rmtree(wal_dir, ignore_errors=True)


__all__ = [
    "HEAD_NAME",
    "add_removal_hook",
    "check",
    "remove_removal_hook",
    "head_path",
    "publish",
    "read",
    "remove",
    "stage",
]
