"""Both Pegasus front ends (the Rust one and its asyncio twin) over real sockets: unknown RPCs,
garbage, lying lengths, huge frames and silent half-frames on one connection never stop another;
the allowlist refuses before reading; pipelined requests all come back."""

from __future__ import annotations

import logging
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
from conftest import BACKENDS
from pegasus_fast.errors import InvalidArgumentError
from pegasus_fast.net.pegasus import frame, thrift
from pegasus_fast.server.pegasus_front import PegasusFront
from pegasus_fast.server.pegasus_native import open_front

DEADLINE = 10.0
FRONTS = ["asyncio", "rust"]


@pytest.fixture(params=FRONTS)
def kind(request: pytest.FixtureRequest, default_backend: ModuleType) -> Iterator[str]:
    """Which front end. The Rust one runs under the Rust backend, which it needs (made active
    here, whichever backend an earlier test left active); the asyncio one under the default."""
    from pegasus_fast import _backend

    if request.param == "rust":
        if "rust" not in BACKENDS:
            pytest.skip("the Rust front end needs the Rust backend")
        with _backend.use("rust"):
            yield "rust"
        return
    yield str(request.param)


def _open(
    kind: str, cluster: pf.Cluster, listen: str = "127.0.0.1:0", allow: str | None = None, **kw: object
) -> PegasusFront:
    return open_front(cluster, listen, allow, native=kind == "rust", **kw)  # type: ignore[no-any-return]


def _call(name: bytes, args: bytes, seqid: int) -> bytes:
    out = bytearray()
    thrift.put_message_begin(out, name, thrift.T_CALL, seqid)
    return bytes(out) + args


def _key(hk: bytes, sk: bytes) -> bytes:
    return struct.pack(">H", len(hk)) + hk + sk


def _blob_arg(data: bytes) -> bytes:
    return b"\x0c\x00\x01" + struct.pack(">i", len(data)) + data + b"\x00"


def _put_arg(key: bytes, value: bytes) -> bytes:
    inner = b"\x0c\x00\x01" + struct.pack(">i", len(key)) + key
    inner += b"\x0c\x00\x02" + struct.pack(">i", len(value)) + value + b"\x08\x00\x03" + b"\0\0\0\0" + b"\x00"
    return b"\x0c\x00\x01" + inner + b"\x00"


def _frame(body: bytes, app_id: int, pidx: int) -> bytes:
    return frame.encode_v0_header(len(body), app_id, pidx) + body


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def _reply(s: socket.socket) -> tuple[str, str, int, bytes]:
    """(error, name, seqid, result bytes) of one reply frame."""
    (n,) = struct.unpack(">i", _recv_exact(s, 4))
    r = thrift.Reader(_recv_exact(s, n - 4))
    error = r.string()
    name, mtype, seqid = r.message_begin()
    assert mtype == thrift.T_REPLY
    return error, name, seqid, bytes(r.buf[r.pos :])


def _closed(s: socket.socket) -> bool:
    """Whether the server closed ``s`` (waiting up to DEADLINE)."""
    s.settimeout(DEADLINE)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[pf.Cluster]:
    c = pf.Cluster.open(tmp_path / "c")
    c.create_table("t", partition_count=4)
    yield c
    c.close()


@pytest.fixture
def front(cluster: pf.Cluster, kind: str) -> Iterator[PegasusFront]:
    f = _open(kind, cluster, max_frame=1 << 16)
    yield f
    f.stop()


def _connect(f: PegasusFront) -> socket.socket:
    s = socket.create_connection((f.address.host, f.address.port), timeout=DEADLINE)
    return s


def _get(s: socket.socket, t: pf.Table, hk: bytes, sk: bytes, seqid: int) -> tuple[str, str, int, bytes]:
    body = _call(b"RPC_RRDB_RRDB_GET", _blob_arg(_key(hk, sk)), seqid)
    s.sendall(_frame(body, t.app_id, t.partition_index(hk, sk)))
    return _reply(s)


