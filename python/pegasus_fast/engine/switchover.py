"""The source's half of a switchover (issue #21 §2, docs/switchover.md): hand a table's writes to
its follower with nothing lost, and make the old source follow the new primary.

1. Fence: the env ``duplication.moved_to`` is persisted first (a restart comes back fenced),
   then every partition's client-write gate goes up under its lock, which gives the last
   decree a client write could take; the WAL is synced so every write logged before the gate
   is durable (its writer is acknowledged; nothing after the gate is). Clients meet
   ``TableMovedError`` naming the new primary. Duplication applies still go through.
2. Catch up: the follower confirms each of those decrees: the duplication ships as always, and
   each lagging partition's short tail is also drained at once, all partitions in parallel
   (duplication/drain.py; the follower applies each source decree once).
3./4. Take over (engine/takeover.py, on the follower through the Follower port): the follower
   checks it holds every one of them, adds the reverse duplication (no checkpoint) back to this
   cluster while still refusing client writes, then takes client writes.
5. The old duplication is removed; this table stays fenced and is adopted by the reverse
   duplication as its follower.

A failure before the follower took over unfences the table and raises ``SwitchoverError``
with the stage and the reason: nothing changed on either side.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..duplication.drain import drain
from ..duplication.ports import Follower, SourceId
from ..duplication.status import DupStatus
from ..errors import (
    InvalidArgumentError,
    InvalidTypeError,
    PegasusFastError,
    RemoteUnavailableError,
    SwitchoverError,
)
from .remotes import is_url
from .roles import MOVED_TO_ENV

#: the embedded cluster (engine/cluster.py), which calls in here: typed loosely, not imported back
Cluster = Any

log = logging.getLogger(__name__)

#: how often the catch-up looks at the follower's confirmed decrees
POLL_SECONDS = 0.001


@dataclass(frozen=True)
class SwitchoverReport:
    table: str
    #: the duplication switched over (removed once the follower took over)
    old_dupid: int
    #: the reverse duplication, on the new primary, back to the old source
    new_dupid: int
    #: where the table's writes go now (the old duplication's remote)
    new_primary: str
    #: acknowledged source writes the new primary does not hold: 0, or the switchover fails
    rpo_mutations: int
    #: from the fence going up to the new primary taking client writes
    write_unavailable_ms: float
    #: of which waiting for the follower to confirm the source's last decrees
    catch_up_ms: float
    #: per partition, the source's last decree when the fence went up
    fenced_decrees: dict[int, int] = field(default_factory=dict)


def check_timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise InvalidTypeError("timeout is a number of seconds")
    if not timeout > 0:
        raise InvalidArgumentError("timeout must be positive")
    return float(timeout)


def fence(cluster: Cluster, table: str, primary: str) -> dict[int, int]:
    """Refuse client writes to ``table`` (TableMovedError naming ``primary``), durably; returns
    each partition's last decree, durable, past which no client write is logged."""
    rec = cluster.followers.record(table)
    cluster.meta.set_envs(table, {**rec.envs, MOVED_TO_ENV: primary})
    decrees: dict[int, int] = cluster.roles.refresh(table)
    for p in cluster.table(table).partitions:
        if decrees.get(p.pidx, 0) > 0:
            p.sync_wal()
    return decrees


def unfence(cluster: Cluster, table: str) -> bool:
    """Take client writes again; False when the fence could not be lifted (it stays up)."""
    try:
        rec = cluster.followers.record(table)
        if rec is not None and MOVED_TO_ENV in rec.envs:
            cluster.meta.set_envs(table, {k: v for k, v in rec.envs.items() if k != MOVED_TO_ENV})
        cluster.roles.refresh(table)
        return True
    except PegasusFastError:
        return False


class SwitchSource(Protocol):
    """What a switchover needs of the cluster switching a table over: an embedded or served one
    (:class:`LocalSource`, below), or one of several nodes (multinode/switchover.py). The
    steps, their order and what a failure undoes are :func:`run`'s, the same for both."""

    table: str
    dupid: int
    #: the follower's address (the new primary), and its table there
    remote: str
    remote_table: str

    def lock(self) -> AbstractContextManager[Any]:
        """Held for the whole switchover (one at a time per cluster)."""

    def not_shipping(self) -> str | None:
        """Why the duplication does not ship now (paused, failed...), None when it does."""

    def moved_to(self) -> str:
        """The table's ``duplication.moved_to`` env ("" for none)."""

    def fence(self) -> dict[int, int]:
        """Fence the table durably (TableMovedError naming :attr:`remote`); returns each
        partition's last decree, durable, past which no client write is logged."""

    def unfence(self) -> bool:
        """Take client writes again; False when the fence could not be lifted."""

    def confirmed(self) -> tuple[dict[int, int], str]:
        """Each partition's decree the follower confirmed, and a reason one is stuck ("")."""

    def drain(self, behind: dict[int, tuple[int, int]]) -> dict[int, int]:
        """Start shipping each lagging partition's tail ``(start, through)`` at once; the dict
        fills in with the decree the follower holds as each answer comes ({}: none drained)."""

    def follower(self) -> tuple[Follower, SourceId]:
        """The follower, connected as the duplication, and the duplication's source id."""

    def remove(self) -> None:
        """Remove the duplication switched over (the follower took over)."""


