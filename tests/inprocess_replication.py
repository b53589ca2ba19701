"""A node's :class:`Replication` in this process, without ZooKeeper: for tests that drive its
configuration by hand (``adopt``) and call its primary's or secondary's side directly."""

from __future__ import annotations

from pegasus_fast.engine.cluster import Cluster
from pegasus_fast.multinode.replication import Replication
from pegasus_fast.net.peer import Peers


def in_process_replication(cluster: Cluster, peers: Peers, node_id: str = "n1") -> Replication:
    return Replication(
        None,  # type: ignore[arg-type] - adopting a configuration reads nothing from ZooKeeper
        cluster,
        node_id,
        peers,
        want_sync=lambda: None,
        resync_all=lambda: None,
        url=lambda: "pegasus://127.0.0.1:1",
    )
