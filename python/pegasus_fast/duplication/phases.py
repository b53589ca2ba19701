"""A duplication's phases, each a step the driver thread runs (driver.py): PREPARE makes
each partition's checkpoint, APP has the follower learn them, LOG ships the WAL after them
(DESIGN.md §5); without a checkpoint, the follower only learns where shipping starts.

A mixin of ``Duplication`` (driver.py), which provides what is declared below.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, wait
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import (
    ClosedError,
    DuplicationError,
    DuplicationWalReleasedError,
    FollowerGapError,
    PartitionUnavailableError,
    WalCorruptionError,
    WalGapError,
)
from ..storage.partition import Partition
from . import checkpoints as policy
from . import retention
from .lanes import ShipLanes
from .ports import Chunk, Follower, SourceId
from .record import CkptState, DupRecord, PartitionCheckpoint
from .shipper import PartitionShipper
from .status import STUCK_TABLE_DROPPED, DupStatus
from .stuck import Stuck


class DuplicationPhases:
    dupid: int
    table_name: str
    remote_table: str
    fail_mode: str
    with_checkpoint: bool
    partitions: list[Partition]
    lost_mutations: int
    _env: Any
    _record: DupRecord
    _status: DupStatus
    _artifacts: list[policy.Artifact | None]
    _pinned: list[frozenset[int]]
    _copying: list[tuple[int, int] | None]
    _copied: list[tuple[int, int]]
    _copy_times: list[tuple[float, float]]
    _reasons: list[str]
    _shippers: list[PartitionShipper]
    #: shipping the LOG phase's partitions, while it runs
    _lanes: ShipLanes | None = None
    #: the follower's partition statuses as APP leaves them (each partition it learned: learned
    #: at its checkpoint's decree), for the LOG phase that follows at once instead of asking
    #: again (run_loop.py hands them over only to the very next round)
    _handoff: list[tuple[bool, int]] | None = None
    _persisted_confirmed: list[int]
    _stopping: threading.Event
    _wake: threading.Event
    _changed: threading.Condition
    _cap: retention.Cap
    _stuck: Stuck
    _retrying: Any
    _m_bytes: list[Any]
    _m_muts: list[Any]
    _m_lost: list[Any]

    if TYPE_CHECKING:  # what Duplication provides

        def _transition(self, new: DupStatus, ckpt: list[PartitionCheckpoint] | None = None) -> None: ...

        def _save(self, record: DupRecord) -> None: ...

        def _adopt_ckpt(self) -> None: ...

        def _persist_confirmed(self, force: bool = False) -> None: ...

        def _idle(self) -> None: ...

        def _set_ckpt_metric(self, i: int) -> None: ...

        def _source_id(self) -> SourceId: ...

        def _released(self) -> list[int]: ...

        def _mine(self) -> list[int]: ...

    # without a checkpoint ----------------------------------------------------------

    def _no_checkpoint(self, follower: Follower) -> list[PartitionCheckpoint]:
        if self._released():
            raise DuplicationWalReleasedError(self.dupid, self._released())
        follower.ensure_table(self.remote_table, len(self.partitions), self._source_id(), False)
        todo = {}
        statuses = follower.partition_statuses(self.remote_table, len(self.partitions))
        mine = set(self._mine())
        held = {}
        for i, (c, (learned, decree)) in enumerate(zip(self._record.partitions, statuses)):
            if not learned and i in mine:
                todo[i] = c.confirmed
                held[i] = decree
        # a table that holds source decrees followed this source table before (ensure_table
        # takes over no other's): shipping from here would leave out those in between
        continued = any(held.values())
        missing = [[i, todo[i] - h] for i, h in held.items() if continued and h < todo[i]]
        if missing and not self._record.accept_gap:
            raise FollowerGapError(self.dupid, self.remote_table, sum(n for _, n in missing), missing)
        follower.learn_empty(self.remote_table, todo)
        follower.mark_learned(self.remote_table, list(todo))
        return [replace(c, state=CkptState.LEARNED, kind="none") for c in self._record.partitions]

    # PREPARE ---------------------------------------------------------------------

    def _make_artifact(self, i: int) -> policy.Artifact:
        art = policy.adaptive(self.partitions[i], self._env.config.small_partition_max_bytes)
        self._env.metrics.record_checkpoint(art.kind, art.duration_ms)
        return art

    def _legacy_artifacts(self, which: list[int]) -> list[policy.Artifact]:
        """Wait, as Pegasus did before #2054, for checkpoints that cover the log's commit.

        Runs in the driver thread, not in a worker: the wait can be long and the
        checkpoints it waits for come from the workers.
        """
        cfg = self._env.config
        parts = [self.partitions[i] for i in which]
        needed = [policy.legacy_needed_decree(p) for p in parts]
        arts: list[policy.Artifact | None] = [None] * len(parts)
        forced = [False] * len(parts)
        while not self._stopping.is_set():
            for i, p in enumerate(parts):
                if arts[i] is None:
                    arts[i] = policy.legacy_ready(p, needed[i])
                if arts[i] is not None:
                    self._reasons[which[i]] = ""
                    continue
                if needed[i] > p.last_durable and not forced[i]:
                    # a forced checkpoint only when the log's commit is past the durable decree
                    self._env.tasks.later(cfg.legacy_forced_checkpoint_delay_seconds, p.checkpoint)
                    forced[i] = True
                self._reasons[which[i]] = f"legacy: waiting for a checkpoint covering decree {needed[i]}"
            if all(a is not None for a in arts):
                return [a for a in arts if a is not None]
            self._stopping.wait(cfg.trigger_checkpoint_retry_interval_ms / 1000.0)
        raise ClosedError("duplication stopped")

    def _hold(self, i: int, art: policy.Artifact) -> None:
        self._artifacts[i] = art
        if art.kind == policy.LARGE:
            self._pinned[i] = frozenset({art.decree})

    def _prepare(self) -> None:
        # a partition released before (the remote was down since INIT) pins nothing: hold
        # the WAL from here until its checkpoint's decree is recorded
        mine = self._mine()
        with self._cap.hold(mine):
            if self._env.config.checkpoint_policy == "legacy":
                arts = self._legacy_artifacts(mine)
            else:
                futures: list[Future[policy.Artifact]] = [
                    self._env.tasks.high(lambda i=i: self._make_artifact(i)) for i in mine
                ]
                wait(futures)  # all of them end before a failure is raised and PREPARE retried
                arts = [f.result() for f in futures]
            ckpt = list(self._record.partitions)
            for i, art in zip(mine, arts):
                self._hold(i, art)
                self._reasons[i] = ""
                ckpt[i] = self._ckpt_record(art)
            # confirmed decrees move to the checkpoints only once persisted, so the WAL
            # after them is kept from here on
            self._transition(DupStatus.APP, ckpt)

    @staticmethod
    def _ckpt_record(art: policy.Artifact) -> PartitionCheckpoint:
        return PartitionCheckpoint(
            kind=art.kind,
            decree=art.decree,
            state=CkptState.EMPTY if art.kind == policy.EMPTY else CkptState.READY,
            confirmed=art.decree,
            duration_ms=art.duration_ms,
            size_bytes=art.size_bytes,
        )

    # APP -------------------------------------------------------------------------

    def _app(self, follower: Follower) -> None:
        n = len(self.partitions)
        follower.ensure_table(self.remote_table, n, self._source_id(), True)
        released = self._released()
        if released:
            # the follower stops serving them (durably) before it learns again: what it has
            # is a prefix with a gap after it, never served as complete
            follower.restart_learning(self.remote_table, released)
        statuses = follower.partition_statuses(self.remote_table, n)
        learned_now = [learned for learned, _ in statuses]
        mine = set(self._mine())
        remade = [i for i in range(n) if i in mine and not learned_now[i] and self._artifacts[i] is None]
        if remade:
            # restarted after PREPARE, or released past the retention cap: checkpoint again,
            # at a newer decree, and record that before the follower learns from it
            with self._cap.hold(remade):
                arts = {}
                for i in remade:
                    p = self.partitions[i]
                    if self._env.config.checkpoint_policy == "legacy":
                        # the WAL is kept only after the persisted confirmed decree (after the
                        # held one for a released partition): an older checkpoint leaves a gap
                        held = self._cap.holding[i] or 0
                        floor = held if i in released else self._persisted_confirmed[i]
                        art = policy.legacy_ready(p, floor) or policy.large(p)
                    else:
                        art = self._make_artifact(i)
                    self._hold(i, art)
                    arts[i] = art
                with self._changed:
                    ckpt = list(self._record.partitions)
                    for i, art in arts.items():
                        ckpt[i] = self._ckpt_record(art)
                    self._save(self._record.with_partitions(ckpt))
                    self._adopt_ckpt()
        empties: dict[int, int] = {}
        tasks: dict[int, Future[None]] = {}
        for i in range(n):
            if learned_now[i] or i not in mine:
                continue  # (another node's partition is its owner's to learn)
            art = self._artifacts[i]
            assert art is not None
            if art.kind == policy.EMPTY:
                empties[i] = art.decree
            else:
                tasks[i] = self._env.tasks.high(lambda i=i, art=art: self._learn(follower, i, art))
        try:
            if empties:
                follower.learn_empty(self.remote_table, empties)
        finally:
            # every learning task ends before a failure is raised: a retry must never run a
            # second learn of the same partition alongside one still going
            wait(tasks.values())
        for f in tasks.values():
            f.result()
        newly = list(empties) + list(tasks)
        if newly:
            follower.mark_learned(self.remote_table, newly)
        for i in newly:
            self._reasons[i] = ""
        ckpt = [
            replace(c, state=CkptState.LEARNED) if learned_now[i] or i in newly else c
            for i, c in enumerate(self._record.partitions)
        ]
        handoff = list(statuses)
        for i in newly:
            art = self._artifacts[i]
            assert art is not None
            handoff[i] = (True, art.decree)  # what it learned is its source decree now
        self._transition(DupStatus.LOG, ckpt)
        self._handoff = handoff
        self._artifacts = [None] * n
        self._pinned = [frozenset()] * n

    def _learn(self, follower: Follower, i: int, art: policy.Artifact) -> None:
        if art.kind == policy.SMALL:
            assert art.block is not None
            follower.learn_snapshot(self.remote_table, i, art.decree, art.block)
            return
        assert art.directory is not None
        offsets = follower.checkpoint_offsets(self.remote_table, i, art.decree, art.manifest)
        total = sum(e[1] for e in art.manifest)
        done = sum(min(offsets.get(name, 0), size) for name, size, _ in art.manifest)
        chunks = policy.read_chunks(art.directory, art.manifest, offsets)
        try:
            follower.learn_checkpoint(
                self.remote_table, i, art.decree, art.manifest, self._counted(i, chunks, done, total)
            )
        finally:
            self._copying[i] = None
            self._set_ckpt_metric(i)

    def _counted(self, i: int, chunks: Iterator[Chunk], done: int, total: int) -> Iterator[Chunk]:
        """The chunks, counted into this partition's progress as the follower takes them."""
        started = time.monotonic()
        self._copying[i] = self._copied[i] = (done, total)
        self._copy_times[i] = (started, started)
        self._set_ckpt_metric(i)
        for chunk in chunks:
            yield chunk
            done += len(chunk.data)
            self._copying[i] = self._copied[i] = (done, total)
            self._copy_times[i] = (started, time.monotonic())

    # LOG -------------------------------------------------------------------------

    def wake(self, pidx: int | None = None) -> None:
        """Something may have changed (``pidx``: a durable write to that partition, which
        wakes its shipping lane alone while the LOG phase runs)."""
        lanes = self._lanes
        if pidx is None or lanes is None:
            self._wake.set()
        else:
            lanes.wake(pidx)

    def _log(self, follower: Follower, statuses: list[tuple[bool, int]] | None = None) -> None:
        """``statuses``: the follower's, as the APP phase just left them (None: asked here)."""
        released = self._released()
        if released:
            if not self.with_checkpoint:
                raise DuplicationWalReleasedError(self.dupid, released)
            # nothing is shipped after a freed gap: the released partitions learn a fresh
            # checkpoint in APP (the others wait the while, their confirmed decrees kept)
            self._persist_confirmed(force=True)
            self._transition(DupStatus.APP)
            return
        mine = self._mine()
        if statuses is None:
            statuses = follower.partition_statuses(self.remote_table, len(self._shippers))
        self._stuck.clear(STUCK_TABLE_DROPPED)  # the follower table is there
        for i in mine:
            learned, source_decree = statuses[i]
            if not learned:
                if self._env.scope(self.table_name) is None:
                    raise DuplicationError(f"follower partition {i} is not learned")
                # it came here (a move) before its owner had it learned: learn it from here
                self._transition(DupStatus.APP)
                return
            # from what the follower holds durably: a partition that moved here carries on
            # exactly where its last owner's shipping stopped
            self._shippers[i].follower_at(source_decree)

        def ship(i: int) -> bool:
            if self._status != DupStatus.LOG or self._stopping.is_set():
                return False
            return self._ship(follower, i, self._shippers[i])

        # the partitions ship concurrently, each woken by its own durable writes (lanes.py);
        # this thread persists their confirmed decrees and watches for what ends the phase
        lanes = ShipLanes(f"dup-{self.dupid}", mine, ship, self._wake.set)
        self._lanes = lanes
        try:
            while self._status == DupStatus.LOG and not self._stopping.is_set() and lanes.error is None:
                if any(self._cap.wanted):
                    return  # the driver loop records the release, then comes back
                if self._mine() != mine:
                    return  # a partition moved here or away: start over from the follower's decrees
                self._wake.clear()
                lanes.wake_all()  # anything a durable write's wake-up missed (a lane that just failed)
                self._persist_confirmed()
                self._idle()
        finally:
            self._lanes = None
            error = lanes.close()
        if error is not None:
            raise error

    def _ship(self, follower: Follower, i: int, sh: PartitionShipper) -> bool:
        before_b, before_m = sh.shipped_bytes, sh.shipped_mutations
        try:
            moved = sh.ship_once(follower)
            self._reasons[i] = ""
        except (WalGapError, WalCorruptionError) as exc:
            if self.fail_mode != "skip":
                raise
            lost = sh.skip_to_available()
            if lost == 0 and isinstance(exc, WalCorruptionError):
                raise
            follower.advance(self.remote_table, i, sh.confirmed)
            with self._changed:  # the lanes ship partitions in threads of their own
                self.lost_mutations += lost
            self._m_lost[i].inc(lost)
            self._reasons[i] = f"skipped {lost} unreadable mutations"
            moved = True
        except PartitionUnavailableError as exc:
            self._reasons[i] = f"follower partition unavailable: {exc.state}"
            raise
        if sh.shipped_bytes != before_b:
            self._m_bytes[i].inc(sh.shipped_bytes - before_b)
        if sh.shipped_mutations != before_m:
            self._m_muts[i].inc(sh.shipped_mutations - before_m)
        self._retrying.ok()
        return moved


__all__ = ["DuplicationPhases"]
