"""A duplication's applies over the follower's Pegasus port (issue #21 §5): a served follower with
a Pegasus port names it in its Identity, and its source sends the applies there (OP_DUP_APPLY,
the token in the request, answered by the front end's batch loop) instead of over gRPC.

Checked on both backends (the Rust front end and client, their asyncio and socket twins): the
applies take the port and land; tokens and roles are checked there as gRPC's front checks them,
and a refusal is the same typed error (the duplication shows the same stuck reason); the
follower's own errors come back typed; garbage is refused and the connection stays usable; a
port that fails, TLS, or PEGASUS_FAST_DUPLICATION=grpc keep the applies on gRPC.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pegasus_fast as pf
import pytest
from dupharness import wait_until
from multinode import Nodes, owners
from observe import METRICS_ARGS, key, metrics_url, scrape
from pegasus_fast.duplication.ports import SourceId
from pegasus_fast.duplication.status import STUCK_AUTH, STUCK_PERMISSION
from pegasus_fast.errors import InvalidArgumentError
from pegasus_fast.net import follower as follower_net
from pegasus_fast.net import pegasus_fast_pb2 as pb
from pegasus_fast.net.follower import DUPLICATION_ENV, RemoteConnector
from pegasus_fast.net.pegasus import codes
from pegasus_fast.net.pegasus.call_client import client_core
from pegasus_fast.net.wire import decode_error, parse_hostport
from served import Fleet

WAIT = 30.0
TOKEN = "dup-port-token-0001"


def _sample(c: pf.Cluster, service: str, verb: str, code: str) -> float:
    v = c.metric_set.registry.get_sample_value(
        "requests_total", {"service": service, "verb": verb, "code": code}
    )
    return v or 0.0


def port_applies(c: pf.Cluster) -> float:
    return _sample(c, "pegasus", "RPC_PF_DUP_APPLY", "ERR_OK")


def grpc_applies(c: pf.Cluster) -> float:
    return _sample(c, "grpc", "Follower/Apply", "OK")


def ship(src: pf.Cluster, dst: pf.Cluster, url: str, n: int = 40, **kw: Any) -> pf.Duplication:
    """Table t on ``src`` with ``n`` records, duplicated to ``url`` (``dst`` served there) and all
    of them there."""
    t = src.create_table("t", partition_count=4)
    d = src.add_duplication("t", url, **kw)
    d.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    for i in range(n):
        t.set(b"k%d" % i, b"s", b"v%d" % i)
    wait_until(
        lambda: all(dst.table("t").get(b"k%d" % i, b"s") == b"v%d" % i for i in range(n)),
        WAIT,
        "the writes on the follower",
    )
    return d


def test_applies_take_the_followers_pegasus_port(
    open_cluster: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    src = open_cluster(tmp_path / "a", name="a", config=pf.Config(cluster_id=1))
    dst = open_cluster(tmp_path / "b", name="b", config=pf.Config(cluster_id=2))
    with pf.serve(dst, pegasus_listen="127.0.0.1:0") as s:
        assert s.pegasus_address is not None
        identity = RemoteConnector(env_token=False).connect(s.url)
        identity.identity()
        assert identity._port is not None and identity._port._target == s.pegasus_address.target
        ship(src, dst, s.url)
        assert port_applies(dst) >= 1
        assert grpc_applies(dst) == 0
        # deletes and multi-record writes too, in one partition's batch or several
        t = src.table("t")
        t.multi_set(b"m", {b"a": b"1", b"b": b"2"})
        t.delete(b"k0", b"s")
        wait_until(
            lambda: dst.table("t").get(b"k0", b"s") is None and dst.table("t").get(b"m", b"b") == b"2",
            WAIT,
            "the delete and the multi_set on the follower",
        )
        assert sorted(dst.table("t").scan()) == sorted(t.scan())
        assert grpc_applies(dst) == 0


def test_without_a_port_or_told_grpc_the_applies_use_grpc(
    open_cluster: Callable[..., pf.Cluster], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dst = open_cluster(tmp_path / "b", name="b", config=pf.Config(cluster_id=2))
    # no Pegasus port: nothing is named, gRPC carries them
    src = open_cluster(tmp_path / "a1", name="a1", config=pf.Config(cluster_id=1))
    with pf.serve(dst) as s:
        ship(src, dst, s.url)
    assert grpc_applies(dst) >= 1 and port_applies(dst) == 0
    # the follower told to keep them to gRPC names no port
    monkeypatch.setenv(DUPLICATION_ENV, "grpc")
    with pf.serve(dst, pegasus_listen="127.0.0.1:0") as s:
        f = RemoteConnector(env_token=False).connect(s.url)
        f.identity()
        assert f._port is not None and f._port._target == ""
    # a source told so does not use one that is named
    monkeypatch.delenv(DUPLICATION_ENV)
    src2 = open_cluster(tmp_path / "a2", name="a2", config=pf.Config(cluster_id=3))
    before = grpc_applies(dst)
    with pf.serve(dst, pegasus_listen="127.0.0.1:0") as s:
        f = RemoteConnector(env_token=False).connect(s.url)
        f.identity()
        assert f._port is not None and f._port._target != ""
        monkeypatch.setenv(DUPLICATION_ENV, "grpc")
        t = src2.create_table("u", partition_count=2)
        d = src2.add_duplication("u", s.url)
        d.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        t.set(b"h", b"s", b"v")
        wait_until(lambda: dst.table("u").get(b"h", b"s") == b"v", WAIT, "the write on the follower")
        src2.close()
    assert grpc_applies(dst) > before and port_applies(dst) == 0


def test_tokens_and_roles_are_checked_on_the_port(
    open_cluster: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    """The port checks the token the request carries as gRPC's front checks the call's: a
    replication token applies, a client token is refused for its role, a wrong one as unknown;
    the duplication shows the same stuck reasons, and an update lets it go on, over the port."""
    src = open_cluster(tmp_path / "a", name="a", config=pf.Config(cluster_id=1))
    dst = open_cluster(tmp_path / "b", name="b", config=pf.Config(cluster_id=2))
    with pf.serve(
        dst, pegasus_listen="127.0.0.1:0", replication_token=TOKEN, client_token="client-0001"
    ) as s:
        d = ship(src, dst, s.url, remote_token=TOKEN)
        assert port_applies(dst) >= 1 and grpc_applies(dst) == 0
        t = src.table("t")
        d.update(remote_token="client-0001")
        t.set(b"after", b"s", b"1")
        wait_until(lambda: d.stuck_reason == STUCK_PERMISSION, WAIT, lambda: f"stuck: {d.progress()}")
        d.update(remote_token="not-a-token-of-b")
        t.set(b"after", b"s", b"2")
        wait_until(lambda: d.stuck_reason == STUCK_AUTH, WAIT, lambda: f"stuck: {d.progress()}")
        assert dst.table("t").get(b"after", b"s") is None
        d.update(remote_token=TOKEN)
        wait_until(lambda: dst.table("t").get(b"after", b"s") == b"2", WAIT, "the writes after the update")
        assert d.stuck_reason is None
        assert grpc_applies(dst) == 0
        # the port's own check, request by request: the role, then the token
        assert s.pegasus_address is not None
        addr = parse_hostport(s.pegasus_address.target)
        core = client_core(addr.host, addr.port, 10.0)
        try:
            src_id = SourceId("a", "uid", "t", d.dupid)
            for token, refusal in (
                ("client-0001", pf.PermissionDeniedError),
                ("wrong", pf.AuthenticationError),
                ("", pf.AuthenticationError),
            ):
                error, (status, value) = core.call(
                    codes.OP_DUP_APPLY, 0, 0, (_apply_request(s.url, token, src_id),)
                )
                assert error == codes.ERR_OK and status == codes.K_INVALID_ARGUMENT
                exc = decode_error(value, s.url, "apply")
                assert type(exc) is refusal, (token, exc)
        finally:
            core.close()


def _apply_request(url: str, token: str, source: SourceId, table: str = "t", pidx: int = 0) -> bytes:
    return pb.ApplyRequest(
        table=table,
        pidx=pidx,
        blocks=b"",
        source=pb.SourceId(
            cluster=source.cluster, cluster_uid=source.cluster_uid, table=source.table, dupid=source.dupid
        ),
        token=token,
    ).SerializeToString()


def test_the_port_answers_garbage_and_the_followers_errors_typed(
    open_cluster: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    """Garbage, a missing token, a table that follows no such source: each answered with the
    typed error gRPC's Apply would raise, on a connection that stays usable."""
    dst = open_cluster(tmp_path / "b", name="b", config=pf.Config(cluster_id=2))
    dst.create_table("plain", partition_count=2)
    with pf.serve(dst, pegasus_listen="127.0.0.1:0", token=TOKEN) as s:
        assert s.pegasus_address is not None
        addr = parse_hostport(s.pegasus_address.target)
        core = client_core(addr.host, addr.port, 10.0)
        try:

            def refused(raw: bytes) -> BaseException:
                error, (status, value) = core.call(codes.OP_DUP_APPLY, 0, 0, (raw,))
                assert error == codes.ERR_OK and status == codes.K_INVALID_ARGUMENT
                return decode_error(value, s.url, "apply")

            assert isinstance(refused(b"\xff\x00garbage"), InvalidArgumentError)
            src = SourceId("a", "uid-a", "t", 1)
            assert isinstance(refused(_apply_request(s.url, "", src)), pf.AuthenticationError)
            assert isinstance(refused(_apply_request(s.url, "wrong", src)), pf.AuthenticationError)
            # a table this source does not drive: the error gRPC's Apply raises, the same class
            on_port = refused(_apply_request(s.url, TOKEN, src, table="plain"))
            f = RemoteConnector(env_token=False).connect(s.url, TOKEN, src)
            with pytest.raises(pf.PegasusFastError) as over_grpc:
                f._call("Apply", pb.ApplyRequest.FromString(_apply_request(s.url, "", src, table="plain")))
            assert type(on_port) is type(over_grpc.value)
            # the connection still serves (the data port's get, on the same pooled socket)
            error, _ = core.call(codes.OP_GET, dst.table("plain").app_id, 0, (b"\x00\x01hs",))
            assert error == codes.ERR_OK
        finally:
            core.close()
    # a port without a follower service behind it (a node's): not found, so the source uses gRPC
    from pegasus_fast.net.pegasus import BatchHandler
    from pegasus_fast.server.pegasus_native import open_front

    front = open_front(dst, "127.0.0.1:0", None, handler=BatchHandler(dst))
    try:
        core = client_core(front.address.host, front.address.port, 10.0)
        error, result = core.call(codes.OP_DUP_APPLY, 0, 0, (b"x",))
        assert (error, result) == (codes.ERR_HANDLER_NOT_FOUND, None)
        core.close()
    finally:
        front.stop()


