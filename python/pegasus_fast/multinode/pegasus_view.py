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
* :meth:`PegasusView.replicate` takes a primary's replication request (OP_REPLICATE, ours:
  multinode/links.py sends it here rather than over gRPC when it can). It carries the node
  token, checked in constant time; a node that serves gRPC with TLS refuses it (its token
  would have crossed the Pegasus port in the clear), as does one whose tokens are per role
  only (no token may call the Node service then).
"""

from __future__ import annotations

import hmac

from google.protobuf.message import DecodeError
from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError

from ..coord.zk import read_nodes, read_table
from ..errors import CoordinationError, PermissionDeniedError
from ..net import pegasus_fast_pb2 as pb
from ..net.pegasus.failures import InvalidRequest
from .member import Member


class PegasusView:
    def __init__(self, member: Member, replication: bool = True, token: str | None = None) -> None:
        """``replication``: whether this port takes replication requests at all; ``token``:
        the one they must carry (None: any, the node's gRPC asks for none either)."""
        self.member = member
        self._replication = replication
        self._token = None if token is None else token.encode()

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

    def replicate(self, request: bytes) -> bytes:
        if not self._replication:
            raise PermissionDeniedError("", "this node takes replication over gRPC only")
        try:
            req = pb.ReplicateRequest.FromString(request)
        except DecodeError as exc:
            raise InvalidRequest(f"a replication request that does not decode: {exc}") from None
        if self._token is not None and not hmac.compare_digest(req.token.encode(), self._token):
            raise PermissionDeniedError("", "replication request without this node's token")
        return self.member.replication.receive(req).SerializeToString()


__all__ = ["PegasusView"]