class LocalSource:
    """The switchover of an embedded or served (single-process) cluster's duplication."""

    def __init__(self, cluster: Cluster, dup: Any) -> None:
        self.cluster = cluster
        self.dup = dup
        self.table: str = dup.table_name
        self.dupid: int = dup.dupid
        self.remote: str = dup.remote
        self.remote_table: str = dup.remote_table

    def lock(self) -> AbstractContextManager[Any]:
        return self.cluster.switch_lock  # type: ignore[no-any-return]

    def not_shipping(self) -> str | None:
        dup = self.dup
        if dup.error is None and dup.status is DupStatus.LOG:
            return None
        return f"the duplication is {dup.status}" + (f": {dup.error}" if dup.error else "")

    def moved_to(self) -> str:
        return self.cluster.roles.role(self.table).moved_to  # type: ignore[no-any-return]

    def fence(self) -> dict[int, int]:
        return fence(self.cluster, self.table, self.remote)

    def unfence(self) -> bool:
        return unfence(self.cluster, self.table)

    def confirmed(self) -> tuple[dict[int, int], str]:
        self.dup.wake()
        rows = self.dup.progress()
        return {r.pidx: r.confirmed_decree for r in rows}, next((r.reason for r in rows if r.reason), "")

    def follower(self) -> tuple[Follower, SourceId]:
        c, dup = self.cluster, self.dup
        token = c.meta.state.duplications[dup.dupid].remote_token or None
        source = SourceId(c.name, c.info().uid, dup.table_name, dup.dupid)
        # as the duplication: the follower takes its calls from its own source only
        return c.remotes.connect(dup.remote, token, source), source

    def drain(self, behind: dict[int, tuple[int, int]]) -> dict[int, int]:
        """Start draining each lagging partition's tail to the follower, all at once
        (duplication/drain.py); the dict fills in with each one's answer as it comes."""
        out: dict[int, int] = {}
        dup = self.dup
        try:
            follower, _source = self.follower()
            cid, _uid = follower.identity()
            batch = min(self.cluster.config.duplicate_log_batch_bytes, follower.max_batch_bytes())
        except Exception:  # noqa: BLE001 - the driver's own shipping still counts; the wait says why
            return out

        def one(pidx: int, start: int, through: int) -> None:
            try:
                out[pidx] = drain(
                    dup.partitions[pidx], follower, dup.remote_table, start, through, batch, cid
                )
            except Exception:  # noqa: BLE001 - as above: the driver ships it, or the wait times out
                pass

        for pidx, (start, through) in behind.items():
            threading.Thread(
                target=one, args=(pidx, start, through), name=f"drain-{pidx}", daemon=True
            ).start()
        return out

    def remove(self) -> None:
        self.dup.remove()


def _catch_up(side: SwitchSource, decrees: dict[int, int], deadline: float) -> None:
    confirmed, reason = side.confirmed()
    behind = {
        pidx: (confirmed.get(pidx, 0) + 1, d) for pidx, d in decrees.items() if confirmed.get(pidx, 0) < d
    }
    drained = side.drain(behind) if behind else {}
    while True:
        held = {i: max(confirmed.get(i, 0), drained.get(i, 0)) for i in decrees}
        if all(held[i] >= d for i, d in decrees.items()):
            return
        problem = side.not_shipping()
        if problem is not None:
            raise SwitchoverError(side.table, side.dupid, "catch_up", problem)
        if time.monotonic() >= deadline:
            late = sorted(i for i, d in decrees.items() if held[i] < d)
            raise SwitchoverError(
                side.table,
                side.dupid,
                "catch_up",
                f"timed out; partitions {late} not confirmed" + (f" ({reason})" if reason else ""),
            )
        time.sleep(POLL_SECONDS)
        confirmed, reason = side.confirmed()


