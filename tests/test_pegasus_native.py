"""The served data plane's native side: the Rust codec byte for byte against the Python one
(golden pypegasus3 frames, every call our clients make, hostile mutations of them), the
Rust client and its pure-Python twin through pf.connect over real sockets, hostile servers,
the batch-size histogram, and the Rust load generator (Pegasus and RESP)."""

from __future__ import annotations

import json
import math
import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pegasus_fast as pf
import pytest
from conftest import BACKENDS, load_backend
from pegasus_fast.client.native import PyClientCore
from pegasus_fast.errors import PegasusProtocolError
from pegasus_fast.net.pegasus import codes, frame
from pegasus_fast.net.pegasus.calls import decode_reply, encode_call
from pegasus_fast.net.pegasus.handler import BatchHandler
from pegasus_fast.net.pegasus.replies import encode_response, rpc_address
from pegasus_fast.net.pegasus.requests import decode_request
from pegasus_fast.records import encode_key

needs_rust = pytest.mark.skipif("rust" not in BACKENDS, reason="needs the Rust backend")
GOLDEN = {
    k: bytes.fromhex(v)
    for k, v in json.loads((Path(__file__).parent / "data" / "pypegasus3_frames.json").read_text()).items()
}
KEY = b"\x00\x02hksk"
MG = (b"hk", [b"a", b"b"], 5, 100, True, b"s", b"t", True, False, 0, b"", False)
CALLS: list[tuple[int, tuple[Any, ...]]] = [
    (codes.OP_QUERY_CFG, ("temp", [0, 3])),
    (codes.OP_PUT, (KEY, b"value", 7)),
    (codes.OP_MULTI_PUT, (b"hk", [(b"a", b"1"), (b"", b"2")], -5)),
    (codes.OP_REMOVE, (KEY,)),
    (codes.OP_GET, (KEY,)),
    (codes.OP_TTL, (KEY,)),
    (codes.OP_SORTKEY_COUNT, (b"hk",)),
    (codes.OP_MULTI_REMOVE, (b"hk", [b"a", b"b"])),
    (codes.OP_MULTI_GET, MG),
    (codes.OP_MULTI_GET, (b"hk", [], -1, 0, False, b"a", b"z", False, True, 2, b"p", True)),
    (codes.OP_INCR, (KEY, -(1 << 63), -1)),
    (codes.OP_CHECK_AND_SET, (b"hk", b"c", 13, b"5", True, b"s", b"v", 9, True)),
    (codes.OP_CHECK_AND_MUTATE, (b"hk", b"c", 1, b"", [(0, b"a", b"1", 5), (1, b"b", b"", 0)], False)),
    (codes.OP_BATCH_GET, ([(b"hk", b"a"), (b"", b"")],)),
    (codes.OP_GET_SCANNER, (b"\0\0", b"\xff\xff", True, False, 1000, True, 2, b"u", 3, b"e")),
    (codes.OP_SCAN, (42,)),
    (codes.OP_CLEAR_SCANNER, (43,)),
    (codes.OP_REPLICATE, (b"\x0a\x02n1" + bytes(range(256)),)),
    (codes.OP_DUP_APPLY, (b"\x0a\x01t\x10\x03" + bytes(range(256)),)),
]


def _rust() -> Any:
    return load_backend("rust")


def _same(py: Any, rs: Any) -> None:
    """Compact requests are equal, a PegasusProtocolError by its offset and reason."""
    assert py[:5] == rs[:5]
    if py[0] == codes.OP_BAD_REQUEST:
        (pe,), (re,) = py[5], rs[5]
        assert type(re) is PegasusProtocolError
        assert (pe.offset, pe.reason) == (re.offset, re.reason)
    else:
        assert py[5] == rs[5]
        assert [type(x) for x in py[5]] == [type(x) for x in rs[5]]


def _both(body: bytes, app_id: int = 1, pidx: int = 2, base: int = 48) -> None:
    core = _rust().PegasusFrontCore
    try:
        py = decode_request(body, app_id, pidx, base)
    except PegasusProtocolError as exc:
        with pytest.raises(PegasusProtocolError) as got:
            core.decode_request(body, app_id, pidx, base)
        assert (got.value.offset, got.value.reason) == (exc.offset, exc.reason)
        return
    _same(py, core.decode_request(body, app_id, pidx, base))


