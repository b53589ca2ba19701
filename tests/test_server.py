"""A served cluster: typed errors over the wire, the token, TLS, bad input, health, metrics, and
duplication to a pegasus:// URL (in-process servers; real processes are in test_serve_process.py
and test_served_duplication.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import grpc
import pegasus_fast as pf
import pytest
from conftest import DEFAULT_BACKEND, PYTHON, child_env
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pegasus_fast.net import pegasus_fast_pb2 as pb
from pegasus_fast.net.wire import (
    ERROR_KEY,
    MESSAGE_LIMIT,
    decode_error,
    encode_error,
    parse_hostport,
    parse_url,
)


@pytest.fixture
def cluster(default_backend: ModuleType, tmp_path: Path) -> Iterator[pf.Cluster]:
    c = pf.Cluster.open(tmp_path / "c", name="c")
    yield c
    c.close()


@pytest.fixture
def served(cluster: pf.Cluster) -> Iterator[pf.Server]:
    with pf.serve(cluster) as s:
        yield s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- errors travel -------------------------------------------------------------------


def test_errors_keep_class_and_attributes(cluster: pf.Cluster, served: pf.Server) -> None:
    cluster.create_table("t", partition_count=2)
    with pf.connect(served.url) as rc:
        with pytest.raises(pf.TableNotFoundError) as nf:
            rc.table("nope")
        assert nf.value.name == "nope" and isinstance(nf.value, KeyError)
        with pytest.raises(pf.TableExistsError) as ex:
            rc.create_table("t", partition_count=2)
        assert ex.value.name == "t"
        with pytest.raises(pf.DuplicationNotFoundError) as dn:
            rc.duplication(42)
        assert dn.value.dupid == 42
        assert dn.value.retry is pf.Retry.PERMANENT


def test_partition_unavailable_travels(cluster: pf.Cluster, served: pf.Server, tmp_path: Path) -> None:
    # a follower table still learning: its partitions refuse reads, typed, with table/pidx/state
    from pegasus_fast.duplication.ports import SourceId

    cluster.followers.create("learning", 2, SourceId("src", "uid", "t", 1))
    with pf.connect(served.url) as rc:
        with pytest.raises(pf.PartitionUnavailableError) as e:
            rc.table("learning").get(b"h", b"s")
    assert e.value.table == "learning" and e.value.pidx in (0, 1) and e.value.state == "learning"
    assert e.value.retry is pf.Retry.TRANSIENT


def test_error_codec_round_trip() -> None:
    for exc in [
        pf.WalGapError("/p", 3, 9),
        pf.StorageError("/p", 2, "disk"),
        pf.RemoteUnavailableError("pegasus://x:1", "down"),
        pf.CloseError("c", [("step", ValueError("x"))]),
    ]:
        back = decode_error(encode_error(exc), "pegasus://h:1", str(exc))
        assert type(back) is type(exc)
        assert str(back) == str(exc)
        for k, v in vars(exc).items():
            if k != "failures":
                assert getattr(back, k) == v
    back = decode_error(encode_error(OSError(28, "No space left on device")), "u", "m")
    assert isinstance(back, OSError) and back.errno == 28
    # a crafted error body never becomes anything but a RemoteError or one of ours
    for raw in [b"", b"{", b"[]", b'{"type": "SystemExit", "args": [1]}', b'{"type": 5}', b"\xff" * 10]:
        got = decode_error(raw, "u", "m")
        assert isinstance(got, pf.RemoteError)
    got = decode_error(
        json.dumps({"type": "TableNotFoundError", "args": ["t"], "attrs": {"retry": 1}}).encode(), "u", "m"
    )
    assert isinstance(got, pf.TableNotFoundError) and got.retry is pf.Retry.PERMANENT


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_error_class_is_public_and_travels() -> None:
    # the classes live in submodules of pegasus_fast.errors; each is named by the package itself
    # (its __module__ and __all__), which is where the wire looks a served error's class up
    from pegasus_fast import errors

    ours = {c for c in _subclasses(pf.PegasusFastError) if c.__module__.startswith("pegasus_fast.errors")}
    assert len(ours) >= 48
    for cls in [pf.PegasusFastError, *ours]:
        assert cls.__module__ == "pegasus_fast.errors" and cls.__name__ in errors.__all__, cls
        assert getattr(errors, cls.__name__) is cls
        body = json.dumps({"type": cls.__name__, "args": ["m"]}).encode()
        assert type(decode_error(body, "u", "m")) is cls


def test_unknown_server_exception_is_remote_error(
    cluster: pf.Cluster, served: pf.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster.create_table("t", partition_count=1)

    def boom(*a: object, **k: object) -> int:
        raise RuntimeError("bug")

    monkeypatch.setattr(pf.Table, "count", boom)
    with pf.connect(served.url) as rc:
        with pytest.raises(pf.RemoteError) as e:
            rc.table("t").count()
        assert e.value.type_name == "RuntimeError"
        assert rc.table("t").get(b"h", b"s") is None  # still serving


def test_scan_and_count_of_some_partitions(cluster: pf.Cluster, served: pf.Server) -> None:
    """What a multi-node client asks of each node: only the partitions named."""
    from pegasus_fast.net import pegasus_fast_pb2 as pb

    t = cluster.create_table("t", partition_count=4)
    keys = [b"k%d" % i for i in range(40)]
    for k in keys:
        t.set(k, b"s", k)
    by_pidx = {i: sorted(k for k in keys if t.partition_index(k, b"s") == i) for i in range(4)}
    with pf.connect(served.url) as rc:
        rt = rc.table("t")
        for i in range(4):
            req = pb.TableRef(table="t", partitions=[i])
            assert rt._c("Count", req).count == len(by_pidx[i])
            got = sorted(r.hash_key for b in rt._c.stream("Scan", req) for r in b.records)
            assert got == by_pidx[i]
        for bad in ([4], [1, 1]):
            with pytest.raises(pf.InvalidArgumentError):
                rt._c("Count", pb.TableRef(table="t", partitions=bad))
        assert rt.count() == 40


# -- unreachable ------------------------------------------------------------------------


def test_connection_refused_names_the_url(default_backend: ModuleType) -> None:
    url = f"pegasus://127.0.0.1:{_free_port()}"
    with pf.connect(url, timeout=2) as rc:
        with pytest.raises(pf.RemoteUnavailableError) as e:
            rc.list_tables()
    assert e.value.remote == url
    assert e.value.retry is pf.Retry.TRANSIENT


def test_deadline_is_remote_unavailable(default_backend: ModuleType) -> None:
    # a peer that accepts and never answers
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    url = f"pegasus://127.0.0.1:{srv.getsockname()[1]}"
    try:
        with pf.connect(url, timeout=0.5) as rc:
            with pytest.raises(pf.RemoteUnavailableError) as e:
                rc.list_tables()
        assert e.value.remote == url
    finally:
        stop.set()
        t.join()
        for c in conns:
            c.close()
        srv.close()


def test_bad_urls() -> None:
    for url in ["http://x:1", "pegasus://", "pegasus://h:99999", "pegasus://h:0", "pegasus://::1:5"]:
        with pytest.raises(pf.InvalidArgumentError):
            pf.connect(url)
    with pytest.raises(pf.InvalidTypeError):
        pf.connect(5)  # type: ignore[arg-type]
    assert parse_url("pegasus://[::1]:5").target == "[::1]:5"
    assert parse_hostport("localhost").port == 34801


# -- the token --------------------------------------------------------------------------


def test_token(cluster: pf.Cluster) -> None:
    cluster.create_table("t", partition_count=2)
    with pf.serve(cluster, token="s3cret") as srv:
        with pf.connect(srv.url, token="s3cret") as ok:
            ok.table("t").set(b"h", b"s", b"v")
        for token in (None, "wrong", "s3cret ", "s3cre"):
            with pf.connect(srv.url, token=token) as rc:
                with pytest.raises(pf.AuthenticationError) as e:
                    rc.table("t").set(b"h", b"other", b"v")
                assert e.value.remote == srv.url
                with pytest.raises(pf.AuthenticationError):
                    list(rc.table.__self__._c.stream("Scan", pb.TableRef(table="t")))  # type: ignore[attr-defined]
        # nothing refused was written
        assert list(cluster.table("t").scan()) == [(b"h", b"s", b"v")]
        # the health service asks for it too
        ch = grpc.insecure_channel(srv.address.target)
        stub = health_pb2_grpc.HealthStub(ch)
        with pytest.raises(grpc.RpcError) as he:
            stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert he.value.code() == grpc.StatusCode.UNAUTHENTICATED
        r = stub.Check(
            health_pb2.HealthCheckRequest(service=""),
            timeout=5,
            metadata=(("authorization", "Bearer s3cret"),),
        )
        assert r.status == health_pb2.HealthCheckResponse.SERVING
        ch.close()


def test_token_from_environment(cluster: pf.Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    with pf.serve(cluster, token="envtok") as srv:
        monkeypatch.setenv("PEGASUS_FAST_TOKEN", "envtok")
        with pf.connect(srv.url) as rc:
            assert rc.list_tables() == []


def test_bad_tokens_refused(cluster: pf.Cluster) -> None:
    for token in ["", " x", 5]:
        with pytest.raises((pf.InvalidArgumentError, pf.InvalidTypeError)):
            pf.serve(cluster, token=token)  # type: ignore[arg-type]


def test_non_loopback_needs_tls_and_token(cluster: pf.Cluster) -> None:
    for listen in ["0.0.0.0:0", "10.1.2.3:0", "[::]:0", "example.com:0"]:
        with pytest.raises(pf.InvalidArgumentError):
            pf.serve(cluster, listen=listen)
        with pytest.raises(pf.InvalidArgumentError):
            pf.serve(cluster, listen=listen, token="t")


def test_metrics_beyond_loopback_only_when_asked_for(
    cluster: pf.Cluster, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """/metrics is plain HTTP without a token: ``0.0.0.0`` (every interface) is refused before
    anything is bound, unless ``insecure``, and then said in the log."""
    for listen in ["0.0.0.0:0", "10.1.2.3:0", "[::]:0"]:
        with pytest.raises(pf.InvalidArgumentError):
            pf.serve(cluster, metrics_listen=listen)
    with caplog.at_level("WARNING", logger="pegasus_fast"):
        with pf.serve(cluster, metrics_listen="0.0.0.0:0", insecure=True) as s:
            assert s.metrics_url is not None and s.metrics_url.startswith("http://0.0.0.0:")
            port = int(s.metrics_url.rsplit(":", 1)[1].split("/")[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                assert r.status == 200
    warned = [
        r for r in caplog.records if r.levelname == "WARNING" and "metrics_listen" in getattr(r, "event", {})
    ]
    assert [r.event["metrics_listen"] for r in warned] == [f"0.0.0.0:{port}"]
    # the command line refuses it too, before it opens anything
    r = subprocess.run(
        [PYTHON, "-m", "pegasus_fast", "serve", "--cluster", str(tmp_path / "cli"), "--check-config",
         "--metrics-listen", "0.0.0.0:0"],
        capture_output=True, text=True, timeout=60, env=child_env(DEFAULT_BACKEND),
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "InvalidArgumentError" in r.stderr
    assert not (tmp_path / "cli").exists()


# -- bad input ----------------------------------------------------------------------------


def _raw_unary(target: str, method: str, payload: bytes) -> grpc.RpcError | bytes:
    ch = grpc.insecure_channel(target)
    try:
        fn = ch.unary_unary(method, request_serializer=None, response_deserializer=None)
        return fn(payload, timeout=5)
    except grpc.RpcError as exc:
        return exc
    finally:
        ch.close()


def test_garbage_on_the_port_leaves_it_serving(cluster: pf.Cluster, served: pf.Server) -> None:
    cluster.create_table("t", partition_count=2)
    host, port = served.address.host, served.address.port
    rng = __import__("random").Random(7)
    payloads = [
        bytes(rng.randrange(256) for _ in range(4096)),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # the preface, then nothing
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x12\x04\x00\x00\x00\x00" + b"\xff" * 9,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 100,  # a TLS hello
        b"",
    ]
    for data in payloads:
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(2)
            try:
                while s.recv(65536):
                    pass
            except OSError:
                pass
    # malformed protobuf, unknown methods, wrong message types
    for method, raw in [
        ("/pegasus_fast.v1.Client/Set", b"\xff\xff\xff\xff"),
        ("/pegasus_fast.v1.Client/Set", b"\x0a\x05ab"),  # a truncated field
        ("/pegasus_fast.v1.Follower/Apply", os.urandom(200)),
        ("/pegasus_fast.v1.Client/Nope", b""),
        ("/nope.Nope/Nope", b"\x00"),
    ]:
        got = _raw_unary(served.address.target, method, raw)
        assert isinstance(got, grpc.RpcError)
    # a well-formed request for an unknown table, and one with a crafted WAL batch
    with pf.connect(served.url) as rc:
        raw = pb.SetRequest(table="missing", hash_key=b"h", sort_key=b"s", value=b"v").SerializeToString()
        got = _raw_unary(served.address.target, "/pegasus_fast.v1.Client/Set", raw)
        assert isinstance(got, grpc.RpcError) and got.code() == grpc.StatusCode.NOT_FOUND
        # still serving
        rc.table("t").set(b"h", b"s", b"v")
        assert rc.table("t").get(b"h", b"s") == b"v"


def test_over_limit_value_from_a_raw_client(cluster: pf.Cluster, served: pf.Server) -> None:
    """A client that skips the checks: the server checks again, typed."""
    cluster.create_table("t", partition_count=1)
    ch = grpc.insecure_channel(served.address.target, options=[("grpc.max_send_message_length", 100 << 20)])
    try:
        fn = ch.unary_unary(
            "/pegasus_fast.v1.Client/Set", request_serializer=None, response_deserializer=None
        )
        req = pb.SetRequest(table="t", hash_key=b"h", sort_key=b"s", value=b"v" * (65 << 20))
        with pytest.raises(grpc.RpcError) as e:
            fn(req.SerializeToString(), timeout=30)
        md = dict(e.value.trailing_metadata() or ())
        assert isinstance(decode_error(md[ERROR_KEY], "u", ""), pf.InvalidArgumentError)
    finally:
        ch.close()
    # past the message limit the transport refuses it before any handler runs
    ch = grpc.insecure_channel(served.address.target, options=[("grpc.max_send_message_length", -1)])
    try:
        fn = ch.unary_unary(
            "/pegasus_fast.v1.Client/Set", request_serializer=None, response_deserializer=None
        )
        huge = b"\x0a\x01t" + b"\x22" + _varint(MESSAGE_LIMIT + 1) + bytes(MESSAGE_LIMIT + 1)
        with pytest.raises(grpc.RpcError) as e:
            fn(huge, timeout=60)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        del huge
    finally:
        ch.close()
    assert cluster.table("t").count() == 0
    with pf.connect(served.url) as rc:
        rc.table("t").set(b"still", b"serving", b"v")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_crafted_follower_calls_store_nothing(cluster: pf.Cluster, served: pf.Server) -> None:
    """The follower service takes crafted calls from a peer: typed errors, nothing stored."""
    t = cluster.create_table("t", partition_count=2)
    t.set(b"h", b"s", b"v")
    ch = grpc.insecure_channel(served.address.target)
    from pegasus_fast.net import pegasus_fast_pb2_grpc as rpc

    stub = rpc.FollowerStub(ch)
    try:
        bad = [
            ("Apply", pb.ApplyRequest(table="t", pidx=0, blocks=os.urandom(100))),
            ("Apply", pb.ApplyRequest(table="t", pidx=99, blocks=b"")),
            ("Apply", pb.ApplyRequest(table="zz", pidx=0, blocks=b"")),
            ("LearnSnapshot", pb.LearnSnapshotRequest(table="t", pidx=0, decree=5, block=os.urandom(64))),
            ("EnsureTable", pb.EnsureTableRequest(table="t", partition_count=2)),
            ("Advance", pb.AdvanceRequest(table="t", pidx=7, source_decree=9)),
            (
                "CheckpointOffsets",
                pb.CheckpointRequest(
                    table="t",
                    pidx=0,
                    decree=1,
                    manifest=[pb.ManifestEntry(name="../../etc/passwd", size=1, blake3="00")],
                ),
            ),
        ]
        for method, req in bad:
            with pytest.raises(grpc.RpcError):
                getattr(stub, method)(req, timeout=10)

        def pieces() -> Iterator[pb.CheckpointPiece]:
            yield pb.CheckpointPiece(chunk=pb.Chunk(name="x", offset=0, data=b"d", crc32c=0))

        with pytest.raises(grpc.RpcError):
            stub.LearnCheckpoint(pieces(), timeout=10)
    finally:
        ch.close()
    assert list(t.scan()) == [(b"h", b"s", b"v")]
    assert not any(p.name.startswith("..") for p in Path(cluster.path).rglob("*"))


# -- the health service and metrics ----------------------------------------------------------


def test_health_service_and_metrics(cluster: pf.Cluster) -> None:
    port = _free_port()
    with pf.serve(cluster, metrics_listen=f"127.0.0.1:{port}") as srv:
        ch = grpc.insecure_channel(srv.address.target)
        stub = health_pb2_grpc.HealthStub(ch)
        for service in ("", "pegasus_fast.v1.Client", "pegasus_fast.v1.Follower"):
            r = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert r.status == health_pb2.HealthCheckResponse.SERVING
        # Watch streams the status (health runs on the server's loop, server/front.py)
        watch = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
        ch.close()
        assert srv.metrics_url == f"http://127.0.0.1:{port}/metrics"
        body = urllib.request.urlopen(srv.metrics_url, timeout=5).read().decode()
        assert "dup_pending_mutations" in body
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


# -- TLS ----------------------------------------------------------------------------------


def _cert(tmp: Path, name: str, ca: tuple[Path, Path] | None = None) -> tuple[Path, Path]:
    key, crt = tmp / f"{name}.key", tmp / f"{name}.crt"
    subj = "/CN=localhost"
    if ca is None:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
             "-days", "1", "-subj", subj, "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True,
        )  # fmt: skip
    else:
        csr = tmp / f"{name}.csr"
        ext = tmp / f"{name}.ext"
        ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        subprocess.run(
            ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", subj],
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            ["openssl", "x509", "-req", "-in", csr, "-CA", ca[1], "-CAkey", ca[0], "-CAcreateserial",
             "-out", crt, "-days", "1", "-extfile", ext],
            check=True, capture_output=True,
        )  # fmt: skip
    return key, crt


@pytest.mark.skipif(
    not any(os.access(os.path.join(p, "openssl"), os.X_OK) for p in os.environ.get("PATH", "").split(":")),
    reason="openssl is not installed",
)
def test_tls_and_mutual_tls(cluster: pf.Cluster, tmp_path: Path) -> None:
    ca = _cert(tmp_path, "ca")
    skey, scrt = _cert(tmp_path, "server", ca)
    ckey, ccrt = _cert(tmp_path, "client", ca)
    cluster.create_table("t", partition_count=1)
    with pf.serve(cluster, token="tok", tls=pf.TLS(str(scrt), str(skey))) as srv:
        with pf.connect(srv.url, token="tok", tls_ca=str(ca[1])) as rc:
            rc.table("t").set(b"h", b"s", b"v")
        with pf.connect(srv.url, token="tok", timeout=3) as plain:  # no TLS: refused by the handshake
            with pytest.raises(pf.RemoteUnavailableError):
                plain.list_tables()
        # a duplication reaches a TLS follower with the CA from the environment
        with pf.Cluster.open(tmp_path / "src", name="src") as src:
            st = src.create_table("s", partition_count=2)
            st.set(b"k", b"s", b"v")
            os.environ["PEGASUS_FAST_TLS_CA"] = str(ca[1])
            try:
                d = src.add_duplication("s", srv.url, remote_token="tok")
                d.wait_for(pf.DupStatus.LOG, timeout=30)
            finally:
                del os.environ["PEGASUS_FAST_TLS_CA"]
            assert cluster.table("s").get(b"k", b"s") == b"v"
    with pf.serve(cluster, tls=pf.TLS(str(scrt), str(skey), client_ca=str(ca[1]))) as srv:
        with pf.connect(srv.url, tls_ca=str(ca[1]), tls_cert=str(ccrt), tls_key=str(ckey)) as rc:
            assert rc.table("t").get(b"h", b"s") == b"v"
        with pf.connect(srv.url, tls_ca=str(ca[1]), timeout=3) as nocert:
            with pytest.raises(pf.RemoteUnavailableError):
                nocert.list_tables()


# -- duplication to a served cluster ------------------------------------------------------------


def _wait_equal(a: object, b: object, timeout: float = 20.0) -> None:
    """Until the follower's full scan equals the source's (a partition still learning refuses)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if sorted(a.scan()) == sorted(b.scan()):  # type: ignore[attr-defined]
                return
        except pf.PartitionUnavailableError:
            pass
        assert time.monotonic() < deadline, "follower did not catch up"
        time.sleep(0.02)


