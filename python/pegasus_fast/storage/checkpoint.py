"""RocksDB checkpoints of a partition: publish atomically, list, garbage-collect."""

from __future__ import annotations

import itertools
import os
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import rocksdict

from .. import fileio
from ..config import Config

if TYPE_CHECKING:
    from .partition import Partition

_NAME = re.compile(r"checkpoint\.(\d+)")
_TMP_PREFIX = "checkpoint.tmp."
_counter = itertools.count()


@dataclass(frozen=True)
class CheckpointInfo:
    pidx: int
    decree: int
    path: str
    duration_ms: float
    size_bytes: int


def list_decrees(path: str) -> list[int]:
    """Decrees of the published checkpoints under a partition directory, oldest first."""
    found = []
    for name in os.listdir(path):
        m = _NAME.fullmatch(name)
        if m:
            found.append(int(m.group(1)))
    return sorted(found)


def newest_decree(path: str) -> int:
    decrees = list_decrees(path)
    return decrees[-1] if decrees else 0


def dir_for(path: str, decree: int) -> str:
    return os.path.join(path, f"checkpoint.{decree}")


def remove_tmp_dirs(path: str) -> None:
    """Checkpoints that never got published (a crash mid-way) are removed at open."""
    if not os.path.isdir(path):
        return
    for name in os.listdir(path):
        if name.startswith(_TMP_PREFIX):
            fileio.rmtree(os.path.join(path, name), ignore_errors=True)


def create(partition: Partition, decree: int) -> CheckpointInfo:
    """Checkpoint ``partition`` (its lock held, so ``decree`` is what it contains)."""
    start = time.perf_counter()
    final = dir_for(partition.path, decree)
    if not os.path.isdir(final):
        tmp = os.path.join(partition.path, f"{_TMP_PREFIX}{os.getpid()}.{next(_counter)}")
        # RocksDB flushes the memtable first, then hard-links the SST files.
        fileio.point("rdb_checkpoint", tmp)
        rocksdict.Checkpoint(partition.db).create_checkpoint(tmp)
        fileio.fsync_tree(tmp)
        fileio.rename(tmp, final)
        fileio.fsync_dir(partition.path)
    size = sum(os.path.getsize(os.path.join(final, n)) for n in os.listdir(final))
    return CheckpointInfo(partition.pidx, decree, final, (time.perf_counter() - start) * 1000.0, size)


def gc(path: str, config: Config, protect: frozenset[int] = frozenset()) -> list[int]:
    """Keep the newest ``checkpoint_reserve_min_count``; drop older ones past the reserve time."""
    decrees = list_decrees(path)
    removable = decrees[: max(0, len(decrees) - config.checkpoint_reserve_min_count)]
    now = time.time()
    removed = []
    for decree in removable:
        d = dir_for(path, decree)
        if decree in protect:
            continue
        try:
            age = now - os.stat(d).st_mtime
        except FileNotFoundError:
            continue
        if age >= config.checkpoint_reserve_time_seconds:
            fileio.rmtree(d, ignore_errors=True)
            removed.append(decree)
    return removed
