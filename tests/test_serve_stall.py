"""Issue #20: nothing unauthenticated takes a worker or buffers a body; calls with the token that
stall take no worker either (they wait for their request on the server's loop, server/front.py)
and are cut at the body timeout (tests/attacker.py)."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import grpc
import pegasus_fast as pf
import pytest
from attacker import APPLY_STREAM, PeakRss, Stalls, huge_calls
from conftest import PYTHON, child_env
from dupharness import wait_until
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pegasus_fast.errors import ResourceExhaustedError
from pegasus_fast.net import pegasus_fast_pb2 as pb
from pegasus_fast.net.wire import ERROR_KEY, decode_error

TOKEN = "s3cret"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
#: the issue's bar for an answer while attacked (the 95th percentile of TRIES: generous on a
#: loaded machine, where one try in twenty may wait for a core)
ANSWER_BAR = 0.100
TRIES = 40


@pytest.fixture
def cluster(default_backend: ModuleType, tmp_path: Path) -> Iterator[pf.Cluster]:
    c = pf.Cluster.open(tmp_path / "c", name="c")
    c.create_table("t", partition_count=2)
    yield c
    c.close()


def _p95(fn: Callable[[], object], windows: int = 3) -> float:
    """The p95 of ``TRIES`` calls, the best of up to ``windows`` windows: a call held by a
    stall (what these tests look for) waits until the stall ends, seconds, in every window; a
    moment of CPU starvation on a shared machine spoils one window, not three."""
    best = float("inf")
    for _ in range(windows):
        took = []
        for _ in range(TRIES):
            t = time.perf_counter()
            fn()
            took.append(time.perf_counter() - t)
        best = min(best, statistics.quantiles(took, n=20)[-1])
        if best < ANSWER_BAR:
            break
    return best


def _health(target: str) -> Callable[[], object]:
    stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(target))

    def check() -> object:
        r = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2, metadata=AUTH)
        assert r.status == health_pb2.HealthCheckResponse.SERVING
        return r

    return check


def test_unauthenticated_stalls_take_no_worker(cluster: pf.Cluster) -> None:
    with pf.serve(cluster, token=TOKEN) as srv:
        stalls = Stalls(srv.address.target, 64)
        try:
            # refused on their headers (on a server that reads first they stay pending: 1 s shows it)
            stalls.wait_done(1.0)
            with pf.connect(srv.url, token=TOKEN, timeout=2) as rc:
                t = rc.table("t")
                assert _p95(_health(srv.address.target)) < ANSWER_BAR
                assert _p95(rc.info) < ANSWER_BAR
                assert _p95(lambda: t.set(b"h", b"s", b"v")) < ANSWER_BAR
            assert stalls.wait_done(5.0)
            assert stalls.codes() == {grpc.StatusCode.UNAUTHENTICATED}
        finally:
            stalls.close()
    assert list(cluster.table("t").scan()) == [(b"h", b"s", b"v")]


def test_stalls_with_the_token_are_cut_at_the_body_timeout(cluster: pf.Cluster) -> None:
    body_timeout = 1.5
    with pf.serve(cluster, token=TOKEN, body_timeout=body_timeout) as srv:
        stalls = Stalls(srv.address.target, 40, token=TOKEN)
        try:
            with pf.connect(srv.url, token=TOKEN, timeout=30) as rc:
                t = rc.table("t")
                # the stalls hold no worker: a write goes through at once
                began = time.monotonic()
                t.set(b"h", b"s", b"v")
                assert time.monotonic() - began < body_timeout / 2
                assert not any(c.done() for c in stalls.calls)
                assert stalls.wait_done(body_timeout + 5.0)
                assert stalls.codes() == {grpc.StatusCode.CANCELLED}
                assert _p95(lambda: t.set(b"h", b"after", b"v")) < ANSWER_BAR
                assert _p95(_health(srv.address.target)) < ANSWER_BAR
        finally:
            stalls.close()
    assert len(list(cluster.table("t").scan())) == 2


@contextmanager
def _served(backend_name: str, tmp_path: Path, *flags: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``pegasus-fast serve`` with the token (and ``flags``) in a child; (the process, host:port)."""
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "token").chmod(0o600)  # a token file open to others is refused
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [PYTHON, "-m", "pegasus_fast", "--cluster", str(tmp_path / "c"), "serve", "--listen", "127.0.0.1:0",
         "--ready-file", str(ready), "--token-file", str(tmp_path / "token"), *flags],
        env=child_env(backend_name),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, "serve exited"
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.02)
        yield proc, ready.read_text().strip().removeprefix("pegasus://")
    finally:
        proc.kill()
        proc.wait(10)


