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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

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


class Cap:
    """One duplication's side of the cap: the partitions GC found past it, and the WAL held while
    a fresh checkpoint is made (memory only: after a restart the checkpoint is made again)."""

    def __init__(self, partitions: list[Partition], config: Config, retained_gauges: list[Any]) -> None:
        self._partitions = partitions
        self._config = config
        self._gauges = retained_gauges
        #: per partition, the decree the WAL is held after while a fresh checkpoint is made
        self.holding: list[int | None] = [None] * len(partitions)
        #: set by GC; the driver records the release, so nothing is freed before it is durable
        self.wanted = [False] * len(partitions)

    def bound(self, pidx: int, released: bool, confirmed: int) -> int | None:
        """What GC must keep after for this duplication; flags the partition when past the cap
        (the WAL stays held until the release is recorded)."""
        hold = self.holding[pidx]
        if released:
            self._gauges[pidx].set(0)
            return hold  # a released partition holds nothing but a checkpoint being made
        r = retained_only_for(self._partitions[pidx], confirmed)
        self._gauges[pidx].set(r.bytes)
        if hold is None and over_cap(r, self._config):
            self.wanted[pidx] = True
        return confirmed if hold is None else min(confirmed, hold)

    def take_wanted(self) -> list[int]:
        out = [i for i, w in enumerate(self.wanted) if w]
        self.wanted = [False] * len(self.wanted)
        return out

    def past(self, pidx: int, confirmed: int) -> Retained | None:
        """Measured again as the release is recorded: the follower may have confirmed more."""
        if self.holding[pidx] is not None:
            return None
        r = retained_only_for(self._partitions[pidx], confirmed)
        return r if over_cap(r, self._config) else None

    @contextmanager
    def hold(self, pidxs: Iterable[int]) -> Iterator[None]:
        """Keep the WAL after each partition's committed decree while a checkpoint is made: it is
        at or past that decree, so the WAL after it is whole when its record pins it."""
        held = list(pidxs)
        for i in held:
            self.holding[i] = self._partitions[i].last_committed
        try:
            yield
        finally:
            for i in held:
                self.holding[i] = None


__all__ = ["Cap", "Retained", "clock", "over_cap", "retained_only_for"]
