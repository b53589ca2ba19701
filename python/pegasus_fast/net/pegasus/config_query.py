"""The meta query (query_cfg: a table's app id, partition count and each partition's primary)
and the Placement port it reads on a node of a multi-node cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ...errors import TableNotFoundError
from . import codes
from .replies import rpc_address

if TYPE_CHECKING:
    from ...engine.cluster import Cluster

#: every partition of a single node is served at this ballot (it never changes hands)
BALLOT = 1


class Placement(Protocol):
    """Where the partitions of a multi-node cluster are, as a node's Pegasus port needs it
    (multinode/pegasus_view.py; None on a single node, which owns everything)."""

    def check(self, table: str, pidx: int, write: bool) -> None:
        """Raise NotOwnerError (or PartitionUnavailableError) for a partition this node must not
        answer now; both are answered ERR_INVALID_STATE (a client queries its configuration again)."""
        ...

    def primaries(self, table: str) -> list[tuple[int, int, str]]:
        """``(pidx, ballot, the owner's Pegasus host:port or "")`` of every partition of ``table``."""
        ...

    def replicate(self, request: bytes) -> bytes:
        """A primary's serialized ReplicateRequest, logged and made durable here: the serialized
        ReplicateReply (OP_REPLICATE). PermissionDeniedError when its token is not this
        node's, InvalidRequest when it does not decode."""
        ...


def query_cfg(
    cluster: Cluster, placement: Placement | None, app_name: str, indices: list[int]
) -> tuple[Any, ...]:
    """The answer of query_cfg for ``app_name``'s partitions ``indices`` (none: all of them)."""
    try:
        table = cluster.table(app_name)
    except TableNotFoundError:
        return codes.ERR_OBJECT_NOT_FOUND, 0, 0, []
    n = table.partition_count
    wanted = range(n) if not indices else [i for i in indices if 0 <= i < n]
    if placement is None:
        parts: list[tuple[int, ...]] = [(i, BALLOT, table.partitions[i].last_committed) for i in wanted]
        return codes.ERR_OK, table.app_id, n, parts
    try:
        owners = {pidx: (ballot, addr) for pidx, ballot, addr in placement.primaries(app_name)}
    except TableNotFoundError:
        return codes.ERR_OBJECT_NOT_FOUND, 0, 0, []
    parts = []
    for i in wanted:
        ballot, addr = owners.get(i, (0, ""))
        parts.append((i, ballot, table.partitions[i].last_committed, _primary(addr)))
    return codes.ERR_OK, table.app_id, n, parts


def _primary(target: str) -> int:
    """An owner's ``host:port`` as an rpc_address; 0 (Pegasus's invalid address: no primary)
    when there is none or it is no IPv4 address."""
    host, _, port = target.rpartition(":")
    try:
        return rpc_address(host, int(port))
    except ValueError:
        return 0
