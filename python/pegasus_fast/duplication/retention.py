"""The cap on WAL a partition keeps only for a duplication (issue #9; Pegasus #2015).

Pegasus keeps a replica's log until the follower confirms it, so a remote down
for long fills the source's disks. Here the WAL a duplication alone holds (the
files GC would free without its bound) is measured against
``dup_max_retained_wal_bytes`` and ``dup_max_retained_wal_seconds``; past
either, the driver records that the partition must re-learn, and only then
stops holding that WAL.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..config import Config
from ..storage.partition import Partition

#: wall-clock seconds, compared with file mtimes; tests replace it instead of sleeping
clock: Callable[[], float] = time.time


@dataclass(frozen=True)
class Retained:
    """WAL kept only because a duplication has not confirmed it."""

    bytes: int = 0
    #: seconds since the oldest such file was last written
    age_seconds: float = 0.0


def retained_only_for(p: Partition, confirmed: int) -> Retained:
    """What GC would free at the partition's flushed decree, but keeps for a bound at ``confirmed``.

    GC never removes the newest file nor one with a decree past the flushed one
    (recovery needs them): those are not the duplication's doing.
    """
    keep = p.last_flushed
    files = p.wal.snapshot_files()[:-1]
    held = [f for f in files if f.size and confirmed < f.last_decree <= keep]
    if not held:
        return Retained()
    try:
        written = os.stat(os.path.join(p.wal.path, held[0].name)).st_mtime
    except FileNotFoundError:  # collected meanwhile: the next GC measures again
        written = clock()
    return Retained(sum(f.size for f in held), max(0.0, clock() - written))


def over_cap(r: Retained, config: Config) -> bool:
    if r.bytes == 0:
        return False
    return r.bytes > config.dup_max_retained_wal_bytes or r.age_seconds > config.dup_max_retained_wal_seconds


__all__ = ["Retained", "clock", "over_cap", "retained_only_for"]
