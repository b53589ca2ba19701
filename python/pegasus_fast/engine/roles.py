"""What each table of a cluster is to duplication (plain, a source, a follower, a master of a
master-master pair, switched over to another cluster), and the client-write gate that follows
from it on every partition (issue #21 §3).

A follower table of a master-slave duplication takes the source's writes only: client writes
meet ``FollowerTableError`` unless its env ``duplication.follower_writable`` is ``true``. A
follower that is itself the source of a duplication back to whom it follows is one of two
masters: writable. A table fenced by a switchover (env ``duplication.moved_to``) refuses client
writes with ``TableMovedError`` naming the new primary, whatever else it is. Duplication
applies are never gated (storage/writes.py: ``client_gate``).

The gate is recomputed here, and only here, whenever what decides it changes: a table opened
or made, a follower adopted or promoted, a duplication added or removed, an env set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..duplication.ports import SourceId
from ..errors import FollowerTableError, TableMovedError
from .meta import TableRecord

#: ``true``: the follower table takes client writes too (the operator's opt-out)
FOLLOWER_WRITABLE_ENV = "duplication.follower_writable"
#: set by a switchover on the table it switched away from: the new primary's address
MOVED_TO_ENV = "duplication.moved_to"

PLAIN, SOURCE, FOLLOWER, MASTER = "plain", "source", "follower", "master-master"


@dataclass(frozen=True)
class TableRole:
    """A table's part in duplication, as ``ls -d`` and ``app`` show it."""

    #: plain, source, follower, master-master
    kind: str = PLAIN
    #: the dupids of this table's own duplications (it is their source)
    source_of: tuple[int, ...] = ()
    #: whom it follows, ``cluster.table#dupid`` ("" for none)
    follows: str = ""
    #: whether client writes are taken
    writable: bool = True
    #: the new primary's address when a switchover fenced it ("" otherwise)
    moved_to: str = ""

    def describe(self) -> str:
        parts = [self.kind]
        if self.follows:
            parts.append(f"of {self.follows}")
        if self.source_of:
            parts.append("dups " + ",".join(str(d) for d in self.source_of))
        if self.moved_to:
            parts.append(f"moved to {self.moved_to}")
        elif not self.writable:
            parts.append("read-only")
        elif self.kind == FOLLOWER:
            parts.append("writable")
        return " ".join(parts)


@dataclass(frozen=True)
class DupView:
    """What a role needs of one of the table's own duplications."""

    dupid: int
    remote_name: str
    remote_table: str


def role_of(record: TableRecord, dups: Iterable[DupView]) -> TableRole:
    fo = record.follower_of
    return role_from(record.envs, None if fo is None else fo.source, dups)


def role_from(envs: Mapping[str, str], src: SourceId | None, dups: Iterable[DupView]) -> TableRole:
    """The role of a table with these envs, following ``src`` (None: no one), the source of
    ``dups`` (a multi-node cluster's tables: their znodes, multinode/)."""
    dups = sorted(dups, key=lambda d: d.dupid)
    source_of = tuple(d.dupid for d in dups)
    moved_to = envs.get(MOVED_TO_ENV, "")
    if src is None:
        return TableRole(SOURCE if source_of else PLAIN, source_of, "", not moved_to, moved_to)
    follows = f"{src.cluster}.{src.table}#{src.dupid}"
    # a duplication back to the table it follows: two masters (a name, when the duplication
    # knows its remote's, must be the source cluster's)
    back = any(
        d.remote_table == src.table and (not d.remote_name or d.remote_name == src.cluster) for d in dups
    )
    if back:
        return TableRole(MASTER, source_of, follows, not moved_to, moved_to)
    opted_out = envs.get(FOLLOWER_WRITABLE_ENV, "").strip().lower() == "true"
    return TableRole(FOLLOWER, source_of, follows, opted_out and not moved_to, moved_to)


def gate_of(name: str, role: TableRole) -> Callable[[], BaseException] | None:
    """What a client write meets on a table of this role (None: it is taken)."""
    if role.moved_to:
        primary = role.moved_to
        return lambda: TableMovedError(name, primary)
    if not role.writable:
        follows = role.follows
        return lambda: FollowerTableError(name, follows)
    return None


class _Gated(Protocol):
    pidx: int

    def set_client_gate(self, refuse: Callable[[], BaseException] | None) -> int: ...


class _Partitioned(Protocol):
    @property
    def partitions(self) -> Sequence[_Gated]: ...


class TableRoles:
    """Keeps every open table's client-write gate in step with its role."""

    def __init__(
        self,
        record: Callable[[str], TableRecord | None],
        table: Callable[[str], _Partitioned | None],
        dups: Callable[[str], list[DupView]],
        names: Callable[[], list[str]],
    ) -> None:
        self._record = record
        self._table = table
        self._dups = dups
        self._names = names

    def role(self, name: str) -> TableRole:
        rec = self._record(name)
        if rec is None:
            return TableRole()
        return role_of(rec, self._dups(name))

    def refresh(self, name: str) -> dict[int, int]:
        """Set the gate of every partition of ``name`` from its role now; returns each
        partition's last decree at that moment (a fence's: no client write passes it)."""
        rec = self._record(name)
        table = self._table(name)
        if rec is None or table is None:
            return {}
        gate = gate_of(name, role_of(rec, self._dups(name)))
        return {p.pidx: p.set_client_gate(gate) for p in table.partitions}

    def refresh_all(self) -> None:
        for name in self._names():
            self.refresh(name)


__all__ = [
    "FOLLOWER_WRITABLE_ENV",
    "MOVED_TO_ENV",
    "DupView",
    "TableRole",
    "TableRoles",
    "gate_of",
    "role_from",
    "role_of",
]
