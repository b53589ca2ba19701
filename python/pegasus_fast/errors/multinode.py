"""Errors of multi-node clusters: a node that is down or does not own a partition, the
meta leader, and ZooKeeper."""

from __future__ import annotations

from .base import PegasusFastError, Retry
from .tables import PartitionUnavailableError


class NodeUnavailableError(PartitionUnavailableError):
    """A partition of a multi-node cluster whose owning node cannot be reached: only that
    node's partitions are unavailable; it serves them again when it is back with its disk."""

    def __init__(self, table: str, pidx: int, node: str, url: str, reason: str = "") -> None:
        super().__init__(
            table, pidx, f"node {node} ({url}) is unavailable" + (f": {reason}" if reason else "")
        )
        self.node = node
        self.url = url
        self.reason = reason


class NotOwnerError(PegasusFastError):
    """A node of a multi-node cluster was asked for a partition it does not own (the
    caller's configuration is stale: read it again and go to the owner)."""

    retry = Retry.TRANSIENT

    def __init__(self, table: str, pidx: int, node: str) -> None:
        super().__init__(f"node {node} does not own partition {table}.{pidx}")
        self.table = table
        self.pidx = pidx
        self.node = node


class NotLeaderError(PegasusFastError):
    """A placement call reached a node that is not the meta leader now."""

    retry = Retry.TRANSIENT

    def __init__(self, node: str, leader: str | None) -> None:
        super().__init__(f"node {node} is not the meta leader (leader: {leader or 'none'})")
        self.node = node
        self.leader = leader


class CoordinationError(PegasusFastError):
    """ZooKeeper cannot be reached, or the cluster's configuration in it is not usable."""

    retry = Retry.TRANSIENT

    def __init__(self, zk: str, reason: str) -> None:
        super().__init__(f"zookeeper {zk}: {reason}")
        self.zk = zk
        self.reason = reason


class NodeIdInUseError(CoordinationError):
    """A node was started with the id of a live node of another directory: it is refused
    (it serves nothing), and the live node keeps its id. ``holder`` is the live node's URL."""

    retry = Retry.PERMANENT

    def __init__(self, zk: str, node_id: str, holder: str) -> None:
        super().__init__(zk, f"node id {node_id!r} is held by a live node of another directory ({holder})")
        self.node_id = node_id
        self.holder = holder


class CoordinationAuthError(CoordinationError):
    """ZooKeeper refused this client: the cluster's znodes carry a digest ACL and the client
    gave no credentials, or other ones (``zk_auth_file`` / ``--zk-auth-file``)."""

    retry = Retry.PERMANENT
