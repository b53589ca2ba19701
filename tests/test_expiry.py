"""Expired records leave RocksDB on compaction and before a periodic checkpoint (Pegasus's compaction filter)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pegasus_fast as pf
import pytest
import rocksdict
from pegasus_fast import _backend, records
from pegasus_fast.duplication.ports import SourceId
from pegasus_fast.engine.local_follower import LocalFollower
from pegasus_fast.storage import expiry

OpenCluster = Callable[..., pf.Cluster]
LATER = 3600  # seconds the clock jumps: every ttl below (60) has run out


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """``clock(seconds)`` moves the store's record clock forward (writes' timetags are untouched)."""

    def advance(seconds: int) -> None:
        start = time.time()
        monkeypatch.setattr(records, "time", SimpleNamespace(time=lambda: start + seconds))

    return advance


def raw_keys(table: pf.Table) -> list[bytes]:
    """Every record key in the partitions' RocksDB, expired ones included."""
    return [k for p in table.partitions for k, _ in p.raw_view()]


def fill(t: pf.Table) -> set[tuple[bytes, bytes]]:
    """60 records with a ttl of 60 s, 50 without; returns the (hash_key, sort_key) that stay."""
    # random values: RocksDB's compression must not hide the bytes that go
    for i in range(50):
        t.set(b"gone%d" % i, b"s", os.urandom(2000), ttl_seconds=60)
        t.set(b"kept%d" % i, b"s", os.urandom(2000))
    t.multi_set(b"multi", {b"a%d" % i: os.urandom(2000) for i in range(10)}, ttl_seconds=60)
    return {(b"kept%d" % i, b"s") for i in range(50)}


def dropped_metric(c: pf.Cluster, table: str) -> float:
    return c.metrics().get(f'expired_records_dropped_total{{table="{table}"}}', 0.0)


def test_compact_drops_expired_records(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path, clock: Callable[[int], None]
) -> None:
    c = open_cluster(cluster_dir)
    t = c.create_table("t", partition_count=2)
    kept = fill(t)
    t.checkpoint()  # the records are in SST files, as a long-lived table's are
    assert len(raw_keys(t)) == 110
    clock(LATER)
    assert {(hk, sk) for hk, sk, _ in t.scan()} == kept  # invisible already, but on disk
    before = sum(s.data_bytes for s in t.partition_stats())
    c.compact("t").result()
    assert len(raw_keys(t)) == 50
    assert {(hk, sk) for hk, sk, _ in t.scan()} == kept
    assert dropped_metric(c, "t") == 60
    after = sum(s.data_bytes for s in t.partition_stats())
    assert after < before - 100_000  # the 60 records of 2 kB each left the SST files
    decrees = [s.last_committed_decree for s in t.partition_stats()]
    c.compact("t").result()
    assert dropped_metric(c, "t") == 60  # nothing more to drop
    c.close()
    c2 = open_cluster(cluster_dir)
    t2 = c2.table("t")
    assert len(raw_keys(t2)) == 50
    # the drops were no mutations: the decrees are where the writes left them
    assert [s.last_committed_decree for s in t2.partition_stats()] == decrees
    p = t2.partition_index(b"new")
    assert t2.set(b"new", b"s", b"v") == decrees[p] + 1


def test_a_record_rewritten_after_the_scan_is_kept(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path, clock: Callable[[int], None]
) -> None:
    t = open_cluster(cluster_dir).create_table("t", partition_count=1)
    (p,) = t.partitions
    t.set(b"h", b"rewritten", b"old", ttl_seconds=60)
    t.set(b"h", b"stale", b"old", ttl_seconds=60)
    clock(LATER)
    keys = list(expiry.iter_expired(p))
    assert keys == [records.encode_key(b"h", b"rewritten"), records.encode_key(b"h", b"stale")]
    t.set(b"h", b"rewritten", b"fresh")  # between the scan and the delete
    assert expiry.delete_expired(p, keys) == 1
    assert t.multi_get(b"h") == {b"rewritten": b"fresh"}
    assert raw_keys(t) == [records.encode_key(b"h", b"rewritten")]


