"""Configuration knobs, named after their Apache Pegasus counterparts where one exists."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .errors import InvalidArgumentError, InvalidTypeError

WAL_SYNC_MODES = ("group", "always", "none")
CHECKPOINT_POLICIES = ("adaptive", "legacy")


@dataclass(frozen=True)
class Config:
    #: "group": one fsync covers every write waiting (default); "always": fsync
    #: per write; "none": written to the OS only (survives a process kill, not a
    #: machine crash).
    wal_sync: str = "group"
    #: a WAL file is closed and a new one started past this size (Pegasus
    #: log_private_file_size_mb).
    log_private_file_size_mb: int = 32
    #: RocksDB memtable size (Pegasus rocksdb_write_buffer_size).
    rocksdb_write_buffer_size: int = 64 << 20
    #: newest checkpoints kept; older ones go once older than the reserve time.
    checkpoint_reserve_min_count: int = 2
    checkpoint_reserve_time_seconds: int = 1800
    #: how often the periodic checkpoint considers a partition.
    checkpoint_interval_seconds: float = 100.0
    #: the emergency checkpoint timer, rand(max/2, max); fractions allowed so
    #: the legacy policy can be measured with scaled timers.
    checkpoint_max_interval_hours: float = 2.0
    #: "adaptive" (empty / small logical snapshot / RocksDB checkpoint) or
    #: "legacy" (the pre-#2054 Pegasus gating, for side-by-side measurement).
    checkpoint_policy: str = "adaptive"
    #: a partition at most this large is shipped as a logical snapshot.
    small_partition_max_bytes: int = 4 << 20
    #: bytes of WAL shipped in one duplication batch (Pegasus duplicate_log_batch_bytes).
    duplicate_log_batch_bytes: int = 4096
    #: legacy policy only: how long Pegasus took to force a checkpoint once asked (its sync period).
    legacy_forced_checkpoint_delay_seconds: float = 10.0
    #: retry interval of a pending duplication checkpoint (Pegasus trigger_checkpoint_retry_interval_ms).
    trigger_checkpoint_retry_interval_ms: int = 100
    #: background GC of checkpoints and WAL files (Pegasus gc_interval_ms).
    gc_interval_ms: int = 30_000
    #: background worker threads of the scheduler.
    background_workers: int = 2
    #: this cluster's id for last-writer-wins, 1..127 (Pegasus [duplication-group]); None derives
    #: one from the cluster name (crc64(name) % 127 + 1), which two names can share: configure it
    #: on every cluster that duplicates. Fixed once the cluster exists.
    cluster_id: int | None = None

    def __post_init__(self) -> None:
        if self.wal_sync not in WAL_SYNC_MODES:
            raise InvalidArgumentError(f"wal_sync must be one of {WAL_SYNC_MODES}, got {self.wal_sync!r}")
        if self.checkpoint_policy not in CHECKPOINT_POLICIES:
            raise InvalidArgumentError(
                f"checkpoint_policy must be one of {CHECKPOINT_POLICIES}, got {self.checkpoint_policy!r}"
            )
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type not in ("int", "float"):
                continue
            allowed = (int,) if f.type == "int" else (int, float)
            if isinstance(value, bool) or not isinstance(value, allowed):
                raise InvalidTypeError(
                    f"{f.name} must be {'an int' if f.type == 'int' else 'a number'}, got {value!r}"
                )
            if value < 0:
                raise InvalidArgumentError(f"{f.name} must be non-negative, got {value!r}")
        if self.log_private_file_size_mb < 1 or self.duplicate_log_batch_bytes < 1:
            raise InvalidArgumentError("log_private_file_size_mb and duplicate_log_batch_bytes must be >= 1")
        if self.background_workers < 1:
            raise InvalidArgumentError("background_workers must be >= 1")
        self._check_cluster_id()

    def _check_cluster_id(self) -> None:
        cid = self.cluster_id
        if cid is None:
            return
        if isinstance(cid, bool) or not isinstance(cid, int):
            raise InvalidTypeError(f"cluster_id must be an int in 1..127, got {cid!r}")
        if not 1 <= cid <= 127:
            raise InvalidArgumentError(f"cluster_id must be in 1..127, got {cid!r}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
