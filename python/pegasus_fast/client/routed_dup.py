"""A duplication of a multi-node cluster, as its client sees it (``RoutedCluster.add_duplication``).

The duplication is recorded in ZooKeeper and every node runs it for the
partitions it owns, so its status is the least advanced of the owners'
(``INIT < PREPARE < APP < PAUSE < LOG``), and its progress is each
partition's row from its owner. Pause, resume and remove go through the meta
leader, which records them in ZooKeeper and has every node act on them.
"""

from __future__ import annotations

import time

from ..coord.zk import read_dups
from ..duplication.status import DupStatus, PartitionProgress, stuck_timeout_error
from ..duplication.verify_report import VerifyReport, merge
from ..engine.switchover import SwitchoverReport, check_timeout
from ..errors import (
    DuplicationError,
    DuplicationNotFoundError,
    FollowerGapError,
    InvalidTypeError,
    RemoteUnavailableError,
)
from ..net import pegasus_fast_pb2 as pb
from ..net.table_roles import report_from_pb
from .remote_dup import RemoteDuplication, check_update
from .routing import Routing


def _judged(d: RemoteDuplication) -> bool:
    """An owner's run is past its start: out of INIT, failed, or waiting on its remote."""
    return d.status != DupStatus.INIT or bool(d.error) or any(p.reason for p in d.progress())


_ORDER = [DupStatus.REMOVED, DupStatus.INIT, DupStatus.PREPARE, DupStatus.APP, DupStatus.PAUSE, DupStatus.LOG]


class RoutedDuplication:
    def __init__(self, routing: Routing, dupid: int, table: str, remote: str, remote_table: str) -> None:
        self._r = routing
        self.dupid = dupid
        self.table_name = table
        self.remote = remote
        self.remote_table = remote_table
        self.error: str | None = None
        self._stuck: str | None = None

    def __repr__(self) -> str:
        return f"RoutedDuplication(dupid={self.dupid}, table={self.table_name!r}, remote={self.remote!r})"

    @property
    def remote_path(self) -> str:
        return self.remote

    def _owners(self) -> list[tuple[set[int], RemoteDuplication | None]]:
        """Each owning node's view of this duplication, with the partitions it owns."""
        self._r.check_open()
        cfg = self._r.table(self.table_name, fresh=True)
        out = []
        for node in sorted(set(cfg.owners())):
            mine = {p.pidx for p in cfg.partitions if p.owner == node}
            url = self._r.routes.url_of(node)
            if url is None:
                raise RemoteUnavailableError(node, "not live in ZooKeeper")
            conn = self._r.conn(url)
            try:
                info = conn("QueryDuplication", pb.DupRef(dupid=self.dupid))
            except DuplicationNotFoundError:
                info = None  # not started on that node yet (it syncs within moments)
            out.append((mine, None if info is None else RemoteDuplication(conn, info)))
        return out

    @property
    def status(self) -> DupStatus:
        doc = read_dups(self._r.routes.zk).get(self.dupid)
        if doc is None or doc.status == "removed":
            return DupStatus.REMOVED
        owners = self._owners()
        errors = [d.error for _, d in owners if d is not None and d.error]
        self.error = errors[0] if errors else None
        stuck = [d.stuck_reason for _, d in owners if d is not None and d.stuck_reason]
        self._stuck = stuck[0] if stuck else None
        return min((DupStatus.INIT if d is None else d.status for _, d in owners), key=_ORDER.index)

    @property
    def stuck_reason(self) -> str | None:
        """Why the duplication cannot progress on some owner of a partition, or None."""
        self.status  # noqa: B018 - asks each owner
        return self._stuck

    def wait_for(self, status: DupStatus, timeout: float | None = None) -> None:
        """Block until every owner of a partition has the duplication in ``status``."""
        if not isinstance(status, DupStatus):
            raise InvalidTypeError("status is a DupStatus")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            now = self.status
            if now == status:
                return
            if self.error:
                raise DuplicationError(f"duplication {self.dupid} failed: {self.error}")
            if now == DupStatus.REMOVED:
                raise DuplicationError(f"duplication {self.dupid} was removed")
            if deadline is not None and time.monotonic() >= deadline:
                raise stuck_timeout_error(self.dupid, self.remote, now, status, timeout, self.progress())
            time.sleep(0.02)

    def progress(self) -> list[PartitionProgress]:
        rows: dict[int, PartitionProgress] = {}
        for mine, d in self._owners():
            if d is None:
                raise DuplicationError(f"duplication {self.dupid} has not started on every node yet")
            for p in d.progress():
                if p.pidx in mine:
                    rows[p.pidx] = p
        return [rows[i] for i in sorted(rows)]

    def verify(self, timeout: float | None = None) -> VerifyReport:
        """Compare the follower with the source table, live (docs/verify.md): each owner compares
        the partitions it owns and ships."""
        reports = []
        for mine, d in self._owners():
            if d is None:
                raise DuplicationError(f"duplication {self.dupid} has not started on every node yet")
            reports.append(d.verify(timeout, sorted(mine)))
        return merge(reports)

    def judge_start(self, timeout: float) -> None:
        """A duplication without checkpoint just added: wait (at most ``timeout``) until every
        owner runs it past INIT, or one refused it; a refusal (FollowerGapError, each node's
        partitions summed) removes it and is raised here."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            owners = self._owners()
            gaps = [
                d.error_detail
                for _, d in owners
                if d is not None and isinstance(d.error_detail, FollowerGapError)
            ]
            if gaps:
                self.remove()
                parts = sorted(p for g in gaps for p in g.partitions)
                raise FollowerGapError(self.dupid, self.remote_table, sum(n for _, n in parts), parts)
            if all(d is not None and _judged(d) for _, d in owners):
                return
            time.sleep(0.05)

    def _set(self, method: str) -> None:
        self._r.meta(method, pb.DupRef(dupid=self.dupid), 120.0)

    def switchover(
        self, timeout: float = 30.0, reverse_remote: str | None = None, reverse_token: str | None = None
    ) -> SwitchoverReport:
        """Hand the table's writes to the follower, nothing lost, and make this cluster follow
        it (docs/switchover.md), run by the meta leader (multinode/switchover.py).
        ``reverse_remote``: how the follower reaches this cluster (default: its zk:// URL)."""
        timeout = check_timeout(timeout)
        self._r.check_open()
        request = pb.SwitchoverRequest(dupid=self.dupid, timeout_seconds=timeout)
        if reverse_remote is not None:
            request.reverse_remote = reverse_remote
        if reverse_token is not None:
            request.reverse_token = reverse_token
        conn = self._r.leader()
        return report_from_pb(conn("Switchover", request, timeout=timeout + conn.timeout))

    def pause(self) -> None:
        self._set("PauseDuplication")

    def resume(self) -> None:
        self._set("ResumeDuplication")

    def remove(self) -> None:
        self._set("RemoveDuplication")

    def update(self, *, remote_token: str | None = None) -> None:
        """A new token for the duplication: recorded in ZooKeeper by the meta leader; every
        node goes on with it from where it was."""
        check_update(remote_token)
        req = pb.UpdateDuplicationRequest(dupid=self.dupid, remote_token=remote_token)
        self._r.meta("UpdateDuplication", req, 120.0)


__all__ = ["RoutedDuplication"]
