"""Per-cluster metrics in Prometheus form, named after Pegasus's where one exists.

What is kept as it happens (counters, checkpoint histograms) lives in labelled
series here; what describes a current state (a duplication's pending mutations
and time lag, partitions by state, a follower's applied decree) is read when
scraped, by collectors the cluster's parts register (:meth:`Metrics.add_collector`),
so it is true at that moment and goes away with what it describes. Series of a
removed duplication or a dropped table are removed (:meth:`Metrics.forget_duplication`,
:meth:`Metrics.forget_table`). Requests served are ``requests`` (request_metrics.py);
the process's memory, CPU, fds and start time come from /proc (prometheus_client's
ProcessCollector: ``process_resident_memory_bytes``, ``process_cpu_seconds_total``,
``process_open_fds``, ``process_start_time_seconds``, ...).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, ProcessCollector

from .request_metrics import RequestMetrics

CHECKPOINT_STATES = ["pending", "empty", "ready", "copying", "learned", "released"]


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        dup = ["dupid", "table", "pidx"]
        # dup_pending_mutations, dup_confirmed_decree and dup_time_lag_ms are read when scraped
        # (duplication/observed.py); the duplication's series below are removed with it
        self.dup_shipped_bytes = Counter("dup_shipped_bytes", "WAL bytes shipped", dup, registry=r)
        self.dup_shipped_mutations = Counter("dup_shipped_mutations", "mutations shipped", dup, registry=r)
        self.dup_lost_mutations = Counter(
            "dup_lost_mutations", "mutations skipped under fail_mode=skip", dup, registry=r
        )
        self.dup_retained_wal_bytes = Gauge(
            "dup_retained_wal_bytes",
            "WAL bytes a partition keeps only for this duplication (capped by dup_max_retained_wal_bytes)",
            dup,
            registry=r,
        )
        self.dup_wal_released = Counter(
            "dup_wal_released",
            "times the WAL kept for a duplication went past the retention cap and was freed",
            dup,
            registry=r,
        )
        self.dup_relearn_required = Gauge(
            "dup_relearn_required",
            "1 while a partition's WAL is released and its follower must re-learn a fresh checkpoint",
            dup,
            registry=r,
        )
        self.dup_stuck = Gauge(
            "dup_stuck",
            "1 while a duplication cannot progress for the reason named (authentication failed, "
            "remote table dropped, retention cap passed, re-learning); absent when it is not stuck",
            ["table", "dupid", "reason"],
            registry=r,
        )
        self.dup_checkpoint_state = Enum(
            "dup_checkpoint_state",
            "per-partition checkpoint state",
            dup,
            states=CHECKPOINT_STATES,
            registry=r,
        )
        self.expired_records_dropped = Counter(
            "expired_records_dropped",
            "expired records deleted from RocksDB (Pegasus drops them in compaction)",
            ["table"],
            registry=r,
        )
        self.open_scanners = Gauge(
            "open_scanners",
            "scanners served to remote clients and not yet finished or cancelled",
            registry=r,
        )
        self.checkpoint_count = Counter("checkpoint_count", "checkpoints taken", ["kind"], registry=r)
        self.checkpoint_duration_ms = Histogram(
            "checkpoint_duration_ms",
            "checkpoint duration by kind",
            ["kind"],
            buckets=(0.1, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000, 5000, 30000),
            registry=r,
        )

        self.requests = RequestMetrics()
        r.register(self.requests)
        ProcessCollector(registry=r)
        #: the labelled series of one duplication, removed with it
        self._dup_series: list[Any] = [
            self.dup_shipped_bytes,
            self.dup_shipped_mutations,
            self.dup_lost_mutations,
            self.dup_retained_wal_bytes,
            self.dup_wal_released,
            self.dup_relearn_required,
            self.dup_checkpoint_state,
        ]

    def add_collector(self, collector: Any) -> None:
        """Export what ``collector.collect()`` yields at every scrape."""
        self.registry.register(collector)

    def remove_collector(self, collector: Any) -> None:
        try:
            self.registry.unregister(collector)
        except KeyError:
            pass

    def forget_duplication(self, dupid: int, table: str, partitions: int) -> None:
        """Remove every series of a removed duplication."""
        for metric in self._dup_series:
            for pidx in range(partitions):
                try:
                    metric.remove(str(dupid), table, str(pidx))
                except KeyError:
                    pass

    def forget_table(self, table: str) -> None:
        """Remove the series of a dropped table."""
        try:
            self.expired_records_dropped.remove(table)
        except KeyError:
            pass

    def record_checkpoint(self, kind: str, duration_ms: float) -> None:
        self.checkpoint_count.labels(kind).inc()
        self.checkpoint_duration_ms.labels(kind).observe(duration_ms)

    def snapshot(self) -> dict[str, float]:
        """Every current sample as ``name{label="v",...}`` -> value."""
        out: dict[str, float] = {}
        for family in self.registry.collect():
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return out
