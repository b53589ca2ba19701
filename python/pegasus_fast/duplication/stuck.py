"""Why a duplication cannot progress, when no retry of its own takes the reason away, and the
``dup_stuck{table,dupid,reason}`` metric that shows it (1 while stuck, absent otherwise).

A duplication-wide reason (the remote refuses its token, its follower table was dropped) is
set by the driver when the call fails and cleared when a call gets past it; a partition whose
WAL went past the retention cap is stuck re-learning until it has learned again.
"""

from __future__ import annotations

import threading
from typing import Any

from .status import STUCK_RELEARN, STUCK_RELEASED


class Stuck:
    def __init__(self, gauge: Any, table: str, dupid: int, can_relearn: bool = True) -> None:
        self._gauge = gauge
        #: what a partition released past the retention cap is stuck on
        self._released = STUCK_RELEARN if can_relearn else STUCK_RELEASED
        self._labels = (table, str(dupid))
        self._lock = threading.Lock()
        #: the duplication-wide reason (None: none)
        self.reason: str | None = None
        self._relearning = False
        #: the reasons the metric shows now
        self._shown: set[str] = set()

    def set(self, reason: str) -> None:
        with self._lock:
            self.reason = reason
            self._show()

    def clear(self, *reasons: str) -> None:
        """Clear the duplication-wide reason if it is one of ``reasons`` (any, when none given)."""
        with self._lock:
            if self.reason is not None and (not reasons or self.reason in reasons):
                self.reason = None
                self._show()

    def relearning(self, any_released: bool) -> None:
        """Whether some partition waits to learn again past the retention cap."""
        with self._lock:
            self._relearning = any_released
            self._show()

    def of_partition(self, released: bool) -> str | None:
        """A partition's stuck reason, as progress shows it."""
        return self.reason or (self._released if released else None)

    def overall(self) -> str | None:
        return self.reason or (self._released if self._relearning else None)

    def reset(self) -> None:
        """The duplication is gone: the metric shows nothing of it."""
        with self._lock:
            self.reason = None
            self._relearning = False
            self._show()

    def _show(self) -> None:
        want = {r for r in (self.reason, self._released if self._relearning else None) if r}
        for gone in self._shown - want:
            try:
                self._gauge.remove(*self._labels, gone)
            except KeyError:
                pass
        for reason in want - self._shown:
            self._gauge.labels(*self._labels, reason).set(1)
        self._shown = want


__all__ = ["Stuck"]
