"""Last-writer-wins on a follower, rule by rule (docs/last-writer-wins.md), on both backends.

A shipped mutation is applied op by op against what the follower stores: the
larger timetag (``timestamp_us << 8 | cluster_id << 1 | delete``) wins; an equal
one is the same write again. A delete leaves a tombstone carrying its timetag
for ``delete_tombstone_seconds``, so an older put that arrives after it loses.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pegasus_fast as pf
import pytest
from pegasus_fast import _backend
from pegasus_fast.duplication.ports import SourceId
from pegasus_fast.engine.local_follower import LocalFollower
from pegasus_fast.records import Op, encode_key, timetag, timetag_of

SOURCE_CID = 9
PUT, DELETE, MULTI_DELETE = int(Op.PUT), int(Op.DELETE), int(Op.MULTI_DELETE)


class Follower:
    """A follower table (cluster id 5) fed hand-made shipped mutations from cluster 9."""

    def __init__(self, cluster: pf.Cluster) -> None:
        self.cluster = cluster
        self.port = LocalFollower(cluster)
        self.port.ensure_table("t", 1, SourceId("src", "uid", "t", 1), False)
        self.port.learn_empty("t", {0: 0})
        self.port.mark_learned("t", [0])
        # local writes race shipped ones here: a follower takes them once opted out of read-only
        cluster.set_table_envs("t", {"duplication.follower_writable": "true"})
        self.table = cluster.table("t")
        self.decree = 0

    def ship(self, ts: int, ops: list[tuple[Any, ...]], cid: int = SOURCE_CID) -> None:
        self.decree += 1
        block = _backend.impl.encode_block([(self.decree, ts, cid, ops)])
        assert self.port.apply("t", 0, block) == self.decree

    def stored_timetag(self, sk: bytes = b"s") -> int | None:
        raw = self.table.partitions[0].get_raw(encode_key(b"k", sk))
        return None if raw is None else timetag_of(raw)


@pytest.fixture
def follower(tmp_path: Path, backend: Any) -> Iterator[Follower]:
    with pf.Cluster.open(tmp_path / "f", name="f", config=pf.Config(cluster_id=5)) as c:
        yield Follower(c)


def now_us() -> int:
    return time.time_ns() // 1000


def test_the_same_write_twice_is_idempotent(follower: Follower) -> None:
    ts = now_us()
    follower.ship(ts, [(PUT, b"k", b"s", b"v", 0)])
    before = follower.table.partitions[0].get_raw(encode_key(b"k", b"s"))
    follower.ship(ts, [(PUT, b"k", b"s", b"v", 0)])  # the same write, come another way
    assert follower.table.partitions[0].get_raw(encode_key(b"k", b"s")) == before
    assert follower.table.get("k", "s") == b"v"
    # and the same source decree shipped again is skipped outright
    block = _backend.impl.encode_block([(follower.decree, ts, SOURCE_CID, [(PUT, b"k", b"s", b"other", 0)])])
    assert follower.port.apply("t", 0, block) == follower.decree
    assert follower.table.get("k", "s") == b"v"


def test_a_put_loses_to_a_newer_local_put(follower: Follower) -> None:
    follower.table.set("k", "s", "local")
    follower.ship(now_us() - 10_000_000, [(PUT, b"k", b"s", b"remote", 0)])
    assert follower.table.get("k", "s") == b"local"
    follower.ship(now_us() + 10_000_000, [(PUT, b"k", b"s", b"newer remote", 0)])
    assert follower.table.get("k", "s") == b"newer remote"


def test_a_delete_loses_to_a_newer_local_put(follower: Follower) -> None:
    follower.table.set("k", "s", "local")
    follower.ship(now_us() - 10_000_000, [(DELETE, b"k", b"s")])
    assert follower.table.get("k", "s") == b"local"
    follower.ship(now_us() + 10_000_000, [(MULTI_DELETE, b"k", [b"s"])])
    assert follower.table.get("k", "s") is None


def test_a_put_after_a_newer_delete_stays_deleted(follower: Follower) -> None:
    follower.table.set("k", "s", "local")
    follower.table.delete("k", "s")  # a tombstone carries the delete's timetag
    tag = follower.stored_timetag()
    assert tag is not None and tag & 1 == 1
    # compaction keeps a tombstone that has not expired yet
    follower.cluster.compact("t").result()
    assert follower.stored_timetag() == tag
    follower.ship(now_us() - 10_000_000, [(PUT, b"k", b"s", b"old remote", 0)])
    assert follower.table.get("k", "s") is None
    assert follower.table.count() == 0 and list(follower.table.scan()) == []
    assert follower.table.multi_get("k") == {}
    follower.ship(now_us() + 10_000_000, [(PUT, b"k", b"s", b"newer remote", 0)])
    assert follower.table.get("k", "s") == b"newer remote"


def test_without_tombstones_an_old_put_comes_back_as_in_pegasus(tmp_path: Path, backend: Any) -> None:
    cfg = pf.Config(cluster_id=5, delete_tombstone_seconds=0)
    with pf.Cluster.open(tmp_path / "f", config=cfg) as c:
        f = Follower(c)
        f.table.set("k", "s", "local")
        f.table.delete("k", "s")
        assert f.stored_timetag() is None  # a RocksDB delete: nothing remembers it
        f.ship(now_us() - 10_000_000, [(PUT, b"k", b"s", b"old remote", 0)])
        assert f.table.get("k", "s") == b"old remote"


def test_equal_timestamps_break_ties_by_cluster_id(follower: Follower) -> None:
    ts = now_us() + 5_000_000
    follower.ship(ts, [(PUT, b"k", b"s", b"from 9", 0)], cid=9)
    follower.ship(ts, [(PUT, b"k", b"s", b"from 3", 0)], cid=3)
    assert follower.table.get("k", "s") == b"from 9"
    assert follower.stored_timetag() == timetag(ts, 9)
    follower.ship(ts, [(PUT, b"k", b"s", b"from 11", 0)], cid=11)
    assert follower.table.get("k", "s") == b"from 11"


def test_tombstones_expire_and_are_dropped(
    tmp_path: Path, backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = pf.Config(cluster_id=5, delete_tombstone_seconds=60)
    with pf.Cluster.open(tmp_path / "f", config=cfg) as c:
        f = Follower(c)
        f.table.set("k", "s", "local")
        f.table.delete("k", "s")
        old = now_us() - 10_000_000
        # 61 s later the tombstone has expired: it no longer refuses the older put...
        import pegasus_fast.records as records

        real = records.now_pegasus_seconds
        monkeypatch.setattr(records, "now_pegasus_seconds", lambda: real() + 61)
        import pegasus_fast.duplication.apply as apply_mod

        monkeypatch.setattr(apply_mod, "now_pegasus_seconds", lambda: real() + 61)
        f.ship(old, [(PUT, b"k", b"s", b"old remote", 0)])
        assert f.table.get("k", "s") == b"old remote"
        # ...and compaction drops an expired tombstone like any expired record
        f.table.delete("k", "s")
        monkeypatch.setattr(records, "now_pegasus_seconds", lambda: real() + 130)
        import pegasus_fast.storage.expiry as expiry

        monkeypatch.setattr(expiry, "now_pegasus_seconds", lambda: real() + 130)
        c.compact("t").result()
        assert f.table.partitions[0].get_raw(encode_key(b"k", b"s")) is None


def test_tombstones_survive_replay_byte_for_byte(tmp_path: Path, backend: Any) -> None:
    """Recovery rebuilds the same tombstone from the WAL (its expiry comes from the delete's timestamp)."""
    path = tmp_path / "c"
    with pf.Cluster.open(path, config=pf.Config(cluster_id=5)) as c:
        t = c.create_table("t", partition_count=1)
        t.set("k", "s", "v")
        t.delete("k", "s")
        t.multi_set("k", {"a": "1", "b": "2"})
        t.multi_delete("k", ["a"])
        before = dict(t.partitions[0].raw_view())
        # crash: the memtable is lost, the WAL replays
        t.partitions[0].close(flush=False)
    with pf.Cluster.open(path) as c:
        after = dict(c.table("t").partitions[0].raw_view())
    assert after == before
    assert sum(1 for v in after.values() if v[11] & 1) == 2


@pytest.mark.parametrize(
    "key, value",
    [
        (b"\x00\x09k", b"\x00" * 12),  # a hash key length past the key
        (encode_key(b"k", b"s"), b"short"),  # a value without its header
    ],
)
def test_a_malformed_shipped_record_is_refused_and_nothing_stored(
    follower: Follower, key: bytes, value: bytes
) -> None:
    """A block that checks out but holds a record no writer makes (a hostile or broken peer)."""
    raw_put = int(Op.RAW_PUT)
    follower.decree += 1
    block = _backend.impl.encode_block([(follower.decree, now_us(), SOURCE_CID, [(raw_put, key, value)])])
    with pytest.raises(pf.InvalidArgumentError):
        follower.port.apply("t", 0, block)
    assert follower.table.partitions[0].get_raw(key) is None
    assert list(follower.table.scan()) == []
    # as a logical snapshot too
    with pytest.raises(pf.InvalidArgumentError):
        from pegasus_fast.duplication import learn

        p = follower.table.partitions[0]
        p.restart_learning()
        try:
            learn.learn_snapshot(
                p, 5, _backend.impl.encode_block([(1, now_us(), SOURCE_CID, [(raw_put, key, value)])])
            )
        finally:
            p.serve_learned()
    assert follower.table.partitions[0].get_raw(key) is None
