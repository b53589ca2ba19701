"""A cluster's partitions as metrics, read when scraped (so a dropped table's series go with it).

- ``partitions{table, state}``: partitions of each open table by state (on a node of a
  multi-node cluster, those it owns) (serving, learning,
  moving, unopened, failed, closed); every state is listed, 0 included, so an alert on
  ``partitions{state="failed"} > 0`` has a series to watch.
- ``partition_last_committed_decree{table, pidx}``: each partition's last decree.
- of a duplication's follower table (one this cluster follows a source into):
  ``follower_applied_decree{table, pidx}``, the source decree it holds (applied or stepped
  over); ``follower_lag_ms{table, pidx}``, milliseconds from the source writing the newest
  mutation of the last batch applied to its apply here; ``follower_last_apply_timestamp_seconds``,
  when that batch was applied (0: none since the open). Nothing counts what the source has and
  has not shipped yet: that is the source's ``dup_pending_mutations``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..storage.state import PartitionState

if TYPE_CHECKING:
    from .meta import TableRecord
    from .table import Table

STATES = [s.value for s in PartitionState]


class PartitionCollector:
    def __init__(
        self,
        tables: Callable[[], list[Table]],
        record: Callable[[str], TableRecord | None],
        scope: Callable[[str], frozenset[int] | None],
    ) -> None:
        """``scope(table)``: the partitions this process owns (None: all); a node of a multi-node
        cluster keeps the others unopened, and exports only its own."""
        self._tables = tables
        self._record = record
        self._scope = scope

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        states = GaugeMetricFamily("partitions", "partitions by table and state", labels=["table", "state"])
        last = GaugeMetricFamily(
            "partition_last_committed_decree", "a partition's last decree", labels=["table", "pidx"]
        )
        applied = GaugeMetricFamily(
            "follower_applied_decree",
            "the source decree a follower partition holds (applied or stepped over)",
            labels=["table", "pidx"],
        )
        lag = GaugeMetricFamily(
            "follower_lag_ms",
            "ms from the source writing the newest mutation of the last applied batch to its apply here",
            labels=["table", "pidx"],
        )
        at = GaugeMetricFamily(
            "follower_last_apply_timestamp_seconds",
            "when a follower partition last applied a shipped batch (unix seconds; 0: not since its open)",
            labels=["table", "pidx"],
        )
        for table in self._tables():
            counts = dict.fromkeys(STATES, 0)
            rec = self._record(table.name)
            follower = rec is not None and rec.follower_of is not None
            mine = self._scope(table.name)
            for p in table.partitions:
                if mine is not None and p.pidx not in mine:
                    continue
                counts[p.state.value] = counts.get(p.state.value, 0) + 1
                key = [table.name, str(p.pidx)]
                last.add_metric(key, p.last_committed)
                if follower:
                    applied.add_metric(key, max(p.source_decree, p.source_seen))
                    lag.add_metric(key, p.apply_delay_ms)
                    at.add_metric(key, p.last_apply_time)
            for state, n in counts.items():
                states.add_metric([table.name, state], n)
        yield states
        yield last
        yield applied
        yield lag
        yield at


__all__ = ["PartitionCollector", "STATES"]
