"""What a node's Pegasus port (net/pegasus/config_query.py's Placement) needs of the multi-node
cluster: which partitions this node may answer, and who owns each partition of a table
(docs/pegasus-protocol.md §6).

* :meth:`PegasusView.check` is :meth:`Member.check`: a partition this node does not own raises
  NotOwnerError, a write while the ZooKeeper session may be gone PartitionUnavailableError;
  the handler answers both ``ERR_INVALID_STATE``, which makes a Pegasus client query its
  configuration again.
* :meth:`PegasusView.primaries` answers the meta query from ZooKeeper, read now (a client
  asks after a refusal: a cached answer could send it back to the node that refused it):
  each partition's owner's registered Pegasus address and the partition's ballot; "" for a
  partition whose owner is not live, has no Pegasus port, or whose znode is bad.
"""

from __future__ import annotations

from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError

from ..coord.zk import read_nodes, read_table
from ..errors import CoordinationError
from .member import Member


class PegasusView:
    def __init__(self, member: Member) -> None:
        self.member = member

    def check(self, table: str, pidx: int, write: bool) -> None:
        self.member.check(table, pidx, write)

    def primaries(self, table: str) -> list[tuple[int, int, str]]:
        """``(pidx, ballot, owner's Pegasus host:port or "")`` of every partition of ``table``
        (TableNotFoundError when ZooKeeper does not have it, CoordinationError when it cannot
        be read: the query is answered ERR_UNKNOWN and the client asks again)."""
        if not self.member.zk.connected:
            # kazoo would hold the call until the session is back: the front end's batch loop waits
            raise CoordinationError(self.member.addr.spec, "not connected")
        try:
            tc = read_table(self.member.zk, table)
            nodes = read_nodes(self.member.zk)
        except (KazooException, KazooTimeoutError) as exc:
            raise CoordinationError(self.member.addr.spec, f"reading {table}'s owners: {exc!r}") from exc
        out = []
        for pc in tc.partitions:
            doc = None if pc.problem else nodes.get(pc.owner)
            out.append((pc.pidx, pc.ballot, doc.pegasus if doc is not None else ""))
        return out


__all__ = ["PegasusView"]
