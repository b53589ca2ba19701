"""What a partition directory must look like before it is opened, and making new ones durable."""

from __future__ import annotations

import os
import stat

from .. import fileio
from ..errors import DataLossError, UnsafePathError


def refuse_symlinks(*paths: str) -> None:
    """A store directory replaced by a symlink may lead anywhere (outside the cluster):
    it is refused, never written through."""
    for path in paths:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode):
            raise UnsafePathError(path, "a symlink where the store keeps its own directory")
        if not stat.S_ISDIR(mode):
            raise UnsafePathError(path, "not a directory")


def check_present(path: str, must_exist: bool) -> None:
    """Refuse to open, as new and empty, what the store made and something removed.

    Evidence (cheap: two stats): the cluster's metadata lists the partition
    (``must_exist``), and its directory is made durable before the metadata
    names it; RocksDB (``rdb/``) is never created before the WAL directory,
    which is never removed from a serving partition. The WAL's own HEAD
    covers its newest file (``Wal.recover``).
    """
    if must_exist and not os.path.isdir(path):
        raise DataLossError(path, "the metadata lists this partition but its directory is missing")
    wal_dir = os.path.join(path, "wal")
    if os.path.isdir(os.path.join(path, "rdb")) and not os.path.isdir(wal_dir):
        raise DataLossError(wal_dir, "RocksDB is here but the partition's WAL directory is missing")


def make_durable(paths: list[str]) -> None:
    """Make new partition directories durable (their parents fsynced once each)."""
    parents = sorted({os.path.dirname(p) for p in paths})
    for parent in parents:
        fileio.fsync_dir(parent)
    for grand in sorted({os.path.dirname(p) for p in parents}):
        fileio.fsync_dir(grand)


__all__ = ["check_present", "make_durable", "refuse_symlinks"]
