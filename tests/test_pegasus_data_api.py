"""The Pegasus port's whole data API through BatchHandler (docs/pegasus-protocol.md §4):
incr, check_and_set, check_and_mutate, batch_get and the scanners' contexts, checked against
what the embedded Table then reads (the codec's parity with Rust: test_pegasus_native.py)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pegasus_fast as pf
import pytest
from pegasus_fast.data_api import CheckType, MutateOperation
from pegasus_fast.net.pegasus import codes
from pegasus_fast.net.pegasus.handler import BatchHandler
from pegasus_fast.net.pegasus.replies import encode_response
from pegasus_fast.net.pegasus.scanners import Scanners
from pegasus_fast.records import now_pegasus_seconds


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[pf.Table, BatchHandler]]:
    cluster = pf.Cluster.open(tmp_path / "c")
    cluster.create_table("t", partition_count=4)
    h = BatchHandler(cluster)
    yield cluster.table("t"), h
    h.close()
    cluster.close()


def _key(hk: bytes, sk: bytes) -> bytes:
    return struct.pack(">H", len(hk)) + hk + sk


def _one(h: BatchHandler, t: pf.Table, op: int, args: tuple[Any, ...], pidx: int) -> Any:
    name = next(n for n, o in codes.RPC_OPS.items() if o == op)
    resp = h.handle_batch([(op, 1, t.app_id, pidx, name, args)])[0]
    assert encode_response(resp, b"127.0.0.1:1", 0) is not None or op == codes.OP_CLEAR_SCANNER
    return resp[5] if resp[5] != codes.ERR_OK else resp[6]


def test_incr(served: tuple[pf.Table, BatchHandler]) -> None:
    t, h = served
    p = t.partition_index(b"h")
    status, new, decree = _one(h, t, codes.OP_INCR, (_key(b"h", b"n"), 5, 0), p)
    assert (status, new) == (codes.K_OK, 5) and decree == t.partitions[p].last_committed >= 1
    assert _one(h, t, codes.OP_INCR, (_key(b"h", b"n"), -7, 0), p)[:2] == (codes.K_OK, -2)
    assert t.get(b"h", b"n") == b"-2" and t.ttl(b"h", b"n") == -1
    # a positive expire_ts sets the TTL, 0 keeps it, a negative one clears it
    _one(h, t, codes.OP_INCR, (_key(b"h", b"n"), 1, now_pegasus_seconds() + 100), p)
    assert 95 <= (t.ttl(b"h", b"n") or 0) <= 100
    _one(h, t, codes.OP_INCR, (_key(b"h", b"n"), 1, 0), p)
    assert 95 <= (t.ttl(b"h", b"n") or 0) <= 100
    _one(h, t, codes.OP_INCR, (_key(b"h", b"n"), 1, -1), p)
    assert t.ttl(b"h", b"n") == -1 and t.get(b"h", b"n") == b"1"
    t.set(b"h", b"word", b"abc")
    before = t.partitions[p].last_committed
    assert _one(h, t, codes.OP_INCR, (_key(b"h", b"word"), 1, 0), p) == (codes.K_INVALID_ARGUMENT, 0, 0)
    assert t.get(b"h", b"word") == b"abc" and t.partitions[p].last_committed == before
    # routed like a get: a key of another partition is refused, nothing written
    other = next(i for i in range(4) if i != p)
    assert _one(h, t, codes.OP_INCR, (_key(b"h", b"n"), 1, 0), other) == codes.ERR_PARENT_PARTITION_MISUSED


def _cas(hk: bytes, check_sk: bytes, check: int, operand: bytes, set_sk: bytes | None, value: bytes,
         returned: bool = True) -> tuple[Any, ...]:  # fmt: skip
    return (hk, check_sk, check, operand, set_sk is not None, set_sk or b"", value, 0, returned)


def test_check_and_set(served: tuple[pf.Table, BatchHandler]) -> None:
    t, h = served
    p = t.partition_index(b"h")
    args = _cas(b"h", b"c", CheckType.VALUE_NOT_EXIST, b"", None, b"first")
    assert _one(h, t, codes.OP_CHECK_AND_SET, args, p)[:4] == (codes.K_OK, True, False, b"")
    assert t.get(b"h", b"c") == b"first"
    # the check fails: kTryAgain, the value it saw returned, nothing written
    assert _one(h, t, codes.OP_CHECK_AND_SET, args, p)[:4] == (codes.K_TRY_AGAIN, True, True, b"first")
    args = _cas(b"h", b"c", CheckType.VALUE_BYTES_EQUAL, b"first", b"other", b"x", returned=False)
    assert _one(h, t, codes.OP_CHECK_AND_SET, args, p)[:4] == (codes.K_OK, False, False, b"")
    assert t.get(b"h", b"other") == b"x" and t.get(b"h", b"c") == b"first"
    # an unknown check type, an int check of a value that is no int: kInvalidArgument
    bad = _cas(b"h", b"c", 99, b"", None, b"v")
    assert _one(h, t, codes.OP_CHECK_AND_SET, bad, p)[0] == codes.K_INVALID_ARGUMENT
    bad = _cas(b"h", b"c", CheckType.VALUE_INT_LESS, b"5", None, b"v")
    assert _one(h, t, codes.OP_CHECK_AND_SET, bad, p)[0] == codes.K_INVALID_ARGUMENT
    # with an empty hash key only the checked sort key may be written
    p0 = t.partition_index(b"", b"c")
    bad = _cas(b"", b"c", CheckType.NO_CHECK, b"", b"d", b"v")
    assert _one(h, t, codes.OP_CHECK_AND_SET, bad, p0)[0] == codes.K_INVALID_ARGUMENT
    ok = _cas(b"", b"c", CheckType.NO_CHECK, b"", None, b"v")
    assert _one(h, t, codes.OP_CHECK_AND_SET, ok, p0)[0] == codes.K_OK
    assert t.get(b"", b"c") == b"v"


def test_check_and_mutate(served: tuple[pf.Table, BatchHandler]) -> None:
    t, h = served
    p = t.partition_index(b"h")
    t.multi_set(b"h", {b"c": b"1", b"gone": b"x"})
    put, delete = int(MutateOperation.PUT), int(MutateOperation.DELETE)
    muts = [(put, b"a", b"A", 0), (delete, b"gone", b"", 0), (put, b"a", b"A2", 0)]
    args = (b"h", b"c", CheckType.VALUE_INT_EQUAL, b"1", muts, True)
    assert _one(h, t, codes.OP_CHECK_AND_MUTATE, args, p)[:4] == (codes.K_OK, True, True, b"1")
    assert t.multi_get(b"h") == {b"a": b"A2", b"c": b"1"}
    args = (b"h", b"c", CheckType.VALUE_INT_EQUAL, b"2", [(delete, b"a", b"", 0)], False)
    assert _one(h, t, codes.OP_CHECK_AND_MUTATE, args, p)[:4] == (codes.K_TRY_AGAIN, False, False, b"")
    assert t.get(b"h", b"a") == b"A2"
    for bad in ([], [(7, b"a", b"", 0)]):  # no mutation, an unknown operation
        args = (b"h", b"c", CheckType.NO_CHECK, b"", bad, False)
        assert _one(h, t, codes.OP_CHECK_AND_MUTATE, args, p)[0] == codes.K_INVALID_ARGUMENT
    assert t.multi_get(b"h") == {b"a": b"A2", b"c": b"1"}


def test_atomic_writes_see_their_batch(served: tuple[pf.Table, BatchHandler]) -> None:
    t, h = served
    p = t.partition_index(b"h")
    out = h.handle_batch([
        (codes.OP_PUT, 1, t.app_id, p, "RPC_RRDB_RRDB_PUT", (_key(b"h", b"n"), b"10", 0)),
        (codes.OP_INCR, 2, t.app_id, p, "RPC_RRDB_RRDB_INCR", (_key(b"h", b"n"), 1, 0)),
        (codes.OP_GET, 3, t.app_id, p, "RPC_RRDB_RRDB_GET", (_key(b"h", b"n"),)),
    ])  # fmt: skip
    assert out[1][6][:2] == (codes.K_OK, 11) and out[2][6] == (codes.K_OK, b"11")


def test_batch_get(served: tuple[pf.Table, BatchHandler]) -> None:
    t, h = served
    t.multi_set(b"h", {b"a": b"1", b"b": b"2"})
    p = t.partition_index(b"h")
    keys = [(b"h", b"b"), (b"h", b"zz"), (b"h", b"a")]
    assert _one(h, t, codes.OP_BATCH_GET, (keys,), p) == (
        codes.K_OK,
        [(b"h", b"b", b"2"), (b"h", b"a", b"1")],
    )
    assert _one(h, t, codes.OP_BATCH_GET, ([],), p) == (codes.K_INVALID_ARGUMENT, [])
    hk = next(k for k in (b"x%d" % i for i in range(100)) if t.partition_index(k) != p)
    assert (
        _one(h, t, codes.OP_BATCH_GET, ([(b"h", b"a"), (hk, b"a")],), p) == codes.ERR_PARENT_PARTITION_MISUSED
    )


def _scanner(start: bytes, stop: bytes, batch: int, start_in: bool = True, stop_in: bool = False,
             hk_filter: tuple[int, bytes] = (0, b""), sk_filter: tuple[int, bytes] = (0, b""),
             no_value: bool = False) -> tuple[Any, ...]:  # fmt: skip
    return (start, stop, start_in, stop_in, batch, no_value, *hk_filter, *sk_filter)


def _drain(h: BatchHandler, t: pf.Table, pidx: int, first: Any) -> list[tuple[bytes, bytes]]:
    status, kvs, cid = first
    got = list(kvs)
    while cid >= 0:
        status, kvs, cid = _one(h, t, codes.OP_SCAN, (cid,), pidx)
        assert status == codes.K_OK
        got += kvs
    assert cid == codes.CONTEXT_ID_COMPLETED
    return got


def test_scanner_reads_a_range_batch_by_batch(served: tuple[pf.Table, BatchHandler]) -> None:
    t, h = served
    t.multi_set(b"h", {b"%d" % i: b"v%d" % i for i in range(7)})
    p = t.partition_index(b"h")
    first = _one(h, t, codes.OP_GET_SCANNER, _scanner(_key(b"h", b"1"), _key(b"h", b"5"), 2), p)
    assert first[0] == codes.K_OK and len(first[1]) == 2 and first[2] >= 0
    assert len(h.scanners) == 1
    got = _drain(h, t, p, first)
    assert got == [(_key(b"h", b"%d" % i), b"v%d" % i) for i in range(1, 5)]
    assert len(h.scanners) == 0  # released by exhaustion
    # inclusive stop, exclusive start, no values
    got = _drain(h, t, p, _one(h, t, codes.OP_GET_SCANNER,
                               _scanner(_key(b"h", b"1"), _key(b"h", b"5"), 3, False, True, no_value=True), p))  # fmt: skip
    assert got == [(_key(b"h", b"%d" % i), b"") for i in range(2, 6)]
    # an empty range answers completed at once
    assert _one(h, t, codes.OP_GET_SCANNER, _scanner(_key(b"h", b"5"), _key(b"h", b"1"), 2), p) == (
        codes.K_OK, [], codes.CONTEXT_ID_COMPLETED)  # fmt: skip


def test_full_partition_scan_with_filters(served: tuple[pf.Table, BatchHandler]) -> None:
    t, h = served
    for i in range(40):
        t.set(b"user%d" % i, b"name", b"n%d" % i)
        t.set(b"user%d" % i, b"age", b"%d" % i)
        t.set(b"other%d" % i, b"name", b"o")
    everything: list[tuple[bytes, bytes]] = []
    for p in range(t.partition_count):
        # what pypegasus3's unordered scanners ask: \x00\x00 to \xff\xff (meta keys never show)
        everything += _drain(h, t, p, _one(h, t, codes.OP_GET_SCANNER, _scanner(b"\0\0", b"\xff\xff", 7), p))
    assert len(everything) == 120
    assert sorted(everything) == sorted((_key(hk, sk), v) for hk, sk, v in t.scan())
    only: list[tuple[bytes, bytes]] = []
    for p in range(t.partition_count):
        args = _scanner(b"\0\0", b"\xff\xff", 5, hk_filter=(2, b"user"), sk_filter=(3, b"ame"))
        only += _drain(h, t, p, _one(h, t, codes.OP_GET_SCANNER, args, p))
    assert sorted(v for _, v in only) == sorted(b"n%d" % i for i in range(40))
    bad = _scanner(b"\0\0", b"\xff\xff", 5, hk_filter=(9, b"x"))
    assert _one(h, t, codes.OP_GET_SCANNER, bad, 0) == (
        codes.K_INVALID_ARGUMENT,
        [],
        codes.CONTEXT_ID_COMPLETED,
    )


def test_scanner_contexts_are_released_and_bounded(served: tuple[pf.Table, BatchHandler]) -> None:
    t, h = served
    t.multi_set(b"h", {b"%d" % i: b"v" for i in range(10)})
    p = t.partition_index(b"h")
    now = [0.0]
    h.scanners = Scanners(max_contexts=3, idle_seconds=60, clock=lambda: now[0])
    rng = _scanner(_key(b"h", b""), _key(b"h", b"\xff"), 2)
    ids = [_one(h, t, codes.OP_GET_SCANNER, rng, p)[2] for _ in range(5)]
    assert len(set(ids)) == 5 and len(h.scanners) == 3  # the two least recently used went
    assert _one(h, t, codes.OP_SCAN, (ids[0],), p) == (codes.K_NOT_FOUND, [], codes.CONTEXT_ID_NOT_EXIST)
    assert _one(h, t, codes.OP_SCAN, (ids[4],), p)[0] == codes.K_OK
    # clear_scanner releases (and gets no reply); a context of another partition is not served
    assert _one(h, t, codes.OP_CLEAR_SCANNER, (ids[4],), p) is None
    assert len(h.scanners) == 2
    other = (p + 1) % t.partition_count
    assert _one(h, t, codes.OP_SCAN, (ids[3],), other)[0] == codes.K_NOT_FOUND
    assert len(h.scanners) == 2
    # idle ones go
    now[0] = 61.0
    assert _one(h, t, codes.OP_SCAN, (ids[3],), p)[0] == codes.K_NOT_FOUND
    assert len(h.scanners) == 0
