"""Nodes of one multi-node cluster in child processes: ``pegasus-fast --cluster DIR serve --zk ...``.

A :class:`Nodes` is a set of :class:`served.Served` processes that join the
cluster named by one ZooKeeper chroot, each with a fixed node id (n1, n2, ...),
and a ``zk://`` client of it. The test's :class:`served.Fleet` stops them all.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pegasus_fast as pf
from pegasus_fast.coord.zk import read_nodes
from served import Fleet, Served

WAIT = 60.0


class Nodes:
    def __init__(
        self,
        fleet: Fleet,
        zk_spec: str,
        *serve_args: str,
        zk_auth_file: str | None = None,
        token: str | None = None,
    ) -> None:
        """``serve_args``: more arguments of every node's ``serve`` (``--config KEY=VALUE``);
        ``zk_auth_file``: the cluster's ZooKeeper credentials, given to its nodes and clients;
        ``token``: the token every node serves with (and reaches its peers with)."""
        self.fleet = fleet
        self.token = token
        self.spec = zk_spec
        self.zk_auth_file = zk_auth_file
        if zk_auth_file is not None:
            serve_args = (*serve_args, "--zk-auth-file", zk_auth_file)
        self.serve_args = serve_args
        self.url = f"zk://{zk_spec}"
        self.name = zk_spec.rsplit("/", 1)[1]
        self.nodes: dict[str, Served] = {}

    def add(self, node_id: str) -> Served:
        s = self.fleet.add(node_id)
        s.cluster_name = self.name
        s.args = ("--zk", self.spec, "--node-id", node_id, *self.serve_args)
        if self.token is not None:
            s.env["PEGASUS_FAST_TOKEN"] = self.token
        self.nodes[node_id] = s
        return s

    def start(self, *node_ids: str) -> None:
        """Start these nodes (made on first use) at once, and wait until each serves and one of
        the cluster's nodes leads (a table change goes to the leader: the first one of a test
        must not race the election)."""
        for n in node_ids:
            (self.nodes.get(n) or self.add(n)).launch()
        for n in node_ids:
            self.nodes[n].wait_ready()
        self.wait_leader()

    def wait_leader(self) -> None:
        deadline = time.monotonic() + WAIT
        with self.client() as c:
            while True:
                try:
                    c.info()  # answered by the leader
                    return
                except pf.NotLeaderError:
                    assert time.monotonic() < deadline, "no node leads"
                    time.sleep(0.05)

    def __getitem__(self, node_id: str) -> Served:
        return self.nodes[node_id]

    def client(self) -> pf.RoutedCluster:
        return pf.connect(self.url, self.token, zk_auth_file=self.zk_auth_file)

    def wait_live(self, client: pf.RoutedCluster, node_ids: set[str]) -> None:
        """Until ZooKeeper lists exactly these nodes (a killed node's session must expire)."""
        deadline = time.monotonic() + WAIT
        while set(client.nodes()) != node_ids:
            assert time.monotonic() < deadline, (client.nodes(), node_ids)
            time.sleep(0.1)


def wait_for(cond: Callable[[], bool], timeout: float = WAIT, what: str = "") -> None:
    """Return once ``cond()`` holds; fail the test naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.05)


def owners(table: pf.RoutedTable) -> list[str]:
    return list(table._config(fresh=True).owners())


def spread_of(table: pf.RoutedTable, node_ids: list[str]) -> dict[str, int]:
    c = Counter(owners(table))
    return {n: c.get(n, 0) for n in node_ids}


__all__ = ["WAIT", "Nodes", "owners", "spread_of"]


def registered_pegasus(spec: str) -> dict[str, str]:
    """node id -> the Pegasus address its ``/nodes/<id>`` registration names ("": none)."""
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=spec)
    zk.start(timeout=10)
    try:
        return {n: doc.pegasus for n, doc in read_nodes(zk).items()}
    finally:
        zk.stop()
        zk.close()
