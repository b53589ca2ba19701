"""Switch over with a multi-node (``zk://``) cluster on either side (issue #21 §2,
docs/switchover.md): a multi-node source fenced through its meta leader (every node's gate, the
fenced decree of each partition from its owner), the follower's confirmation of each partition
from the node shipping it, the take-over of a served follower; a served source handing over to a
multi-node follower, whose leader adds the reverse duplication and then promotes the table on
every node; a second switchover switches back; one that cannot finish unfences the source.
ZooKeeper, the nodes and the served clusters are real processes; these run once."""

from __future__ import annotations

import time

import pegasus_fast as pf
import pytest
from dupharness import wait_until
from multinode import Nodes
from pegasus_fast.cli.exits import EXIT_ERROR
from pegasus_fast.coord.zk import parse_zk
from pegasus_fast.engine.cluster import default_cluster_id
from served import Fleet, Served
from test_switchover import Writer, cli, missing

pytestmark = pytest.mark.usefixtures("default_backend")

WAIT = 30.0


def _start(fleet: Fleet, zk_chroot: str) -> tuple[Nodes, Served]:
    """Nodes n1 and n2 of one cluster, and the served cluster ``west`` (another cluster id)."""
    nodes = Nodes(fleet, zk_chroot, "--pegasus-listen", "127.0.0.1:0")
    west = fleet.add("west")
    west.args = ("--pegasus-listen", "127.0.0.1:0")
    assert default_cluster_id(nodes.name) != default_cluster_id("west")
    west.launch()
    nodes.start("n1", "n2")
    west.wait_ready()
    return nodes, west


def test_a_multi_node_source_switches_over_to_a_served_follower_and_back(
    fleet: Fleet, zk_chroot: str
) -> None:
    nodes, west = _start(fleet, zk_chroot)
    home = parse_zk(nodes.url).url
    with nodes.client() as c:
        t = c.create_table("t", partition_count=8)
        assert len(set(t._config(fresh=True).owners())) == 2  # both nodes ship
        dup = c.add_duplication("t", west.url)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        with Writer(pf.connect, nodes.url, "t") as w:
            w.wait_for(300)
            report = dup.switchover(timeout=WAIT)
            wait_until(lambda: bool(w.moved), WAIT, "the writer moved")
            w.wait_for(len(w.acked) + 100)
        assert w.error is None, w.error
        assert w.moved[0].primary == west.url
        assert report.rpo_mutations == 0 and report.new_primary == west.url
        assert report.old_dupid == dup.dupid and sorted(report.fenced_decrees) == list(range(8))
        assert sum(report.fenced_decrees.values()) >= 300
        with pytest.raises(pf.TableMovedError) as info:
            c.table("t").set("x", "s", "v")
        assert info.value.primary == west.url
        assert c.table_role("t").moved_to == west.url
        assert [d.dupid for d in c.duplications("t") if d.status != pf.DupStatus.REMOVED] == []
        with pf.connect(west.url) as wc:
            assert missing(wc.table("t"), w.acked) == []
            back = wc.duplication(report.new_dupid)
            back.wait_for(pf.DupStatus.LOG, timeout=WAIT)
            assert back.remote == home and not back.with_checkpoint
            wc.table("t").set("after", "s", "on west")
        # the old source follows the new primary, and stays fenced
        wait_until(lambda: c.table("t").get("after", "s") == b"on west", WAIT, "the nodes following west")
        with pytest.raises(pf.TableMovedError):
            c.table("t").set("x", "s", "v")
        # switch back, from the command line, to the multi-node cluster
        done = cli("--connect", west.url, "switchover", "t", str(report.new_dupid), "--timeout", str(WAIT))
        assert done.returncode == 0, done.stderr
        assert "rpo_mutations 0" in done.stdout
        c.table("t").set("home", "s", "nodes")  # writable again, on every node
        for i in range(40):
            c.table("t").set(f"again{i}", "s", "v")
        assert missing(c.table("t"), w.acked) == []
        assert c.table_role("t").moved_to == "" and c.table_role("t").writable
        (back_again,) = [d for d in c.duplications("t") if d.status != pf.DupStatus.REMOVED]
        back_again.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        assert back_again.remote == west.url
    with pf.connect(west.url) as wc:
        assert wc.table_role("t").moved_to == home
        with pytest.raises(pf.TableMovedError) as info:
            wc.table("t").set("x", "s", "v")
        assert info.value.primary == home
        wait_until(lambda: wc.table("t").get("again39", "s") == b"v", WAIT, "west following the nodes")


