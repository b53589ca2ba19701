"""A multi-node cluster's logs and leader metric (issue #20 §2): which node leads, every step of
a balance and of each move it makes, in the JSON records of real ``serve --zk`` processes."""

from __future__ import annotations

import pytest
from dupharness import wait_until
from multinode import WAIT, Nodes
from observe import JSON_LOGS, METRICS_ARGS, key, metrics_url, records, scrape
from served import Fleet
from servedcheck import TABLE

pytestmark = pytest.mark.usefixtures("default_backend")


def test_leadership_balance_and_moves_are_logged(fleet: Fleet, zk_chroot: str) -> None:
    nodes = Nodes(fleet, zk_chroot, *JSON_LOGS, *METRICS_ARGS)
    nodes.start("n1", "n2")
    with nodes.client() as c:
        t = c.create_table(TABLE, 4, replica_count=1)  # moves that copy: learn, fence, switched
        for i in range(50):
            t.set(b"k%d" % i, b"s", b"v")
        nodes.start("n3")
        nodes.wait_live(c, {"n1", "n2", "n3"})
        moves = c.balance()
        assert moves
        leader_url = c._r.leader().url
    leader = next(n for n, s in nodes.nodes.items() if s.url == leader_url)

    # each node counts the partitions it owns: together, the table's, each once
    def serving() -> float:
        return sum(
            scrape(metrics_url(s)).get(key("partitions", table=TABLE, state="serving"), 0)
            for s in nodes.nodes.values()
        )

    wait_until(lambda: serving() == 4, WAIT, lambda: f"serving partitions over the nodes: {serving()}")
    # the metric: 1 on the leader, 0 on the others
    for n, s in nodes.nodes.items():
        assert scrape(metrics_url(s))[key("node_is_leader", node=n)] == (1 if n == leader else 0)
    # the others first: once the leader goes, another would lead (and say so)
    for n in sorted(nodes.nodes, key=lambda n: n == leader):
        assert nodes[n].stop() == 0
    recs = {n: records(s) for n, s in nodes.nodes.items()}
    # the leader said it leads, once, and no other node did (none lost it meanwhile)
    leads = {n: [r for r in rs if r.get("leader") is True] for n, rs in recs.items()}
    assert len(leads[leader]) == 1 and leads[leader][0]["component"] == "multinode.election"
    assert all(not v for n, v in leads.items() if n != leader)
    # the balance: planned (with its count), each move announced, done
    mine = recs[leader]
    planned = [r for r in mine if r["component"] == "multinode.placement" and "moves" in r]
    assert planned[0]["moves"] == len(moves) and planned[-1]["moves"] == len(moves)
    announced = [(r["table"], r["pidx"], r["node"]) for r in planned if "pidx" in r]
    assert announced == [tuple(m) for m in moves]
    # every move: learning, fenced, switched, in that order, for each partition moved
    for table, pidx, node in moves:
        steps = [
            r["step"]
            for r in mine
            if r["component"] == "multinode.moves"
            and (r.get("table"), r.get("pidx"), r.get("node")) == (table, pidx, node)
        ]
        assert steps == ["learn", "fence", "switched"], (pidx, steps)
    switched = [r for r in mine if r.get("step") == "switched"]
    assert all(r["decree"] >= 0 and r["seconds"] >= 0 for r in switched)