def test_concurrent_rewrites_survive_a_drop(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path, clock: Callable[[int], None]
) -> None:
    t = open_cluster(cluster_dir).create_table("t", partition_count=1)
    (p,) = t.partitions
    n = 3 * expiry.CHUNK
    for i in range(n):
        t.set(b"h", b"%05d" % i, b"old", ttl_seconds=60)
    clock(LATER)
    keys = list(expiry.iter_expired(p))
    assert len(keys) == n

    def rewrite() -> None:
        for i in range(0, n, 2):
            t.set(b"h", b"%05d" % i, b"fresh")

    writer = threading.Thread(target=rewrite)
    writer.start()
    dropped = expiry.delete_expired(p, keys)
    writer.join()
    # every rewrite is there, whichever side of a chunk it landed on; the rest are gone
    assert t.multi_get(b"h") == {b"%05d" % i: b"fresh" for i in range(0, n, 2)}
    assert n // 2 <= dropped <= n
    assert raw_keys(t) == [records.encode_key(b"h", b"%05d" % i) for i in range(0, n, 2)]


def test_periodic_checkpoint_drops_expired_first(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path, clock: Callable[[int], None]
) -> None:
    config = pf.Config(checkpoint_max_interval_hours=1e-6)
    c = open_cluster(cluster_dir, config=config)
    t = c.create_table("t", partition_count=1)
    kept = fill(t)
    clock(LATER)
    for _ in range(1000):  # the first pass sets the (tiny) emergency deadline; a later one passes it
        c.maintenance.periodic_checkpoints()
        if c.metrics().get('checkpoint_count_total{kind="periodic"}'):
            break
        time.sleep(0.001)
    assert c.metrics()['checkpoint_count_total{kind="periodic"}'] == 1
    assert dropped_metric(c, "t") == 60
    assert len(raw_keys(t)) == 50
    ckpt = max(Path(t.partitions[0].path).glob("checkpoint.*"), key=lambda d: int(d.suffix[1:]))
    db = rocksdict.Rdict(
        str(ckpt), rocksdict.Options(raw_mode=True), access_type=rocksdict.AccessType.read_only()
    )
    try:
        stored = {records.decode_key(k) for k in db.keys() if not records.is_meta_key(k)}
    finally:
        db.close()
    assert stored == kept  # what the compaction filter would drop is not in the checkpoint


@pytest.mark.parametrize("compact_first", [False, True])
def test_duplicated_write_beats_an_expired_record(
    backend: ModuleType,
    open_cluster: OpenCluster,
    cluster_dir: Path,
    clock: Callable[[int], None],
    compact_first: bool,
) -> None:
    # Pegasus compares timetags only with a record that is found and not expired, so an
    # older duplicated write lands whether or not compaction has dropped the local one yet
    c = open_cluster(cluster_dir)
    t = c.create_table("t", partition_count=1)
    t.set(b"h", b"s", b"local", ttl_seconds=60)
    t.set(b"h", b"live", b"local")
    local_ts = (
        records.VALUE_HEADER.unpack_from(t.partitions[0].get_raw(records.encode_key(b"h", b"s")))[1] >> 8
    )
    clock(LATER)
    if compact_first:
        c.compact("t").result()
    older = local_ts - 1_000_000
    # the table follows a duplication adopted without checkpoint (master-master): the Follower
    # port takes shipped writes only into a duplication's follower table
    port = LocalFollower(c)
    port.ensure_table("t", 1, SourceId("src", "uid", "t", 1), False)
    for ops in (
        [(0, b"h", b"s", b"remote", 0), (0, b"h", b"live", b"remote", 0)],  # mixed: the per-op path
        [(0, b"h", b"s", b"remote2", 0)],  # alone: the all-win fast path
    ):
        decree = t.partitions[0].source_decree + 1
        block = _backend.impl.encode_block([(decree, older, 2, ops)])
        port.apply("t", 0, block)
        assert t.get(b"h", b"live") == b"local"  # a live newer record still wins
    assert t.get(b"h", b"s") == b"remote2"
