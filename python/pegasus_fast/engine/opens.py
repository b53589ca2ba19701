"""Opening partitions' RocksDB ahead of their first use (``Config.open_rocksdb_eagerly``).

Off by default (issue #16): creating a RocksDB costs 5-10 ms here, partly with the
GIL held, and eight of them queued behind ``create_table`` made the next
``add_duplication`` of that empty table ten times slower. A partition opens on its
first read or write instead (``Partition.db``). Opted in, the opens run in the
scheduler's low lane and yield to duplication work: while any duplication of
this cluster is setting up, or any follower partition here is learning, an open
waits rather than stand in front of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

from ..storage.partition import Partition
from .scheduler import Lane, Scheduler

#: seconds between an open's checks whether duplication work still runs
YIELD_INTERVAL = 0.05
#: seconds after a follower's partitions start serving that their RocksDB opens
FOLLOWER_OPEN_DELAY = 0.25


class BackgroundOpens:
    def __init__(self, scheduler: Scheduler, busy: Callable[[], bool]) -> None:
        self._scheduler = scheduler
        self._busy = busy

    def open_later(
        self,
        partitions: Iterable[Partition],
        delay: float = 0.0,
        still: Callable[[Partition], bool] | None = None,
    ) -> None:
        """``still(p)``: whether ``p`` is to be opened still, asked when its turn comes (a
        secondary's partition whose replica moved away meanwhile is not: its copy is gone)."""
        for p in partitions:
            self._scheduler.submit_after(delay, lambda p=p: self._open(p, still), Lane.LOW)

    def _open(self, p: Partition, still: Callable[[Partition], bool] | None = None) -> None:
        if p.is_open or (still is not None and not still(p)):
            return
        if self._busy():
            self._scheduler.submit_after(YIELD_INTERVAL, lambda: self._open(p, still), Lane.LOW)
            return
        # A failure here (a full disk, the table dropped or closed meanwhile) is not this
        # task's to report: the partition's first use opens it again and raises it typed.
        with contextlib.suppress(Exception):
            p.open_now()


__all__ = ["FOLLOWER_OPEN_DELAY", "BackgroundOpens"]
