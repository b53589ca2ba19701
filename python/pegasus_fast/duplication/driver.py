"""A duplication's state machine: PREPARE checkpoints, APP learning, LOG shipping (DESIGN.md §5).

One thread per duplication drives it. Every status change and every
checkpoint decision is persisted (through the record store it is given)
before it takes effect, so a restart in any state resumes where it stood.
Everything outside duplication reaches it through the ports in ports.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from dataclasses import dataclass, replace

from ..config import Config
from ..errors import (
    ClosedError,
    DuplicationError,
    DuplicationWalReleasedError,
    PartitionUnavailableError,
    RemoteUnavailableError,
    Retry,
    WalCorruptionError,
    WalGapError,
    retry_of,
)
from ..metrics import Metrics
from . import checkpoints as policy
from . import retention
from .ports import Chunk, Connector, Follower, SourceId, SourceTables, Tasks
from .record import CkptState, DupRecord, PartitionCheckpoint
from .shipper import PartitionShipper
from .status import TRANSITIONS, DupStatus, PartitionProgress, stuck_timeout_error

log = logging.getLogger(__name__)

CONFIRM_PERSIST_INTERVAL = 1.0
#: progress's reason for a partition whose WAL went past the retention cap
RELEASED_REASON = "wal released past retention cap; will re-learn"


@dataclass(frozen=True)
class DupEnv:
    """What a cluster gives its duplications (the node layer builds it)."""

    config: Config
    metrics: Metrics
    tables: SourceTables
    tasks: Tasks
    connector: Connector
    #: persists a duplication's record durably before the caller goes on
    save: Callable[[int, DupRecord], None]
    cluster_name: str
    cluster_uid: str
    cluster_id: int
    #: the partitions of a table this process ships (None: all of them). A node of a
    #: multi-node cluster ships only those it owns; the others are their owners' to ship.
    scope: Callable[[str], frozenset[int] | None] = lambda table: None


class Duplication:
    def __init__(self, dupid: int, record: DupRecord, env: DupEnv, on_removed: Callable[[], None]) -> None:
        self.dupid = dupid
        self._env = env
        self._record = record
        self._on_removed = on_removed
        self.table_name = record.table
        self.remote = record.remote
        self.remote_name = record.remote_name
        self.remote_table = record.remote_table
        self.fail_mode = record.fail_mode
        self.with_checkpoint = record.with_checkpoint
        self.create_time = record.create_time
        self._status = record.status
        self.timeline: list[tuple[str, float]] = list(record.timeline)
        self.partitions = env.tables.partitions(self.table_name)
        n = len(self.partitions)
        self._artifacts: list[policy.Artifact | None] = [None] * n
        #: checkpoint decrees being copied from: GC leaves them (PartitionHooks.pinned_checkpoints)
        self._pinned: list[frozenset[int]] = [frozenset()] * n
        #: (copied, total) bytes of a large checkpoint being copied, for progress
        self._copying: list[tuple[int, int] | None] = [None] * n
        #: (bytes copied, bytes to copy) of each partition's latest checkpoint copy, kept after it
        #: ends so a progress display polling now and then still sees a fast copy complete
        self._copied: list[tuple[int, int]] = [(0, 0)] * n
        #: (monotonic start, monotonic latest chunk) of that copy, for its rate
        self._copy_times: list[tuple[float, float]] = [(0.0, 0.0)] * n
        self._reasons = [""] * n
        self._shippers = [
            PartitionShipper(p, self.remote_table, env.config.duplicate_log_batch_bytes)
            for p in self.partitions
        ]
        #: confirmed decrees as persisted; the WAL keeps everything after them
        self._persisted_confirmed = [c.confirmed for c in record.partitions]
        for sh, c in zip(self._shippers, self._persisted_confirmed):
            sh.restart_at(c + 1)
        self._persist_at = 0.0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        #: set while the driver has reached its remote cluster
        self.connected = threading.Event()
        self._changed = threading.Condition()
        self.error: BaseException | None = None
        self.lost_mutations = 0
        self._thread: threading.Thread | None = None
        #: the follower the driver is calling, given up when the duplication stops
        self._follower: Follower | None = None
        m = env.metrics
        labels = [(str(dupid), self.table_name, str(i)) for i in range(n)]
        self._m_pending = [m.dup_pending_mutations.labels(*x) for x in labels]
        self._m_confirmed = [m.dup_confirmed_decree.labels(*x) for x in labels]
        self._m_lag = [m.dup_time_lag_ms.labels(*x) for x in labels]
        self._m_bytes = [m.dup_shipped_bytes.labels(*x) for x in labels]
        self._m_muts = [m.dup_shipped_mutations.labels(*x) for x in labels]
        self._m_lost = [m.dup_lost_mutations.labels(*x) for x in labels]
        self._m_state = [m.dup_checkpoint_state.labels(*x) for x in labels]
        self._cap = retention.Cap(
            self.partitions, env.config, [m.dup_retained_wal_bytes.labels(*x) for x in labels]
        )
        self._m_released = [m.dup_wal_released.labels(*x) for x in labels]
        self._m_relearn = [m.dup_relearn_required.labels(*x) for x in labels]
        for i in range(n):
            self._set_ckpt_metric(i)

    # -- public API -----------------------------------------------------------

    @property
    def status(self) -> DupStatus:
        return self._status

    @property
    def remote_path(self) -> str:
        """Where the follower is (the path of an embedded cluster); kept for callers of the first API."""
        return self.remote

    def __repr__(self) -> str:
        return f"Duplication(dupid={self.dupid}, table={self.table_name!r}, status={self._status})"

    def wait_for(self, status: DupStatus, timeout: float | None = None) -> None:
        """Block until the duplication reaches ``status``; TimeoutError says which partitions are stuck."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while self._status != status:
                if self.error is not None:
                    raise DuplicationError(f"duplication {self.dupid} failed: {self.error}") from self.error
                if self._status == DupStatus.REMOVED:
                    raise DuplicationError(f"duplication {self.dupid} was removed")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise stuck_timeout_error(
                        self.dupid, self.remote, self._status, status, timeout, self.progress()
                    )
                self._changed.wait(left if left is None else min(left, 0.5))

    def progress(self) -> list[PartitionProgress]:
        out = []
        parts = self._record.partitions
        for i, p in enumerate(self.partitions):
            c = parts[i]
            sh = self._shippers[i]
            confirmed = sh.confirmed if self._status in (DupStatus.LOG, DupStatus.PAUSE) else c.confirmed
            copying = self._copying[i]
            state = f"copying {copying[0]}/{copying[1]} bytes" if copying is not None else c.describe()
            out.append(
                PartitionProgress(
                    pidx=i,
                    checkpoint_state=state,
                    checkpoint_kind=c.kind,
                    checkpoint_decree=c.decree,
                    confirmed_decree=confirmed,
                    last_committed_decree=p.last_committed,
                    pending_mutations=max(0, p.last_committed - confirmed),
                    time_lag_ms=sh.time_lag_ms,
                    reason=self._reason(i, c),
                    checkpoint_duration_ms=c.duration_ms,
                    copied_bytes=self._copied[i][0],
                    copy_total_bytes=self._copied[i][1],
                    copy_seconds=self._copy_times[i][1] - self._copy_times[i][0],
                )
            )
        return out

    def _reason(self, i: int, c: PartitionCheckpoint) -> str:
        if c.state is not CkptState.RELEASED:
            return self._reasons[i]
        return RELEASED_REASON + (f"; {self._reasons[i]}" if self._reasons[i] else "")

    def pause(self) -> None:
        self._transition(DupStatus.PAUSE)

    def resume(self) -> None:
        self._transition(DupStatus.LOG)

    def remove(self) -> None:
        self._transition(DupStatus.REMOVED)
        self.stop()
        self._pinned = [frozenset()] * len(self._pinned)
        self._on_removed()

    # -- what the source partitions ask of it (through the catalog's PartitionHooks) ---------

    def retain_after(self, pidx: int) -> int | None:
        """The WAL must keep decrees after this one for this duplication (None: nothing).

        Past the retention cap this asks the driver to release the partition and
        keeps the WAL until that is recorded; a released partition holds nothing
        but a fresh checkpoint being made.
        """
        if self._status == DupStatus.REMOVED:
            return None
        scope = self._env.scope(self.table_name)
        if scope is not None and pidx not in scope:
            return None  # another node ships it: this copy of its WAL is not needed for it
        released = self._record.partitions[pidx].state is CkptState.RELEASED
        bound = self._cap.bound(pidx, released, self._persisted_confirmed[pidx])
        if self._cap.wanted[pidx]:
            self._wake.set()
            if self.error is not None:
                # stopped for good: no driver thread records it, and a failed duplication
                # must not fill the disk either (it stays failed until removed)
                try:
                    self._release_past_cap(stopped=True)
                except Exception as exc:  # noqa: BLE001 - not recorded: the WAL stays held
                    log.warning("duplication %s: recording a release failed: %s", self.dupid, exc)
                    return bound
                if self._record.partitions[pidx].state is CkptState.RELEASED:
                    return self._cap.holding[pidx]
        return bound

    def pinned(self, pidx: int) -> frozenset[int]:
        return self._pinned[pidx]

    def wake(self) -> None:
        self._wake.set()

    # -- life cycle -----------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"dup-{self.dupid}", daemon=True)
        self._thread.start()

    def begin_stop(self) -> None:
        """Ask the driver to stop, and give up the follower calls it waits on (a checkpoint copy
        over a slow link would otherwise hold a close or a remove for as long as it takes);
        :meth:`stop` then waits for it."""
        self._stopping.set()
        self._wake.set()
        with self._changed:
            self._changed.notify_all()
        follower = self._follower
        if follower is not None:
            follower.cancel()

    def stop(self) -> None:
        self.begin_stop()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join()
        if self._status in (DupStatus.LOG, DupStatus.PAUSE):
            self._persist_confirmed(force=True)

    # -- the retention cap ------------------------------------------------------

    def _release_past_cap(self, stopped: bool = False) -> None:
        """Record (durably) that partitions past the cap must re-learn; GC frees their WAL after.

        Runs in the driver thread between steps (so no step in flight holds an artifact
        or a record it would save over this one), or in GC once the driver has stopped
        for good.
        """
        wanted = self._cap.take_wanted()
        if self._status == DupStatus.REMOVED or (self._status == DupStatus.PREPARE and not stopped):
            return  # PREPARE replaces every partition's record with a fresh checkpoint anyway
        with self._changed:
            parts = list(self._record.partitions)
            released = []
            for i in wanted:
                c = parts[i]
                r = None if c.state is CkptState.RELEASED else self._cap.past(i, self._persisted_confirmed[i])
                if r is None:
                    continue
                parts[i] = replace(c, state=CkptState.RELEASED)
                released.append((i, r))
            if not released:
                return
            self._save(self._record.with_partitions(parts))
        for i, r in released:
            log.warning(
                "duplication %s: partition %s kept %d WAL bytes (oldest %.0fs) past the retention cap; "
                "released, the follower will re-learn",
                self.dupid,
                i,
                r.bytes,
                r.age_seconds,
            )
            # an artifact made before is of no use: its WAL is gone, and a fresh one is made
            self._artifacts[i] = None
            self._pinned[i] = frozenset()
            self._m_released[i].inc()
            self._set_ckpt_metric(i)

    # -- persistence ----------------------------------------------------------

    def _save(self, record: DupRecord) -> None:
        """Persist, then make current: nothing takes effect before it is durable."""
        self._env.save(self.dupid, record)
        self._record = record

    def _transition(self, new: DupStatus, ckpt: list[PartitionCheckpoint] | None = None) -> None:
        with self._changed:
            old = self._status
            if old == new:
                return
            if new != DupStatus.REMOVED and new not in TRANSITIONS[old]:
                raise DuplicationError(f"duplication {self.dupid} cannot go from {old} to {new}")
            at = time.time()
            record = self._record.with_status(new, at)
            if ckpt is not None:
                record = record.with_partitions(ckpt)
            self._save(record)
            if ckpt is not None:
                self._adopt_ckpt()
            self._status = new
            self.timeline.append((str(new), at))
            self._changed.notify_all()
        self._wake.set()

    def _persist_confirmed(self, force: bool = False) -> None:
        now = time.monotonic()
        confirmed = [sh.confirmed for sh in self._shippers]
        if confirmed == self._persisted_confirmed or (
            not force and now - self._persist_at < CONFIRM_PERSIST_INTERVAL
        ):
            return
        # under the status lock: a pause or resume saved meanwhile must not be overwritten
        # by a record read before it
        with self._changed:
            parts = [replace(p, confirmed=c) for p, c in zip(self._record.partitions, confirmed)]
            self._save(self._record.with_partitions(parts))
        self._persisted_confirmed = confirmed
        self._persist_at = now

    def _adopt_ckpt(self) -> None:
        """The persisted per-partition records are current: their confirmed decrees are
        what the WAL keeps from."""
        self._persisted_confirmed = [c.confirmed for c in self._record.partitions]
        for i in range(len(self.partitions)):
            self._set_ckpt_metric(i)

    def _set_ckpt_metric(self, i: int) -> None:
        state = "copying" if self._copying[i] is not None else self._record.partitions[i].state.value
        self._m_state[i].state(state)
        self._m_relearn[i].set(1 if state == CkptState.RELEASED.value else 0)

    # -- the driver thread ----------------------------------------------------

    def _run(self) -> None:
        backoff = 0.05
        while not self._stopping.is_set():
            status = self._status
            if status == DupStatus.REMOVED:
                return
            try:
                if any(self._cap.wanted):
                    self._release_past_cap()
                if status == DupStatus.PAUSE:
                    self._wait()
                    continue
                follower = self._env.connector.connect(self.remote, self._record.remote_token or None)
                self._follower = follower
                if self._stopping.is_set():  # begin_stop() may have missed it
                    follower.cancel()
                if not self.connected.is_set():
                    self._check_identity(follower)
                    self._set_reasons("")
                    self.connected.set()
                if status == DupStatus.INIT:
                    self._transition(
                        DupStatus.PREPARE if self.with_checkpoint else DupStatus.LOG,
                        None if self.with_checkpoint else self._no_checkpoint(follower),
                    )
                elif status == DupStatus.PREPARE:
                    self._prepare()
                elif status == DupStatus.APP:
                    self._app(follower)
                elif status == DupStatus.LOG:
                    self._log(follower)
                backoff = 0.05
            except RemoteUnavailableError as exc:
                if self._stopping.is_set():
                    return
                self.connected.clear()
                self._set_reasons(f"remote unavailable: {exc.reason or exc}")
                # an embedded remote wakes us when it opens; a served one is polled with backoff
                self._wait(backoff)
                backoff = min(1.0, backoff * 2)
            except Exception as exc:  # noqa: BLE001 - every failure is classified below
                if self._stopping.is_set():
                    return
                retry = retry_of(exc)
                if retry is Retry.PERMANENT or (retry is Retry.FAILURE and self.fail_mode == "fast"):
                    if not isinstance(exc, DuplicationError):
                        log.warning("duplication %s: %s", self.dupid, exc)
                    self.error = exc
                    self._set_reasons(f"failed: {exc}")
                    with self._changed:
                        self._changed.notify_all()
                    return
                self._set_reasons(f"retrying after error: {exc}")
                if retry is Retry.FAILURE:
                    log.warning("duplication %s: %s", self.dupid, exc)
                self._wait(backoff)
                backoff = min(1.0, backoff * 2)

    def _check_identity(self, follower: Follower) -> None:
        cid, uid = follower.identity()
        batch = min(self._env.config.duplicate_log_batch_bytes, follower.max_batch_bytes())
        for sh in self._shippers:
            sh.remote_cluster_id = cid
            sh.batch_bytes = batch
        if uid == self._env.cluster_uid:
            raise DuplicationError(f"duplication {self.dupid}: {self.remote} is this cluster itself")
        if cid == self._env.cluster_id:
            raise DuplicationError(
                f"duplication {self.dupid}: {self.remote} has this cluster's id {cid}; "
                "last-writer-wins could not break ties (configure Config(cluster_id=...))"
            )

    def _wait(self, timeout: float | None = None) -> None:
        self._wake.wait(timeout)
        self._wake.clear()

    def _set_reasons(self, reason: str) -> None:
        self._reasons = [reason] * len(self._reasons)

    def _source_id(self) -> SourceId:
        return SourceId(self._env.cluster_name, self._env.cluster_uid, self.table_name, self.dupid)

    def _released(self) -> list[int]:
        mine = set(self._mine())
        return [
            i for i, c in enumerate(self._record.partitions) if c.state is CkptState.RELEASED and i in mine
        ]

    def _mine(self) -> list[int]:
        """The partitions this process ships now (DupEnv.scope)."""
        scope = self._env.scope(self.table_name)
        n = len(self.partitions)
        return list(range(n)) if scope is None else sorted(i for i in scope if 0 <= i < n)

    def _no_checkpoint(self, follower: Follower) -> list[PartitionCheckpoint]:
        if self._released():
            raise DuplicationWalReleasedError(self.dupid, self._released())
        follower.ensure_table(self.remote_table, len(self.partitions), self._source_id(), False)
        todo = {}
        statuses = follower.partition_statuses(self.remote_table, len(self.partitions))
        mine = set(self._mine())
        for i, (c, (learned, _)) in enumerate(zip(self._record.partitions, statuses)):
            if not learned and i in mine:
                todo[i] = c.confirmed
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
        learned_now = [learned for learned, _ in follower.partition_statuses(self.remote_table, n)]
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
        self._transition(DupStatus.LOG, ckpt)
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

    def _log(self, follower: Follower) -> None:
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
        statuses = follower.partition_statuses(self.remote_table, len(self._shippers))
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
            self._shippers[i].restart_at(source_decree + 1)
        while self._status == DupStatus.LOG and not self._stopping.is_set():
            if any(self._cap.wanted):
                return  # the driver loop records the release, then comes back
            if self._mine() != mine:
                return  # a partition moved here or away: start over from the follower's decrees
            self._wake.clear()
            moved = False
            for i in mine:
                sh = self._shippers[i]
                if self._status != DupStatus.LOG or self._stopping.is_set():
                    break
                moved |= self._ship(follower, i, sh)
            self._persist_confirmed()
            if not moved:
                self._wake.wait(CONFIRM_PERSIST_INTERVAL)

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
        self._m_pending[i].set(sh.pending())
        self._m_confirmed[i].set(sh.confirmed)
        self._m_lag[i].set(sh.time_lag_ms)
        return moved
