"""``Config.open_rocksdb_eagerly``: a new table's RocksDB instances open ahead of the first
write (issue #10: the ~10 ms of creating one was a latency spike on the first write to each
partition). Off by default since issue #16 (the opens stood in front of add_duplication)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
from pegasus_fast import fileio
from pegasus_fast.engine.opens import FOLLOWER_OPEN_DELAY
from pegasus_fast.engine.scheduler import Lane

OpenCluster = Callable[..., pf.Cluster]
KEYS = [b"k%d" % i for i in range(64)]


def _drain(c: pf.Cluster) -> None:
    # one worker takes every NORMAL task (the opens) before a LOW one
    c.scheduler.submit(lambda: None, Lane.LOW).result()


@pytest.mark.parametrize("eager", [True, False])
def test_first_writes_open_no_rocksdb(
    default_backend: ModuleType, open_cluster_once: OpenCluster, cluster_dir: Path, eager: bool
) -> None:
    c = open_cluster_once(cluster_dir, config=pf.Config(background_workers=1, open_rocksdb_eagerly=eager))
    t = c.create_table("t", partition_count=4)
    _drain(c)
    assert {t.partition_index(k, b"s") for k in KEYS} == {0, 1, 2, 3}
    with fileio.faults() as counted:
        for k in KEYS:
            t.set(k, b"s", b"v")
    assert counted.calls.get("rdb_open", 0) == (0 if eager else 4)
    c.close()
    c = open_cluster_once(cluster_dir)
    assert sorted(hk for hk, _, _ in c.table("t").scan()) == sorted(KEYS)


def test_follower_partitions_open_in_the_background_once_learned(
    default_backend: ModuleType, open_cluster_once: OpenCluster, tmp_path: Path
) -> None:
    # not inside add_duplication (8 opens with the GIL held would be most of it), but queued
    # a moment after the partitions start serving: opened once that is past and the lane drains
    src = open_cluster_once(tmp_path / "src", name="source")
    dst = open_cluster_once(
        tmp_path / "dst", name="target", config=pf.Config(background_workers=1, open_rocksdb_eagerly=True)
    )
    src.create_table("t", partition_count=4)
    src.add_duplication("t", dst).wait_for(pf.DupStatus.LOG, timeout=60)
    time.sleep(FOLLOWER_OPEN_DELAY)
    dst.scheduler.submit_after(0.05, lambda: None, Lane.LOW).result()
    dst.scheduler.submit(lambda: None, Lane.LOW).result()
    dst.set_table_envs("t", {"duplication.follower_writable": "true"})  # read-only otherwise (#21 §3)
    with fileio.faults() as counted:
        dst.table("t").set(b"k", b"s", b"v")
    assert counted.calls.get("rdb_open", 0) == 0


def test_drop_and_close_right_after_create(
    default_backend: ModuleType, open_cluster_once: OpenCluster, cluster_dir: Path
) -> None:
    # the queued opens meet a dropped table and a closing cluster: neither fails
    c = open_cluster_once(cluster_dir, config=pf.Config(open_rocksdb_eagerly=True))
    c.create_table("gone", partition_count=8)
    c.drop_table("gone")
    t = c.create_table("t", partition_count=8)
    t.set(b"k", b"s", b"v")
    c.close()
    c = open_cluster_once(cluster_dir)
    assert c.table("t").get(b"k", b"s") == b"v"
    assert not c.has_table("gone")
