"""The Pegasus protocol codec byte by byte (docs/pegasus-protocol.md), hostile inputs to its
decoders, and BatchHandler's answers. Golden request frames are pypegasus3's own
(tests/data/pypegasus3_frames.py made them with the client's code)."""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Iterator
from pathlib import Path

import pegasus_fast as pf
import pytest
from pegasus_fast.errors import FrameTooLargeError, PegasusProtocolError
from pegasus_fast.net.pegasus import codes, frame, thrift
from pegasus_fast.net.pegasus.handler import BatchHandler
from pegasus_fast.net.pegasus.replies import encode_response, gpid, reply_name, rpc_address
from pegasus_fast.net.pegasus.requests import decode_request

GOLDEN = {
    k: bytes.fromhex(v)
    for k, v in json.loads((Path(__file__).parent / "data" / "pypegasus3_frames.json").read_text()).items()
}
KEY = b"\x00\x02hksk"  # Pegasus's rocksdb-style key of hash key "hk", sort key "sk"


def _split(raw: bytes) -> tuple[frame.FrameHeader, bytes]:
    hdr = frame.parse_header(raw[:48])
    return hdr, raw[48:]


# -- the request header ---------------------------------------------------------------


def test_v0_header_layout_byte_by_byte() -> None:
    raw = GOLDEN["get"]
    assert raw[0:4] == b"THFT"
    fields = struct.unpack(">IIIIIiiiiQ", raw[4:48])
    version, hdr_len, hdr_crc, body_len, body_crc, app_id, pidx, timeout, thread_hash, phash = fields
    assert (version, hdr_len, hdr_crc, body_crc, timeout, phash) == (0, 48, 0, 0, 0, 0)
    assert (app_id, pidx) == (5, 3)
    assert thread_hash == 5 * 7919 + 3  # dsn_gpid_to_thread_hash
    assert body_len == len(raw) - 48
    assert frame.parse_header(raw[:48]) == (0, 0, body_len, 5, 3)
    assert frame.encode_v0_header(body_len, 5, 3) == raw[:48]
    assert frame.header_length(raw[:8]) == 48


def test_v1_header_and_request_meta() -> None:
    meta = bytearray()
    thrift.put_i32(meta, 1, 9)  # app_id
    thrift.put_i32(meta, 2, 4)  # partition_index
    thrift.put_i32(meta, 3, 1000)  # client_timeout
    thrift.put_i64(meta, 4, -7)  # partition_hash
    thrift.put_bool(meta, 5, True)  # is_backup_request
    thrift.put_stop(meta)
    hdr = b"THFT" + struct.pack(">III", 1, len(meta), 77)
    assert frame.header_length(hdr[:8]) == 16
    assert frame.parse_header(hdr) == (1, len(meta), 77, 0, 0)
    assert frame.decode_meta(bytes(meta)) == (9, 4)


def test_golden_requests_decode() -> None:
    want = {
        "query_cfg": (codes.OP_QUERY_CFG, 0, 0, "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX", ("temp", [])),
        "put": (codes.OP_PUT, 5, 3, "RPC_RRDB_RRDB_PUT", (KEY, b"value", 12345)),
        "get": (codes.OP_GET, 5, 3, "RPC_RRDB_RRDB_GET", (KEY,)),
        "ttl": (codes.OP_TTL, 5, 3, "RPC_RRDB_RRDB_TTL", (KEY,)),
        "remove": (codes.OP_REMOVE, 5, 3, "RPC_RRDB_RRDB_REMOVE", (KEY,)),
        "multi_put": (codes.OP_MULTI_PUT, 5, 3, "RPC_RRDB_RRDB_MULTI_PUT", (b"hk", [(b"a", b"1"), (b"b", b"2")], 7)),
        "multi_remove": (codes.OP_MULTI_REMOVE, 5, 3, "RPC_RRDB_RRDB_MULTI_REMOVE", (b"hk", [b"a", b"b"])),
        "multi_get": (
            codes.OP_MULTI_GET, 5, 3, "RPC_RRDB_RRDB_MULTI_GET",
            (b"hk", [b"a"], 100, 1000000, False, b"", b"", False, False, 0, b"", False),
        ),
        "multi_get_all": (
            codes.OP_MULTI_GET, 5, 3, "RPC_RRDB_RRDB_MULTI_GET",
            (b"hk", [], 100, 1000000, True, b"", b"", False, False, 0, b"", False),
        ),
        "sortkey_count": (codes.OP_SORTKEY_COUNT, 5, 3, "RPC_RRDB_RRDB_SORTKEY_COUNT", (b"hk",)),
        "clear_scanner": (codes.OP_CLEAR_SCANNER, 5, 3, "RPC_RRDB_RRDB_CLEAR_SCANNER", (42,)),
    }  # fmt: skip
    assert set(GOLDEN) == set(want)
    for name in want:
        (version, meta_len, body_len, app_id, pidx), body = _split(GOLDEN[name])
        assert (version, meta_len, body_len) == (0, 0, len(body)), name
        op, got_seqid, a, p, rpc, args = decode_request(body, app_id, pidx, 48)
        assert (op, a, p, rpc, args) == want[name], name
        assert got_seqid >= 1


