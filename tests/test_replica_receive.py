"""A secondary's side of a replicated write (``Replication.receive``), in process: the items'
partitions are locked together, logged, and through the shared log RocksDB takes the batch
while the disk syncs the record. What must hold, whichever backend: an acknowledged decree is
in the log and in RocksDB; a batch RocksDB refuses after it was logged fails its partition
(never acknowledged) and comes back from the log when the cluster reopens; a failed shared
log falls back to the partition logs; two primaries' calls never deadlock."""

from __future__ import annotations

import errno
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from inprocess_replication import in_process_replication
from pegasus_fast import Config, _backend, fileio
from pegasus_fast.coord.layout import PartitionDoc
from pegasus_fast.engine.cluster import Cluster
from pegasus_fast.errors import PartitionFailedError
from pegasus_fast.fileio import Fault
from pegasus_fast.multinode.replication import Replication
from pegasus_fast.net import pegasus_fast_pb2 as pb
from pegasus_fast.net.peer import Peers
from pegasus_fast.records import Op
from pegasus_fast.storage.state import PartitionState

BALLOT = 3
SLOG = os.sep + "slog" + os.sep


def _open_secondary(root: Path, config: Config | None = None) -> tuple[Replication, Cluster, Peers]:
    """Node n1 as the secondary of both partitions of table t, whose primary is n2."""
    cluster = Cluster.open(str(root), name="c", config=config)
    cluster.create_table("t", 2)
    peers = Peers()
    r = in_process_replication(cluster, peers)
    for p in cluster.table("t").partitions:
        r.adopt(p, PartitionDoc(owner="n2", ballot=BALLOT, secondaries=("n1",)), {})
    return r, cluster, peers


def _close(r: Replication, cluster: Cluster, peers: Peers) -> None:
    r.close()
    peers.close()
    cluster.close()


@pytest.fixture
def secondary(backend: ModuleType, tmp_path: Path) -> Iterator[tuple[Replication, Cluster, Path]]:
    root = tmp_path / "c"
    r, cluster, peers = _open_secondary(root)
    try:
        yield r, cluster, root
    finally:
        _close(r, cluster, peers)


def _block(first: int, count: int, tag: str) -> bytes:
    """Mutations ``first..first+count-1``, each a put of ``k<decree>`` = ``<tag><decree>``."""
    now = time.time_ns() // 1000
    muts = [
        (d, now, 1, [(int(Op.PUT), b"k%d" % d, b"s", f"{tag}{d}".encode(), 0)])
        for d in range(first, first + count)
    ]
    return _backend.impl.encode_block(muts)


def _item(pidx: int, first: int, count: int, tag: str = "v") -> pb.ReplicaItem:
    return pb.ReplicaItem(table="t", pidx=pidx, ballot=BALLOT, blocks=_block(first, count, tag), first=first)


def _receive(r: Replication, *items: pb.ReplicaItem) -> list[pb.ReplicaAck]:
    return list(r.receive(pb.ReplicateRequest(primary="n2", items=list(items))).acks)


def _stored(cluster: Cluster, pidx: int, decree: int) -> bytes | None:
    return cluster.table("t").partitions[pidx].get(_key(decree))


def _key(decree: int) -> bytes:
    from pegasus_fast.records import encode_key

    return encode_key(b"k%d" % decree, b"s")


@pytest.mark.parametrize("opened", [False, True], ids=["rocksdb-opened-later", "rocksdb-open"])
def test_what_a_secondary_acknowledges_is_logged_durable_and_applied(
    secondary: tuple[Replication, Cluster, Path], opened: bool
) -> None:
    """Unopened, a secondary's partition only logs (its RocksDB opens a moment later and
    replays the log); open, RocksDB takes each batch while the shared log syncs."""
    r, cluster, _ = secondary
    if opened:
        for p in cluster.table("t").partitions:
            p.db  # noqa: B018
    acks = _receive(r, _item(0, 1, 3), _item(1, 1, 2))
    assert [(a.status, a.decree) for a in acks] == [(pb.ReplicaAck.OK, 3), (pb.ReplicaAck.OK, 2)]
    parts = cluster.table("t").partitions
    for pidx, last in ((0, 3), (1, 2)):
        p = parts[pidx]
        assert p.durable_decree == p.last_committed == last
        for d in range(1, last + 1):
            assert _stored(cluster, pidx, d) == b"v%d" % d, (pidx, d)
    # the same items again (a primary that did not hear the answer): nothing new, same decrees
    again = _receive(r, _item(0, 1, 3), _item(1, 1, 2))
    assert [(a.status, a.decree) for a in again] == [(pb.ReplicaAck.OK, 3), (pb.ReplicaAck.OK, 2)]
    assert cluster.shared_log.failed is None


def test_two_items_of_one_partition_in_one_call_are_both_applied(
    secondary: tuple[Replication, Cluster, Path],
) -> None:
    """A peer may send a partition twice in one call (ours never does): each item's batch
    reaches RocksDB, none is held over another."""
    r, cluster, _ = secondary
    cluster.table("t").partitions[0].db  # opened: its batches are applied, not left in the log  # noqa: B018
    acks = _receive(r, _item(0, 1, 2), _item(1, 1, 1), _item(0, 3, 2))
    assert [(a.status, a.decree) for a in acks] == [
        (pb.ReplicaAck.OK, 4),
        (pb.ReplicaAck.OK, 1),
        (pb.ReplicaAck.OK, 4),
    ]
    for d in range(1, 5):
        assert _stored(cluster, 0, d) == b"v%d" % d, d


