"""Background upkeep of a cluster's partitions: periodic and emergency checkpoints, GC."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..config import Config
from ..errors import ClosedError
from ..metrics import Metrics
from ..storage.partition import SERVING, Partition
from .scheduler import Lane, Scheduler

if TYPE_CHECKING:
    from .table import Table


class Maintenance:
    def __init__(
        self, config: Config, scheduler: Scheduler, metrics: Metrics, tables: Callable[[], list[Table]]
    ) -> None:
        self.config = config
        self.scheduler = scheduler
        self.metrics = metrics
        self._tables = tables
        self._deadlines: dict[int, float] = {}

    def start(self) -> None:
        cfg = self.config
        self.scheduler.every(cfg.checkpoint_interval_seconds, self.periodic_checkpoints, Lane.NORMAL)
        self.scheduler.every(cfg.gc_interval_ms / 1000.0, self.gc, Lane.LOW)

    def _deadline(self, p: Partition, now: float) -> float:
        key = id(p)
        if key not in self._deadlines:
            # Pegasus's emergency checkpoint timer: rand(max/2, max) hours
            span = self.config.checkpoint_max_interval_hours * 3600.0
            self._deadlines[key] = now + random.uniform(span / 2, span)
        return self._deadlines[key]

    def _partitions(self) -> list[Partition]:
        return [p for t in self._tables() for p in t.partitions if p.state == SERVING]

    def periodic_checkpoints(self) -> None:
        now = time.monotonic()
        adaptive = self.config.checkpoint_policy == "adaptive"
        for p in self._partitions():
            if adaptive and p.last_flushed < p.last_committed and len(p.wal.files) > 1:
                # a full WAL file is waiting on the memtable: flush, so GC can free it.
                # (The legacy policy keeps Pegasus's behaviour: nothing flushes a small memtable.)
                try:
                    p.flush()
                except ClosedError:
                    continue
            if now >= self._deadline(p, now):
                del self._deadlines[id(p)]
                if p.last_durable < p.last_committed or not p.has_checkpoint():
                    try:
                        # what Pegasus's compaction filter would have dropped stays out of the checkpoint
                        self.metrics.expired_records_dropped.labels(p.table).inc(p.drop_expired())
                        start = time.perf_counter()
                        p.checkpoint()
                    except ClosedError:
                        continue
                    self.metrics.record_checkpoint("periodic", (time.perf_counter() - start) * 1000.0)

    def gc(self) -> None:
        for p in self._partitions():
            try:
                p.gc()
            except ClosedError:
                continue