def test_embedded_source_to_served_follower(open_cluster_once: object, tmp_path: Path) -> None:
    src = open_cluster_once(tmp_path / "src", name="src")  # type: ignore[operator]
    dst = open_cluster_once(tmp_path / "dst", name="dst")  # type: ignore[operator]
    t = src.create_table("t", partition_count=4)
    for i in range(50):
        t.set(b"k%d" % i, b"s", b"v%d" % i)
    with pf.serve(dst) as srv:
        d = src.add_duplication("t", srv.url)
        d.wait_for(pf.DupStatus.LOG, timeout=30)
        assert dst.table("t").health().is_fully_healthy
        t.multi_set(b"m", {b"a": b"1", b"b": b"2"})
        t.delete(b"k3", b"s")
        _wait_equal(t, dst.table("t"))
        assert d.remote == srv.url
        # the URL is normalised, so the same remote twice is refused
        with pytest.raises(pf.DuplicationError):
            src.add_duplication("t", srv.url + "/")


def test_remote_cluster_runs_the_duplication(open_cluster_once: object, tmp_path: Path) -> None:
    src = open_cluster_once(tmp_path / "src", name="src")  # type: ignore[operator]
    dst = open_cluster_once(tmp_path / "dst", name="dst")  # type: ignore[operator]
    with pf.serve(src) as s1, pf.serve(dst) as s2, pf.connect(s1.url) as rc:
        t = rc.create_table("t", partition_count=4)
        t.set(b"a", b"b", b"c")
        d = rc.add_duplication("t", s2.url, "copy", fail_mode="slow")
        assert isinstance(d, pf.RemoteDuplication)
        d.wait_for(pf.DupStatus.LOG, timeout=30)
        assert d.status == pf.DupStatus.LOG
        assert [p.pidx for p in d.progress()] == [0, 1, 2, 3]
        assert [x.dupid for x in rc.duplications("t")] == [d.dupid]
        t.set(b"x", b"y", b"z")
        _wait_equal(t, dst.table("copy"))
        d.pause()
        assert d.status == pf.DupStatus.PAUSE
        t.set(b"paused", b"s", b"v")
        time.sleep(0.2)
        assert dst.table("copy").get(b"paused", b"s") is None
        d.resume()
        _wait_equal(t, dst.table("copy"))
        with pytest.raises(TimeoutError):
            d.wait_for(pf.DupStatus.PAUSE, timeout=0.3)
        d.remove()
        assert d.status == pf.DupStatus.REMOVED
        with pytest.raises(pf.InvalidArgumentError):
            rc.add_duplication("t", str(tmp_path / "dst"))


