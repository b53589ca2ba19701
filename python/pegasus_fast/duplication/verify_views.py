"""The follower's half of verifying a duplication (docs/verify.md): a view of a follower
partition at exactly the source decree the source compares at, held by id while the source
digests and narrows, and the digests and records read from it.

Every Follower implementation (embedded, served) hands these calls here.
"""

from __future__ import annotations

import secrets
import threading
import time

from ..errors import VerifyPositionError, VerifyTimeoutError, VerifyViewGoneError
from ..storage import digests
from ..storage.digests import Chunk, Record, View
from ..storage.partition import Partition

#: how long a view nobody released is kept (a source that died mid-verification)
LEASE_SECONDS = 120.0
#: views held at once in this process; the oldest goes past it
MAX_VIEWS = 1024
#: records one ``records`` call returns at most
MAX_RECORDS = 1 << 16


class HeldViews:
    """Views a follower holds for verifying sources, by id, each until released or its lease ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._views: dict[str, tuple[View, str, float]] = {}

    def hold(self, view: View, table: str) -> str:
        vid = secrets.token_hex(16)
        now = time.monotonic()
        with self._lock:
            for k, (_, _, until) in list(self._views.items()):
                if until < now:
                    del self._views[k]
            while len(self._views) >= MAX_VIEWS:
                del self._views[next(iter(self._views))]
            self._views[vid] = (view, table, now + LEASE_SECONDS)
        return vid

    def get(self, vid: str) -> View:
        with self._lock:
            held = self._views.get(vid)
        if held is None:
            raise VerifyViewGoneError(vid)
        return held[0]

    def release(self, vid: str) -> None:
        with self._lock:
            self._views.pop(vid, None)


#: the views held in this process (a cluster's follower tables, embedded or served)
VIEWS = HeldViews()


def view_at(partition: Partition, table: str, decree: int, timeout: float | None) -> tuple[str, int, int]:
    """Hold a view of a follower partition once it holds exactly source decree ``decree``
    (-1: as it is now); returns (view id, its own last committed decree, source decree held).

    The source holds its shipping at ``decree`` while it asks, so the follower reaches it and
    stops there; one already past it is a VerifyPositionError.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.0005
    while True:
        view = digests.take_view(partition)
        if decree < 0 or view.source_held == decree:
            return VIEWS.hold(view, table), view.committed, view.source_held
        if view.source_held > decree:
            raise VerifyPositionError(table, partition.pidx, decree, view.source_held)
        if deadline is not None and time.monotonic() >= deadline:
            raise VerifyTimeoutError(table, partition.pidx, decree, view.source_held, float(timeout or 0))
        del view
        time.sleep(delay)  # polled against the deadline: the apply that moves it is the source's
        delay = min(delay * 2, 0.01)


def digest(vid: str, now: int, start: bytes, end: bytes | None) -> list[Chunk]:
    return digests.digest(VIEWS.get(vid), now, start, end)


def records(vid: str, now: int, start: bytes, end: bytes | None, limit: int) -> list[Record]:
    return digests.records(VIEWS.get(vid), now, start, end, min(limit, MAX_RECORDS))


def release(vid: str) -> None:
    VIEWS.release(vid)


__all__ = ["LEASE_SECONDS", "VIEWS", "HeldViews", "digest", "records", "release", "view_at"]