def test_a_batch_rocksdb_refuses_after_logging_fails_its_partition_and_returns_on_reopen(
    secondary: tuple[Replication, Cluster, Path],
) -> None:
    """The block is in the log (and in the shared log's record) before RocksDB is asked: it
    cannot be cut back out, so its partition fails and the write is not acknowledged; the
    other partition of the call is acknowledged; reopening replays the block into RocksDB."""
    r, cluster, root = secondary
    assert [a.status for a in _receive(r, _item(0, 1, 1), _item(1, 1, 1))] == [pb.ReplicaAck.OK] * 2
    p0 = cluster.table("t").partitions[0]
    p0.db  # opened, so the next batch is applied, not deferred  # noqa: B018
    with fileio.faults([Fault("rdb_write", 1, errno.EIO, path_part=p0.path)]) as plan:
        acks = _receive(r, _item(0, 2, 2), _item(1, 2, 2))
    assert plan.fired, "RocksDB was asked"
    assert [a.status for a in acks] == [pb.ReplicaAck.FAILED, pb.ReplicaAck.OK]
    assert p0.state == PartitionState.FAILED
    with pytest.raises(PartitionFailedError):
        p0.check_available(True)
    # the shared log took the record and takes the next one: the other partition goes on
    assert [(a.status, a.decree) for a in _receive(r, _item(1, 4, 1))] == [(pb.ReplicaAck.OK, 4)]
    assert cluster.shared_log.failed is None
    r.close()
    cluster.close()
    with Cluster.open(str(root)) as again:
        p = again.table("t").partitions[0]
        assert p.last_committed == 3
        assert p.get(_key(2)) == b"v2" and p.get(_key(3)) == b"v3"


def test_a_failed_shared_log_sync_falls_back_to_the_partition_logs(
    secondary: tuple[Replication, Cluster, Path],
) -> None:
    r, cluster, root = secondary
    with fileio.faults([Fault("fdatasync", 1, errno.EIO, path_part=SLOG)]) as plan:
        acks = _receive(r, _item(0, 1, 2), _item(1, 1, 2))
    assert plan.fired
    assert [(a.status, a.decree) for a in acks] == [(pb.ReplicaAck.OK, 2)] * 2
    assert cluster.shared_log.failed is not None
    for p in cluster.table("t").partitions:
        assert p.wal.file_synced_offset == p.wal.written_offset  # its own fsync
        assert p.get(_key(2)) == b"v2"
    assert [(a.status, a.decree) for a in _receive(r, _item(0, 3, 1))] == [(pb.ReplicaAck.OK, 3)]


def test_without_the_shared_log_each_partition_log_syncs_on_its_own(
    backend: ModuleType, tmp_path: Path
) -> None:
    r, cluster, peers = _open_secondary(tmp_path / "c", Config(shared_log=False))
    try:
        acks = _receive(r, _item(0, 1, 2), _item(1, 1, 3))
        assert [(a.status, a.decree) for a in acks] == [(pb.ReplicaAck.OK, 2), (pb.ReplicaAck.OK, 3)]
        for pidx, p in enumerate(cluster.table("t").partitions):
            assert p.wal.file_synced_offset == p.wal.written_offset
            assert p.get(_key(2)) == b"v2", pidx
        slog_dir = tmp_path / "c" / "slog"
        assert not slog_dir.exists() or all(f.stat().st_size == 0 for f in slog_dir.iterdir())
    finally:
        _close(r, cluster, peers)


def test_two_primaries_calls_over_the_same_partitions_never_deadlock(
    backend: ModuleType, tmp_path: Path
) -> None:
    """Items name partitions in any order (a primary's set and an old one's, mid-failover);
    the locks are taken in one order. Thread switches are forced as often as the interpreter
    allows, so two calls locking in the orders they were given would meet (then the test
    fails, leaving the deadlocked cluster open: closing it would wait on their locks)."""
    r, cluster, peers = _open_secondary(tmp_path / "c")
    errors: list[BaseException] = []

    def run(order: tuple[int, int]) -> None:
        try:
            # each call sends decree k: the one behind finds it logged (skipped), never a gap
            for k in range(1, 201):
                acks = _receive(r, _item(order[0], k, 1), _item(order[1], k, 1))
                assert [a.status for a in acks] == [pb.ReplicaAck.OK] * 2
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=run, args=(o,), daemon=True) for o in ((0, 1), (1, 0))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        sys.setswitchinterval(interval)
    assert not any(t.is_alive() for t in threads), "deadlocked"
    try:
        assert not errors, errors
        for p in cluster.table("t").partitions:
            assert p.last_committed == 200 and p.get(_key(200)) == b"v200"
    finally:
        _close(r, cluster, peers)


def test_a_started_fdatasync_reports_its_result(backend: ModuleType, tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.write(fd, b"abc")
        started = backend.fdatasync_start(fd)
        assert started.wait() == 0 and started.done
        assert started.wait() == 0
    finally:
        os.close(fd)
    assert backend.fdatasync_start(fd).wait() == errno.EBADF