def _value_of(result: bytes) -> tuple[int, bytes]:
    r = thrift.Reader(result)
    assert r.field() == (thrift.T_STRUCT, 0)
    assert r.field() == (thrift.T_I32, 1)
    status = r.i32()
    assert r.field() == (thrift.T_STRUCT, 2)
    return status, r.binary()


def test_unknown_rpc_then_the_connection_still_serves(front: PegasusFront, cluster: pf.Cluster) -> None:
    t = cluster.table("t")
    t.set(b"h", b"s", b"v")
    with _connect(front) as s:
        s.sendall(_frame(_call(b"RPC_NO_SUCH_THING", b"\x00", 7), 0, 0))
        assert _reply(s) == ("ERR_HANDLER_NOT_FOUND", "RPC_NO_SUCH_THING_ACK", 7, b"")
        error, name, seqid, result = _get(s, t, b"h", b"s", 8)
        assert (error, name, seqid) == ("ERR_OK", "RPC_RRDB_RRDB_GET_ACK", 8)
        assert _value_of(result) == (0, b"v")


def test_bad_arguments_are_answered_and_the_connection_serves(
    front: PegasusFront, cluster: pf.Cluster
) -> None:
    t = cluster.table("t")
    with _connect(front) as s:
        bad = b"\x0c\x00\x01" + struct.pack(">i", 1 << 20) + b"x"  # a blob longer than its frame
        s.sendall(_frame(_call(b"RPC_RRDB_RRDB_GET", bad, 1), t.app_id, 0))
        assert _reply(s)[:3] == ("ERR_INVALID_DATA", "RPC_RRDB_RRDB_GET_ACK", 1)
        assert _get(s, t, b"h", b"s", 2)[0] == "ERR_OK"


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"THFT\x00\x00\x00\x09" + b"\x00" * 40,  # unknown header version
        b"THFT\x00\x00\x00\x00\x00\x00\x00\x2f" + b"\x00" * 36,  # v0 header length 47
        frame.encode_v0_header(1 << 30, 1, 0),  # a frame far over the limit
        frame.encode_v0_header(8, 1, 0) + b"\x80\x01\x00\x02" + b"\x00" * 4,  # a reply, not a call
    ],
)
def test_garbage_closes_that_connection_only(
    front: PegasusFront, cluster: pf.Cluster, garbage: bytes
) -> None:
    t = cluster.table("t")
    with _connect(front) as bad, _connect(front) as good:
        bad.sendall(garbage)
        assert _closed(bad)
        assert _get(good, t, b"h", b"s", 1)[0] == "ERR_OK"
    assert front.stats["protocol_errors"] == 1


def test_half_frame_then_silence_holds_nothing(front: PegasusFront, cluster: pf.Cluster) -> None:
    t = cluster.table("t")
    stalled = []
    try:
        for _ in range(20):
            s = _connect(front)
            # a header promising 1000 body bytes, then 10 of them, then nothing
            s.sendall(frame.encode_v0_header(1000, t.app_id, 0) + b"\x00" * 10)
            stalled.append(s)
        with _connect(front) as good:
            start = time.monotonic()
            for i in range(20):
                assert _get(good, t, b"h", b"s", i)[0] == "ERR_OK"
            assert time.monotonic() - start < DEADLINE
        for s in stalled:
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.recv(1)  # still open, still waiting: nothing answered, nothing closed
    finally:
        for s in stalled:
            s.close()


def test_pipelined_requests_all_come_back(front: PegasusFront, cluster: pf.Cluster) -> None:
    t = cluster.table("t")
    frames = b""
    for i in range(100):
        key = _key(b"hk", f"s{i}".encode())
        body = _call(b"RPC_RRDB_RRDB_PUT", _put_arg(key, f"v{i}".encode()), i)
        frames += _frame(body, t.app_id, t.partition_index(b"hk"))
    with _connect(front) as s:
        s.sendall(frames)
        replies = [_reply(s) for _ in range(100)]
    assert sorted(r[2] for r in replies) == list(range(100))
    assert {r[0] for r in replies} == {"ERR_OK"}
    assert t.multi_get(b"hk") == {f"s{i}".encode(): f"v{i}".encode() for i in range(100)}
    assert front.stats["requests"] == 100 and front.stats["batches"] <= 100


