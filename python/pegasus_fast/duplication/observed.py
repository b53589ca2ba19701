"""What a duplication's metrics say, read when scraped, so they hold during an outage.

A shipper learns its time lag only when it ships: while the follower is down
nothing ships, and a gauge set there would stay at its last value (0 after a
catch-up) while mutations pile up. Here pending mutations are the partition's
last decree minus the follower's confirmed one, and the time lag is the age
of the oldest mutation not yet confirmed, its timestamp read from the WAL
(once per decree: the read is cached until the confirmed decree moves).

:class:`DupCollector` exports, for the partitions each duplication ships here
(a node ships only those it owns):

- ``dup_pending_mutations{dupid, table, pidx}``
- ``dup_confirmed_decree{dupid, table, pidx}``
- ``dup_time_lag_ms{dupid, table, pidx}``
- ``dup_status{dupid, table, status}``: 1 for its current status; ``dup_failed{dupid, table}``

A removed duplication is no longer listed, so its series go with it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from .. import _backend
from ..storage.partition import Partition
from ..storage.state import PartitionState

#: bytes read per step while looking for the oldest pending mutation in a log file
_READ_STEP = 1 << 16
#: steps at most (a WAL file is rotated long before this)
_MAX_STEPS = 512
#: seconds between two WAL reads of one partition: within it a moved decree keeps the timestamp
#: read last (an older mutation's: the lag errs high, by less than the time it took to ship it)
REFRESH = 0.1


@dataclass(frozen=True)
class PartitionLag:
    pidx: int
    confirmed: int
    pending: int
    lag_ms: float


class OldestPending:
    """The write time of a partition's oldest mutation after a decree, from its WAL."""

    def __init__(self, partition: Partition) -> None:
        self._p = partition
        self._cached: tuple[int, int] = (0, 0)  # (decree, timestamp µs)
        #: (log file, a block boundary at or before the last decree found, that decree): a later
        #: decree is found from there, not from the file's start (decrees only move forward)
        self._pos: tuple[str, int, int] | None = None
        self._read_at = -REFRESH

    def lag_ms(self, confirmed: int, hint: tuple[str, int] | None = None) -> float | None:
        """Milliseconds since the oldest mutation after ``confirmed`` was written (0 when none is);
        None when it cannot be read now (an unopened partition, a log file just collected).
        ``hint``: ``(log file name, offset)`` at or before that mutation (the shipper's cursor)."""
        p = self._p
        if p.state == PartitionState.UNOPENED:
            return None
        last = p.last_committed
        decree = confirmed + 1
        if last < decree:
            return 0.0
        now = time.monotonic()
        if self._cached[0] == decree or (self._cached[0] and now - self._read_at < REFRESH):
            ts = self._cached[1]
        else:
            self._read_at = now
            found = self._read(decree, last, hint)
            if found is None:
                return None
            ts = found
            self._cached = (decree, ts)
        return max(0.0, (time.time_ns() // 1000 - ts) / 1000.0)

    def _read(self, decree: int, last: int, hint: tuple[str, int] | None) -> int | None:
        files = [f for f in self._p.wal.snapshot_files() if f.size and f.last_decree >= decree]
        if not files or files[0].first_decree > decree:
            return None
        name, offset = files[0].name, 0
        if hint is not None and hint[0] == name:
            offset = hint[1]
        pos = self._pos
        if pos is not None and pos[0] == name and pos[2] <= decree:
            offset = max(offset, pos[1])
        path = os.path.join(self._p.wal.path, name)
        try:
            for _ in range(_MAX_STEPS):
                blocks, _first, _last, first_ts, end, _torn, _skipped = _backend.impl.read_log_blocks(
                    path, offset, decree, _READ_STEP, last, 0
                )
                if blocks:
                    self._pos = (name, offset, decree)
                    return int(first_ts)
                if end <= offset:
                    return None
                offset = end
        except (OSError, ValueError):
            return None  # collected or cut meanwhile: the next scrape reads again
        except Exception:  # noqa: BLE001 - a metric never fails a scrape; shipping reports WAL damage
            return None
        return None


class Observed(Protocol):
    dupid: int
    table_name: str
    error: BaseException | None

    @property
    def status(self) -> object: ...

    def observed(self) -> list[PartitionLag]: ...


class DupCollector:
    """The live duplications' pending mutations, confirmed decrees and time lag, at each scrape."""

    def __init__(self, duplications: Callable[[], Iterable[Observed]]) -> None:
        self._duplications = duplications

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        labels = ["dupid", "table", "pidx"]
        pending = GaugeMetricFamily(
            "dup_pending_mutations", "mutations committed but not yet duplicated", labels=labels
        )
        confirmed = GaugeMetricFamily(
            "dup_confirmed_decree", "highest decree the follower has applied", labels=labels
        )
        lag = GaugeMetricFamily(
            "dup_time_lag_ms", "age of the oldest mutation not yet duplicated", labels=labels
        )
        status = GaugeMetricFamily(
            "dup_status",
            "1 for a duplication's current status (DS_INIT, DS_PREPARE, DS_APP, DS_LOG, DS_PAUSE)",
            labels=["dupid", "table", "status"],
        )
        failed = GaugeMetricFamily(
            "dup_failed",
            "1 once a duplication has failed for good (it stays until removed)",
            labels=["dupid", "table"],
        )
        for d in self._duplications():
            if str(d.status) != "DS_REMOVED":
                status.add_metric([str(d.dupid), d.table_name, str(d.status)], 1)
                failed.add_metric([str(d.dupid), d.table_name], 0 if d.error is None else 1)
            for row in d.observed():
                key = [str(d.dupid), d.table_name, str(row.pidx)]
                pending.add_metric(key, row.pending)
                confirmed.add_metric(key, row.confirmed)
                lag.add_metric(key, row.lag_ms)
        yield pending
        yield confirmed
        yield lag
        yield status
        yield failed


__all__ = ["DupCollector", "OldestPending", "PartitionLag"]
