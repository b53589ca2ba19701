"""What verifying a duplication found (docs/verify.md): the report's types, one place."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RecordState:
    """What one side holds at a key: its user value and expiry (Pegasus seconds, 0: no TTL)."""

    value: bytes
    expire_ts: int


@dataclass(frozen=True)
class Difference:
    """The first key, in key order, where the two sides differ; None on a side: absent there."""

    hash_key: bytes
    sort_key: bytes
    source: RecordState | None
    follower: RecordState | None


@dataclass(frozen=True)
class PartitionVerify:
    """One partition compared at source decree ``decree``."""

    pidx: int
    equal: bool
    #: the source decree both views stood at (the follower had applied exactly through it)
    decree: int
    #: live records on the source at ``decree``
    records: int
    #: live records on the follower at ``decree``
    follower_records: int
    first_difference: Difference | None = None
    #: False when both sides kept taking writes (master–master) and no quiet moment was found:
    #: then ``equal`` is False and ``reason`` says why, and nothing was concluded
    quiet: bool = True
    reason: str = ""


@dataclass(frozen=True)
class VerifyReport:
    dupid: int
    table: str
    remote_table: str
    #: every partition compared and equal
    equal: bool
    #: every partition found a moment to compare at (always, unless master–master)
    quiet: bool
    #: the Pegasus time (seconds since 2016-01-01) records were judged live or expired at
    now: int
    seconds: float
    partitions: tuple[PartitionVerify, ...] = field(default_factory=tuple)

    @property
    def reason(self) -> str:
        """Why some partition could not be compared ("" when all were)."""
        return next((p.reason for p in self.partitions if p.reason), "")


def merge(reports: list[VerifyReport]) -> VerifyReport:
    """One report of the partitions several reports compared (a multi-node source's owners)."""
    first = reports[0]
    parts = tuple(sorted((p for r in reports for p in r.partitions), key=lambda p: p.pidx))
    return VerifyReport(
        first.dupid,
        first.table,
        first.remote_table,
        all(r.equal for r in reports),
        all(r.quiet for r in reports),
        min(r.now for r in reports),
        max(r.seconds for r in reports),
        parts,
    )


__all__ = ["Difference", "PartitionVerify", "RecordState", "VerifyReport", "merge"]