def test_every_rpc_name() -> None:
    assert codes.RPC_OPS["RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX"] == codes.OP_QUERY_CFG
    for verb in (
        "PUT",
        "MULTI_PUT",
        "REMOVE",
        "MULTI_REMOVE",
        "GET",
        "MULTI_GET",
        "SORTKEY_COUNT",
        "TTL",
        "INCR",
        "CHECK_AND_SET",
        "CHECK_AND_MUTATE",
        "BATCH_GET",
        "GET_SCANNER",
        "SCAN",
        "CLEAR_SCANNER",
    ):
        assert f"RPC_RRDB_RRDB_{verb}" in codes.RPC_OPS  # fmt: skip
    assert reply_name("RPC_RRDB_RRDB_GET") == b"RPC_RRDB_RRDB_GET_ACK"
    assert len(reply_name("X" * 100)) == 47  # rDSN's 48-byte name, NUL-terminated


# -- replies ----------------------------------------------------------------------------


def _s(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


def test_put_reply_bytes() -> None:
    got = encode_response((codes.OP_PUT, 9, 5, 3, "RPC_RRDB_RRDB_PUT", "ERR_OK", (0, 42)), b"1.2.3.4:5", 0)
    body = (
        _s(b"ERR_OK")
        + struct.pack(">I", 0x80010002) + _s(b"RPC_RRDB_RRDB_PUT_ACK") + struct.pack(">i", 9)
        + b"\x0c\x00\x00"  # put_result.success, field 0, a struct
        + b"\x08\x00\x01" + struct.pack(">i", 0)  # error
        + b"\x08\x00\x02" + struct.pack(">i", 5)  # app_id
        + b"\x08\x00\x03" + struct.pack(">i", 3)  # partition_index
        + b"\x0a\x00\x04" + struct.pack(">q", 42)  # decree
        + b"\x0b\x00\x05" + _s(b"1.2.3.4:5")  # server
        + b"\x00"  # end of update_response
        + b"\x00"  # end of put_result
    )  # fmt: skip
    # the length counts its own four bytes (pypegasus3's dataReceived, rDSN's prepare_on_send)
    assert got == struct.pack(">i", 4 + len(body)) + body


def test_error_reply_has_no_result() -> None:
    got = encode_response((codes.OP_UNKNOWN, 3, 0, 0, "RPC_NOPE", "ERR_HANDLER_NOT_FOUND", None), b"h:1", 0)
    body = (
        _s(b"ERR_HANDLER_NOT_FOUND")
        + struct.pack(">I", 0x80010002)
        + _s(b"RPC_NOPE_ACK")
        + struct.pack(">i", 3)
    )
    assert got == struct.pack(">i", 4 + len(body)) + body


def test_get_reply_result_fields() -> None:
    got = encode_response((codes.OP_GET, 1, 5, 3, "RPC_RRDB_RRDB_GET", "ERR_OK", (1, b"")), b"h:1", 0)
    r = thrift.Reader(got, 0, 4)
    assert r.string() == "ERR_OK"
    assert r.message_begin() == ("RPC_RRDB_RRDB_GET_ACK", thrift.T_REPLY, 1)
    assert r.field() == (thrift.T_STRUCT, 0)
    fields = []
    while (f := r.field())[0] != thrift.T_STOP:
        fields.append(f)
        # a blob is marked T_STRUCT but is a bare binary: a generic skip would misread it
        r.binary() if f == (thrift.T_STRUCT, 2) else r.skip(f[0])
    # read_response: error, value (a blob marked T_STRUCT, always sent), app_id, partition_index, server
    assert fields == [(8, 1), (12, 2), (8, 3), (8, 4), (11, 6)]


def test_query_cfg_reply() -> None:
    primary = rpc_address("127.0.0.1", 34801)
    assert primary == (0x7F000001 << 32) | (34801 << 16) | 1
    assert gpid(5, 3) == (3 << 32) | 5
    got = encode_response(
        (codes.OP_QUERY_CFG, 1, 0, 0, "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX", "ERR_OK", ("ERR_OK", 5, 2, [(0, 1, 10), (1, 1, 0)])),
        b"127.0.0.1:34801",
        primary,
    )  # fmt: skip
    r = thrift.Reader(got, 0, 4)
    assert r.string() == "ERR_OK"
    assert r.message_begin()[0] == "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX_ACK"
    assert r.field() == (thrift.T_STRUCT, 0)
    assert r.field() == (thrift.T_STRUCT, 1) and r.string() == "ERR_OK"  # err: error_code as a string
    assert r.field() == (thrift.T_I32, 2) and r.i32() == 5
    assert r.field() == (thrift.T_I32, 3) and r.i32() == 2
    assert r.field() == (thrift.T_BOOL, 4) and r.bool() is True
    assert r.field() == (thrift.T_LIST, 5) and r.collection("partitions") == (thrift.T_STRUCT, 2)
    assert r.field() == (thrift.T_STRUCT, 1) and r.i64() == gpid(5, 0)  # pid: gpid as an i64
    assert r.field() == (thrift.T_I64, 2) and r.i64() == 1  # ballot
    assert r.field() == (thrift.T_I32, 3) and r.i32() == 1  # max_replica_count
    assert r.field() == (thrift.T_STRUCT, 4) and r.i64() == primary  # primary: rpc_address as an i64
    assert r.field() == (thrift.T_LIST, 5) and r.collection("secondaries") == (thrift.T_STRUCT, 0)
    assert r.field() == (thrift.T_LIST, 6) and r.collection("last_drops") == (thrift.T_STRUCT, 0)
    assert r.field() == (thrift.T_I64, 7) and r.i64() == 10  # last_committed_decree
    assert r.field() == (thrift.T_I32, 8) and r.i32() == 0


def test_oneway_gets_no_reply() -> None:
    assert (
        encode_response(
            (codes.OP_CLEAR_SCANNER, 1, 5, 3, "RPC_RRDB_RRDB_CLEAR_SCANNER", "ERR_OK", None), b"", 0
        )
        is None
    )


# -- hostile input ------------------------------------------------------------------------


def test_bad_magic_version_and_header_length() -> None:
    with pytest.raises(PegasusProtocolError) as e:
        frame.header_length(b"GET / HT", 100)
    assert e.value.offset == 100
    with pytest.raises(PegasusProtocolError) as e:
        frame.header_length(b"THFT\x00\x00\x00\x07", 100)
    assert e.value.offset == 104
    bad = bytearray(GOLDEN["get"][:48])
    bad[8:12] = struct.pack(">I", 47)
    with pytest.raises(PegasusProtocolError) as e:
        frame.parse_header(bytes(bad), 100)
    assert e.value.offset == 108


def test_frame_size_limit() -> None:
    hdr = frame.encode_v0_header(1 << 30, 1, 0)
    with pytest.raises(FrameTooLargeError) as e:
        frame.parse_header(hdr, 1000, max_frame=1 << 20)
    assert (e.value.offset, e.value.length, e.value.limit) == (1016, 1 << 30, 1 << 20)
    v1 = b"THFT" + struct.pack(">III", 1, 10, (1 << 20) - 5)
    with pytest.raises(FrameTooLargeError) as e:
        frame.parse_header(v1, 0, max_frame=1 << 20)
    assert e.value.offset == 12 and e.value.length == (1 << 20) + 5


def _call(name: bytes, args: bytes, mtype: int = thrift.T_CALL, seqid: int = 1) -> bytes:
    out = bytearray()
    thrift.put_message_begin(out, name, mtype, seqid)
    return bytes(out) + args


def test_lying_blob_length_is_an_answered_bad_request() -> None:
    # get_args { 1: blob claiming 1000 bytes with 3 left }
    args = b"\x0c\x00\x01" + struct.pack(">i", 1000) + b"abc"
    body = _call(b"RPC_RRDB_RRDB_GET", args)
    op, _, _, _, name, (exc,) = decode_request(body, 5, 3, base=48)
    assert op == codes.OP_BAD_REQUEST and name == "RPC_RRDB_RRDB_GET"
    assert isinstance(exc, PegasusProtocolError)
    assert exc.offset == 48 + len(body) - len(args) + 3  # the length field itself


@pytest.mark.parametrize("count", [-1, 0x7FFFFFFF])
def test_list_count_is_bounded_before_allocating(count: int) -> None:
    # multi_remove_args { 1: { 1: hash_key, 2: list<blob> claiming `count` elements } }
    args = b"\x0c\x00\x01" + b"\x0c\x00\x01" + _s(b"hk") + b"\x0f\x00\x02\x0c" + struct.pack(">i", count)
    op, *_, (exc,) = decode_request(_call(b"RPC_RRDB_RRDB_MULTI_REMOVE", args), 5, 3)
    assert op == codes.OP_BAD_REQUEST
    assert exc.offset == len(_call(b"RPC_RRDB_RRDB_MULTI_REMOVE", b"")) + 3 + 3 + 6 + 3


def test_deep_nesting_is_refused() -> None:
    args = b"\x0c\x00\x07" * 100 + b"\x00" * 101  # unknown field 7, structs nested 100 deep
    op, *_, (exc,) = decode_request(_call(b"RPC_RRDB_RRDB_GET", args), 5, 3)
    assert op == codes.OP_BAD_REQUEST and "deeper" in exc.reason


def test_not_a_call_or_not_a_message_closes() -> None:
    with pytest.raises(PegasusProtocolError) as e:
        decode_request(_call(b"RPC_RRDB_RRDB_GET", b"\x00", mtype=thrift.T_REPLY), 0, 0, base=48)
    assert e.value.offset == 48
    with pytest.raises(PegasusProtocolError):
        decode_request(b"\x80\x02\x00\x01" + _s(b"X") + b"\x00\x00\x00\x01", 0, 0)  # wrong version
    with pytest.raises(PegasusProtocolError):
        decode_request(b"\x80\x01\x00\x01\x00\x00", 0, 0)  # cut short


def test_old_style_message_header_is_read() -> None:
    body = _s(b"RPC_RRDB_RRDB_GET") + b"\x01" + struct.pack(">i", 7) + b"\x0c\x00\x01" + _s(KEY) + b"\x00"
    assert decode_request(body, 5, 3) == (codes.OP_GET, 7, 5, 3, "RPC_RRDB_RRDB_GET", (KEY,))


def test_every_truncation_and_random_mutation_is_typed() -> None:
    rng = random.Random(19)
    for name, raw in GOLDEN.items():
        body = raw[48:]
        for cut in range(len(body)):
            _decode_or_typed(body[:cut])
        for _ in range(300):
            b = bytearray(body)
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            _decode_or_typed(bytes(b))
        assert decode_request(body, 5, 3)[0] not in (codes.OP_BAD_REQUEST, codes.OP_UNKNOWN), name
    for _ in range(2000):
        _decode_or_typed(rng.randbytes(rng.randint(0, 64)))


def _decode_or_typed(body: bytes) -> None:
    try:
        decode_request(body, 1, 0)
    except PegasusProtocolError:
        pass


# -- the batch handler ------------------------------------------------------------------------


@pytest.fixture
def handler(tmp_path: Path) -> Iterator[tuple[pf.Cluster, BatchHandler]]:
    cluster = pf.Cluster.open(tmp_path / "c")
    cluster.create_table("t", partition_count=4)
    yield cluster, BatchHandler(cluster)
    cluster.close()


def _key(hk: bytes, sk: bytes) -> bytes:
    return struct.pack(">H", len(hk)) + hk + sk


def _put(t: pf.Table, hk: bytes, sk: bytes, v: bytes, seqid: int = 1, ttl: int = 0) -> tuple:
    return (
        codes.OP_PUT,
        seqid,
        t.app_id,
        t.partition_index(hk, sk),
        "RPC_RRDB_RRDB_PUT",
        (_key(hk, sk), v, ttl),
    )


def test_writes_of_one_partition_are_one_mutation(handler: tuple[pf.Cluster, BatchHandler]) -> None:
    cluster, h = handler
    t = cluster.table("t")
    hk = b"same"
    reqs = [_put(t, hk, f"s{i}".encode(), f"v{i}".encode(), seqid=i) for i in range(5)]
    reqs.append((codes.OP_GET, 9, t.app_id, t.partition_index(hk), "RPC_RRDB_RRDB_GET", (_key(hk, b"s3"),)))
    out = h.handle_batch(reqs)
    decrees = {r[6][1] for r in out[:5]}
    assert [r[5] for r in out] == ["ERR_OK"] * 6 and len(decrees) == 1
    assert [r[1] for r in out] == [0, 1, 2, 3, 4, 9]
    assert out[5][6] == (codes.K_OK, b"v3")  # a read sees the writes of its batch
    assert t.partitions[t.partition_index(hk)].last_committed == decrees.pop()


def test_routing_errors_make_clients_requery(handler: tuple[pf.Cluster, BatchHandler]) -> None:
    cluster, h = handler
    t = cluster.table("t")
    good = _put(t, b"h", b"s", b"v")
    pidx = good[3]
    wrong_app = (good[0], 1, t.app_id + 100, pidx, good[4], good[5])
    wrong_pidx = (good[0], 2, t.app_id, 4, good[4], good[5])
    other_pidx = (good[0], 3, t.app_id, (pidx + 1) % 4, good[4], good[5])
    out = h.handle_batch([wrong_app, wrong_pidx, other_pidx])
    assert [r[5] for r in out] == [
        "ERR_OBJECT_NOT_FOUND",
        "ERR_OBJECT_NOT_FOUND",
        "ERR_PARENT_PARTITION_MISUSED",
    ]
    assert all(r[6] is None for r in out)
    assert t.count() == 0


def test_gets_are_routed_and_answered_like_every_read(handler: tuple[pf.Cluster, BatchHandler]) -> None:
    """A plain get takes a shorter route through the batch (handler.py): it must answer every
    case as the general route does: found, absent, expired, and each routing or key error."""
    cluster, h = handler
    t = cluster.table("t")
    h.handle_batch([_put(t, b"h", b"s", b"v"), _put(t, b"old", b"", b"x", ttl=1)])  # expired in 1970

    def get(seqid: int, key: bytes, pidx: int, app_id: int = t.app_id) -> tuple:
        return (codes.OP_GET, seqid, app_id, pidx, "RPC_RRDB_RRDB_GET", (key,))

    p = t.partition_index(b"h", b"s")
    out = h.handle_batch([
        get(1, _key(b"h", b"s"), p),
        get(2, _key(b"h", b"absent"), t.partition_index(b"h", b"absent")),
        get(3, _key(b"old", b""), t.partition_index(b"old")),
        get(4, _key(b"h", b"s"), p, app_id=t.app_id + 100),
        get(5, _key(b"h", b"s"), 4),
        get(6, _key(b"h", b"s"), (p + 1) % 4),
        get(7, b"\x00", p),
        get(8, b"\x00\x09h", p),
        get(9, _key(b"", b"s"), t.partition_index(b"", b"s")),
    ])  # fmt: skip
    assert [(r[1], r[5], r[6]) for r in out] == [
        (1, "ERR_OK", (codes.K_OK, b"v")),
        (2, "ERR_OK", (codes.K_NOT_FOUND, b"")),
        (3, "ERR_OK", (codes.K_NOT_FOUND, b"")),
        (4, "ERR_OBJECT_NOT_FOUND", None),
        (5, "ERR_OBJECT_NOT_FOUND", None),
        (6, "ERR_PARENT_PARTITION_MISUSED", None),
        (7, "ERR_OK", (codes.K_INVALID_ARGUMENT, b"")),
        (8, "ERR_OK", (codes.K_INVALID_ARGUMENT, b"")),
        (9, "ERR_OK", (codes.K_NOT_FOUND, b"")),
    ]
    # a get of a partition that cannot serve answers that partition's error (closed: the client
    # re-queries), the rest go on
    other = next(b"o%d" % i for i in range(100) if t.partition_index(b"o%d" % i) != p)
    t.partitions[p].close()
    out = h.handle_batch([get(1, _key(b"h", b"s"), p), get(2, _key(other, b""), t.partition_index(other))])
    assert (out[0][5], out[0][6]) == ("ERR_OBJECT_NOT_FOUND", None)
    assert out[1][6] == (codes.K_NOT_FOUND, b"")


def test_invalid_requests_get_rocksdb_invalid_argument(handler: tuple[pf.Cluster, BatchHandler]) -> None:
    cluster, h = handler
    t = cluster.table("t")
    p = t.partition_index(b"h")
    out = h.handle_batch([
        (codes.OP_PUT, 1, t.app_id, p, "RPC_RRDB_RRDB_PUT", (b"\x00\x09h", b"v", 0)),  # hash key overruns
        (codes.OP_MULTI_PUT, 2, t.app_id, p, "RPC_RRDB_RRDB_MULTI_PUT", (b"h", [], 0)),
        (codes.OP_MULTI_REMOVE, 3, t.app_id, p, "RPC_RRDB_RRDB_MULTI_REMOVE", (b"h", [])),
        (codes.OP_MULTI_GET, 4, t.app_id, p, "RPC_RRDB_RRDB_MULTI_GET", (b"", [], 0, 0, False, b"", b"", True, False, 0, b"", False)),
    ])  # fmt: skip
    assert [(r[5], r[6][0]) for r in out] == [("ERR_OK", codes.K_INVALID_ARGUMENT)] * 4


def test_unknown_and_bad(handler: tuple[pf.Cluster, BatchHandler]) -> None:
    _, h = handler
    out = h.handle_batch([
        (codes.OP_UNKNOWN, 1, 0, 0, "RPC_NOPE", ()),
        (codes.OP_BAD_REQUEST, 4, 1, 0, "RPC_RRDB_RRDB_GET", (PegasusProtocolError(9, "x"),)),
    ])  # fmt: skip
    assert [(r[5], r[6]) for r in out] == [("ERR_HANDLER_NOT_FOUND", None), ("ERR_INVALID_DATA", None)]
    for r in out:  # every answer encodes
        assert encode_response(r, b"h:1", 0)


def test_multi_get_limits(handler: tuple[pf.Cluster, BatchHandler]) -> None:
    cluster, h = handler
    t = cluster.table("t")
    t.multi_set(b"h", {b"": b"e", b"a": b"1", b"b": b"22", b"c": b"333"})
    p = t.partition_index(b"h")

    def mg(sks: list[bytes], count: int = 0, size: int = 0, start_incl: bool = True, **kw: object) -> tuple:
        args = [b"h", sks, count, size, False, b"", b"", start_incl, False, 0, b"", False]
        for i, k in (
            (5, "start"),
            (6, "stop"),
            (8, "stop_incl"),
            (9, "filter"),
            (10, "pattern"),
            (11, "reverse"),
        ):
            if k in kw:
                args[i] = kw[k]
        req = (codes.OP_MULTI_GET, 1, t.app_id, p, "RPC_RRDB_RRDB_MULTI_GET", tuple(args))
        return h.handle_batch([req])[0][6]

    assert mg([]) == (codes.K_OK, [(b"", b"e"), (b"a", b"1"), (b"b", b"22"), (b"c", b"333")])
    assert mg([], start_incl=False) == (codes.K_OK, [(b"a", b"1"), (b"b", b"22"), (b"c", b"333")])
    assert mg([], count=2) == (codes.K_INCOMPLETE, [(b"", b"e"), (b"a", b"1")])
    assert mg([], size=3) == (codes.K_INCOMPLETE, [(b"", b"e"), (b"a", b"1")])
    assert mg([b"c", b"zz", b"a"], count=1) == (codes.K_INCOMPLETE, [(b"c", b"333")])
    assert mg([b"c", b"zz", b"a"]) == (codes.K_OK, [(b"c", b"333"), (b"a", b"1")])
    # ranges, filters, reverse (Pegasus's on_multi_get)
    assert mg([], start=b"a", stop=b"c") == (codes.K_OK, [(b"a", b"1"), (b"b", b"22")])
    assert mg([], start=b"a", stop=b"c", stop_incl=True)[1][-1] == (b"c", b"333")
    assert mg([], start=b"c", stop=b"a") == (codes.K_OK, [])
    assert mg([], filter=3, pattern=b"b") == (codes.K_OK, [(b"b", b"22")])
    assert mg([], filter=1, pattern=b"") == mg([])  # an empty pattern passes every key
    assert mg([], reverse=True) == (codes.K_OK, [(b"c", b"333"), (b"b", b"22"), (b"a", b"1"), (b"", b"e")])
    assert mg([], reverse=True, count=2) == (codes.K_INCOMPLETE, [(b"c", b"333"), (b"b", b"22")])
    assert mg([], filter=9, pattern=b"x") == (codes.K_INVALID_ARGUMENT, [])


def test_query_cfg(handler: tuple[pf.Cluster, BatchHandler]) -> None:
    cluster, h = handler
    t = cluster.table("t")
    t.set(b"h", b"s", b"v")
    name = "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX"
    out = h.handle_batch([
        (codes.OP_QUERY_CFG, 1, 0, 0, name, ("t", [])),
        (codes.OP_QUERY_CFG, 2, 0, 0, name, ("t", [2, 9])),
        (codes.OP_QUERY_CFG, 3, 0, 0, name, ("nope", [])),
    ])  # fmt: skip
    err, app_id, count, parts = out[0][6]
    assert (err, app_id, count) == ("ERR_OK", t.app_id, 4)
    assert [p[0] for p in parts] == [0, 1, 2, 3]
    assert parts[t.partition_index(b"h")][2] == 1  # last committed decree
    assert [p[0] for p in out[1][6][3]] == [2]
    assert out[2][6] == ("ERR_OBJECT_NOT_FOUND", 0, 0, [])


def test_ttl_and_sortkey_count(handler: tuple[pf.Cluster, BatchHandler]) -> None:
    cluster, h = handler
    t = cluster.table("t")
    t.set(b"h", b"a", b"1", ttl_seconds=100)
    t.set(b"h", b"b", b"2")
    p = t.partition_index(b"h")
    out = h.handle_batch([
        (codes.OP_TTL, 1, t.app_id, p, "RPC_RRDB_RRDB_TTL", (_key(b"h", b"a"),)),
        (codes.OP_TTL, 2, t.app_id, p, "RPC_RRDB_RRDB_TTL", (_key(b"h", b"b"),)),
        (codes.OP_TTL, 3, t.app_id, p, "RPC_RRDB_RRDB_TTL", (_key(b"h", b"c"),)),
        (codes.OP_SORTKEY_COUNT, 4, t.app_id, p, "RPC_RRDB_RRDB_SORTKEY_COUNT", (b"h",)),
    ])  # fmt: skip
    assert out[0][6][0] == codes.K_OK and 95 <= out[0][6][1] <= 100
    assert out[1][6] == (codes.K_OK, -1)
    assert out[2][6] == (codes.K_NOT_FOUND, 0)
    assert out[3][6] == (codes.K_OK, 2)
