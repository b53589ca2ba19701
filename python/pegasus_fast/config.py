"""Configuration knobs, named after their Apache Pegasus counterparts where one exists.

Every knob is checked when a ``Config`` is made: a value of the wrong type is an
``InvalidTypeError``, one out of its bounds (given in each field's comment; NaN
and infinities are never accepted) an ``InvalidArgumentError``. A bad value is
refused up front rather than found later as a busy loop or a failing write.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from .errors import InvalidArgumentError, InvalidTypeError

WAL_SYNC_MODES = ("group", "always", "none")
CHECKPOINT_POLICIES = ("adaptive", "legacy")
MAX_BACKGROUND_WORKERS = 64

#: field -> (lowest, highest) accepted value, both inclusive; None: unbounded
BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "log_private_file_size_mb": (1, 1 << 16),
    "rocksdb_write_buffer_size": (64 << 10, 64 << 30),
    "checkpoint_reserve_min_count": (1, None),
    "checkpoint_reserve_time_seconds": (0, None),
    "checkpoint_interval_seconds": (0.01, None),
    "checkpoint_max_interval_hours": (1e-6, None),
    "small_partition_max_bytes": (0, None),
    "duplicate_log_batch_bytes": (1, 1 << 30),
    "legacy_forced_checkpoint_delay_seconds": (0, None),
    "trigger_checkpoint_retry_interval_ms": (1, None),
    "gc_interval_ms": (10, None),
    "background_workers": (1, MAX_BACKGROUND_WORKERS),
    "delete_tombstone_seconds": (0, 0xFFFFFFFF),
    "dup_max_retained_wal_bytes": (1, None),
    "dup_max_retained_wal_seconds": (1, None),
    "fence_lease_seconds": (0.1, None),
    "zk_session_timeout_seconds": (0.2, 600),
    "replica_ack_timeout_seconds": (0.1, 3600),
    "default_replica_count": (1, 5),
    "replica_grace_seconds": (0, None),
    "replica_learn_mb_per_sec": (0, None),
    "max_tables": (1, None),
    "max_env_bytes_per_table": (0, 1 << 30),
    "max_streams_per_client": (1, None),
    "max_message_bytes": (8 << 20, 1 << 30),
}


@dataclass(frozen=True)
class Config:
    #: "group": one fsync covers every write waiting (default); "always": fsync
    #: per write; "none": written to the OS only (survives a process kill, not a
    #: machine crash).
    wal_sync: str = "group"
    #: a WAL file is closed and a new one started past this size (Pegasus
    #: log_private_file_size_mb). 1 .. 65536.
    log_private_file_size_mb: int = 32
    #: RocksDB memtable size (Pegasus rocksdb_write_buffer_size). 64 KiB .. 64 GiB.
    rocksdb_write_buffer_size: int = 64 << 20
    #: newest checkpoints kept; older ones go once older than the reserve time.
    #: At least 1: a checkpoint never deletes the one it just made.
    checkpoint_reserve_min_count: int = 2
    #: >= 0.
    checkpoint_reserve_time_seconds: int = 1800
    #: how often the periodic checkpoint considers a partition. >= 0.01 (a
    #: smaller one would keep a core busy), finite.
    checkpoint_interval_seconds: float = 100.0
    #: the emergency checkpoint timer, rand(max/2, max); fractions allowed so
    #: the legacy policy can be measured with scaled timers. >= 1e-6, finite.
    checkpoint_max_interval_hours: float = 2.0
    #: "adaptive" (empty / small logical snapshot / RocksDB checkpoint) or
    #: "legacy" (the pre-#2054 Pegasus gating, for side-by-side measurement).
    checkpoint_policy: str = "adaptive"
    #: a partition at most this large is shipped as a logical snapshot. >= 0.
    small_partition_max_bytes: int = 4 << 20
    #: bytes of WAL shipped in one duplication batch (Pegasus duplicate_log_batch_bytes).
    #: 1 .. 1 GiB (the largest WAL block).
    duplicate_log_batch_bytes: int = 4096
    #: legacy policy only: how long Pegasus took to force a checkpoint once asked
    #: (its sync period). >= 0, finite.
    legacy_forced_checkpoint_delay_seconds: float = 10.0
    #: retry interval of a pending duplication checkpoint (Pegasus
    #: trigger_checkpoint_retry_interval_ms). >= 1.
    trigger_checkpoint_retry_interval_ms: int = 100
    #: background GC of checkpoints and WAL files (Pegasus gc_interval_ms). >= 10
    #: (a smaller one would keep a core busy).
    gc_interval_ms: int = 30_000
    #: background worker threads of the scheduler. 1 .. 64.
    background_workers: int = 2
    #: a delete leaves a tombstone (an empty record with its timetag and the delete bit)
    #: for this long, so last-writer-wins refuses an older put that a duplication delivers
    #: after it (docs/last-writer-wins.md); expired ones go with expired records. 0: a delete
    #: removes the record, as in Pegasus, and an old put can then come back. 0 .. 2^32-1.
    delete_tombstone_seconds: int = 3600
    #: this cluster's id for last-writer-wins, 1..127 (Pegasus [duplication-group]); None derives
    #: one from the cluster name (crc64(name) % 127 + 1), which two names can share: configure it
    #: on every cluster that duplicates. Fixed once the cluster exists.
    cluster_id: int | None = None
    #: WAL a partition keeps only for one duplication (bytes its GC would otherwise free) is
    #: capped: past it, the WAL is released and the follower partition re-learns from a fresh
    #: checkpoint once the remote is back (Pegasus #2015: a long outage filled the disks).
    #: 10 GiB a partition is 320 default log files, far past any partition a small-partition
    #: snapshot or a checkpoint copies faster than its log replays. >= 1.
    dup_max_retained_wal_bytes: int = 10 << 30
    #: the same cap by age: the oldest file kept only for a duplication, by its last write. A
    #: day rides out a data-centre outage or a weekend's forgotten pause; after that a fresh
    #: checkpoint is cheaper than a day of log. >= 1, finite.
    dup_max_retained_wal_seconds: float = 86400.0
    #: open a new table's RocksDB instances in the background (a follower's a moment after
    #: its partitions serve), so the first write to each partition does not pay the ~10
    #: fsyncs of creating one. Off by default (issue #16): the opens, 5-10 ms each, stood in
    #: front of an add_duplication of the new table; opted in, they yield to duplication
    #: work (engine/opens.py). False: each partition opens on its first read or write.
    open_rocksdb_eagerly: bool = False
    #: a Pegasus-port batch makes its writes durable with one fdatasync of the cluster's shared
    #: log (``slog/``) rather than one per partition log it wrote (storage/slog.py); the
    #: partition logs are synced later, and mended from the shared log after a crash. False:
    #: one fdatasync per partition log, as every other writer does.
    shared_log: bool = True
    #: a node of a multi-node cluster (``serve --zk``): a partition fenced for a move that never
    #: switched owner (its leader died between the fence and the switch) is unfenced after this
    #: long, and the leader gives up a handoff that outlasts half of it. >= 0.1, finite.
    fence_lease_seconds: float = 10.0
    #: a node's ZooKeeper session: ZooKeeper expires it (and with it the node's registration and
    #: its place in the leader election) this long after the node stops answering; the node
    #: refuses writes as soon as its connection is lost, well before. 0.2 .. 600 (the server
    #: clamps it to its own minSessionTimeout..maxSessionTimeout).
    zk_session_timeout_seconds: float = 6.0
    #: a replicated partition's primary waits this long for every secondary of its ballot to
    #: hold a write before the write fails (its outcome unknown to the client); a dead
    #: secondary is removed from the ballot once its ZooKeeper session expires, well before.
    #: 0.1 .. 3600.
    replica_ack_timeout_seconds: float = 10.0
    #: the replicas of each partition of a zk:// table made without replica_count (a node's
    #: own, or the meta leader's when it places a table), at most the live nodes (Pegasus's
    #: min(3, live nodes)); a duplication's follower table takes it too. 1 .. 5.
    default_replica_count: int = 3
    #: a replicated partition below its replica_count this long gets a new secondary on
    #: another live node (multinode/rereplicate.py); a node that comes back sooner is not
    #: replaced. >= 0.
    replica_grace_seconds: float = 30.0
    #: the pace of a new secondary's checkpoint copy from its primary, MiB/s (0: none), so the
    #: primary's own requests keep their latency while it is copied (Pegasus's learning hurt
    #: its P99: apache/incubator-pegasus#802). >= 0.
    replica_learn_mb_per_sec: float = 64.0
    #: tables a cluster holds (a multi-node cluster: all its nodes together); creating one more
    #: is a ResourceExhaustedError. A cluster made with more still opens. >= 1.
    max_tables: int = 256
    #: partitions a cluster (a node of a multi-node cluster) holds, all tables together, and
    #: open at once. None (the default): as many as the process's fd limit (RLIMIT_NOFILE) has
    #: room for, each counted for 12 descriptors after 256 kept for sockets and logs
    #: (storage/open_slots.py; 1974 under a limit of 20000). Creating a table past it is a
    #: ResourceExhaustedError; a cluster that holds more (made before, or the fd limit lowered)
    #: opens the first ones and leaves the rest UNOPENED, each opened by its first read or
    #: write while there is room (ClusterInfo.warnings says so). None or >= 1.
    max_partitions: int | None = None
    #: bytes of a table's envs (names and values, UTF-8): every metadata change rewrites them
    #: all. 0 .. 1 GiB.
    max_env_bytes_per_table: int = 64 << 10
    #: scans (server-side streams) one client of a served cluster has running at once; one
    #: more is refused with ResourceExhaustedError. A client is the host it calls from, however
    #: many connections it opens (server/stream_slots.py). >= 1.
    max_streams_per_client: int = 16
    #: the largest gRPC message a served cluster takes or sends (its max receive and send
    #: lengths): a larger one is refused by the transport as it arrives, never buffered whole
    #: (ResourceExhaustedError on the client). The default takes the largest value (64 MiB)
    #: with room for its framing; a multi-set or a duplicated write larger than this needs a
    #: larger knob (on a duplication's follower too: it tells its source). 8 MiB (a small
    #: partition's snapshot, 4 MiB, and a checkpoint chunk fit in one message) .. 1 GiB.
    max_message_bytes: int = (64 << 20) + (4 << 20)

    def __post_init__(self) -> None:
        if self.wal_sync not in WAL_SYNC_MODES:
            raise InvalidArgumentError(f"wal_sync must be one of {WAL_SYNC_MODES}, got {self.wal_sync!r}")
        if self.checkpoint_policy not in CHECKPOINT_POLICIES:
            raise InvalidArgumentError(
                f"checkpoint_policy must be one of {CHECKPOINT_POLICIES}, got {self.checkpoint_policy!r}"
            )
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "bool" and not isinstance(value, bool):
                raise InvalidTypeError(f"{f.name} must be a bool, got {value!r}")
            if f.type not in ("int", "float"):
                continue
            allowed = (int,) if f.type == "int" else (int, float)
            if isinstance(value, bool) or not isinstance(value, allowed):
                raise InvalidTypeError(
                    f"{f.name} must be {'an int' if f.type == 'int' else 'a number'}, got {value!r}"
                )
            if not math.isfinite(value):
                raise InvalidArgumentError(f"{f.name} must be a finite number, got {value!r}")
            low, high = BOUNDS.get(f.name, (0, None))
            if (low is not None and value < low) or (high is not None and value > high):
                raise InvalidArgumentError(f"{f.name} must be in [{low}, {high or 'inf'}], got {value!r}")
        self._check_cluster_id()
        mp = self.max_partitions
        if mp is not None:
            if isinstance(mp, bool) or not isinstance(mp, int):
                raise InvalidTypeError(f"max_partitions must be None or an int, got {mp!r}")
            if mp < 1:
                raise InvalidArgumentError(f"max_partitions must be None or >= 1, got {mp!r}")

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
