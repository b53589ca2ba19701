"""A duplication's state machine: PREPARE checkpoints, APP learning, LOG shipping (DESIGN.md §5).

One thread per duplication drives it. Every status change and every
checkpoint decision is persisted (through the record store it is given)
before it takes effect, so a restart in any state resumes where it stood.
Everything outside duplication reaches it through the ports in ports.py.

Here: the duplication's state, its public face, and its persistence. Its mixins hold the
rest: the driver thread's life cycle and loop (run_loop.py), the steps that loop runs
(phases.py), the partitions' hooks and the retention cap's release (partition_hooks.py),
verification (verify.py), an operator's changes (controls.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..config import Config
from ..errors import DuplicationError, FollowerGapError
from ..logs import Outage, event, get
from ..metrics import Metrics
from . import checkpoints as policy
from . import retention
from .controls import DuplicationControls
from .observed import OldestPending, PartitionLag
from .partition_hooks import DuplicationHooks
from .phases import DuplicationPhases
from .ports import Connector, Follower, SourceId, SourceTables, Tasks
from .record import CkptState, DupRecord, PartitionCheckpoint
from .run_loop import DuplicationRunLoop
from .shipper import PartitionShipper
from .status import TRANSITIONS, DupStatus, PartitionProgress, stuck_timeout_error
from .stuck import Stuck
from .verify import DuplicationVerify

log = get(__name__)

#: LOG persists confirmed decrees at most this often (and when it stops)
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
    #: runs a switchover of a duplication (the engine's: engine/switchover.py), for
    #: Duplication.switchover; None where the cluster offers none
    switchover: Callable[..., Any] | None = None


class Duplication(
    DuplicationPhases, DuplicationVerify, DuplicationControls, DuplicationRunLoop, DuplicationHooks
):
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
        #: update() changed the token: the calls it ended are no failure
        self._reconnect = False
        self._oldest = [OldestPending(p) for p in self.partitions]
        fields = {"dupid": dupid, "table": self.table_name, "remote": self.remote}
        #: the remote unreachable: logged when it begins and once when it ends, with the count
        self._outage = Outage(log, f"duplication {dupid}: remote {self.remote}", cause="remote", **fields)
        #: other errors retried: the same, so a retry loop is two lines, not one a second
        self._retrying = Outage(
            log,
            f"duplication {dupid} to {self.remote}",
            down="failing, retrying",
            up="going again",
            cause="error",
            **fields,
        )
        m = env.metrics
        labels = [(str(dupid), self.table_name, str(i)) for i in range(n)]
        self._m_bytes = [m.dup_shipped_bytes.labels(*x) for x in labels]
        self._m_muts = [m.dup_shipped_mutations.labels(*x) for x in labels]
        self._m_lost = [m.dup_lost_mutations.labels(*x) for x in labels]
        self._m_state = [m.dup_checkpoint_state.labels(*x) for x in labels]
        self._cap = retention.Cap(
            self.partitions, env.config, [m.dup_retained_wal_bytes.labels(*x) for x in labels]
        )
        self._m_released = [m.dup_wal_released.labels(*x) for x in labels]
        self._m_relearn = [m.dup_relearn_required.labels(*x) for x in labels]
        self._stuck = Stuck(m.dup_stuck, self.table_name, dupid, self.with_checkpoint)
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
                if isinstance(self.error, FollowerGapError):
                    raise self.error  # its fields say how many decrees the follower lacks
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
                    time_lag_ms=self._lag_ms(i, confirmed),
                    reason=self._reason(i, c),
                    stuck_reason=self._stuck.of_partition(c.state is CkptState.RELEASED),
                    checkpoint_duration_ms=c.duration_ms,
                    copied_bytes=self._copied[i][0],
                    copy_total_bytes=self._copied[i][1],
                    copy_seconds=self._copy_times[i][1] - self._copy_times[i][0],
                )
            )
        return out

    def _lag_ms(self, i: int, confirmed: int) -> float:
        """Age of partition ``i``'s oldest mutation after ``confirmed`` (observed.py): it grows
        while nothing ships, which the shipper's own figure (set when it ships) does not."""
        sh = self._shippers[i]
        cur = sh.cursor
        hint = (cur.name, cur.offset) if cur is not None and sh.next_decree == confirmed + 1 else None
        lag = self._oldest[i].lag_ms(confirmed, hint)
        return sh.time_lag_ms if lag is None else lag

    def observed(self) -> list[PartitionLag]:
        """Pending mutations, confirmed decree and time lag of each partition shipped here now
        (the metrics' view, read when scraped; nothing once removed)."""
        if self._status == DupStatus.REMOVED:
            return []
        log_state = self._status in (DupStatus.LOG, DupStatus.PAUSE)
        out = []
        for i in self._mine():
            p = self.partitions[i]
            confirmed = self._shippers[i].confirmed if log_state else self._record.partitions[i].confirmed
            out.append(
                PartitionLag(i, confirmed, max(0, p.last_committed - confirmed), self._lag_ms(i, confirmed))
            )
        return out

    def _reason(self, i: int, c: PartitionCheckpoint) -> str:
        if c.state is not CkptState.RELEASED:
            return self._reasons[i]
        return RELEASED_REASON + (f"; {self._reasons[i]}" if self._reasons[i] else "")

    def verify_follower(self) -> Follower:
        """A connection to the follower for a verification, beside the driver's own."""
        return self._env.connector.connect(self.remote, self._record.remote_token or None, self._source_id())

    def switchover(
        self, timeout: float = 30.0, reverse_remote: str | None = None, reverse_token: str | None = None
    ) -> Any:
        """Hand the table's writes to the follower, nothing lost, and make this cluster follow
        it; returns a SwitchoverReport (docs/switchover.md)."""
        if self._env.switchover is None:
            raise DuplicationError("this cluster cannot switch over")
        return self._env.switchover(self.dupid, timeout, reverse_remote, reverse_token)

    def pause(self) -> None:
        self._transition(DupStatus.PAUSE)

    def resume(self) -> None:
        self._transition(DupStatus.LOG)

    def remove(self) -> None:
        self._transition(DupStatus.REMOVED)
        self.stop()
        self._stuck.reset()
        self._pinned = [frozenset()] * len(self._pinned)
        self._env.metrics.forget_duplication(self.dupid, self.table_name, len(self.partitions))
        self._on_removed()

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
        log.info(
            "duplication %s of %s: %s -> %s",
            self.dupid,
            self.table_name,
            old.name,
            new.name,
            extra=event(
                dupid=self.dupid, table=self.table_name, remote=self.remote, old=old.name, new=new.name
            ),
        )
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
        self._stuck.relearning(any(c.state is CkptState.RELEASED for c in self._record.partitions))

    # -- what the steps ask of it ---------------------------------------------

    def _idle(self) -> None:
        """LOG with nothing to ship: wait for a write, or until confirmed decrees are persisted."""
        self._wake.wait(CONFIRM_PERSIST_INTERVAL)

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