def test_self_duplication_refused(open_cluster_once: object, tmp_path: Path) -> None:
    src = open_cluster_once(tmp_path / "src", name="src")  # type: ignore[operator]
    src.create_table("t", partition_count=2)
    with pf.serve(src) as s:
        d = src.add_duplication("t", s.url, "t2")
        with pytest.raises(pf.DuplicationError):
            d.wait_for(pf.DupStatus.LOG, timeout=10)
        assert "itself" in str(d.error)


def test_same_cluster_id_refused(open_cluster_once: object, tmp_path: Path) -> None:
    src = open_cluster_once(tmp_path / "src", name="src", cluster_id=5)  # type: ignore[operator]
    dst = open_cluster_once(tmp_path / "dst", name="dst", cluster_id=5)  # type: ignore[operator]
    src.create_table("t", partition_count=2)
    with pf.serve(dst) as s:
        d = src.add_duplication("t", s.url)
        with pytest.raises(pf.DuplicationError):
            d.wait_for(pf.DupStatus.LOG, timeout=10)
    assert not dst.has_table("t") or dst.table("t").count() == 0


def test_remote_token_is_presented_and_kept(open_cluster_once: object, tmp_path: Path) -> None:
    src = open_cluster_once(tmp_path / "src", name="src")  # type: ignore[operator]
    dst = open_cluster_once(tmp_path / "dst", name="dst")  # type: ignore[operator]
    t = src.create_table("t", partition_count=2)
    t.set(b"a", b"b", b"c")
    with pf.serve(dst, token="dtok") as s:
        bad = src.add_duplication("t", s.url, "t_bad", remote_token="nope")
        # refused: stuck (an update of its token would let it go on), not failed for good
        with pytest.raises(pf.DuplicationStuckError) as stuck:
            bad.wait_for(pf.DupStatus.LOG, timeout=3)
        assert stuck.value.reason == "authentication failed" and bad.error is None
        bad.remove()
        d = src.add_duplication("t", s.url, "t_ok", remote_token="dtok")
        d.wait_for(pf.DupStatus.LOG, timeout=20)
        _wait_equal(t, dst.table("t_ok"))
    # kept with the duplication: a restart of the source resumes with it
    path = src.path
    src.close()
    src2 = open_cluster_once(path)  # type: ignore[operator]
    with pf.serve(dst, token="dtok", listen=s.address.target) as s2:
        assert s2.url == s.url
        src2.table("t").set(b"after", b"restart", b"v")
        _wait_equal(src2.table("t"), dst.table("t_ok"))


