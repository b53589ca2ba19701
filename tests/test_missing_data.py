"""Files removed behind the store's back are found at open, not served as an emptier store."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest

OpenCluster = Callable[..., pf.Cluster]
VALUE = b"x" * (200 << 10)


def crash_close(c: pf.Cluster) -> None:
    """Close as a kill -9 would leave it: RocksDB's memtables are lost, the WAL holds everything."""
    for t in c.open_tables():
        for p in t.partitions:
            p.close(flush=False)
    c.close()


def log_files(part: Path) -> list[Path]:
    return sorted(part.glob("wal/log.*"), key=lambda p: int(p.name.split(".")[1]))


def test_deleted_newest_wal_file_refuses_open(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    config = pf.Config(log_private_file_size_mb=1)
    c = pf.Cluster.open(cluster_dir, config=config)
    t = c.create_table("t", partition_count=1)
    for i in range(12):
        t.set(b"h", b"s%02d" % i, VALUE)  # acknowledged, in 3 log files
    crash_close(c)
    files = log_files(cluster_dir / "tables" / "1.0")
    assert len(files) >= 3
    files[-1].unlink()
    with pytest.raises(pf.WalGapError) as err:
        open_cluster(cluster_dir, config=config)  # before: opened with the last writes missing
    assert err.value.path.startswith(str(files[-1].parent))


def test_deleted_partition_directory_refuses_open(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    with pf.Cluster.open(cluster_dir) as c:
        t = c.create_table("t", partition_count=2)
        for i in range(20):
            t.set(b"h%d" % i, b"", b"v")
    gone = cluster_dir / "tables" / "1.1"
    shutil.rmtree(gone)
    with pytest.raises(pf.DataLossError) as err:
        open_cluster(cluster_dir)  # before: partition 1 came back new and empty
    assert err.value.path == str(gone)


def test_deleted_wal_directory_refuses_open(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    c = pf.Cluster.open(cluster_dir)
    t = c.create_table("t", partition_count=1)
    t.set(b"flushed", b"", b"v")
    t.checkpoint()
    t.set(b"only-in-the-wal", b"", b"v")
    crash_close(c)
    shutil.rmtree(cluster_dir / "tables" / "1.0" / "wal")
    with pytest.raises(pf.DataLossError) as err:
        open_cluster(cluster_dir)
    assert err.value.path == str(cluster_dir / "tables" / "1.0" / "wal")


def test_deleted_rocksdb_behind_an_emptied_log_refuses_open(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    config = pf.Config(log_private_file_size_mb=1)
    c = pf.Cluster.open(cluster_dir, config=config)
    t = c.create_table("t", partition_count=1)
    for i in range(6):
        t.set(b"h", b"s%02d" % i, VALUE)  # the 6th write starts log file 2
    part = cluster_dir / "tables" / "1.0"
    t.checkpoint()  # flushed; log file 1 is collected
    c.close()
    (tail,) = log_files(part)
    tail.write_bytes(b"")  # the newest file holds nothing any more
    shutil.rmtree(part / "rdb")
    shutil.rmtree(part / "checkpoint.6")
    with pytest.raises(pf.WalGapError) as err:
        open_cluster(cluster_dir, config=config)  # before: opened empty
    assert (err.value.expected_decree, err.value.found_decree) == (1, 6)


def test_nothing_missing_opens_after_rotations_checkpoints_and_learning(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    # the evidence never cries wolf: a store used normally reopens
    config = pf.Config(log_private_file_size_mb=1)
    c = pf.Cluster.open(cluster_dir, config=config)
    t = c.create_table("t", partition_count=2)
    c.create_table("empty", partition_count=3)
    for i in range(12):
        t.set(b"h%d" % i, b"", VALUE)
    t.checkpoint()
    t.set(b"after", b"", b"v")
    crash_close(c)
    c = open_cluster(cluster_dir, config=config)
    assert c.table("t").count() == 13
    assert c.table("empty").count() == 0