@needs_rust
@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_rust_decodes_pypegasus3_frames_as_python_does(name: str) -> None:
    raw = GOLDEN[name]
    _, _, _, app_id, pidx = frame.parse_header(raw[:48])
    _both(raw[48:], app_id, pidx)


@needs_rust
@pytest.mark.parametrize("op,args", CALLS)
def test_calls_round_trip_and_mutations_decode_alike(op: int, args: tuple[Any, ...]) -> None:
    raw = encode_call(op, 9, 1, 2, args)
    assert raw[:48] == frame.encode_v0_header(len(raw) - 48, 1, 2)
    body = raw[48:]
    req = decode_request(body, 1, 2, 48)
    assert req[:2] == (op, 9) and req[5] == args
    _both(body)
    rng = random.Random(op)
    for _ in range(300):  # hostile: cut, flipped and spliced bodies decode (or fail) alike
        b = bytearray(body)
        kind = rng.randrange(3)
        if kind == 0:
            b = b[: rng.randrange(len(b))]
        elif kind == 1:
            for _ in range(rng.randrange(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        else:
            at = rng.randrange(len(b))
            b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        _both(bytes(b))


RESPONSES = [
    (codes.OP_QUERY_CFG, codes.ERR_OK, ("ERR_OK", 1, 2, [(0, 1, 5), (1, 1, 0)])),
    (codes.OP_QUERY_CFG, codes.ERR_OK, ("ERR_OBJECT_NOT_FOUND", 0, 0, [])),
    (codes.OP_PUT, codes.ERR_OK, (0, 42)),
    (codes.OP_MULTI_PUT, codes.ERR_OK, (4, 0)),
    (codes.OP_REMOVE, codes.ERR_OK, (0, 43)),
    (codes.OP_MULTI_REMOVE, codes.ERR_OK, (0, 2, 44)),
    (codes.OP_GET, codes.ERR_OK, (0, b"v" * 100)),
    (codes.OP_GET, codes.ERR_OK, (1, b"")),
    (codes.OP_MULTI_GET, codes.ERR_OK, (7, [(b"a", b"1"), (b"", b"")])),
    (codes.OP_SORTKEY_COUNT, codes.ERR_OK, (0, 12)),
    (codes.OP_TTL, codes.ERR_OK, (0, -1)),
    (codes.OP_INCR, codes.ERR_OK, (0, -(1 << 63), 12)),
    (codes.OP_CHECK_AND_SET, codes.ERR_OK, (13, True, True, b"old", 13)),
    (codes.OP_CHECK_AND_MUTATE, codes.ERR_OK, (0, False, False, b"", 14)),
    (codes.OP_BATCH_GET, codes.ERR_OK, (0, [(b"h", b"a", b"1"), (b"", b"", b"")])),
    (codes.OP_GET_SCANNER, codes.ERR_OK, (0, [(b"\0\x01hs", b"v")], 5)),
    (codes.OP_SCAN, codes.ERR_OK, (1, [], -2)),
    (codes.OP_REPLICATE, codes.ERR_OK, (0, b"\x0a\x04\x08\x05" * 3)),
    (codes.OP_REPLICATE, codes.ERR_ACL_DENY, None),
    (codes.OP_DUP_APPLY, codes.ERR_OK, (0, b"\x08\x07")),
    (codes.OP_DUP_APPLY, codes.ERR_OK, (4, b'{"type": "DuplicationGapError"}')),
    (codes.OP_GET, codes.ERR_PARENT_PARTITION_MISUSED, None),
    (codes.OP_UNKNOWN, codes.ERR_HANDLER_NOT_FOUND, None),
    (codes.OP_CLEAR_SCANNER, codes.ERR_OK, None),
]


@needs_rust
@pytest.mark.parametrize("op,error,result", RESPONSES)
def test_rust_encodes_replies_as_python_does(op: int, error: str, result: Any) -> None:
    name = next((n for n, o in codes.RPC_OPS.items() if o == op), "RPC_SOMETHING_" + "X" * 40)
    resp = (op, 77, 1, 3, name, error, result)
    server, primary = b"127.0.0.1:34601", rpc_address("127.0.0.1", 34601)
    py = encode_response(resp, server, primary)
    assert _rust().PegasusFrontCore.encode_response(resp, server, primary) == py
    if py is not None and op != codes.OP_UNKNOWN:
        # and the client's decoders (Python's and, through a socket, Rust's) read it back
        assert decode_reply(op, py[4:]) == (error, (name + "_ACK")[:47], 77, result)


@pytest.fixture(params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """A served cluster with a Pegasus port, under each backend: the Rust front end and client,
    or the asyncio front end and the pure-Python client."""
    from pegasus_fast import _backend

    with _backend.use(request.param):
        c = pf.Cluster.open(tmp_path / "c")
        c.create_table("t", partition_count=8)
        server = pf.serve(c, pegasus_listen="127.0.0.1:0")
        rc = pf.connect(server.url)
        try:
            yield server, rc
        finally:
            rc.close()
            server.stop()
            c.close()


def test_connect_sends_data_calls_to_the_pegasus_port(served: tuple[Any, Any]) -> None:
    server, rc = served
    t = rc.table("t")
    before = server.pegasus.stats["requests"]
    assert t.set(b"h", b"s", b"v") >= 1
    assert t.get(b"h", b"s") == b"v" and t.get(b"h", b"nope") is None
    assert t.multi_set(b"h", {b"a": b"1", b"b": b"2"}, ttl_seconds=3600) >= 1
    assert t.multi_get(b"h") == {b"a": b"1", b"b": b"2", b"s": b"v"}
    assert t.multi_get(b"h", [b"a", b"zz"]) == {b"a": b"1"}
    assert t.multi_delete(b"h", [b"a"]) >= 1 and t.delete(b"h", b"s") >= 1
    assert t.multi_get(b"h") == {b"b": b"2"}
    assert server.pegasus.stats["requests"] - before == 9
    # what was written over the data port is the table's, seen embedded and over gRPC
    assert server.cluster.table("t").get(b"h", b"b") == b"2"
    assert rc.table("t").count() == 1
    native = type(rc._c.data().core)
    assert (native is PyClientCore) == (server.pegasus.__class__.__name__ == "PegasusFront")


def test_client_threads_share_the_data_port(served: tuple[Any, Any]) -> None:
    _, rc = served
    t = rc.table("t")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                t.set(b"k%d" % n, b"%d" % i, b"v%d" % i)
                assert t.get(b"k%d" % n, b"%d" % i) == b"v%d" % i
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors
    assert rc.table("t").count() == 8 * 50


def test_batch_size_histogram_is_a_metric(served: tuple[Any, Any]) -> None:
    server, rc = served
    t = rc.table("t")
    for i in range(5):
        t.set(b"h", b"%d" % i, b"v")
    m = server.cluster.metrics()
    assert m["pegasus_front_batch_size_count"] == server.pegasus.stats["batches"] >= 1
    assert m['pegasus_front_batch_size_bucket{le="+Inf"}'] == m["pegasus_front_batch_size_count"]
    assert m["pegasus_front_batch_size_sum"] == server.pegasus.stats["batch_requests"] >= 5


class _Liar:
    """A server that answers every request with ``reply`` (or nothing)."""

    def __init__(self, reply: bytes | None) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.reply = reply
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        conn, _ = self.sock.accept()
        conn.recv(65536)
        if self.reply is not None:
            conn.sendall(self.reply)
        threading.Event().wait(5)
        conn.close()


@pytest.mark.parametrize("which", BACKENDS)
@pytest.mark.parametrize(
    "reply",
    [
        b"\x7f\xff\xff\xff",
        b"\x00\x00\x00\x02",
        b"\x00\x00\x00\x0cGARBAGEGARB",
        b"\x00\x00\x00\x08\xff\xff\xff\xff",
    ],
)
def test_client_refuses_a_lying_server(which: str, reply: bytes) -> None:
    core = (_rust().PegasusClientCore if which == "rust" else PyClientCore)(
        "127.0.0.1", _Liar(reply).port, 2.0
    )
    with pytest.raises((PegasusProtocolError, ConnectionError)):
        core.call(codes.OP_GET, 1, 0, (KEY,))


@pytest.mark.parametrize("which", BACKENDS)
def test_client_times_out_on_a_silent_server(which: str) -> None:
    core = (_rust().PegasusClientCore if which == "rust" else PyClientCore)(
        "127.0.0.1", _Liar(None).port, 0.3
    )
    with pytest.raises(TimeoutError):
        core.call(codes.OP_GET, 1, 0, (KEY,))


@needs_rust
def test_handler_answers_a_batch_over_several_partitions(tmp_path: Path) -> None:
    """Writes of several partitions in one batch: each partition one mutation, all durable."""
    with pf.Cluster.open(tmp_path / "c") as c:
        t = c.create_table("t", partition_count=8)
        h = BatchHandler(c)
        reqs = []
        for i in range(40):
            hk = b"key%d" % i
            reqs.append(
                (
                    codes.OP_PUT,
                    i,
                    t.app_id,
                    t.partition_index(hk),
                    "RPC_RRDB_RRDB_PUT",
                    (encode_key(hk, b""), b"v", 0),
                )
            )
        out = h.handle_batch(reqs)
        h.close()
        assert [r[5] for r in out] == ["ERR_OK"] * 40
        parts = {r[3] for r in out}
        assert len(parts) > 1
        # one mutation per partition: every answer of a partition carries the same decree
        for p in parts:
            assert len({r[6][1] for r in out if r[3] == p}) == 1
            assert t.partitions[p].durable_decree >= 1
        assert t.count() == 40


@needs_rust
def test_load_generator_against_the_rust_front_end(tmp_path: Path) -> None:
    from pegasus_fast import _backend
    from pegasus_fast.server.pegasus_native import open_front

    # the Rust front end needs the Rust backend, whichever an earlier test left active
    with _backend.use("rust"), pf.Cluster.open(tmp_path / "c") as c:
        c.create_table("bench", partition_count=8)
        f = open_front(c, native=True)
        try:
            bench = _rust().bench_served
            r = bench(
                "127.0.0.1",
                f.address.port,
                "set",
                clients=4,
                seconds=1.0,
                warmup=0.2,
                keyspace=100,
                prefill=True,
            )
            assert r["ops"] > 0 and r["errors"] == 0 and r["p50_us"] <= r["p99_us"] <= r["max_us"]
            g = bench("127.0.0.1", f.address.port, "get", clients=4, seconds=0.8, warmup=0.2, rate=500.0)
            assert g["errors"] == 0 and 100 < g["ops"] <= 500
            assert "latencies_us" not in g
            # with every latency, to merge phases: sorted, one per request, the percentiles of
            s = bench("127.0.0.1", f.address.port, "get", clients=4, seconds=0.6, warmup=0.1, samples=True)
            lat = s["latencies_us"]
            assert len(lat) == s["ops"] > 0 and lat == sorted(lat)
            assert lat[-1] == s["max_us"] and lat[math.ceil(len(lat) * 0.99) - 1] == s["p99_us"]
            assert c.table("bench").count() == 100
        finally:
            f.stop()


@needs_rust
def test_load_generator_speaks_resp() -> None:
    """A minimal RESP server (+OK to SET, a bulk string to GET) counts what the generator sends."""
    srv = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        srv.settimeout(10)
        conn, _ = srv.accept()
        buf = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while buf.count(b"\r\n") >= 5 and buf.startswith(b"*2"):
                parts = buf.split(b"\r\n", 5)
                seen.append(parts[2])
                buf = parts[5]
                conn.sendall(b"$3\r\nabc\r\n")
            while buf.count(b"\r\n") >= 7 and buf.startswith(b"*3"):
                parts = buf.split(b"\r\n", 7)
                seen.append(parts[2])
                buf = parts[7]
                conn.sendall(b"+OK\r\n")

    threading.Thread(target=serve, daemon=True).start()
    r = _rust().bench_served(
        "127.0.0.1", srv.getsockname()[1], "get", protocol="redis", clients=1, seconds=0.5, warmup=0.1
    )
    assert r["errors"] == 0 and r["ops"] > 0
    assert set(seen) == {b"GET"}
