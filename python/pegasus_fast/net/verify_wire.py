"""A duplication's VerifyReport on the wire (VerifyReply of pegasus_fast.proto), both ways."""

from __future__ import annotations

from ..duplication.verify_report import Difference, PartitionVerify, RecordState, VerifyReport
from . import pegasus_fast_pb2 as pb


def _state_pb(s: RecordState | None) -> pb.RecordState | None:
    return None if s is None else pb.RecordState(value=s.value, expire_ts=s.expire_ts)


def _state(m: pb.VerifyDifference, name: str) -> RecordState | None:
    if not m.HasField(name):
        return None
    s = getattr(m, name)
    return RecordState(s.value, s.expire_ts)


def report_to_pb(r: VerifyReport) -> pb.VerifyReply:
    parts = []
    for p in r.partitions:
        d = p.first_difference
        diff = (
            None
            if d is None
            else pb.VerifyDifference(
                hash_key=d.hash_key,
                sort_key=d.sort_key,
                source=_state_pb(d.source),
                follower=_state_pb(d.follower),
            )
        )
        parts.append(
            pb.PartitionVerify(
                pidx=p.pidx,
                equal=p.equal,
                decree=p.decree,
                records=p.records,
                follower_records=p.follower_records,
                first_difference=diff,
                quiet=p.quiet,
                reason=p.reason,
            )
        )
    return pb.VerifyReply(
        dupid=r.dupid,
        table=r.table,
        remote_table=r.remote_table,
        equal=r.equal,
        quiet=r.quiet,
        now=r.now,
        seconds=r.seconds,
        partitions=parts,
    )


def report_from_pb(m: pb.VerifyReply) -> VerifyReport:
    parts = []
    for p in m.partitions:
        diff = None
        if p.HasField("first_difference"):
            d = p.first_difference
            diff = Difference(d.hash_key, d.sort_key, _state(d, "source"), _state(d, "follower"))
        parts.append(
            PartitionVerify(p.pidx, p.equal, p.decree, p.records, p.follower_records, diff, p.quiet, p.reason)
        )
    return VerifyReport(m.dupid, m.table, m.remote_table, m.equal, m.quiet, m.now, m.seconds, tuple(parts))


__all__ = ["report_from_pb", "report_to_pb"]