def test_a_failing_port_sends_the_applies_over_grpc(
    open_cluster: Callable[..., pf.Cluster], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The follower's Pegasus port goes away: the applies carry on over gRPC, nothing lost, and
    the source says so once."""
    caplog.set_level(logging.WARNING, logger="pegasus_fast.net.follower")
    src = open_cluster(tmp_path / "a", name="a", config=pf.Config(cluster_id=1))
    dst = open_cluster(tmp_path / "b", name="b", config=pf.Config(cluster_id=2))
    with pf.serve(dst, pegasus_listen="127.0.0.1:0") as s:
        ship(src, dst, s.url, n=10)
        assert port_applies(dst) >= 1 and grpc_applies(dst) == 0
        assert s.pegasus is not None
        s.pegasus.stop()
        t = src.table("t")
        for i in range(10, 30):
            t.set(b"k%d" % i, b"s", b"v%d" % i)
        wait_until(
            lambda: all(dst.table("t").get(b"k%d" % i, b"s") == b"v%d" % i for i in range(30)),
            WAIT,
            "the writes after the port stopped",
        )
        assert grpc_applies(dst) >= 1
        assert sorted(dst.table("t").scan()) == sorted(t.scan())
    said = [r for r in caplog.records if "go over gRPC" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in said]


def test_a_restarted_follower_is_asked_its_new_port(
    open_cluster: Callable[..., pf.Cluster], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The follower restarts at the same URL with its Pegasus port elsewhere: the applies go
    over gRPC meanwhile, and once the retry time is up the source asks its Identity again and
    sends them to the new port."""
    monkeypatch.setattr(follower_net, "PORT_RETRY", 0.2)
    src = open_cluster(tmp_path / "a", name="a", config=pf.Config(cluster_id=1))
    dst = open_cluster(tmp_path / "b", name="b", config=pf.Config(cluster_id=2))
    with pf.serve(dst, pegasus_listen="127.0.0.1:0") as s:
        d = ship(src, dst, s.url, n=10)
        url, first = s.url, s.pegasus_address
        # (read before the stop: the Pegasus port closes first, and an apply meanwhile goes by gRPC)
        assert port_applies(dst) >= 1 and grpc_applies(dst) == 0
    t = src.table("t")
    with pf.serve(dst, url.split("://", 1)[1], pegasus_listen="127.0.0.1:0") as s:
        assert s.url == url and s.pegasus_address != first
        for i in range(10, 20):
            t.set(b"k%d" % i, b"s", b"v%d" % i)
        wait_until(lambda: dst.table("t").get(b"k19", b"s") == b"v19", WAIT, "the writes after the restart")
        on_port = port_applies(dst)
        deadline = time.monotonic() + WAIT
        i = 20
        while port_applies(dst) == on_port:  # writes go on until one is applied on the new port
            assert time.monotonic() < deadline, f"no apply on the new port: {d.progress()}"
            t.set(b"k%d" % i, b"s", b"v%d" % i)
            i += 1
            time.sleep(0.01)
        wait_until(lambda: sorted(dst.table("t").scan()) == sorted(t.scan()), WAIT, "every write")


def test_a_multi_node_follower_takes_the_applies_on_its_nodes_ports(
    fleet: Fleet, zk_chroot: str, tmp_path: Path, default_backend: Any
) -> None:
    """Into a zk:// follower whose nodes serve Pegasus ports, each partition's applies go to its
    owner's port; a partition moved to the other node follows there (the old owner refuses
    with NotOwnerError, typed over the port, and the source routes again). (The replicated
    case, where an apply waits in the batch loop for its secondaries' ports, is
    test_replicas.py's duplication into a replicated follower.)"""
    followers = Nodes(fleet, zk_chroot, "--pegasus-listen", "127.0.0.1:0", *METRICS_ARGS)
    followers.start("f1", "f2")
    src = pf.Cluster.open(tmp_path / "source", name="source")
    try:
        t = src.create_table("t", 4)
        d = src.add_duplication("t", followers.url)
        d.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        with followers.client() as fc:
            ft = fc.table("t")
            for i in range(40):
                t.set(b"k%d" % i, b"s", b"v%d" % i)
            wait_until(lambda: _count(ft) == 40, WAIT, "the first writes on the follower")
            pidx = t.partition_index(b"k0", b"s")
            owner = owners(ft)[pidx]
            fc.move_partition("t", pidx, "f2" if owner == "f1" else "f1")
            for i in range(40, 80):
                t.set(b"k%d" % i, b"s", b"v%d" % i)
            wait_until(lambda: _count(ft) == 80, WAIT, "the writes after the move")
            assert sorted(ft.scan()) == sorted(t.scan())
    finally:
        src.close()
    for n in ("f1", "f2"):
        m = scrape(metrics_url(followers[n]))
        assert (
            m.get(key("requests_total", service="pegasus", verb="RPC_PF_DUP_APPLY", code="ERR_OK"), 0.0) >= 1
        )


def _count(ft: Any) -> int:
    try:
        return ft.count()
    except pf.PartitionUnavailableError:
        return -1


def test_the_token_goes_only_to_the_host_the_duplication_names(
    open_cluster: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    """What an Identity names is a port, not a place: the applies go to that port on the host of
    the duplication's URL (a crafted Identity naming another host cannot draw the token there),
    and a target that is no address is a failure like any (gRPC meanwhile), not an exception."""
    dst = open_cluster(tmp_path / "b", name="b", config=pf.Config(cluster_id=2))
    with pf.serve(dst, pegasus_listen="127.0.0.1:0") as s:
        assert s.pegasus_address is not None
        port = follower_net.DupPort(s.url, True)
        port.learn(f"203.0.113.7:{s.pegasus_address.port}")  # TEST-NET-3: never reached
        core = port.core()
        error, _ = core.call(codes.OP_QUERY_CFG, 0, 0, ("t", []))
        assert error in (codes.ERR_OK, codes.ERR_OBJECT_NOT_FOUND)  # this server answered
        port.learn("host:70000")  # no such port
        assert port.core() is None and port.identity_due() is False
        port.close()
