"""Background upkeep of a cluster's partitions: periodic and emergency checkpoints, GC."""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING

from ..errors import ClosedError
from .scheduler import Lane

if TYPE_CHECKING:
    from ..storage.partition import Partition
    from .cluster import Cluster


class Maintenance:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._deadlines: dict[int, float] = {}

    def start(self) -> None:
        cfg = self.cluster.config
        sched = self.cluster.scheduler
        sched.every(cfg.checkpoint_interval_seconds, self.periodic_checkpoints, Lane.NORMAL)
        sched.every(cfg.gc_interval_ms / 1000.0, self.gc, Lane.LOW)

    def _deadline(self, p: Partition, now: float) -> float:
        key = id(p)
        if key not in self._deadlines:
            # Pegasus's emergency checkpoint timer: rand(max/2, max) hours
            span = self.cluster.config.checkpoint_max_interval_hours * 3600.0
            self._deadlines[key] = now + random.uniform(span / 2, span)
        return self._deadlines[key]

    def _partitions(self) -> list[Partition]:
        return [p for t in self.cluster.open_tables() for p in t.partitions]

    def periodic_checkpoints(self) -> None:
        if self.cluster.closed:
            return
        now = time.monotonic()
        adaptive = self.cluster.config.checkpoint_policy == "adaptive"
        for p in self._partitions():
            if p.state != "serving":
                continue
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
                        self.cluster.metric_set.expired_records_dropped.labels(p.table).inc(p.drop_expired())
                        start = time.perf_counter()
                        p.checkpoint()
                    except ClosedError:
                        continue
                    self.cluster.record_checkpoint("periodic", (time.perf_counter() - start) * 1000.0)

    def gc(self) -> None:
        if self.cluster.closed:
            return
        for p in self._partitions():
            if p.state == "serving":
                try:
                    p.gc()
                except ClosedError:
                    continue
