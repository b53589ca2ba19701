"""Point reads of a partition whose RocksDB is not made yet (a follower partition that learned a
small snapshot, a new secondary): they are answered from the writes its log holds, the same
answers RocksDB gives once it is made, and never make RocksDB (5-10 ms of fsyncs) themselves."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
from pegasus_fast.records import EPOCH_BEGIN, Op, encode_key
from pegasus_fast.storage import writes
from pegasus_fast.storage.partition import Partition


def _now_pegasus() -> int:
    return int(time.time()) - EPOCH_BEGIN


def _ops(rng: random.Random, n: int) -> list[tuple]:
    """Puts, deletes, multi-puts and multi-deletes over a few keys, some with a TTL passed."""
    now = _now_pegasus()
    out: list[tuple] = []
    for _ in range(n):
        hk, sk = b"h%d" % rng.randrange(6), b"s%d" % rng.randrange(4)
        expire = rng.choice([0, 0, 0, now - 5, now + 3600])
        kind = rng.randrange(4)
        if kind == 0:
            out.append((int(Op.PUT), hk, sk, rng.randbytes(rng.randrange(1, 40)), expire))
        elif kind == 1:
            out.append((int(Op.DELETE), hk, sk))
        elif kind == 2:
            out.append(
                (int(Op.MULTI_PUT), hk, [(b"m%d" % i, b"v%d" % rng.randrange(99)) for i in range(3)], expire)
            )
        else:
            out.append((int(Op.MULTI_DELETE), hk, [b"m0", b"m2"]))
    return out


def _keys() -> list[bytes]:
    return [
        encode_key(b"h%d" % h, s)
        for h in range(7)
        for s in [b"s%d" % i for i in range(5)] + [b"m0", b"m1", b"m2"]
    ]


def _log(p: Partition, ops: list[tuple], ts: int) -> None:
    """What a follower's learn and a secondary do: log, RocksDB left for later."""
    p.write_mutations(lambda d: [(d, ts, 1, ops)], defer_apply=True)


def _rdb_made(p: Partition) -> bool:
    return p._db is not None or os.path.isdir(os.path.join(p.path, "rdb"))


@pytest.mark.parametrize("seed", range(4))
def test_reads_before_rocksdb_is_made_answer_as_rocksdb_does(
    backend: ModuleType, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    with pf.Cluster.open(tmp_path / "c", config=pf.Config(delete_tombstone_seconds=seed % 2 * 60)) as c:
        a, b = (
            c.create_table("a", partition_count=1).partitions[0],
            c.create_table("b", partition_count=1).partitions[0],
        )
        ts = time.time_ns() // 1000
        for n in range(5):
            ops = _ops(rng, rng.randrange(1, 12))
            _log(a, ops, ts + n)
            _log(b, ops, ts + n)
        keys = _keys()
        before = [a.get(k) for k in keys]
        raw_before = [a.get_raw(k) for k in keys]
        many = a.get_many(keys)
        assert not _rdb_made(a), "a point read made RocksDB"
        assert any(v is not None for v in before), "the test reads something"
        b.db  # made now: it replays its log  # noqa: B018
        assert _rdb_made(b)
        assert before == [b.get(k) for k in keys] == many
        assert raw_before == [b.get_raw(k) for k in keys]
        # a write that is not left for later makes RocksDB, and reads go there from then on
        a.write([(int(Op.PUT), b"h0", b"s0", b"after", 0)])
        assert _rdb_made(a) and a._image is None
        assert a.get(encode_key(b"h0", b"s0")) == b"after"
        assert [a.get(k) for k in keys[1:]] == before[1:]


def test_a_partition_that_held_data_before_reads_rocksdb(backend: ModuleType, tmp_path: Path) -> None:
    """Only a partition that held nothing has an image: one with data from before (its log
    replayed at reopen, or RocksDB made) answers from RocksDB."""
    root = tmp_path / "c"
    key = encode_key(b"h", b"s")
    with pf.Cluster.open(root) as c:
        p = c.create_table("t", partition_count=1).partitions[0]
        _log(p, [(int(Op.PUT), b"h", b"s", b"one", 0)], time.time_ns() // 1000)
        assert p._image is not None and p.get(key) == b"one"
    with pf.Cluster.open(root) as c:
        p = c.table("t").partitions[0]
        _log(p, [(int(Op.PUT), b"h", b"s", b"two", 0)], time.time_ns() // 1000)
        assert p._image is None
        assert p.get(key) == b"two"


def test_an_image_past_its_bound_is_dropped_and_reads_make_rocksdb(
    backend: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writes, "IMAGE_KEYS", 10)
    with pf.Cluster.open(tmp_path / "c") as c:
        p = c.create_table("t", partition_count=1).partitions[0]
        ts = time.time_ns() // 1000
        _log(p, [(int(Op.PUT), b"h", b"s%d" % i, b"v", 0) for i in range(6)], ts)
        assert p._image is not None
        _log(p, [(int(Op.PUT), b"h", b"t%d" % i, b"v", 0) for i in range(6)], ts + 1)
        assert p._image is None
        assert not _rdb_made(p)
        assert p.get(encode_key(b"h", b"t5")) == b"v"
        assert _rdb_made(p)


def test_a_follower_that_learned_a_small_table_answers_its_first_reads_without_making_rocksdb(
    backend: ModuleType, tmp_path: Path
) -> None:
    with (
        pf.Cluster.open(tmp_path / "src", config=pf.Config(cluster_id=1)) as src,
        pf.Cluster.open(tmp_path / "dst", config=pf.Config(cluster_id=2)) as dst,
    ):
        t = src.create_table("t", partition_count=8)
        t.set(b"k1", b"s", b"v1")
        t.set(b"k2", b"s", b"v2", ttl_seconds=3600)
        dup = src.add_duplication("t", str(tmp_path / "dst"), with_checkpoint=True)
        dup.wait_for(pf.DupStatus.LOG, timeout=30)
        f = dst.table("t")
        assert f.get(b"k1", b"s") == b"v1" and f.get(b"k2", b"s") == b"v2"
        assert f.get(b"k3", b"s") is None
        assert not any(_rdb_made(p) for p in f.partitions), "a first read made RocksDB"
        assert 3590 <= f.ttl(b"k2", b"s") <= 3600  # a read that is not a point read makes it
        t.set(b"k1", b"s", b"v1b")  # shipped: the follower's apply makes RocksDB
        deadline = time.monotonic() + 10
        while f.get(b"k1", b"s") != b"v1b":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert f.get(b"k2", b"s") == b"v2"


def test_writes_the_image_cannot_hold_leave_reads_to_rocksdb(backend: ModuleType, tmp_path: Path) -> None:
    """A hash key of 65535 bytes: the log (and replay) take it, ``mutation_writes`` refuses it
    (Pegasus's limit). The write is logged as ever, the image is dropped, and the read makes
    RocksDB, which replays it."""
    hk = b"x" * 65535
    with pf.Cluster.open(tmp_path / "c") as c:
        p = c.create_table("t", partition_count=1).partitions[0]
        ts = time.time_ns() // 1000
        _log(p, [(int(Op.PUT), b"h", b"s", b"v", 0)], ts)
        assert p._image is not None
        _log(p, [(int(Op.PUT), hk, b"s", b"long", 0)], ts + 1)
        assert p._image is None and p.last_committed == 2
        assert p.get(encode_key(b"h", b"s")) == b"v"
        assert _rdb_made(p)
