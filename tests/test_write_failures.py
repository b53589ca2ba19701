"""A write that fails part-way leaves the store as if it never happened, or refuses to go on.

Faults come from ``pegasus_fast.fileio`` (the one I/O layer of durable paths):
a short write that stores part of a WAL block and then raises ENOSPC, as a
full disk does; a RocksDB write that fails after the WAL append; a cut-back
that fails too. Each test reopens the cluster and checks what is there.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
from pegasus_fast import _backend, fileio
from pegasus_fast.fileio import Fault

OpenCluster = Callable[..., pf.Cluster]


def wal_decrees(cluster_dir: Path) -> list[int]:
    """Every decree in the WAL of the one partition, in log order."""
    (wal,) = sorted(cluster_dir.glob("tables/*/wal"))
    mutations, _infos = _backend.impl.scan_log_dir(str(wal), 0)
    return [m[0] for m in mutations]


def contents(table: pf.Table) -> dict[bytes, bytes]:
    return {hk: v for hk, _sk, v in table.scan()}


@pytest.mark.parametrize("wal_sync", ["always", "group", "none"])
def test_short_wal_write_is_cut_back(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path, wal_sync: str
) -> None:
    c = open_cluster(cluster_dir, config=pf.Config(wal_sync=wal_sync))
    t = c.create_table("t", partition_count=1)
    assert t.set(b"k0", b"", b"v0") == 1
    with fileio.faults([Fault("write", 1, errno.ENOSPC, short=10, path_part="/wal/")]) as plan:
        with pytest.raises(OSError) as err:
            t.set(b"lost", b"", b"x" * 100)
    assert plan.fired and err.value.errno == errno.ENOSPC
    # the writes after the failed one are acknowledged, and follow no hole
    assert t.set(b"k2", b"", b"v2") == 2
    assert t.set(b"k3", b"", b"v3") == 3
    c.close()
    assert wal_decrees(cluster_dir) == [1, 2, 3]
    c = open_cluster(cluster_dir, config=pf.Config(wal_sync=wal_sync))
    assert contents(c.table("t")) == {b"k0": b"v0", b"k2": b"v2", b"k3": b"v3"}


def test_short_write_that_cannot_be_cut_back_fails_the_partition(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    c = open_cluster(cluster_dir, config=pf.Config(wal_sync="always"))
    t = c.create_table("t", partition_count=1)
    t.set(b"k0", b"", b"v0")
    plan = [
        Fault("write", 1, errno.ENOSPC, short=10, path_part="/wal/"),
        Fault("truncate", 1, errno.EIO, path_part="/wal/"),
    ]
    with fileio.faults(plan) as active:
        with pytest.raises(OSError):
            t.set(b"lost", b"", b"x" * 100)
    assert len(active.fired) == 2
    # nothing may be acknowledged behind the partial block: reads and writes refuse
    with pytest.raises(pf.PartitionFailedError) as err:
        t.set(b"k2", b"", b"v2")
    assert (err.value.pidx, err.value.state) == (0, "failed")
    with pytest.raises(pf.PartitionFailedError):
        t.get(b"k0", b"")
    with pytest.raises(pf.PartitionFailedError):
        t.checkpoint()  # nothing of a failed partition is made durable or shipped
    assert t.health().partitions == [(0, "failed")]
    c.close()
    c = open_cluster(cluster_dir)
    t = c.table("t")
    assert contents(t) == {b"k0": b"v0"}
    assert t.set(b"k2", b"", b"v2") == 2
    assert wal_decrees(cluster_dir) == [1, 2]


@pytest.mark.parametrize("wal_sync", ["always", "group", "none"])
def test_failed_apply_leaves_nothing_in_the_wal(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path, wal_sync: str
) -> None:
    c = open_cluster(cluster_dir, config=pf.Config(wal_sync=wal_sync))
    t = c.create_table("t", partition_count=1)
    t.set(b"k0", b"", b"v0")
    with fileio.faults([Fault("rdb_write", 1, errno.ENOSPC)]) as plan:
        with pytest.raises(OSError) as err:
            t.set(b"lost", b"", b"v")
        # the next write (the second rdb_write) goes through, at the decree the failed one left free
        assert t.multi_set(b"multi", {b"a": b"1"}) == 2
    assert plan.fired and err.value.errno == errno.ENOSPC
    assert t.get(b"lost", b"") is None
    # the decree of the failed write is never reused: it is simply not in the log
    assert t.set(b"k2", b"", b"v2") == 3
    c.close()
    assert wal_decrees(cluster_dir) == [1, 2, 3]
    c = open_cluster(cluster_dir)
    assert contents(c.table("t")) == {b"k0": b"v0", b"multi": b"1", b"k2": b"v2"}


def test_failed_apply_that_cannot_be_cut_back_fails_the_partition(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    c = open_cluster(cluster_dir, config=pf.Config(wal_sync="always"))
    t = c.create_table("t", partition_count=1)
    t.set(b"k0", b"", b"v0")
    with fileio.faults([Fault("rdb_write", 1), Fault("truncate", 1)]):
        with pytest.raises(OSError):
            t.set(b"lost", b"", b"v")
    with pytest.raises(pf.PartitionFailedError):
        t.set(b"k2", b"", b"v2")
    c.close()
    c = open_cluster(cluster_dir)
    t = c.table("t")
    # the failed write was never acknowledged: whole or absent, and the next decree is fresh
    assert contents(t) in ({b"k0": b"v0"}, {b"k0": b"v0", b"lost": b"v"})
    d = t.set(b"k2", b"", b"v2")
    c.close()
    decrees = wal_decrees(cluster_dir)
    assert decrees == sorted(set(decrees)) and decrees[-1] == d


def test_failed_fsync_fails_the_partition(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    # after a failed fsync the kernel may have dropped the dirty pages: a later fsync
    # that succeeds would acknowledge writes behind a hole (PostgreSQL's fsyncgate)
    c = open_cluster(cluster_dir, config=pf.Config(wal_sync="always"))
    t = c.create_table("t", partition_count=1)
    t.set(b"k0", b"", b"v0")
    with fileio.faults([Fault("fdatasync", 1, errno.EIO)]):
        with pytest.raises(OSError):
            t.set(b"maybe", b"", b"v")
    with pytest.raises(pf.PartitionFailedError):
        t.set(b"k2", b"", b"v2")
    c.close()
    c = open_cluster(cluster_dir)
    assert contents(c.table("t")) in ({b"k0": b"v0"}, {b"k0": b"v0", b"maybe": b"v"})


def test_failed_lazy_rocksdb_open_logs_nothing(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    # a partition whose background open has not run yet opens on first use: that path, alone
    c = open_cluster(cluster_dir, config=pf.Config(wal_sync="always", open_rocksdb_eagerly=False))
    t = c.create_table("t", partition_count=1)  # its RocksDB opens on first use
    with fileio.faults([Fault("rdb_open", 1, errno.ENOSPC)]):
        with pytest.raises(OSError) as err:
            t.set(b"lost", b"", b"v")
    assert err.value.errno == errno.ENOSPC
    assert t.set(b"k1", b"", b"v1") == 1
    assert t.get(b"k1", b"") == b"v1"
    c.close()
    assert wal_decrees(cluster_dir) == [1]
    c = open_cluster(cluster_dir)
    assert contents(c.table("t")) == {b"k1": b"v1"}


def test_failed_checkpoint_leaves_no_temp_directory(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    c = open_cluster(cluster_dir)
    t = c.create_table("t", partition_count=1)
    t.set(b"k", b"", b"v")
    for _ in range(3):  # a full disk: every retry fails, and none may leave its copy behind
        with fileio.faults([Fault("fsync", 1, errno.ENOSPC)]):
            with pytest.raises(OSError):
                t.checkpoint()
    part = Path(t.partitions[0].path)
    assert sorted(p.name for p in part.iterdir() if p.name.startswith("checkpoint")) == []
    (info,) = t.checkpoint()
    assert Path(info.path).name == "checkpoint.1"


def test_undo_after_a_group_commit_synced_the_block(backend: ModuleType, tmp_path: Path) -> None:
    # Another writer's group commit fsyncs every byte written so far, including a
    # block whose apply then fails. Cutting it back is right (nobody was acknowledged
    # for it), and must itself be made durable, and must not count as synced.
    from pegasus_fast.storage.wal import Wal

    impl = _backend.impl
    wal = Wal(str(tmp_path / "wal"), "group", 1 << 20)
    wal.recover(1)
    end_a = wal.append(impl.encode_block([(1, 1, 1, [(4,)])]), 1, 1)
    wal.commit(1)
    end_b = wal.append(impl.encode_block([(2, 2, 1, [(0, b"h", b"s", b"v", 0)])]), 2, 2)
    with fileio.faults() as calls:
        wal.sync(end_b)  # a leader syncs B's bytes with A's...
    assert calls.calls == {"fdatasync": 1}
    assert wal.synced_decree == 1  # ...but B (not applied, not committed) is not durable
    with fileio.faults() as calls:
        wal.undo()
    assert calls.calls == {"truncate": 1, "fdatasync": 1}  # the cut is made durable
    assert wal.written_offset == end_a
    end_b2 = wal.append(impl.encode_block([(2, 3, 1, [(4,)])]), 2, 2)
    wal.commit(2)
    with fileio.faults() as calls:
        wal.sync(end_b2)
    assert calls.calls == {"fdatasync": 1}  # not skipped as "already synced"
    assert wal.synced_decree == 2
    wal.close()
    mutations, _ = impl.scan_log_dir(str(tmp_path / "wal"), 0)
    assert [(m[0], m[1]) for m in mutations] == [(1, 1), (2, 3)]
