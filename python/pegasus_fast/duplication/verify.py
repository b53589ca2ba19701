"""Verifying a duplication, live (docs/verify.md): per partition, the source picks a decree D
and takes its view at D while it holds its shipping of that partition at D; the follower
takes its view once it has applied exactly through D; both digest their live records in key
order (storage/digests.py) and compare; a partition that differs is narrowed to its first
differing key from the chunks that differ, reading only those records.

A mixin of ``Duplication`` (driver.py), which provides what is declared below.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..errors import DuplicationError, InvalidArgumentError
from ..records import decode_key, now_pegasus_seconds
from ..storage import digests
from ..storage.digests import Chunk, Record, View
from ..storage.partition import Partition
from .ports import Follower
from .shipper import PartitionShipper
from .status import DupStatus
from .verify_report import Difference, PartitionVerify, RecordState, VerifyReport

#: master–master: how long to look for a moment where neither side writes, when no timeout is given
QUIET_SECONDS = 10.0
#: master–master: the pause between two looks
QUIET_RETRY = 0.05


def _first_chunk_differing(mine: list[Chunk], theirs: list[Chunk]) -> int:
    for k, (a, b) in enumerate(zip(mine, theirs)):
        if a != b:
            return k
    return min(len(mine), len(theirs))


def _state(r: Record | None) -> RecordState | None:
    return None if r is None else RecordState(r[2], r[1])


def first_difference(mine: list[Record], theirs: list[Record]) -> Difference | None:
    """The first key, in key order, where two sorted record lists differ."""
    i = j = 0
    while i < len(mine) or j < len(theirs):
        a = mine[i] if i < len(mine) else None
        b = theirs[j] if j < len(theirs) else None
        if a is not None and b is not None and a[0] == b[0]:
            if a != b:
                return Difference(*decode_key(a[0]), _state(a), _state(b))
            i, j = i + 1, j + 1
        elif b is None or (a is not None and a[0] < b[0]):
            assert a is not None
            return Difference(*decode_key(a[0]), _state(a), None)
        else:
            return Difference(*decode_key(b[0]), None, _state(b))
    return None


class DuplicationVerify:
    dupid: int
    table_name: str
    remote_table: str
    partitions: list[Partition]
    _shippers: list[PartitionShipper]
    _wake: threading.Event

    if TYPE_CHECKING:  # what Duplication provides

        @property
        def status(self) -> DupStatus: ...

        def _mine(self) -> list[int]: ...

        def verify_follower(self) -> Follower: ...

    def verify(self, timeout: float | None = None, pidxs: list[int] | None = None) -> VerifyReport:
        """Compare the follower with this table, live (writes go on); see docs/verify.md.

        ``timeout``: for each partition, how long the follower may take to reach the decree
        it is compared at (None: no limit; VerifyTimeoutError past it), and, master–master,
        how long to look for a quiet moment. ``pidxs``: the partitions to compare (default:
        every one this process ships)."""
        if self.status != DupStatus.LOG:
            raise DuplicationError(
                f"duplication {self.dupid} is {self.status.value}, not DS_LOG: nothing to verify"
            )
        mine = self._mine()
        todo = mine if pidxs is None else list(pidxs)
        for i in todo:
            if i not in mine:
                raise InvalidArgumentError(f"partition {i!r} of {self.table_name!r} is not shipped here")
        started = time.monotonic()
        now = now_pegasus_seconds()
        # the table takes the other side's writes too (it has noted source decrees of its own)
        both_write = any(max(p.source_decree, p.source_seen) > 0 for p in (self.partitions[i] for i in todo))
        follower = self.verify_follower()
        out = []
        with ThreadPoolExecutor(1, thread_name_prefix="verify-follower") as pool:
            for i in todo:
                if both_write:
                    out.append(self._verify_quiet(follower, pool, i, now, timeout))
                else:
                    out.append(self._verify_at(follower, pool, i, now, timeout))
        return VerifyReport(
            self.dupid,
            self.table_name,
            self.remote_table,
            all(p.equal for p in out),
            all(p.quiet for p in out),
            now,
            time.monotonic() - started,
            tuple(out),
        )

    def _views(self, follower: Follower, i: int, timeout: float | None) -> tuple[View, str, int]:
        """This partition's view at its last decree D and the follower's at D (its id and its own
        last committed decree): shipping holds at D until the follower has its view."""
        p, sh = self.partitions[i], self._shippers[i]
        with p.lock:
            view = digests.take_view(p)
            sh.hold = view.committed
        try:
            vid, committed, _ = follower.verify_view(self.remote_table, i, view.committed, timeout)
        finally:
            sh.hold = None
            self._wake.set()
        return view, vid, committed

    def _verify_at(
        self,
        follower: Follower,
        pool: ThreadPoolExecutor,
        i: int,
        now: int,
        timeout: float | None,
    ) -> PartitionVerify:
        view, vid, _ = self._views(follower, i, timeout)
        try:
            return self._compare(follower, pool, i, now, view, vid)
        finally:
            follower.verify_release(vid)

    def _compare(
        self, follower: Follower, pool: ThreadPoolExecutor, i: int, now: int, view: View, vid: str
    ) -> PartitionVerify:
        theirs_f = pool.submit(follower.verify_digest, vid, now, b"", None)
        mine = digests.digest(view, now)
        theirs = theirs_f.result()
        records, follower_records = sum(c[1] for c in mine), sum(c[1] for c in theirs)
        if mine == theirs:
            return PartitionVerify(i, True, view.committed, records, follower_records)
        # The first chunk that differs holds the first difference, at or before the lower of
        # its two last keys that are cuts (before it, both sides hold the same records and cut alike).
        k = _first_chunk_differing(mine, theirs)
        start = mine[k - 1][0] + b"\x00" if k else b""
        ends = [c[k] for c in (mine, theirs) if k < len(c)]
        # a side's last chunk ends at its last record, not at a cut: no bound on where the other's go
        cuts = [c[k][0] for c in (mine, theirs) if k < len(c) - 1]
        end = min(cuts) + b"\x00" if cuts else None
        limit = max(c[1] for c in ends) + 1
        theirs_r = pool.submit(follower.verify_records, vid, now, start, end, limit)
        diff = first_difference(digests.records(view, now, start, end, limit), theirs_r.result())
        return PartitionVerify(i, False, view.committed, records, follower_records, diff)

    def _verify_quiet(
        self, follower: Follower, pool: ThreadPoolExecutor, i: int, now: int, timeout: float | None
    ) -> PartitionVerify:
        """Master–master: compare at a moment neither side writes. The views are taken as in
        master–slave; they show one moment of both when this side has everything the other
        wrote (its source decree held is the other's last decree) and neither side has written
        since, checked after the digests."""
        deadline = time.monotonic() + (QUIET_SECONDS if timeout is None else timeout)
        p = self.partitions[i]
        reason = "both sides kept taking writes: no quiet moment to compare at"
        while True:
            view, vid, committed = self._views(follower, i, timeout)
            try:
                if view.source_held == committed:
                    result = self._compare(follower, pool, i, now, view, vid)
                    if p.last_committed == view.committed and (
                        self._follower_committed(follower, i, timeout) == committed
                    ):
                        return result
            finally:
                follower.verify_release(vid)
            if time.monotonic() >= deadline:
                return PartitionVerify(i, False, view.committed, 0, 0, None, quiet=False, reason=reason)
            time.sleep(QUIET_RETRY)

    def _follower_committed(self, follower: Follower, i: int, timeout: float | None) -> int:
        vid, committed, _ = follower.verify_view(self.remote_table, i, -1, timeout)
        follower.verify_release(vid)
        return committed


__all__ = ["QUIET_SECONDS", "DuplicationVerify", "first_difference"]
