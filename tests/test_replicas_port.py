"""Replication over a node's Pegasus port (issue #22): a primary sends its secondaries'
requests there (OP_REPLICATE, ours: multinode/links.py) rather than over gRPC when they serve
one, carrying the node token; ZooKeeper and ``serve --zk --pegasus-listen`` processes on
127.0.0.1.

The port is no way around the token: a request without it (or with another) is refused
ERR_ACL_DENY and nothing is stored; a node told to keep replication on gRPC
(``PEGASUS_FAST_REPLICATION=grpc``) refuses it too, and its primaries fall back to gRPC; a
single server's port does not know the RPC at all."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pegasus_fast as pf
import pytest
from conftest import BACKENDS
from multinode import Nodes, registered_pegasus, wait_for
from observe import METRICS_ARGS, key, metrics_url, scrape
from pegasus_fast import _backend
from pegasus_fast.net import pegasus_fast_pb2 as pb
from pegasus_fast.net.pegasus import codes
from pegasus_fast.net.pegasus.call_client import PyClientCore
from pegasus_fast.records import Op, encode_key
from served import Fleet

pytestmark = pytest.mark.usefixtures("default_backend")

TOKEN = "node-token-for-replication"
SERVE_ARGS = (
    "--pegasus-listen",
    "127.0.0.1:0",
    *METRICS_ARGS,
    "--config",
    "zk_session_timeout_seconds=2",
    "--config",
    "replica_ack_timeout_seconds=8",
)
PORT_OK = dict(service="pegasus", verb="RPC_PF_NODE_REPLICATE", code="ERR_OK")


def _nodes(fleet: Fleet, zk_chroot: str, env: dict[str, dict[str, str]]) -> Nodes:
    nodes = Nodes(fleet, zk_chroot, *SERVE_ARGS, token=TOKEN)
    for n in ("n1", "n2", "n3"):
        nodes.add(n).env.update(env.get(n, {}))
    nodes.start("n1", "n2", "n3")
    return nodes


def _count(nodes: Nodes, node: str, labels: dict[str, str]) -> float:
    return scrape(metrics_url(nodes[node])).get(key("requests_total", **labels), 0.0)


def _block(decree: int) -> bytes:
    op = (int(Op.PUT), b"evil", b"s", b"x", 0)
    return _backend.impl.encode_block([(decree, time.time_ns() // 1000, 1, [op])])


@pytest.mark.parametrize("secondaries", BACKENDS)
def test_replication_goes_over_the_port_and_the_port_wants_the_token(
    fleet: Fleet, zk_chroot: str, secondaries: str
) -> None:
    """n1 leads the partition on this run's backend; its secondaries run ``secondaries``'s
    (the Rust front end and client, or their asyncio and socket twins: the same bytes)."""
    env = {"python": {"PEGASUS_FAST_PURE_PYTHON": "1"}, "rust": {}}[secondaries]
    if secondaries == "python":
        env = {**env, "PEGASUS_FAST_REQUIRE_RUST": ""}
    nodes = _nodes(fleet, zk_chroot, {"n2": env, "n3": env})
    with pf.connect(nodes.url, TOKEN) as c:
        t = c.create_table("r", partition_count=1, replica_count=3)
        if t.replicas()[0].primary != "n1":
            c.move_partition("r", 0, "n1")
        for i in range(20):
            t.set(b"k%d" % i, b"s", b"v%d" % i)
        (rep,) = t.replicas()
        sec = rep.secondaries[0]
        # the secondaries heard every write on their Pegasus port
        assert _count(nodes, sec, PORT_OK) >= 20
        host, port = registered_pegasus(nodes.spec)[sec].rsplit(":", 1)
        core = PyClientCore(host, int(port), timeout=10)
        try:

            def send(request: pb.ReplicateRequest) -> tuple[str, object]:
                return core.call(codes.OP_REPLICATE, 0, 0, (request.SerializeToString(),))

            item = pb.ReplicaItem(table="r", pidx=0, ballot=rep.ballot, blocks=_block(21), first=21)
            # as the primary, decree 21, but without the token or with another: refused
            for token in ("", "not-" + TOKEN, TOKEN[:-1]):
                err, _ = send(pb.ReplicateRequest(primary=rep.primary, items=[item], token=token))
                assert err == codes.ERR_ACL_DENY
            # bytes that are no request: an invalid argument, the connection still usable
            err, (status, _) = core.call(codes.OP_REPLICATE, 0, 0, (b"\xff\x00garbage",))
            assert (err, status) == (codes.ERR_OK, codes.K_INVALID_ARGUMENT)
            # with the token, as another primary or an old ballot: STALE, nothing stored
            for primary, ballot in ((sec, rep.ballot), (rep.primary, rep.ballot - 1)):
                stale = pb.ReplicaItem(table="r", pidx=0, ballot=ballot, blocks=_block(21), first=21)
                err, (status, raw) = send(pb.ReplicateRequest(primary=primary, items=[stale], token=TOKEN))
                assert (err, status) == (codes.ERR_OK, codes.K_OK)
                (ack,) = pb.ReplicateReply.FromString(raw).acks
                assert ack.status == pb.ReplicaAck.STALE
            # a frame of another RPC still answers on the same connection
            err, _ = core.call(codes.OP_QUERY_CFG, 0, 0, ("r", []))
            assert err == codes.ERR_OK
        finally:
            core.close()
        t.set(b"k20", b"s", b"v20")  # the real primary's decree 21 reaches every secondary
        nodes[rep.primary].kill9()
        wait_for(lambda: t.replicas()[0].primary not in ("", rep.primary), what="a new primary")
        assert t.get(b"evil", b"s") is None
        assert [t.get(b"k%d" % i, b"s") for i in range(21)] == [b"v%d" % i for i in range(21)]


def test_a_node_that_keeps_replication_on_grpc(fleet: Fleet, zk_chroot: str) -> None:
    """n2 refuses replication on its port (as a node of an older version would not know the
    RPC): its primaries' links to it fall back to gRPC, and nothing acknowledged is lost when
    the primary dies; n3 still takes it on its port."""
    nodes = _nodes(fleet, zk_chroot, {"n2": {"PEGASUS_FAST_REPLICATION": "grpc"}})
    with pf.connect(nodes.url, TOKEN) as c:
        t = c.create_table("g", partition_count=2, replica_count=3)
        for r in t.replicas():
            if r.primary != "n1":
                c.move_partition("g", r.pidx, "n1")
        acked = {}
        for i in range(40):
            t.set(b"k%d" % i, b"s", b"v%d" % i)
            acked[b"k%d" % i] = b"v%d" % i
        # n2's port refused the first request of each link (the stream over gRPC is not
        # counted until it ends), and took none
        assert _count(nodes, "n2", {**PORT_OK, "code": "ERR_ACL_DENY"}) >= 1
        assert _count(nodes, "n2", PORT_OK) == 0
        assert _count(nodes, "n3", PORT_OK) >= 1
        assert "over gRPC from now on" in nodes["n1"].stderr(20000)
        nodes["n1"].kill9()
        wait_for(lambda: all(r.primary in ("n2", "n3") for r in t.replicas()), what="new primaries")
        for k, v in acked.items():
            assert t.get(k, b"s") == v
        # n1's stream to n2 ended with it: counted then (the stream's handler runs on n2's
        # front loop, as an async generator)

        def streams() -> float:
            m = scrape(metrics_url(nodes["n2"]))
            return sum(
                v for k, v in m.items() if k.startswith("requests_total{") and "Node/ReplicateStream" in k
            )

        wait_for(lambda: streams() >= 1, what="the replication stream counted")


def test_a_single_servers_port_does_not_know_replication(tmp_path: Path) -> None:
    with pf.Cluster.open(str(tmp_path / "c")) as cluster:
        cluster.create_table("t", partition_count=1)
        with pf.serve(cluster, "127.0.0.1:0", pegasus_listen="127.0.0.1:0") as server:
            host, port = server.pegasus_address.target.rsplit(":", 1)
            core = PyClientCore(host, int(port), timeout=10)
            try:
                req = pb.ReplicateRequest(primary="x", items=[pb.ReplicaItem(table="t", pidx=0, ballot=1)])
                err, _ = core.call(codes.OP_REPLICATE, 0, 0, (req.SerializeToString(),))
                assert err == codes.ERR_HANDLER_NOT_FOUND
                assert core.call(codes.OP_QUERY_CFG, 0, 0, ("t", []))[0] == codes.ERR_OK
            finally:
                core.close()


@pytest.mark.parametrize("backend_of_nodes", BACKENDS)
def test_pegasus_writes_to_every_node_at_once_do_not_wait_on_each_other(
    fleet: Fleet, zk_chroot: str, backend_of_nodes: str
) -> None:
    """Pegasus-protocol writers on every node's port at once, every partition replicated on
    all three: each node's batch of client writes waits for its secondaries, whose
    acknowledgements come through their own ports, while their own batches wait for this
    node's. The replication requests are answered apart from those batches (side_batch), so
    no write waits for the commit's timeout (8 s here): before, every write did."""
    env = {"python": {"PEGASUS_FAST_PURE_PYTHON": "1", "PEGASUS_FAST_REQUIRE_RUST": ""}, "rust": {}}[
        backend_of_nodes
    ]
    nodes = _nodes(fleet, zk_chroot, {n: env for n in ("n1", "n2", "n3")})
    with pf.connect(nodes.url, TOKEN) as c:
        t = c.create_table("w", partition_count=6, replica_count=3)
        app_id = next(i.app_id for i in c.list_tables() if i.name == "w")
        primaries = [r.primary for r in t.replicas()]
        assert set(primaries) == {"n1", "n2", "n3"}, primaries
        ports = registered_pegasus(nodes.spec)
        done: dict[str, tuple[str, float]] = {}

        def writer(node: str) -> None:
            host, port = ports[node].rsplit(":", 1)
            core = PyClientCore(host, int(port), timeout=30)
            mine = [p for p, owner in enumerate(primaries) if owner == node]
            worst, error = 0.0, codes.ERR_OK
            try:
                for i in range(60):
                    hk = b"%s-%d" % (node.encode(), i)
                    pidx = _backend.impl.partition_index(hk, 6, b"s")
                    if pidx not in mine:
                        continue
                    start = time.monotonic()
                    err, _ = core.call(codes.OP_PUT, app_id, pidx, (encode_key(hk, b"s"), b"v", 0))
                    worst = max(worst, time.monotonic() - start)
                    if err != codes.ERR_OK:
                        error = err
            finally:
                core.close()
            done[node] = (error, worst)

        threads = [threading.Thread(target=writer, args=(n,)) for n in ("n1", "n2", "n3")]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        assert len(done) == 3 and all(err == codes.ERR_OK for err, _ in done.values()), done
        assert max(w for _, w in done.values()) < 4.0, done
        # and every write is on every replica: the replication requests went over the ports
        for n in ("n1", "n2", "n3"):
            assert _count(nodes, n, PORT_OK) >= 1
