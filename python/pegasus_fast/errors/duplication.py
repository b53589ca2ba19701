"""Errors of duplications: adding and driving one, its follower's answers, verification
and switchover."""

from __future__ import annotations

from .base import PegasusFastError, Retry


class DuplicationError(PegasusFastError):
    """A duplication cannot be added or driven (see the message)."""


class DuplicationNotFoundError(DuplicationError, KeyError):
    def __init__(self, dupid: int) -> None:
        super().__init__(f"duplication {dupid} not found")
        self.dupid = dupid

    def __str__(self) -> str:
        return str(self.args[0])


class AddDuplicationFailedError(DuplicationError):
    """``add_dup`` failed before the duplication shipped its log, and the duplication was removed
    (``removed``; False only when the remove failed too, ``dupid`` then names it): nothing of it
    is left to find and remove by hand. ``status`` is where it stood, ``cause`` why it failed;
    ``fix`` (when known) what to change."""

    def __init__(self, dupid: int, table: str, remote: str, status: str, cause: str, removed: bool) -> None:
        left = "removed" if removed else "NOT removed (remove_dup it)"
        super().__init__(
            f"duplication {dupid} of {table} to {remote} failed in {status} and was {left}: {cause}"
        )
        self.dupid = dupid
        self.table = table
        self.remote = remote
        self.status = status
        self.cause = cause
        self.removed = removed


class DuplicationGapError(DuplicationError):
    """The follower was sent a source decree past the next one it needs; the source re-reads from there."""

    retry = Retry.TRANSIENT

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"follower needs source decree {expected}, was sent {got}")
        self.expected = expected
        self.got = got


class FollowerDecreeError(DuplicationError):
    """A follower answered a source decree past the source partition's last one: it holds what
    the source never wrote (or lies), so the duplication stops rather than count it confirmed."""

    def __init__(self, table: str, pidx: int, claimed: int, last: int) -> None:
        super().__init__(
            f"the follower of {table!r} partition {pidx} claims source decree {claimed}, "
            f"past the source's last decree {last}"
        )
        self.table = table
        self.pidx = pidx
        self.claimed = claimed
        self.last = last


class FollowerGapError(DuplicationError):
    """A duplication without checkpoint would start shipping after writes its follower never
    got (it followed this source before and stopped short): refused unless ``accept_gap``.
    ``missing_decrees``: how many source decrees the follower lacks, over all partitions;
    ``partitions``: ``[pidx, missing]`` of each partition that lacks some."""

    def __init__(self, dupid: int, table: str, missing_decrees: int, partitions: list[list[int]]) -> None:
        super().__init__(
            f"duplication {dupid}: the follower table {table!r} misses {missing_decrees} source "
            f"decrees (partitions {[p for p, _ in partitions]}); add it with a checkpoint, or "
            "accept_gap=True to ship from now on regardless"
        )
        self.dupid = int(dupid)
        self.table = table
        self.missing_decrees = int(missing_decrees)
        self.partitions = [[int(p), int(n)] for p, n in partitions]


class DuplicationWalReleasedError(DuplicationError):
    """The WAL a duplication without checkpoint needed went past the retention cap and was freed:
    it cannot re-learn (a checkpoint would replace the follower table), so it stops; remove it and
    add one with a checkpoint."""

    def __init__(self, dupid: int, pidxs: list[int]) -> None:
        super().__init__(
            f"duplication {dupid}: WAL of partitions {pidxs} was released past the retention cap, "
            "and a duplication without checkpoint cannot re-learn"
        )
        self.dupid = dupid
        self.pidxs = pidxs


class DuplicationStuckError(DuplicationError, TimeoutError):
    """A ``wait_for`` ran out while the duplication could not progress for a reason no retry
    takes away (``reason``: ``"authentication failed"``, ``"remote table dropped"``,
    ``"retention cap passed, re-learning"``...): it names it rather than time out quietly. A
    TimeoutError too, as every ``wait_for`` that runs out."""

    def __init__(self, dupid: int, reason: str, status: str, wanted: str, detail: str = "") -> None:
        super().__init__(
            f"duplication {dupid} is stuck ({reason}): {status}, not {wanted}"
            + (f"; {detail}" if detail else "")
        )
        self.dupid = int(dupid)
        self.reason = str(reason)
        self.status = str(status)
        self.wanted = str(wanted)


class VerifyPositionError(DuplicationError):
    """A follower partition to verify holds a source decree past the one asked for: it cannot
    be compared at that decree (a new verification asks again)."""

    retry = Retry.TRANSIENT

    def __init__(self, table: str, pidx: int, decree: int, held: int) -> None:
        super().__init__(f"follower {table}.{pidx} holds source decree {held}, not {decree}")
        self.table = table
        self.pidx = pidx
        self.decree = decree
        self.held = held


class VerifyViewGoneError(DuplicationError):
    """A verification's view of a follower partition is not held (released, or its lease ended:
    verify_views.LEASE_SECONDS); a new verification takes another."""

    retry = Retry.TRANSIENT

    def __init__(self, view: str) -> None:
        super().__init__(f"no verification view {view!r} is held")
        self.view = view


class VerifyTimeoutError(DuplicationError, TimeoutError):
    """A verification ran out of time: a follower partition had not reached the source decree
    it is compared at (``held`` of ``decree``) within the timeout."""

    retry = Retry.TRANSIENT

    def __init__(self, table: str, pidx: int, decree: int, held: int, timeout: float) -> None:
        super().__init__(
            f"follower {table}.{pidx} reached source decree {held} of {decree} within {timeout} s"
        )
        self.table = table
        self.pidx = pidx
        self.decree = decree
        self.held = held
        self.timeout = timeout


class SwitchoverError(DuplicationError):
    """A switchover that could not finish: ``stage`` is where it stopped (``check``, ``fence``,
    ``catch_up``, ``take_over``), ``reason`` why. The source was unfenced and nothing changed on
    the follower, unless ``unfenced`` is False (the source keeps refusing writes: the follower's
    answer to the take-over never came, so it may be the primary now; see docs/switchover.md)."""

    retry = Retry.FAILURE

    def __init__(self, table: str, dupid: int, stage: str, reason: str, unfenced: bool = True) -> None:
        super().__init__(
            f"switchover of {table!r} (duplication {dupid}) stopped at {stage}: {reason}"
            + ("" if unfenced else "; the source stays fenced")
        )
        self.table = table
        self.dupid = dupid
        self.stage = stage
        self.reason = reason
        self.unfenced = unfenced
