"""The driver thread of a duplication: started and stopped, and its loop. Each pass connects
to the remote, checks who it is the first time, and runs the step of the current status
(phases.py); a failure is classified: a refused token leaves the duplication stuck, an
unavailable remote is waited on, anything else is retried or fails it by its Retry class.

A mixin of ``Duplication`` (driver.py), which provides what is declared below.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ..errors import (
    AuthenticationError,
    DuplicationError,
    FollowerTableNotFoundError,
    PermissionDeniedError,
    RemoteUnavailableError,
    Retry,
    retry_of,
)
from ..logs import Outage, event, get
from . import retention
from .ports import Follower, SourceId
from .record import DupRecord, PartitionCheckpoint
from .shipper import PartitionShipper
from .status import STUCK_AUTH, STUCK_PERMISSION, STUCK_TABLE_DROPPED, DupStatus
from .stuck import Stuck

#: the driver's logger, as before this loop had a module of its own: its records name
#: component duplication.driver (operators and tests filter on it)
log = get("pegasus_fast.duplication.driver")

#: the longest wait between tries of a remote that refuses the duplication's token
#: (``update(remote_token=...)`` wakes the driver at once)
AUTH_RETRY_MAX = 5.0


class DuplicationRunLoop:
    dupid: int
    table_name: str
    remote: str
    fail_mode: str
    with_checkpoint: bool
    connected: threading.Event
    error: BaseException | None
    _env: Any
    _record: DupRecord
    _status: DupStatus
    _reasons: list[str]
    _shippers: list[PartitionShipper]
    _stopping: threading.Event
    _wake: threading.Event
    _changed: threading.Condition
    _thread: threading.Thread | None
    _follower: Follower | None
    _reconnect: bool
    _cap: retention.Cap
    _stuck: Stuck
    _handoff: list[tuple[bool, int]] | None
    _outage: Outage
    _retrying: Outage

    if TYPE_CHECKING:  # what Duplication provides

        def _transition(self, new: DupStatus, ckpt: list[PartitionCheckpoint] | None = None) -> None: ...

        def _persist_confirmed(self, force: bool = False) -> None: ...

        def _release_past_cap(self, stopped: bool = False) -> None: ...

        def _source_id(self) -> SourceId: ...

        def _no_checkpoint(self, follower: Follower) -> list[PartitionCheckpoint]: ...

        def _prepare(self) -> None: ...

        def _app(self, follower: Follower) -> None: ...

        def _log(self, follower: Follower, statuses: list[tuple[bool, int]] | None = None) -> None: ...

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

    # -- the driver thread ----------------------------------------------------

    def _run(self) -> None:
        backoff = 0.05
        while not self._stopping.is_set():
            status = self._status
            if status == DupStatus.REMOVED:
                return
            # what APP learned, for the LOG round right after it only: a round in between (a
            # failure, a retry) may have met a follower that changed meanwhile
            handoff, self._handoff = self._handoff, None
            try:
                if any(self._cap.wanted):
                    self._release_past_cap()
                if status == DupStatus.PAUSE:
                    self._wait()
                    continue
                self._reconnect = False
                follower = self._env.connector.connect(
                    self.remote, self._record.remote_token or None, self._source_id()
                )
                self._follower = follower
                if self._stopping.is_set():  # begin_stop() may have missed it
                    follower.cancel()
                if not self.connected.is_set():
                    self._check_identity(follower)
                    self._stuck.clear(STUCK_AUTH, STUCK_PERMISSION)
                    self._set_reasons("")
                    self.connected.set()
                    self._outage.ok()
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
                    self._log(follower, handoff)
                backoff = 0.05
                self._retrying.ok()
            except AuthenticationError as exc:
                # the remote refuses the token (rotated there): stuck, not failed, until an
                # update gives the new one or the remote takes this one again
                if self._stopping.is_set():
                    return
                self.connected.clear()
                self._retrying.failed(f"{type(exc).__name__}: {exc}")
                reason = STUCK_PERMISSION if isinstance(exc, PermissionDeniedError) else STUCK_AUTH
                self._stuck.set(reason)
                self._set_reasons(reason)
                self._wait(backoff)
                backoff = min(AUTH_RETRY_MAX, backoff * 2)
            except RemoteUnavailableError as exc:
                if self._stopping.is_set():
                    return
                if self._reconnect:
                    continue  # update() ended the calls made with the old token
                self.connected.clear()
                self._outage.failed(exc.reason or exc)
                if isinstance(exc, FollowerTableNotFoundError) and self._status in (
                    DupStatus.LOG,
                    DupStatus.PAUSE,
                ):
                    self._stuck.set(STUCK_TABLE_DROPPED)
                self._set_reasons(f"remote unavailable: {exc.reason or exc}")
                # an embedded remote wakes us when it opens; a served one is polled with backoff
                self._wait(backoff)
                backoff = min(1.0, backoff * 2)
            except Exception as exc:  # noqa: BLE001 - every failure is classified below
                if self._stopping.is_set():
                    return
                retry = retry_of(exc)
                if retry is Retry.PERMANENT or (retry is Retry.FAILURE and self.fail_mode == "fast"):
                    log.error(
                        "duplication %s of %s failed: %s",
                        self.dupid,
                        self.table_name,
                        exc,
                        extra=event(
                            dupid=self.dupid,
                            table=self.table_name,
                            remote=self.remote,
                            status=self._status.name,
                            error=type(exc).__name__,
                        ),
                    )
                    self.error = exc
                    self._set_reasons(f"failed: {exc}")
                    with self._changed:
                        self._changed.notify_all()
                    return
                self._set_reasons(f"retrying after error: {exc}")
                self._retrying.failed(f"{type(exc).__name__}: {exc}")
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
        with self._changed:
            self._changed.notify_all()  # wait_started watches them


__all__ = ["AUTH_RETRY_MAX", "DuplicationRunLoop"]
