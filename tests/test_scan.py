"""Table.scan and Table.scan_batches: the backend drives RocksDB's iterator, and only live
records come out (no meta keys, tombstones or expired records), the same on both backends."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
import rocksdict
from pegasus_fast.records import decode_key, is_meta_key, live_value

OpenCluster = Callable[..., pf.Cluster]
NOW = 1_000_000


def _value(expire_ts: int, timetag: int, user: bytes) -> bytes:
    return struct.pack(">IQ", expire_ts, timetag) + user


#: RocksDB key -> value, every case a scan meets
STORED = {
    b"\x00": struct.pack("<Q", 7),  # meta keys
    b"\x01": struct.pack("<Q", 3),
    b"\x00\x02hkA": _value(0, 8, b"no ttl"),
    b"\x00\x02hkB": _value(NOW + 1, 8, b"expires later"),
    b"\x00\x02hkC": _value(NOW, 8, b"expired now"),
    b"\x00\x02hkD": _value(1, 8, b"long expired"),
    b"\x00\x02hkE": _value(NOW + 5, 9, b""),  # a delete's tombstone
    b"\x00\x02hkF": _value(0, 8, b""),  # an empty value is a value
    b"\x00\x00sort only": _value(0, 8, b"empty hash key"),
    b"\x00\x09short": _value(0, 8, b"hash key length past the end"),
    b"\x00\x02hkG" + b"x" * 300: _value(0, 8, b"y" * 5000),
}


def expected() -> list[tuple[bytes, bytes, bytes]]:
    out = []
    for key in sorted(STORED):
        value = None if is_meta_key(key) else live_value(STORED[key], NOW)
        if value is not None:
            out.append((*decode_key(key), value))
    return out


@pytest.fixture
def db(tmp_path: Path) -> rocksdict.Rdict:
    d = rocksdict.Rdict(str(tmp_path / "rdb"), rocksdict.Options(raw_mode=True))
    for k, v in STORED.items():
        d.put(k, v)
    yield d
    d.close()


def _records(backend: ModuleType, db: rocksdict.Rdict, limit: int) -> list[tuple[bytes, bytes, bytes]]:
    it = db.iter()
    it.seek_to_first()
    out, more = [], True
    while more:
        chunk, more = backend.scan_records(it, NOW, limit)
        assert len(chunk) <= limit
        out += chunk
    return out


def _batches(backend: ModuleType, db: rocksdict.Rdict, max_bytes: int) -> list[tuple]:
    it = db.iter()
    it.seek_to_first()
    out, more = [], True
    while more:
        count, buffers, more = backend.scan_batch(it, NOW, max_bytes)
        out.append((count, [bytes(b) for b in buffers]))
    return out


@pytest.mark.parametrize("limit", [1, 2, 3, 1024])
def test_scan_records_keeps_live_records_only(backend: ModuleType, db: rocksdict.Rdict, limit: int) -> None:
    assert _records(backend, db, limit) == expected()


@pytest.mark.parametrize("max_bytes", [1, 20, 100_000])
def test_scan_batch_buffers_and_offsets(
    backend: ModuleType, other_backend: ModuleType, db: rocksdict.Rdict, max_bytes: int
) -> None:
    got = _batches(backend, db, max_bytes)
    assert got == _batches(other_backend, db, max_bytes)  # byte for byte, batch for batch
    records = [
        r
        for count, buffers in got
        for r in pf.RecordBatch(count, *buffers)  # type: ignore[arg-type]
    ]
    assert records == expected()
    assert sum(count for count, _ in got) == len(expected())


def test_short_value_is_refused(backend: ModuleType, db: rocksdict.Rdict) -> None:
    db.put(b"\x00\x02hkZ", b"\x00" * 11)
    with pytest.raises(pf.InvalidArgumentError):
        _records(backend, db, 1024)
    with pytest.raises(pf.InvalidArgumentError):
        _batches(backend, db, 1 << 20)


def test_table_scan_batches_is_scan(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    c = open_cluster(cluster_dir)
    t = c.create_table("t", partition_count=4)
    for i in range(500):
        t.set(b"h%d" % (i % 37), b"s%d" % i, b"v" * (i % 50))
    t.multi_set(b"multi", {b"a": b"1", b"b": b"2"})
    for i in range(0, 500, 7):
        t.delete(b"h%d" % (i % 37), b"s%d" % i)  # tombstones (delete_tombstone_seconds)
    t.set(b"gone", b"s", b"v")
    t.delete(b"gone", b"s")
    for p in t.partitions:
        p.flush()
    t.set(b"unflushed", b"s", b"in the memtable")
    records = list(t.scan())
    assert len(records) == 500 - len(range(0, 500, 7)) + 3
    assert (b"gone", b"s", b"v") not in records
    for batch_bytes in (1, 1000, 4 << 20):
        batches = list(t.scan_batches(batch_bytes))
        assert [r for b in batches for r in b] == records
        assert all(len(b) for b in batches)
    c.close()


def test_scan_batches_arguments(backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path) -> None:
    c = open_cluster(cluster_dir)
    t = c.create_table("t", partition_count=2)
    assert list(t.scan_batches()) == []  # partitions that never stored anything
    with pytest.raises(pf.InvalidTypeError):
        t.scan_batches("1")  # type: ignore[arg-type]
    with pytest.raises(pf.InvalidArgumentError):
        t.scan_batches(0)
    c.close()
    with pytest.raises(pf.ClosedError):
        t.scan_batches()


def test_raw_view_reads_the_state_it_was_made_in(open_cluster_once: OpenCluster, cluster_dir: Path) -> None:
    """A small checkpoint's records are read from a view made under the partition's lock at its
    decree: writes after it, however soon, are not in it (rocksdict's Snapshot.iter() would
    read them: the live database)."""
    c = open_cluster_once(cluster_dir)
    t = c.create_table("t", partition_count=1)
    t.set(b"h", b"a", b"1")
    t.set(b"h", b"b", b"2")
    (p,) = t.partitions
    view = p.raw_view()
    t.set(b"h", b"a", b"changed")
    t.delete(b"h", b"b")
    t.set(b"h", b"c", b"new")
    got = {decode_key(k): v[12:] for k, v in view}
    assert got == {(b"h", b"a"): b"1", (b"h", b"b"): b"2"}
    c.close()
