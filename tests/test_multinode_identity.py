"""Who a node of a multi-node cluster is (issue #20): its id is its directory's while it lives.

A process of another directory started with a live node's ``--node-id`` is
refused (it serves nothing, and the live node keeps its id and partitions);
the node's own directory, killed and restarted before its session expired,
takes its id back; a node whose ``/nodes/<id>`` vanished registers again.
One node each, in child processes, against the session's ZooKeeper.
"""

from __future__ import annotations

import time

import pegasus_fast as pf
import pytest
from multinode import WAIT, Nodes
from served import Fleet
from servedcheck import TABLE

pytestmark = [pytest.mark.usefixtures("default_backend")]


def test_a_second_node_with_a_live_nodes_id_is_refused(fleet: Fleet, zk_chroot: str) -> None:
    nodes = Nodes(fleet, zk_chroot)
    nodes.start("n1")
    n1 = nodes["n1"]
    with nodes.client() as c:
        t = c.create_table(TABLE, 2)
        t.set(b"k", b"s", b"v")
        impostor = fleet.add("impostor", {"PEGASUS_FAST_DEBUG": "1"})  # the traceback names the type
        impostor.cluster_name = nodes.name
        impostor.args = ("--zk", zk_chroot, "--node-id", "n1")
        impostor.launch()
        ready = impostor.logs / f"ready.{impostor.starts}"
        deadline = time.monotonic() + WAIT
        while impostor.running and not ready.exists():
            assert time.monotonic() < deadline, "the impostor neither served nor exited"
            time.sleep(0.05)
        assert not ready.exists(), "a second node with n1's id served"
        assert impostor.proc is not None and impostor.proc.wait(WAIT) != 0
        assert "NodeIdInUseError" in impostor.stderr()
        # n1 is still n1, serving its partitions with what it acknowledged
        assert c.nodes() == {"n1": n1.url}
        assert t.get(b"k", b"s") == b"v"
        t.set(b"k2", b"s", b"v2")
        # n1 itself, killed and restarted with its directory before its session expired, is n1
        n1.kill9()
        n1.start()
        deadline = time.monotonic() + WAIT
        while True:
            try:
                assert t.get(b"k2", b"s") == b"v2"
                break
            except pf.PartitionUnavailableError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert c.nodes() == {"n1": n1.url}
        assert t.get(b"k", b"s") == b"v"


def test_a_node_whose_znode_vanished_registers_again(fleet: Fleet, zk_chroot: str) -> None:
    nodes = Nodes(fleet, zk_chroot)
    nodes.start("n1")
    with nodes.client() as c:
        t = c.create_table(TABLE, 2)
        t.set(b"k", b"s", b"v")
        c._zk.delete("/nodes/n1")
        deadline = time.monotonic() + WAIT / 2
        while c.nodes() != {"n1": nodes["n1"].url}:
            assert time.monotonic() < deadline, "n1 did not register again"
            time.sleep(0.1)
        t.set(b"k", b"s", b"v2")
        assert t.get(b"k", b"s") == b"v2"


def test_a_node_back_within_its_session_is_never_missing_from_nodes(zk_chroot: str) -> None:
    """A node's next process takes its znode over from the previous one's session (killed
    before it expired) in one transaction: /nodes never lacks it, so the leader's failover,
    woken by the change, never takes it out of a configuration (it did, now and then under
    load: the znode was deleted, then made again)."""
    from kazoo.client import KazooClient
    from pegasus_fast.coord.layout import NODES
    from pegasus_fast.multinode.registration import Registration

    clients = [KazooClient(hosts=zk_chroot) for _ in range(3)]
    for c in clients:
        c.start(timeout=10)
    watcher, *sessions = clients
    try:
        watcher.ensure_path(NODES)
        seen: list[list[str]] = []
        watcher.ChildrenWatch(NODES, lambda children: seen.append(sorted(children)))
        Registration(sessions[0], zk_chroot, "n1", "uid-1").register("pegasus://a:1")
        for i in range(20):  # the previous process's session lives on, as after a kill -9
            Registration(sessions[(i + 1) % 2], zk_chroot, "n1", "uid-1").register(f"pegasus://a:{i + 2}")
        deadline = time.monotonic() + WAIT
        while not seen or seen[-1] != ["n1"]:
            assert time.monotonic() < deadline, seen
            time.sleep(0.01)
        assert all(s == ["n1"] for s in seen[1:]), seen
        raw, stat = watcher.get(f"{NODES}/n1")
        assert b"pegasus://a:21" in raw and stat.ephemeralOwner == sessions[0].client_id[0]
    finally:
        for c in clients:
            c.stop()
            c.close()
