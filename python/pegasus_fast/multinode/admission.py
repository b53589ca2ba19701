"""Who may take part in a partition's move (transfer.py asks before it serves a call).

Only the owner hands a partition out: its checkpoint and log are pulled from
it and it is fenced there, never from a stale copy on another node. And a
node replaces its copy of a partition (Learn, CatchUp) only when it does not
own it. :func:`check_hand_out` and :func:`check_replace` are the rules; an
:class:`Admission` says, for one kind of node, whether it owns a partition.
"""

from __future__ import annotations

from typing import Protocol

from ..errors import InvalidArgumentError, NotOwnerError, PartitionUnavailableError
from ..storage.partition import MOVING, SERVING, Partition
from .member import Member


def check_hand_out(p: Partition, owned: bool, node_id: str) -> None:
    """Raise unless this node may hand ``p``'s data out or fence it: it owns ``p``, and ``p``
    serves or is fenced for this move (a learning or failed copy is never handed out)."""
    if not owned:
        raise NotOwnerError(p.table, p.pidx, node_id)
    if p.state not in (SERVING, MOVING):
        raise PartitionUnavailableError(p.table, p.pidx, p.state)


def check_replace(p: Partition, owned: bool, node_id: str) -> None:
    """Raise unless this node may replace its copy of ``p`` with another node's: it does not own it."""
    if owned:
        raise InvalidArgumentError(f"node {node_id} owns {p.table}.{p.pidx} already")


class Admission(Protocol):
    def hand_out(self, p: Partition) -> None:
        """Raise unless this node may hand ``p``'s data out or fence it."""
        ...

    def replace(self, p: Partition) -> None:
        """Raise unless this node may replace its copy of ``p``."""
        ...

    def fenced(self, p: Partition) -> None:
        """``p`` was fenced here for a move (its fence lease starts)."""
        ...


class Unowned:
    """A node outside any multi-node cluster (two served clusters moving a partition between
    them, as tests and benches do): every partition it serves is its own to hand out."""

    def hand_out(self, p: Partition) -> None:
        check_hand_out(p, True, "")

    def replace(self, p: Partition) -> None:
        check_replace(p, False, "")

    def fenced(self, p: Partition) -> None:
        pass


class ByOwnership:
    """A node of a multi-node cluster: what ZooKeeper says it owns (member.py)."""

    def __init__(self, member: Member) -> None:
        self.member = member

    def hand_out(self, p: Partition) -> None:
        check_hand_out(p, self.member.owns(p.table, p.pidx), self.member.node_id)

    def replace(self, p: Partition) -> None:
        check_replace(p, p.pidx in self.member.owned(p.table), self.member.node_id)

    def fenced(self, p: Partition) -> None:
        self.member.note_fenced(p.table, p.pidx)


__all__ = ["Admission", "ByOwnership", "Unowned", "check_hand_out", "check_replace"]