def test_a_served_source_switches_over_to_a_multi_node_follower(fleet: Fleet, zk_chroot: str) -> None:
    nodes, west = _start(fleet, zk_chroot)
    home = parse_zk(nodes.url).url
    with pf.connect(west.url) as wc:
        wc.create_table("t", partition_count=8)
        dup = wc.add_duplication("t", nodes.url)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        with nodes.client() as c:
            wait_until(lambda: c.table_role("t").kind == "follower", WAIT, "the follower table")
            with pytest.raises(pf.FollowerTableError):
                c.table("t").set("x", "s", "v")
            with Writer(pf.connect, west.url, "t") as w:
                w.wait_for(300)
                report = dup.switchover(timeout=WAIT)
                wait_until(lambda: bool(w.moved), WAIT, "the writer moved")
                w.wait_for(len(w.acked) + 100)
            assert w.error is None, w.error
            assert w.moved[0].primary == home
            assert report.rpo_mutations == 0 and report.new_primary == home
            assert missing(c.table("t"), w.acked) == []
            role = c.table_role("t")
            assert role.writable and role.follows == "" and role.moved_to == ""
            back = c.duplication(report.new_dupid)
            back.wait_for(pf.DupStatus.LOG, timeout=WAIT)
            assert back.remote == west.url
            c.table("t").set("after", "s", "on the nodes")
            wait_until(lambda: wc.table("t").get("after", "s") == b"on the nodes", WAIT, "west following")
            with pytest.raises(pf.TableMovedError) as info:
                wc.table("t").set("x", "s", "v")
            assert info.value.primary == home
            # switch back, from the command line, connected to the multi-node cluster
            done = cli(
                "--connect", nodes.url, "switchover", "t", str(report.new_dupid), "--timeout", str(WAIT)
            )
            assert done.returncode == 0, done.stderr
            assert "rpo_mutations 0" in done.stdout
            with pytest.raises(pf.TableMovedError) as info:
                c.table("t").set("x", "s", "v")
            assert info.value.primary == west.url
        wc.table("t").set("home", "s", "west")
        assert missing(wc.table("t"), w.acked) == []


def test_a_multi_node_switchover_to_an_unreachable_follower_unfences(fleet: Fleet, zk_chroot: str) -> None:
    nodes, west = _start(fleet, zk_chroot)
    with nodes.client() as c:
        c.create_table("t", partition_count=4)
        dup = c.add_duplication("t", west.url)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        west.stop()
        for i in range(8):
            c.table("t").set(f"k{i}", "s", "v")
        started = time.monotonic()
        with pytest.raises(pf.SwitchoverError) as info:
            dup.switchover(timeout=1.0)
        assert time.monotonic() - started < WAIT
        assert info.value.unfenced and info.value.stage in ("catch_up", "take_over")
        assert info.value.dupid == dup.dupid and info.value.table == "t"
        assert c.table_role("t").moved_to == ""
        for i in range(8):  # every node takes writes again
            c.table("t").set(f"k{i}", "s", "still here")
        assert dup.status == pf.DupStatus.LOG
        # asked of a node that does not lead (the command line connected to it): passed on to
        # the leader, and its typed error comes back the same way
        leader = c._r.routes.leader_url()
        other = next(s.url for s in (nodes["n1"], nodes["n2"]) if s.url != leader)
        done = cli("--connect", other, "switchover", "t", str(dup.dupid), "--timeout", "1")
        assert done.returncode == EXIT_ERROR, done.stderr
        with pf.connect(other) as oc:
            with pytest.raises(pf.SwitchoverError) as info:
                oc.duplication(dup.dupid).switchover(timeout=1.0)
        assert info.value.unfenced and info.value.dupid == dup.dupid
        assert c.table_role("t").moved_to == ""
        c.table("t").set("k0", "s", "still here")


