"""The founding scenario must not regress (issue #16): nothing that an empty partition does not
need stands in front of add_duplication, so a table's add_duplication right after
create_table costs what it costs on a table whose partitions are all open already.

A ratio measured in one test, both sides interleaved, best of several rounds: absolute
times drift on a shared machine, the ratio does not. Before the fix, eight background
RocksDB opens queued behind create_table made the new table's add_dup ~8x the open one's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
from pegasus_fast import fileio

OpenCluster = Callable[..., pf.Cluster]
ROUNDS = 5


def _add_dup_seconds(src: pf.Cluster, dst: pf.Cluster, name: str, open_first: bool) -> float:
    t = src.create_table(name, partition_count=8)
    if open_first:
        for p in t.partitions:
            p.open_now()
    start = time.perf_counter()
    src.add_duplication(name, dst, with_checkpoint=True).wait_for(pf.DupStatus.LOG, timeout=30)
    follower = dst.table(name)
    deadline = time.monotonic() + 30
    while follower.health().fully_healthy != 8:
        assert time.monotonic() < deadline, follower.health()
        time.sleep(0.0002)
    return time.perf_counter() - start


def test_empty_table_add_dup_right_after_create_costs_no_more_than_on_an_open_table(
    open_cluster: OpenCluster, tmp_path: Path
) -> None:
    src = open_cluster(tmp_path / "src", name="source", config=pf.Config(wal_sync="group", cluster_id=1))
    dst = open_cluster(tmp_path / "dst", name="target", config=pf.Config(wal_sync="group", cluster_id=2))
    _add_dup_seconds(src, dst, "warmup", True)
    opened, new = [], []
    for i in range(ROUNDS):
        opened.append(_add_dup_seconds(src, dst, f"open{i}", True))
        new.append(_add_dup_seconds(src, dst, f"new{i}", False))
    assert min(new) <= 2 * min(opened), (new, opened)


def test_add_dup_of_an_empty_table_opens_no_rocksdb_on_either_side(
    backend: ModuleType, open_cluster: OpenCluster, tmp_path: Path
) -> None:
    src = open_cluster(tmp_path / "src", name="source")
    dst = open_cluster(tmp_path / "dst", name="target")
    with fileio.faults() as counted:
        src.create_table("t", partition_count=8)
        src.add_duplication("t", dst).wait_for(pf.DupStatus.LOG, timeout=30)
        assert dst.table("t").health().fully_healthy == 8
        time.sleep(0.3)  # the background has every chance to open something it should not
    assert counted.calls.get("rdb_open", 0) == 0
    # and a write on either side still works, opening its partition then
    src.table("t").set(b"k", b"s", b"v")
    deadline = time.monotonic() + 30
    while dst.table("t").get(b"k", b"s") != b"v":
        assert time.monotonic() < deadline
        time.sleep(0.001)


def test_a_new_partition_makes_one_directory_until_its_first_write(
    backend: ModuleType, open_cluster: OpenCluster, tmp_path: Path
) -> None:
    # a follower table of 64 partitions is 64 inodes, not 128, before anything arrives
    c = open_cluster(tmp_path / "c")
    t = c.create_table("t", partition_count=4)
    for p in t.partitions:
        assert sorted(Path(p.path).iterdir()) == []
    t.set(b"k", b"s", b"v")
    written = t.partitions[t.partition_index(b"k", b"s")]
    assert {x.name for x in Path(written.path).iterdir()} >= {"wal", "rdb", "wal.head"}
    c.close()
    c2 = open_cluster(tmp_path / "c")
    assert c2.table("t").get(b"k", b"s") == b"v"
    assert [x for x in c2.table("t").scan()] == [(b"k", b"s", b"v")]


def test_background_opens_wait_while_duplication_work_runs(backend: ModuleType, tmp_path: Path) -> None:
    from pegasus_fast.engine.opens import YIELD_INTERVAL, BackgroundOpens
    from pegasus_fast.engine.scheduler import Scheduler
    from pegasus_fast.storage.partition import Partition

    busy = [True]
    sched = Scheduler(1)
    p = Partition(str(tmp_path / "p"), "t", 1, 0, pf.Config(), 1)
    try:
        BackgroundOpens(sched, lambda: busy[0]).open_later([p])
        time.sleep(YIELD_INTERVAL * 4)
        assert not p.is_open  # it asked several times, and yielded each time
        busy[0] = False
        deadline = time.monotonic() + 10
        while not p.is_open:
            assert time.monotonic() < deadline
            time.sleep(0.005)
    finally:
        sched.stop()
        p.close()


@pytest.mark.parametrize("eager", [False, True])
def test_eager_opens_run_once_the_duplication_ships(
    backend: ModuleType, open_cluster: OpenCluster, tmp_path: Path, eager: bool
) -> None:
    src = open_cluster(
        tmp_path / "src", name="source", config=pf.Config(open_rocksdb_eagerly=eager, background_workers=1)
    )
    dst = open_cluster(tmp_path / "dst", name="target")
    t = src.create_table("t", partition_count=4)
    dup = src.add_duplication("t", dst)
    dup.wait_for(pf.DupStatus.LOG, timeout=30)
    deadline = time.monotonic() + 10
    while eager and not all(p.is_open for p in t.partitions):
        assert time.monotonic() < deadline, "the eager opens never ran once the duplication shipped"
        time.sleep(0.005)
    assert all(p.is_open for p in t.partitions) == eager
