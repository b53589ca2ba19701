"""Duplication states, fail modes and progress records (DESIGN.md §5)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from ..errors import DuplicationStuckError


class DupStatus(Enum):
    INIT = "DS_INIT"
    PREPARE = "DS_PREPARE"
    APP = "DS_APP"
    LOG = "DS_LOG"
    PAUSE = "DS_PAUSE"
    REMOVED = "DS_REMOVED"

    def __str__(self) -> str:
        return self.value


#: transitions a duplication may take; any state may go to REMOVED
TRANSITIONS: dict[DupStatus, frozenset[DupStatus]] = {
    DupStatus.INIT: frozenset({DupStatus.PREPARE, DupStatus.LOG}),
    DupStatus.PREPARE: frozenset({DupStatus.APP}),
    DupStatus.APP: frozenset({DupStatus.LOG}),
    #: LOG -> APP: partitions whose WAL went past the retention cap learn a fresh checkpoint
    DupStatus.LOG: frozenset({DupStatus.PAUSE, DupStatus.APP}),
    DupStatus.PAUSE: frozenset({DupStatus.LOG}),
    DupStatus.REMOVED: frozenset(),
}

FAIL_MODES = ("slow", "skip", "fast")

#: why a duplication cannot progress, for a reason no retry of its own takes away
#: (PartitionProgress.stuck_reason, the dup_stuck metric, DuplicationStuckError.reason)
STUCK_AUTH = "authentication failed"
STUCK_PERMISSION = "permission denied"
STUCK_TABLE_DROPPED = "remote table dropped"
STUCK_RELEARN = "retention cap passed, re-learning"
#: the same, for a duplication without checkpoint: it cannot re-learn (DuplicationWalReleasedError)
STUCK_RELEASED = "retention cap passed, cannot re-learn without checkpoint"


@dataclass(frozen=True)
class PartitionProgress:
    pidx: int
    #: pending, empty, ready@<decree>, copying <x>/<y> bytes, learned
    checkpoint_state: str
    checkpoint_kind: str
    checkpoint_decree: int
    confirmed_decree: int
    last_committed_decree: int
    pending_mutations: int
    time_lag_ms: float
    #: why the partition is not moving, when it is stuck
    reason: str
    #: how long making its checkpoint took (0 until one is made)
    checkpoint_duration_ms: float = 0.0
    #: bytes of a large checkpoint the follower has taken so far, and its size (0, 0 when no
    #: checkpoint files are copied: empty or small partitions, or no checkpoint)
    copied_bytes: int = 0
    copy_total_bytes: int = 0
    #: seconds from the start of that copy to its latest chunk (the copy's rate is bytes over this)
    copy_seconds: float = 0.0
    #: set while the partition cannot progress for a reason it cannot retry away
    #: (STUCK_AUTH, STUCK_TABLE_DROPPED, STUCK_RELEARN...): None when it is not stuck
    stuck_reason: str | None = None


def stuck_reason_of(progress: Iterable[PartitionProgress]) -> str | None:
    """The duplication's stuck reason: the first partition's that has one (None: not stuck)."""
    return next((p.stuck_reason for p in progress if p.stuck_reason), None)


def stuck_timeout_error(
    dupid: int,
    remote: str,
    status: DupStatus,
    wanted: DupStatus,
    timeout: float | None,
    progress: Iterable[PartitionProgress],
) -> TimeoutError:
    """The TimeoutError of a ``wait_for`` that ran out: where the duplication stands, and each
    partition not learned yet or stuck, with its reason (every client's ``wait_for`` raises it).
    A duplication that cannot progress is a DuplicationStuckError naming why."""
    progress = list(progress)
    stuck = [
        f"{p.pidx}: {p.checkpoint_state}" + (f" ({p.reason})" if p.reason else "")
        for p in progress
        if p.reason or p.checkpoint_state != "learned"
    ]
    detail = f"after {timeout}s; partitions: {'; '.join(stuck) or 'none stuck'}"
    reason = stuck_reason_of(progress)
    if reason is not None:
        return DuplicationStuckError(dupid, reason, str(status), str(wanted), f"{remote}, {detail}")
    return TimeoutError(f"duplication {dupid} to {remote} is {status}, not {wanted}, {detail}")


__all__ = [
    "FAIL_MODES",
    "STUCK_AUTH",
    "STUCK_PERMISSION",
    "STUCK_RELEARN",
    "STUCK_RELEASED",
    "STUCK_TABLE_DROPPED",
    "TRANSITIONS",
    "DupStatus",
    "PartitionProgress",
    "stuck_reason_of",
    "stuck_timeout_error",
]
