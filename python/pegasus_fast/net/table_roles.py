"""A table's role (engine/roles.py) and a switchover's report on the wire, both ways."""

from __future__ import annotations

from ..engine.roles import TableRole
from ..engine.switchover import SwitchoverReport
from ..errors import FollowerTableError, PegasusFastError, TableMovedError
from . import pegasus_fast_pb2 as pb


def role_to_pb(role: TableRole) -> pb.TableRole:
    return pb.TableRole(
        kind=role.kind,
        source_of=list(role.source_of),
        follows=role.follows,
        writable=role.writable,
        moved_to=role.moved_to,
    )


def role_from_pb(m: pb.TableRole) -> TableRole | None:
    if not m.kind:  # a server that says nothing of roles (one that predates them)
        return None
    return TableRole(m.kind, tuple(m.source_of), m.follows, m.writable, m.moved_to)


def refusal(table: str, role: TableRole | None) -> PegasusFastError | None:
    """The typed error a client write to a table of this role meets (None: it is taken). The
    Pegasus port answers such a write NotSupported only; its client asks the role to say which."""
    if role is None:
        return None
    if role.moved_to:
        return TableMovedError(table, role.moved_to)
    if not role.writable:
        return FollowerTableError(table, role.follows)
    return None


def report_to_pb(r: SwitchoverReport) -> pb.SwitchoverReply:
    return pb.SwitchoverReply(
        table=r.table,
        old_dupid=r.old_dupid,
        new_dupid=r.new_dupid,
        new_primary=r.new_primary,
        rpo_mutations=r.rpo_mutations,
        write_unavailable_ms=r.write_unavailable_ms,
        catch_up_ms=r.catch_up_ms,
        fenced_decrees=r.fenced_decrees,
    )


def report_from_pb(m: pb.SwitchoverReply) -> SwitchoverReport:
    return SwitchoverReport(
        table=m.table,
        old_dupid=m.old_dupid,
        new_dupid=m.new_dupid,
        new_primary=m.new_primary,
        rpo_mutations=m.rpo_mutations,
        write_unavailable_ms=m.write_unavailable_ms,
        catch_up_ms=m.catch_up_ms,
        fenced_decrees=dict(m.fenced_decrees),
    )


__all__ = ["refusal", "report_from_pb", "report_to_pb", "role_from_pb", "role_to_pb"]
