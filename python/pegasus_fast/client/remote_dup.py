"""A duplication running inside a served cluster: the methods of :class:`pegasus_fast.Duplication`."""

from __future__ import annotations

import time

from ..duplication.status import DupStatus, PartitionProgress, stuck_timeout_error
from ..duplication.verify_report import VerifyReport
from ..engine.switchover import SwitchoverReport, check_timeout
from ..errors import DuplicationError, DuplicationNotFoundError, FollowerGapError, InvalidTypeError
from ..net import pegasus_fast_pb2 as pb
from ..net.table_roles import report_from_pb as switchover_report_from_pb
from ..net.verify_wire import report_from_pb as verify_report_from_pb
from ..net.wire import decode_error
from .conn import Conn

#: the deadline of one VerifyDuplication call (a full digest of a large table runs in it)
VERIFY_CALL_TIMEOUT = 24 * 3600.0


class RemoteDuplication:
    """A duplication running inside a served cluster: the methods of :class:`pegasus_fast.Duplication`."""

    def __init__(self, conn: Conn, info: pb.DuplicationInfo) -> None:
        self._c = conn
        self.dupid = info.dupid
        self._update(info)

    def _update(self, info: pb.DuplicationInfo) -> None:
        self.table_name = info.table
        self.remote = info.remote
        self.remote_table = info.remote_table
        self.fail_mode = info.fail_mode
        self.with_checkpoint = info.with_checkpoint
        self.create_time = info.create_time
        self._status = DupStatus(info.status)
        self.error = info.error or None
        self._stuck = info.stuck_reason or None
        #: the error itself, as its class with its fields (None: none, or an older server)
        self.error_detail: BaseException | None = (
            decode_error(info.error_detail, self._c.url, info.error) if info.error_detail else None
        )

    @property
    def remote_path(self) -> str:
        """Where the follower is (its URL); the embedded handle's name for it."""
        return self.remote

    remote_name = ""

    def __repr__(self) -> str:
        return f"RemoteDuplication(dupid={self.dupid}, table={self.table_name!r}, status={self._status})"

    def _ref(self) -> pb.DupRef:
        return pb.DupRef(dupid=self.dupid)

    @property
    def status(self) -> DupStatus:
        try:
            self._update(self._c("QueryDuplication", self._ref()))
        except DuplicationNotFoundError:
            self._status = DupStatus.REMOVED  # a removed duplication is forgotten by the server
            self._stuck = None
        return self._status

    @property
    def stuck_reason(self) -> str | None:
        """Why the duplication cannot progress (no retry of its own takes it away), or None."""
        self.status  # noqa: B018 - asks the server
        return self._stuck

    def wait_for(self, status: DupStatus, timeout: float | None = None) -> None:
        """Block until the duplication reaches ``status``; TimeoutError says where it stands."""
        if not isinstance(status, DupStatus):
            raise InvalidTypeError("status is a DupStatus")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 10.0 if deadline is None else max(0.0, min(10.0, deadline - time.monotonic()))
            info = self._c(
                "WaitDuplication",
                pb.WaitRequest(dupid=self.dupid, status=status.value, timeout_seconds=left),
                timeout=left + self._c.timeout,
            )
            self._update(info)
            if self._status == status:
                return
            if isinstance(self.error_detail, FollowerGapError):
                raise self.error_detail  # its fields say how many decrees the follower lacks
            if self.error:
                raise DuplicationError(f"duplication {self.dupid} failed: {self.error}")
            if self._status == DupStatus.REMOVED:
                raise DuplicationError(f"duplication {self.dupid} was removed")
            if deadline is not None and time.monotonic() >= deadline:
                raise stuck_timeout_error(
                    self.dupid, self.remote, self._status, status, timeout, self.progress()
                )

    def progress(self) -> list[PartitionProgress]:
        r = self._c("DuplicationProgress", self._ref())
        return [
            PartitionProgress(
                pidx=p.pidx,
                checkpoint_state=p.checkpoint_state,
                checkpoint_kind=p.checkpoint_kind,
                checkpoint_decree=p.checkpoint_decree,
                confirmed_decree=p.confirmed_decree,
                last_committed_decree=p.last_committed_decree,
                pending_mutations=p.pending_mutations,
                time_lag_ms=p.time_lag_ms,
                reason=p.reason,
                checkpoint_duration_ms=p.checkpoint_duration_ms,
                copied_bytes=p.copied_bytes,
                copy_total_bytes=p.copy_total_bytes,
                copy_seconds=p.copy_seconds,
                stuck_reason=p.stuck_reason if p.HasField("stuck_reason") else None,
            )
            for p in r.partitions
        ]

    def verify(self, timeout: float | None = None, pidxs: list[int] | None = None) -> VerifyReport:
        """Compare the follower with the source table, live (docs/verify.md); runs on the server."""
        req = pb.VerifyRequest(dupid=self.dupid, timeout_seconds=timeout, pidxs=pidxs or [])
        return verify_report_from_pb(self._c("VerifyDuplication", req, VERIFY_CALL_TIMEOUT))

    def switchover(
        self, timeout: float = 30.0, reverse_remote: str | None = None, reverse_token: str | None = None
    ) -> SwitchoverReport:
        """Hand the table's writes to the follower, nothing lost, and make this cluster follow
        it (docs/switchover.md). ``reverse_remote``: how the follower reaches this cluster
        (default: the URL this client connected to)."""
        timeout = check_timeout(timeout)
        request = pb.SwitchoverRequest(
            dupid=self.dupid, timeout_seconds=timeout, reverse_remote=reverse_remote or self._c.url
        )
        if reverse_token is not None:
            request.reverse_token = reverse_token
        return switchover_report_from_pb(self._c("Switchover", request, timeout=timeout + self._c.timeout))

    def pause(self) -> None:
        self._update(self._c("PauseDuplication", self._ref()))

    def resume(self) -> None:
        self._update(self._c("ResumeDuplication", self._ref()))

    def remove(self) -> None:
        self._update(self._c("RemoveDuplication", self._ref()))

    def update(self, *, remote_token: str | None = None) -> None:
        """Change the token the duplication shows its remote; it resumes where it was."""
        check_update(remote_token)
        req = pb.UpdateDuplicationRequest(dupid=self.dupid, remote_token=remote_token)
        self._update(self._c("UpdateDuplication", req))


def check_update(remote_token: object) -> None:
    """What ``update`` may change, checked before anything is sent."""
    if remote_token is None:
        raise InvalidTypeError("update needs something to change: remote_token")
    if not isinstance(remote_token, str) or not remote_token:
        raise InvalidTypeError("remote_token must be a non-empty str")


__all__ = ["RemoteDuplication", "check_update"]