def test_backlog_ships_over_one_stream(
    open_cluster_once: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog goes over ApplyStream, several small batches in flight; all land once, in order."""
    from pegasus_fast.net.follower import RemoteFollower

    streams: list[int] = []
    real = RemoteFollower.apply_stream

    def counting(self: RemoteFollower, table: str, pidx: int, batches: object) -> object:
        streams.append(pidx)
        return real(self, table, pidx, batches)  # type: ignore[arg-type]

    monkeypatch.setattr(RemoteFollower, "apply_stream", counting)
    src = open_cluster_once(tmp_path / "src", name="src", config=pf.Config(duplicate_log_batch_bytes=256))  # type: ignore[operator]
    dst = open_cluster_once(tmp_path / "dst", name="dst")  # type: ignore[operator]
    t = src.create_table("t", partition_count=2)
    with pf.serve(dst) as srv:
        d = src.add_duplication("t", srv.url)
        d.wait_for(pf.DupStatus.LOG, timeout=30)
        d.pause()
        for i in range(400):
            t.set(b"k%d" % (i % 50), b"s%d" % i, b"v%d" % i)
            if i % 7 == 0:
                t.delete(b"k%d" % (i % 50), b"s%d" % (i - 7))
        t.multi_set(b"m", {b"a": b"1", b"b": b"2"})
        d.resume()
        _wait_equal(t, dst.table("t"))
        assert streams  # the backlog did go over the stream
        # the follower applied each source decree once: its decrees match the source's, partition by partition
        src_stats = [s.last_committed_decree for s in t.partition_stats()]
        deadline = time.monotonic() + 10
        while [p.confirmed_decree for p in d.progress()] != src_stats:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # one follower mutation per source mutation: none applied twice, none missing
        assert [s.last_committed_decree for s in dst.table("t").partition_stats()] == src_stats


def test_follower_restart_mid_stream_loses_and_repeats_nothing(
    open_cluster_once: object, tmp_path: Path
) -> None:
    src = open_cluster_once(tmp_path / "src", name="src", config=pf.Config(duplicate_log_batch_bytes=1024))  # type: ignore[operator]
    t = src.create_table("t", partition_count=2)
    dst_path = tmp_path / "dst"
    dst = pf.Cluster.open(dst_path, name="dst")
    srv = pf.serve(dst)
    target = srv.address.target
    try:
        d = src.add_duplication("t", srv.url)
        d.wait_for(pf.DupStatus.LOG, timeout=30)
        d.pause()
        for i in range(3000):
            t.set(b"k%d" % i, b"s", b"%d" % i)
        d.resume()
        time.sleep(0.05)
        srv.stop(grace=0)
        dst.close()
        t.set(b"while", b"down", b"x")
        dst = pf.Cluster.open(dst_path, name="dst")
        srv = pf.serve(dst, listen=target)
        _wait_equal(t, dst.table("t"), timeout=60)
        assert d.status == pf.DupStatus.LOG
    finally:
        srv.stop()
        dst.close()


def test_served_follower_relearns_after_the_source_frees_its_wal(
    open_cluster_once: object, tmp_path: Path
) -> None:
    """A remote down long enough for the WAL cap: the source frees the WAL, says so, and once the
    remote is back the follower stops serving that partition (RestartLearning over the wire)
    and learns a fresh checkpoint; nothing is lost, no gap is served."""
    cfg = pf.Config(
        log_private_file_size_mb=1,
        small_partition_max_bytes=4096,
        dup_max_retained_wal_bytes=(3 << 20) // 2,
        gc_interval_ms=3_600_000,
        checkpoint_interval_seconds=3600.0,
    )
    src = open_cluster_once(tmp_path / "src", name="src", config=cfg)  # type: ignore[operator]
    t = src.create_table("t", partition_count=1)
    value = b"x" * (64 << 10)
    t.set(b"a", b"0", value)
    dst_path = tmp_path / "dst"
    dst = pf.Cluster.open(dst_path, name="dst")
    srv = pf.serve(dst)
    target = srv.address.target
    try:
        d = src.add_duplication("t", srv.url)
        d.wait_for(pf.DupStatus.LOG, timeout=30)
        _wait_equal(t, dst.table("t"))
        srv.stop()
        dst.close()  # the remote is down
        for i in range(60):
            t.set(b"h%d" % (i % 7), b"b%04d" % i, value)
        p = t.partitions[0]
        deadline = time.monotonic() + 30
        while d.progress()[0].checkpoint_state != "released":
            p.flush()
            p.gc()
            assert time.monotonic() < deadline, d.progress()
            time.sleep(0.05)
        assert "remote unavailable" in d.progress()[0].reason or "released" in d.progress()[0].reason
        p.flush()
        p.gc()
        assert p.wal.total_bytes() <= 2 << 20  # freed
        dst = pf.Cluster.open(dst_path, name="dst")
        srv = pf.serve(dst, listen=target)
        _wait_equal(t, dst.table("t"), timeout=60)
        deadline = time.monotonic() + 30
        while d.status != pf.DupStatus.LOG:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert d.error is None
    finally:
        srv.stop()
        dst.close()