def test_stalls_with_the_token_take_no_worker(default_backend_name: str, tmp_path: Path) -> None:
    """The issue's bar: 64 stalled calls with the token (and stalled request streams) leave health
    answering within 100 ms and another client's writes going through; the server grows < 64 MiB."""
    with _served(default_backend_name, tmp_path) as (proc, target):
        url = f"pegasus://{target}"
        with pf.connect(url, token=TOKEN, timeout=10) as rc:
            rc.create_table("t", 2)
        check = _health(target)
        check()
        peak = PeakRss(proc.pid)
        stalls = [Stalls(target, 64, token=TOKEN), Stalls(target, 16, token=TOKEN, method=APPLY_STREAM)]
        try:
            with pf.connect(url, token=TOKEN, timeout=5) as rc:
                t = rc.table("t")
                health_p95 = _p95(check)
                write_p95 = _p95(lambda: t.set(b"h", b"s", b"v"))
                info_p95 = _p95(rc.info)
                assert t.get(b"h", b"s") == b"v"
            # they were held all along (the body timeout is 30 s), not refused
            assert not any(c.done() for s in stalls for c in s.calls)
            growth = peak.stop()
        finally:
            for s in stalls:
                s.close()
        assert health_p95 < ANSWER_BAR, health_p95
        assert write_p95 < ANSWER_BAR, write_p95
        assert info_p95 < ANSWER_BAR, info_p95
        assert growth < 64 << 20, f"the server grew by {growth >> 20} MiB"
        check()


def test_unauthenticated_huge_messages_are_not_buffered(default_backend_name: str, tmp_path: Path) -> None:
    with _served(default_backend_name, tmp_path) as (proc, target):
        check = _health(target)
        check()
        peak = PeakRss(proc.pid)
        codes = huge_calls(target, 4, 250 << 20)
        growth = peak.stop()
        assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 4
        assert growth < 64 << 20, f"the server grew by {growth >> 20} MiB"
        check()


def test_scans_whose_replies_are_never_read_take_no_worker(
    default_backend: ModuleType, tmp_path: Path
) -> None:
    """A token holder opens more scans than there are workers and never reads them: each waits
    for the reader on the server's loop (server/front.py), so health and writes go on."""
    c = pf.Cluster.open(tmp_path / "c", name="c", config=pf.Config(max_streams_per_client=64))
    try:
        t = c.create_table("t", 1)
        for i in range(64):
            t.multi_set(b"h%02d" % i, {b"s%03d" % j: bytes(8 << 10) for j in range(64)})  # 32 MiB
        with pf.serve(c, token=TOKEN) as srv:
            channel = grpc.insecure_channel(
                srv.address.target, options=[("grpc.use_local_subchannel_pool", 1)]
            )
            try:
                scan = channel.unary_stream(
                    "/pegasus_fast.v1.Client/Scan",
                    request_serializer=pb.TableRef.SerializeToString,
                    response_deserializer=pb.RecordBatch.FromString,
                )
                unread = [scan(pb.TableRef(table="t"), metadata=AUTH, timeout=60) for _ in range(64)]
                for u in unread:
                    u.initial_metadata()  # its handler runs: it sent its first batch
                with pf.connect(srv.url, token=TOKEN, timeout=5) as rc:
                    rt = rc.table("t")
                    assert _p95(_health(srv.address.target)) < ANSWER_BAR
                    assert _p95(lambda: rt.set(b"w", b"s", b"v")) < ANSWER_BAR
                    assert not any(u.done() for u in unread)
                    for u in unread:
                        u.cancel()

                    def scans() -> bool:  # each cancelled scan gave its slot back
                        try:
                            return sum(1 for _ in rt.scan()) == 64 * 64 + 1
                        except ResourceExhaustedError:
                            return False

                    wait_until(scans, 10, "a scan let in again")
            finally:
                channel.close()
    finally:
        c.close()


def test_a_clients_stalls_are_bounded(default_backend: ModuleType, tmp_path: Path) -> None:
    """Past 256 calls of one client waiting for their request (over 3 connections: 100 calls
    each at most), the next are refused at once, typed; its health checks have a bound of their
    own, so they go on; once the stalls go, the client's writes do too."""
    from pegasus_fast.server.front import WAITING

    c = pf.Cluster.open(tmp_path / "c", name="c")
    try:
        c.create_table("t", 1)
        with pf.serve(c, token=TOKEN) as srv:
            stalls = [Stalls(srv.address.target, 100, token=TOKEN) for _ in range(3)]
            try:
                refused = [f for s in stalls for f in s.calls]
                wait_until(
                    lambda: sum(f.done() for f in refused) == 300 - WAITING["calls"], 10, "the extra refused"
                )
                assert {f.code() for f in refused if f.done()} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
                err = next(f for f in refused if f.done()).exception()
                md = dict(err.trailing_metadata() or ())
                got = decode_error(md[ERROR_KEY], "u", "")
                assert isinstance(got, ResourceExhaustedError)
                assert (got.resource, got.limit) == ("calls_waiting_per_client", WAITING["calls"])
                assert _p95(_health(srv.address.target)) < ANSWER_BAR
                with pf.connect(srv.url, token=TOKEN, timeout=5) as rc, pytest.raises(ResourceExhaustedError):
                    rc.table("t").set(b"h", b"s", b"v")  # the same host: the same client
            finally:
                for s in stalls:
                    s.close()
            with pf.connect(srv.url, token=TOKEN, timeout=5) as rc:
                wait_until(lambda: _writes(rc), 10, "writes let in again")
    finally:
        c.close()


def _writes(rc: pf.RemoteCluster) -> bool:
    try:
        rc.table("t").set(b"h", b"s", b"v")
        return True
    except ResourceExhaustedError:
        return False