def test_a_multi_node_follower_behind_refuses_the_take_over_and_changes_nothing(
    fleet: Fleet, zk_chroot: str
) -> None:
    from pegasus_fast.client.network import Network
    from pegasus_fast.duplication.ports import SourceId

    nodes, west = _start(fleet, zk_chroot)
    with pf.connect(west.url) as wc, nodes.client() as c:
        wc.create_table("t", partition_count=4)
        for i in range(20):
            wc.table("t").set(f"k{i}", "s", "v")
        dup = wc.add_duplication("t", nodes.url)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        info = wc.info()
        source = SourceId(info.name, info.uid, "t", dup.dupid)
        net = Network()
        try:
            follower = net.connect(nodes.url, None, source)
            with pytest.raises(pf.SwitchoverError) as err:  # partition 0 holds fewer decrees
                follower.take_over("t", source, {0: 10**9, 1: 0}, west.url)
            assert err.value.stage == "take_over" and err.value.dupid == dup.dupid
            wrong = SourceId(info.name, info.uid, "t", dup.dupid + 1)
            with pytest.raises(pf.DuplicationError):  # not the duplication the table follows
                net.connect(nodes.url, None, wrong).take_over("t", wrong, {}, west.url)
        finally:
            net.close()
        role = c.table_role("t")
        assert role.kind == "follower" and not role.writable
        assert c.duplications("t") == []
        with pytest.raises(pf.FollowerTableError):
            c.table("t").set("x", "s", "v")
        wc.table("t").set("k0", "s", "still shipping")
        wait_until(lambda: c.table("t").get("k0", "s") == b"still shipping", WAIT, "the follower applying")


def test_a_switchover_to_a_multi_node_follower_that_is_down_unfences(fleet: Fleet, zk_chroot: str) -> None:
    nodes, west = _start(fleet, zk_chroot)
    with pf.connect(west.url) as wc:
        wc.create_table("t", partition_count=4)
        dup = wc.add_duplication("t", nodes.url)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        for n in ("n1", "n2"):
            nodes[n].stop()
        wc.table("t").set("k", "s", "v")
        with pytest.raises(pf.SwitchoverError) as info:
            dup.switchover(timeout=1.0)
        assert info.value.unfenced and info.value.stage in ("catch_up", "take_over")
        assert wc.table_role("t").moved_to == ""
        wc.table("t").set("k", "s", "still here")


def test_the_fence_of_a_multi_node_source_survives_a_restart_of_its_nodes(
    fleet: Fleet, zk_chroot: str
) -> None:
    nodes, west = _start(fleet, zk_chroot)
    with nodes.client() as c:
        t = c.create_table("t", partition_count=4)
        keys = [next(f"h{i}" for i in range(10_000) if t.partition_index(f"h{i}") == p) for p in range(4)]
        for k in keys:
            t.set(k, "s", "before")
        dup = c.add_duplication("t", west.url)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        report = dup.switchover(timeout=WAIT)
        assert report.rpo_mutations == 0
    for n in ("n1", "n2"):
        nodes[n].restart()
    nodes.wait_leader()
    with nodes.client() as c:
        for k in keys:  # every partition, on whichever node owns it, refuses at once
            with pytest.raises(pf.TableMovedError) as info:
                c.table("t").set(k, "s", "after the restart")
            assert info.value.primary == west.url
        with pf.connect(west.url) as wc:
            wc.duplication(report.new_dupid).wait_for(pf.DupStatus.LOG, timeout=WAIT)
            for k in keys:
                wc.table("t").set(k, "s", "from west")
        for k in keys:  # and the restarted nodes still follow the new primary
            wait_until(lambda k=k: c.table("t").get(k, "s") == b"from west", WAIT, f"{k} from west")


def test_a_multi_node_source_with_a_node_down_is_not_fenced(fleet: Fleet, zk_chroot: str) -> None:
    nodes, west = _start(fleet, zk_chroot)
    with nodes.client() as c:
        t = c.create_table("t", partition_count=4, replica_count=1)  # one copy: a node down loses some
        keys = [next(f"h{i}" for i in range(10_000) if t.partition_index(f"h{i}") == p) for p in range(4)]
        dup = c.add_duplication("t", west.url)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        leader = c._r.routes.leader_url()
        down = next(n for n in ("n1", "n2") if nodes[n].url != leader)
        nodes[down].stop()
        nodes.wait_live(c, {"n1", "n2"} - {down})
        with pytest.raises(pf.SwitchoverError) as info:
            dup.switchover(timeout=2.0)
        assert info.value.unfenced and info.value.stage in ("check", "fence", "catch_up")
        assert c.table_role("t").moved_to == ""
    nodes[down].start()
    with nodes.client() as c:
        for k in keys:  # the node that was down did not come back fenced either
            wait_until(lambda k=k: _writable(c, k), WAIT, f"{k} writable")


def _writable(c: pf.RoutedCluster, key: str) -> bool:
    try:
        c.table("t").set(key, "s", "v")
        return True
    except (pf.PartitionUnavailableError, pf.NodeUnavailableError):
        return False  # its node is still starting
