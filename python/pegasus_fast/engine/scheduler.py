"""One background executor with priority lanes (DESIGN.md §6).

high: duplication and user-requested checkpoints; normal: periodic
checkpoints; low: GC and manual compaction. A worker always takes the
highest-priority ready task, so a high task waits at most for one running
task to finish, never behind queued low-priority work.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from enum import IntEnum
from typing import Any

log = logging.getLogger(__name__)


class Lane(IntEnum):
    HIGH = 0
    NORMAL = 1
    LOW = 2


class Scheduler:
    def __init__(self, workers: int = 2, name: str = "pegasus-fast") -> None:
        self._cond = threading.Condition()
        self._ready: list[tuple[int, int, Callable[[], Any], Future[Any]]] = []
        self._timers: list[tuple[float, int, Lane, Callable[[], Any], Future[Any]]] = []
        self._seq = itertools.count()
        self._stopped = False
        self.started: dict[Lane, int] = {lane: 0 for lane in Lane}
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-worker-{i}", daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[[], Any], lane: Lane = Lane.NORMAL) -> Future[Any]:
        fut: Future[Any] = Future()
        with self._cond:
            if self._stopped:
                fut.cancel()
                return fut
            heapq.heappush(self._ready, (int(lane), next(self._seq), fn, fut))
            self._cond.notify()
        return fut

    def submit_after(self, delay: float, fn: Callable[[], Any], lane: Lane = Lane.NORMAL) -> Future[Any]:
        """Run ``fn`` in ``lane`` once ``delay`` seconds have passed."""
        fut: Future[Any] = Future()
        with self._cond:
            if self._stopped:
                fut.cancel()
                return fut
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), lane, fn, fut))
            self._cond.notify_all()
        return fut

    def every(self, interval: float, fn: Callable[[], Any], lane: Lane) -> None:
        """Run ``fn`` every ``interval`` seconds until the scheduler stops."""

        def run() -> None:
            try:
                fn()
            finally:
                self.submit_after(interval, run, lane)

        self.submit_after(interval, run, lane)

    def pending(self, lane: Lane | None = None) -> int:
        with self._cond:
            return sum(1 for item in self._ready if lane is None or item[0] == lane)

    def _next(self) -> tuple[Callable[[], Any], Future[Any], Lane] | None:
        with self._cond:
            while True:
                if self._stopped:
                    return None
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    _, seq, lane, fn, fut = heapq.heappop(self._timers)
                    heapq.heappush(self._ready, (int(lane), seq, fn, fut))
                if self._ready:
                    lane_no, _, fn, fut = heapq.heappop(self._ready)
                    return fn, fut, Lane(lane_no)
                timeout = self._timers[0][0] - now if self._timers else None
                self._cond.wait(timeout)

    def _work(self) -> None:
        while True:
            item = self._next()
            if item is None:
                return
            fn, fut, lane = item
            if not fut.set_running_or_notify_cancel():
                continue
            self.started[lane] += 1
            try:
                fut.set_result(fn())
            except BaseException as exc:  # a task's failure belongs to its future
                log.debug("background task failed", exc_info=True)
                fut.set_exception(exc)

    def stop(self, wait: bool = True) -> None:
        with self._cond:
            self._stopped = True
            for _, _, _, fut in self._ready:
                fut.cancel()
            for _, _, _, _, fut in self._timers:
                fut.cancel()
            self._ready.clear()
            self._timers.clear()
            self._cond.notify_all()
        if wait:
            current = threading.current_thread()
            for t in self._threads:
                if t is not current:
                    t.join()
