"""Per-cluster metrics in Prometheus form, named after Pegasus's where one exists."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram

CHECKPOINT_STATES = ["pending", "empty", "ready", "copying", "learned", "released"]


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        dup = ["dupid", "table", "pidx"]
        self.dup_pending_mutations = Gauge(
            "dup_pending_mutations", "mutations committed but not yet duplicated", dup, registry=r
        )
        self.dup_confirmed_decree = Gauge(
            "dup_confirmed_decree", "highest decree the follower has applied", dup, registry=r
        )
        self.dup_time_lag_ms = Gauge(
            "dup_time_lag_ms", "age of the oldest mutation not yet duplicated", dup, registry=r
        )
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