def _take_over(
    side: SwitchSource, decrees: dict[int, int], back: str, back_token: str | None, deadline: float
) -> tuple[int, dict[int, int]]:
    ambiguous = False
    while True:
        try:
            follower, source = side.follower()
            return follower.take_over(side.remote_table, source, decrees, back, back_token)
        except RemoteUnavailableError as exc:
            # a call that ran out of time may have been taken over all the same (a refused
            # connection never reached it); a retry is safe, the take-over answers the same
            ambiguous = ambiguous or exc.reason.startswith(("deadline_exceeded", "cancelled"))
            if time.monotonic() >= deadline:
                if ambiguous:
                    raise TimeoutError(f"the follower's answer to the take-over never came: {exc}") from exc
                raise SwitchoverError(
                    side.table,
                    side.dupid,
                    "take_over",
                    f"the follower is unreachable: {exc.reason or exc}",
                ) from exc
            time.sleep(0.05)


def run(side: SwitchSource, timeout: float, back: str, back_token: str | None) -> SwitchoverReport:
    """The steps of a switchover (the module's docstring) on ``side``; ``back``: how the new
    primary reaches the switching cluster, ``back_token``: what it shows it."""
    table, dupid = side.table, side.dupid
    with side.lock():
        problem = side.not_shipping()
        if problem is not None:
            raise SwitchoverError(table, dupid, "check", f"{problem}, not shipping")
        moved = side.moved_to()
        if moved and moved != side.remote:
            raise SwitchoverError(table, dupid, "check", f"the table moved to {moved} already")
        # fenced for this duplication already: a switchover cut short (the source restarted in
        # the middle of it) is finished by running it again; the take-over answers the same
        if is_url(side.remote) and not is_url(back):
            # a follower in another process cannot open this cluster by its path
            raise SwitchoverError(
                table,
                dupid,
                "check",
                "the follower is served: give reverse_remote, a URL this cluster is served at",
            )
        deadline = time.monotonic() + timeout
        start = time.monotonic()
        try:
            decrees = side.fence()
        except BaseException as exc:
            side.unfence()
            if isinstance(exc, PegasusFastError):
                raise SwitchoverError(table, dupid, "fence", str(exc)) from exc
            raise
        stage = "catch_up"
        try:
            _catch_up(side, decrees, deadline)
            caught_up = time.monotonic()
            stage = "take_over"
            new_dupid, held = _take_over(side, decrees, back, back_token, deadline)
        except SwitchoverError as exc:
            ok = side.unfence()
            raise SwitchoverError(table, dupid, exc.stage, exc.reason, ok) from exc
        except TimeoutError as exc:
            # the take-over's answer never came: the follower may be the primary now, so the
            # source stays fenced (an operator checks the follower, then unfences or not)
            raise SwitchoverError(table, dupid, stage, f"no answer: {exc}", unfenced=False) from exc
        except Exception as exc:
            ok = side.unfence()
            raise SwitchoverError(table, dupid, stage, f"{type(exc).__name__}: {exc}", ok) from exc
        writable = time.monotonic()
        try:
            side.remove()
        except PegasusFastError as exc:  # the follower took over: the switchover stands
            log.warning("switchover of %s: removing duplication %s failed: %s", table, dupid, exc)
    rpo = sum(max(0, d - held.get(i, 0)) for i, d in decrees.items())
    return SwitchoverReport(
        table=table,
        old_dupid=dupid,
        new_dupid=new_dupid,
        new_primary=side.remote,
        rpo_mutations=rpo,
        write_unavailable_ms=(writable - start) * 1000.0,
        catch_up_ms=(caught_up - start) * 1000.0,
        fenced_decrees=dict(decrees),
    )


def check_reverse_remote(reverse_remote: object) -> None:
    if reverse_remote is not None and (not isinstance(reverse_remote, str) or not reverse_remote):
        raise InvalidArgumentError("reverse_remote is a non-empty str")


def switchover(
    cluster: Cluster,
    dupid: int,
    timeout: float = 30.0,
    reverse_remote: str | None = None,
    reverse_token: str | None = None,
) -> SwitchoverReport:
    """See the module docstring. ``reverse_remote``: how the new primary reaches this cluster
    (default: this cluster's path, for a follower in the same process); ``reverse_token``:
    what it shows this cluster."""
    timeout = check_timeout(timeout)
    check_reverse_remote(reverse_remote)
    dup = cluster.duplication(dupid)
    return run(LocalSource(cluster, dup), timeout, reverse_remote or cluster.path, reverse_token)


__all__ = [
    "LocalSource",
    "SwitchSource",
    "SwitchoverReport",
    "check_reverse_remote",
    "fence",
    "run",
    "switchover",
    "unfence",
]
