"""A duplication's state machine: PREPARE checkpoints, APP learning, LOG shipping (DESIGN.md §5).

One thread per duplication drives it. Every status change and every
checkpoint decision is persisted in the cluster metadata before it takes
effect, so a restart in any state resumes where it stood.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from ..errors import (
    ClosedError,
    DuplicationError,
    PartitionUnavailableError,
    TableNotFoundError,
    WalCorruptionError,
    WalGapError,
)
from ..node.scheduler import Lane
from . import checkpoints as policy
from .follower import DuplicationGapError, Follower, LocalFollower
from .shipper import PartitionShipper
from .status import TRANSITIONS, DupStatus, PartitionProgress

if TYPE_CHECKING:
    from ..node.cluster import Cluster

log = logging.getLogger(__name__)

#: every live duplication, so a cluster opening wakes those waiting for it
_live: weakref.WeakSet[Duplication] = weakref.WeakSet()
_live_lock = threading.Lock()
CONFIRM_PERSIST_INTERVAL = 1.0


def remote_opened(path: str) -> None:
    with _live_lock:
        waiting = [d for d in _live if d.remote_path == path]
    for d in waiting:
        d.wake()


class _RemoteGone(Exception):
    pass


class Duplication:
    def __init__(self, cluster: Cluster, dupid: int, record: dict[str, Any]) -> None:
        self.cluster = cluster
        self.dupid = dupid
        self.table_name: str = record["table"]
        self.remote_path: str = record["remote_path"]
        self.remote_table: str = record["remote_table"]
        self.remote_name: str = record.get("remote_name", "")
        self.fail_mode: str = record["fail_mode"]
        self.with_checkpoint: bool = record["with_checkpoint"]
        self.create_time: float = record["create_time"]
        self._status = DupStatus(record["status"])
        self.timeline: list[tuple[str, float]] = [tuple(x) for x in record.get("timeline", [])]  # type: ignore[misc]
        self.table = cluster.table(self.table_name)
        n = self.table.partition_count
        parts = record["partitions"]
        self._ckpt: list[dict[str, Any]] = [dict(x) for x in parts]
        self._artifacts: list[policy.Artifact | None] = [None] * n
        self._reasons = [""] * n
        self._shippers = [
            PartitionShipper(p, self.remote_table, cluster.config.duplicate_log_batch_bytes)
            for p in self.table.partitions
        ]
        #: confirmed decrees as persisted; the WAL keeps everything after them
        self._persisted_confirmed = [x["confirmed"] for x in parts]
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
        m = cluster.metric_set
        labels = [(str(dupid), self.table_name, str(i)) for i in range(n)]
        self._m_pending = [m.dup_pending_mutations.labels(*x) for x in labels]
        self._m_confirmed = [m.dup_confirmed_decree.labels(*x) for x in labels]
        self._m_lag = [m.dup_time_lag_ms.labels(*x) for x in labels]
        self._m_bytes = [m.dup_shipped_bytes.labels(*x) for x in labels]
        self._m_muts = [m.dup_shipped_mutations.labels(*x) for x in labels]
        self._m_lost = [m.dup_lost_mutations.labels(*x) for x in labels]
        self._m_state = [m.dup_checkpoint_state.labels(*x) for x in labels]
        for i in range(n):
            self._set_ckpt_metric(i)

    # -- public API -----------------------------------------------------------

    @property
    def status(self) -> DupStatus:
        return self._status

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
                    stuck = [
                        f"{p.pidx}: {p.checkpoint_state}" + (f" ({p.reason})" if p.reason else "")
                        for p in self.progress()
                        if p.reason or p.checkpoint_state not in ("learned",)
                    ]
                    raise TimeoutError(
                        f"duplication {self.dupid} is {self._status}, not {status}, after {timeout}s; "
                        f"partitions: {'; '.join(stuck) or 'none stuck'}"
                    )
                self._changed.wait(left if left is None else min(left, 0.5))

    def progress(self) -> list[PartitionProgress]:
        out = []
        for i, p in enumerate(self.table.partitions):
            c = self._ckpt[i]
            sh = self._shippers[i]
            confirmed = sh.confirmed if self._status in (DupStatus.LOG, DupStatus.PAUSE) else c["confirmed"]
            out.append(
                PartitionProgress(
                    pidx=i,
                    checkpoint_state=c["state"],
                    checkpoint_kind=c.get("kind", ""),
                    checkpoint_decree=c.get("decree", 0),
                    confirmed_decree=confirmed,
                    last_committed_decree=p.last_committed,
                    pending_mutations=max(0, p.last_committed - confirmed),
                    time_lag_ms=sh.time_lag_ms,
                    reason=self._reasons[i],
                )
            )
        return out

    def pause(self) -> None:
        self._transition(DupStatus.PAUSE)

    def resume(self) -> None:
        self._transition(DupStatus.LOG)

    def remove(self) -> None:
        self._transition(DupStatus.REMOVED)
        self.stop()
        for p in self.table.partitions:
            p.remove_listener(self._on_commit)
            p.protected_checkpoints.clear()
        self.cluster.duplications_changed()

    # -- life cycle -----------------------------------------------------------

    def start(self) -> None:
        for p in self.table.partitions:
            p.add_listener(self._on_commit)
        with _live_lock:
            _live.add(self)
        self._thread = threading.Thread(target=self._run, name=f"dup-{self.dupid}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        with self._changed:
            self._changed.notify_all()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join()
        if self._status in (DupStatus.LOG, DupStatus.PAUSE):
            self._persist_confirmed(force=True)
        for p in self.table.partitions:
            p.remove_listener(self._on_commit)
        with _live_lock:
            _live.discard(self)

    def wake(self) -> None:
        self._wake.set()

    def _on_commit(self, decree: int) -> None:
        self._wake.set()

    def retain_after(self, pidx: int) -> int | None:
        """The WAL must keep decrees after this one for this duplication."""
        if self._status == DupStatus.REMOVED:
            return None
        return self._persisted_confirmed[pidx]

    # -- persistence ----------------------------------------------------------

    def _update_record(self, fn: Any) -> None:
        def apply(state: dict[str, Any]) -> None:
            fn(state["duplications"][str(self.dupid)])

        self.cluster.meta.update(apply)

    def _transition(self, new: DupStatus, ckpt: list[dict[str, Any]] | None = None) -> None:
        with self._changed:
            old = self._status
            if old == new:
                return
            if new != DupStatus.REMOVED and new not in TRANSITIONS[old]:
                raise DuplicationError(f"duplication {self.dupid} cannot go from {old} to {new}")
            stamp = (str(new), time.time())

            def change(rec: dict[str, Any]) -> None:
                rec["status"] = new.value
                rec["timeline"].append(list(stamp))
                if ckpt is not None:
                    rec["partitions"] = ckpt

            self._update_record(change)  # persisted before it takes effect
            if ckpt is not None:
                self._adopt_ckpt(ckpt)
            self._status = new
            self.timeline.append(stamp)
            self._changed.notify_all()
        self._wake.set()

    def _persist_confirmed(self, force: bool = False) -> None:
        now = time.monotonic()
        confirmed = [sh.confirmed for sh in self._shippers]
        if confirmed == self._persisted_confirmed or (
            not force and now - self._persist_at < CONFIRM_PERSIST_INTERVAL
        ):
            return

        def change(rec: dict[str, Any]) -> None:
            for part, c in zip(rec["partitions"], confirmed):
                part["confirmed"] = c

        self._update_record(change)
        self._persisted_confirmed = confirmed
        for part, c in zip(self._ckpt, confirmed):
            part["confirmed"] = c
        self._persist_at = now

    def _adopt_ckpt(self, ckpt: list[dict[str, Any]]) -> None:
        """Make persisted per-partition checkpoint records current. Their confirmed
        decrees are what the WAL keeps from, once persisted."""
        self._ckpt = ckpt
        self._persisted_confirmed = [c["confirmed"] for c in ckpt]
        for i in range(len(ckpt)):
            self._set_ckpt_metric(i)

    def _set_ckpt_metric(self, i: int) -> None:
        state = self._ckpt[i]["state"].split("@")[0].split(" ")[0]
        if state in ("pending", "empty", "ready", "copying", "learned"):
            self._m_state[i].state(state)

    # -- the driver thread ----------------------------------------------------

    def _follower(self) -> Follower:
        from ..node.cluster import open_cluster_at

        c = open_cluster_at(self.remote_path)
        if c is None or c.closed:
            raise _RemoteGone()
        return LocalFollower(c)

    def _run(self) -> None:
        backoff = 0.05
        while not self._stopping.is_set():
            status = self._status
            if status == DupStatus.REMOVED:
                return
            try:
                if status == DupStatus.PAUSE:
                    self._wait()
                    continue
                follower = self._follower()
                if not self.connected.is_set():
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
            except DuplicationError as exc:
                if isinstance(exc, DuplicationGapError) or self._stopping.is_set():
                    self._set_reasons(f"retrying after error: {exc}")
                    self._wait(backoff)
                    backoff = min(1.0, backoff * 2)
                    continue
                # a conflict no retry can fix (e.g. an unrelated follower table, #2146)
                self.error = exc
                self._set_reasons(f"failed: {exc}")
                with self._changed:
                    self._changed.notify_all()
                return
            except _RemoteGone:
                self.connected.clear()
                self._set_reasons(f"waiting for remote cluster at {self.remote_path}")
                self._wait()
            except (ClosedError, TableNotFoundError) as exc:
                if self._stopping.is_set():
                    return
                self._set_reasons(f"remote not ready: {exc}")
                self._wait(backoff)
                backoff = min(1.0, backoff * 2)
            except Exception as exc:  # noqa: BLE001 - every failure goes through fail_mode
                if self._stopping.is_set():
                    return
                log.warning("duplication %s: %s", self.dupid, exc)
                if self.fail_mode == "fast":
                    self.error = exc
                    self._set_reasons(f"failed: {exc}")
                    with self._changed:
                        self._changed.notify_all()
                    return
                self._set_reasons(f"retrying after error: {exc}")
                self._wait(backoff)
                backoff = min(1.0, backoff * 2)

    def _wait(self, timeout: float | None = None) -> None:
        self._wake.wait(timeout)
        self._wake.clear()

    def _set_reasons(self, reason: str) -> None:
        self._reasons = [reason] * len(self._reasons)

    def _no_checkpoint(self, follower: Follower) -> list[dict[str, Any]]:
        follower.ensure_table(self.remote_table, self.table.partition_count, self._source_id())
        todo = {}
        for i, c in enumerate(self._ckpt):
            learned, _ = follower.partition_status(self.remote_table, i)
            if not learned:
                todo[i] = c["confirmed"]
        follower.learn_empty(self.remote_table, todo)
        follower.mark_learned(self.remote_table, list(todo))
        return [dict(c, state="learned", kind="none") for c in self._ckpt]

    def _source_id(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster.name,
            "path": self.cluster.path,
            "table": self.table_name,
            "dupid": self.dupid,
        }

    # PREPARE ---------------------------------------------------------------------

    def _make_artifact(self, i: int) -> policy.Artifact:
        art = policy.adaptive(self.table.partitions[i], self.cluster.config.small_partition_max_bytes)
        self.cluster.record_checkpoint(art.kind, art.duration_ms)
        return art

    def _legacy_artifacts(self) -> list[policy.Artifact]:
        """Wait, as Pegasus did before #2054, for checkpoints that cover the log's commit.

        Runs in the driver thread, not in a worker: the wait can be long and the
        checkpoints it waits for come from the workers.
        """
        cfg = self.cluster.config
        parts = self.table.partitions
        needed = [policy.legacy_needed_decree(p) for p in parts]
        arts: list[policy.Artifact | None] = [None] * len(parts)
        forced = [False] * len(parts)
        while not self._stopping.is_set():
            for i, p in enumerate(parts):
                if arts[i] is None:
                    arts[i] = policy.legacy_ready(p, needed[i])
                if arts[i] is not None:
                    self._reasons[i] = ""
                    continue
                if needed[i] > p.last_durable and not forced[i]:
                    # a forced checkpoint only when the log's commit is past the durable decree
                    self.cluster.scheduler.submit_after(
                        cfg.legacy_forced_checkpoint_delay_seconds, p.checkpoint, Lane.NORMAL
                    )
                    forced[i] = True
                self._reasons[i] = f"legacy: waiting for a checkpoint covering decree {needed[i]}"
            if all(a is not None for a in arts):
                return [a for a in arts if a is not None]
            self._stopping.wait(cfg.trigger_checkpoint_retry_interval_ms / 1000.0)
        raise ClosedError("duplication stopped")

    def _prepare(self) -> None:
        n = self.table.partition_count
        if self.cluster.config.checkpoint_policy == "legacy":
            arts = self._legacy_artifacts()
        else:
            futures: list[Future[policy.Artifact]] = [
                self.cluster.scheduler.submit(lambda i=i: self._make_artifact(i), Lane.HIGH) for i in range(n)
            ]
            arts = [f.result() for f in futures]
        for i, art in enumerate(arts):
            self._artifacts[i] = art
            if art.kind == policy.LARGE:
                self.table.partitions[i].protected_checkpoints.add(art.decree)
            self._reasons[i] = ""
        ckpt = [self._ckpt_record(art) for art in arts]
        # confirmed decrees move to the checkpoints only once persisted, so the WAL
        # after them is kept from here on
        self._transition(DupStatus.APP, ckpt)

    @staticmethod
    def _ckpt_record(art: policy.Artifact) -> dict[str, Any]:
        return {
            "kind": art.kind,
            "decree": art.decree,
            "state": "empty" if art.kind == policy.EMPTY else f"ready@{art.decree}",
            "confirmed": art.decree,
            "duration_ms": round(art.duration_ms, 3),
            "size_bytes": art.size_bytes,
        }

    def _record_artifacts(self, pidxs: list[int]) -> None:
        ckpt = [dict(c) for c in self._ckpt]
        for i in pidxs:
            art = self._artifacts[i]
            assert art is not None
            ckpt[i] = self._ckpt_record(art)

        def change(rec: dict[str, Any]) -> None:
            rec["partitions"] = ckpt

        self._update_record(change)
        self._adopt_ckpt(ckpt)

    # APP -------------------------------------------------------------------------

    def _app(self, follower: Follower) -> None:
        follower.ensure_table(self.remote_table, self.table.partition_count, self._source_id())
        n = self.table.partition_count
        learned_now = [follower.partition_status(self.remote_table, i)[0] for i in range(n)]
        remade = [i for i in range(n) if not learned_now[i] and self._artifacts[i] is None]
        if remade:
            # restarted after PREPARE: checkpoint again, at a newer decree, and record
            # that before the follower learns from it
            for i in remade:
                p = self.table.partitions[i]
                if self.cluster.config.checkpoint_policy == "legacy":
                    art = policy.legacy_ready(p, 0) or policy.large(p)
                else:
                    art = self._make_artifact(i)
                self._artifacts[i] = art
                if art.kind == policy.LARGE:
                    p.protected_checkpoints.add(art.decree)
            self._record_artifacts(remade)
        empties: dict[int, int] = {}
        tasks: dict[int, Future[None]] = {}
        ckpt = [dict(c) for c in self._ckpt]
        for i in range(n):
            if learned_now[i]:
                ckpt[i]["state"] = "learned"
                continue
            art = self._artifacts[i]
            assert art is not None
            if art.kind == policy.EMPTY:
                empties[i] = art.decree
            else:
                tasks[i] = self.cluster.scheduler.submit(
                    lambda i=i, art=art: self._learn(follower, i, art), Lane.HIGH
                )
        if empties:
            follower.learn_empty(self.remote_table, empties)
        for f in tasks.values():
            f.result()
        newly = list(empties) + list(tasks)
        if newly:
            follower.mark_learned(self.remote_table, newly)
        for i in newly:
            ckpt[i]["state"] = "learned"
            self._reasons[i] = ""
        self._transition(DupStatus.LOG, ckpt)
        for i in range(n):
            self.table.partitions[i].protected_checkpoints.clear()
            self._artifacts[i] = None

    def _learn(self, follower: Follower, i: int, art: policy.Artifact) -> None:
        if art.kind == policy.SMALL:
            assert art.block is not None
            follower.learn_snapshot(self.remote_table, i, art.decree, art.block)
            return

        def on_progress(done: int, total: int) -> None:
            self._ckpt[i]["state"] = f"copying {done}/{total} bytes"

        assert art.directory is not None
        follower.learn_checkpoint(self.remote_table, i, art.decree, art.directory, art.manifest, on_progress)

    # LOG -------------------------------------------------------------------------

    def _log(self, follower: Follower) -> None:
        for i, sh in enumerate(self._shippers):
            learned, source_decree = follower.partition_status(self.remote_table, i)
            if not learned:
                raise DuplicationError(f"follower partition {i} is not learned")
            sh.restart_at(source_decree + 1)
        while self._status == DupStatus.LOG and not self._stopping.is_set():
            self._wake.clear()
            moved = False
            for i, sh in enumerate(self._shippers):
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
            raise ClosedError(str(exc)) from exc
        if sh.shipped_bytes != before_b:
            self._m_bytes[i].inc(sh.shipped_bytes - before_b)
        if sh.shipped_mutations != before_m:
            self._m_muts[i].inc(sh.shipped_mutations - before_m)
        self._m_pending[i].set(sh.pending())
        self._m_confirmed[i].set(sh.confirmed)
        self._m_lag[i].set(sh.time_lag_ms)
        return moved