def test_v1_header(front: PegasusFront, cluster: pf.Cluster) -> None:
    t = cluster.table("t")
    t.set(b"h", b"s", b"v1 header")
    meta = bytearray()
    thrift.put_i32(meta, 1, t.app_id)
    thrift.put_i32(meta, 2, t.partition_index(b"h", b"s"))
    thrift.put_stop(meta)
    body = _call(b"RPC_RRDB_RRDB_GET", _blob_arg(_key(b"h", b"s")), 3)
    with _connect(front) as s:
        s.sendall(b"THFT" + struct.pack(">III", 1, len(meta), len(body)) + bytes(meta) + body)
        error, _, seqid, result = _reply(s)
    assert (error, seqid, _value_of(result)) == ("ERR_OK", 3, (0, b"v1 header"))


def test_allowlist_refuses_before_reading(cluster: pf.Cluster, kind: str) -> None:
    f = _open(kind, cluster, allow="10.0.0.0/8, 192.168.0.0/16")
    try:
        with _connect(f) as s:
            try:
                s.sendall(frame.encode_v0_header(0, 0, 0))
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert _closed(s)
        assert f.stats["connections_refused"] == 1
        assert f.stats["connections_accepted"] == 0 and f.stats["requests"] == 0
        assert cluster.metrics()['pegasus_front_connections_total{result="refused"}'] == 1
    finally:
        f.stop()
    assert not any(k.startswith("pegasus_front") for k in cluster.metrics())


def test_refused_connections_are_logged_with_their_count(
    cluster: pf.Cluster, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pegasus_fast")
    f = _open(kind, cluster, allow="10.0.0.0/8")
    try:
        for _ in range(5):
            with _connect(f) as s:
                assert _closed(s)
        # the Rust front end refuses without Python: its count is looked at once a second
        deadline = time.monotonic() + DEADLINE
        while not [r for r in caplog.records if getattr(r, "event", {}).get("refused")]:
            assert time.monotonic() < deadline, "no refusal logged"
            time.sleep(0.05)
    finally:
        f.stop()
    logged = [r.event for r in caplog.records if getattr(r, "event", {}).get("refused")]  # type: ignore[attr-defined]
    # rate-limited: the first line at once, then (within the 10 s interval) nothing until the
    # stop says how many more were refused; every one is counted
    assert len(logged) <= 2 and logged[0]["reason"] == "not in the allowlist"
    assert sum(e["refused"] for e in logged) == 5 == logged[-1]["refused_total"]


def test_listen_rules(cluster: pf.Cluster, kind: str) -> None:
    with pytest.raises(InvalidArgumentError):
        _open(kind, cluster, "0.0.0.0:0")  # not loopback, no allowlist
    with pytest.raises(InvalidArgumentError):
        _open(kind, cluster, "[::1]:0")  # an rpc_address is IPv4
    with pytest.raises(InvalidArgumentError):
        _open(kind, cluster, allow="not-a-cidr")
    f = _open(kind, cluster, "0.0.0.0:0", allow="127.0.0.0/8")
    try:
        with socket.create_connection(("127.0.0.1", f.address.port), timeout=DEADLINE) as s:
            assert _get(s, cluster.table("t"), b"h", b"s", 1)[0] == "ERR_OK"
    finally:
        f.stop()


def test_serve_exposes_the_pegasus_address(cluster: pf.Cluster) -> None:
    server = pf.serve(cluster, pegasus_listen="127.0.0.1:0")
    try:
        assert server.pegasus_address is not None and server.pegasus_address.port > 0
        with socket.create_connection(
            (server.pegasus_address.host, server.pegasus_address.port), timeout=DEADLINE
        ) as s:
            assert _get(s, cluster.table("t"), b"h", b"s", 1)[0] == "ERR_OK"
    finally:
        server.stop()
    with pytest.raises(InvalidArgumentError):
        pf.serve(cluster, pegasus_listen="0.0.0.0:0")
