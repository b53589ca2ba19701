"""Ships a duplication's partitions concurrently, each in its own order (issue #21 §5).

One driver thread calling the follower partition after partition made every
write wait for the round trips (and the follower's fsyncs) of the partitions
shipped before it. Here a few worker threads ship: a partition is woken by its
own durable write (no driver hop), is taken by one worker at a time (so its
batches go, and are confirmed, in decree order), ships one batch, and goes to
the back of the queue while it has more, so a partition with a backlog does
not hold back the others.

A failure stops every lane: the driver raises it once the lanes are closed (no
batch in flight), and its retry starts over from the follower's decrees.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from enum import Enum

#: threads shipping one duplication's partitions, at most
MAX_WORKERS = 8


class _Lane(Enum):
    IDLE = 0
    QUEUED = 1
    RUNNING = 2
    #: woken while a worker ships it: looked at again before it goes idle
    DIRTY = 3


class ShipLanes:
    """Workers shipping ``pidxs``: ``ship(pidx)`` ships one batch of a partition and says
    whether anything moved; ``on_failed`` is told (from a worker) when one raised."""

    def __init__(
        self,
        name: str,
        pidxs: list[int],
        ship: Callable[[int], bool],
        on_failed: Callable[[], None],
        workers: int = MAX_WORKERS,
    ) -> None:
        self._ship = ship
        self._on_failed = on_failed
        self._lanes = dict.fromkeys(pidxs, _Lane.IDLE)
        self._ready: deque[int] = deque()
        self._cond = threading.Condition()
        self._closing = False
        #: the first failure of a worker; the lanes stop shipping once there is one
        self.error: BaseException | None = None
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-ship{k}", daemon=True)
            for k in range(max(1, min(workers, len(pidxs))))
        ]
        for t in self._threads:
            t.start()
        self.wake_all()

    def wake(self, pidx: int) -> None:
        """Partition ``pidx`` may have something to ship."""
        with self._cond:
            self._wake(pidx)

    def wake_all(self) -> None:
        with self._cond:
            for pidx in self._lanes:
                self._wake(pidx)

    def _wake(self, pidx: int) -> None:
        state = self._lanes.get(pidx)
        if state is None or self._closing:
            return
        if state is _Lane.IDLE:
            self._lanes[pidx] = _Lane.QUEUED
            self._ready.append(pidx)
            self._cond.notify()
        elif state is _Lane.RUNNING:
            self._lanes[pidx] = _Lane.DIRTY

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._ready and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                pidx = self._ready.popleft()
                self._lanes[pidx] = _Lane.RUNNING
            failed: BaseException | None = None
            moved = False
            try:
                moved = self._ship(pidx)
            except BaseException as exc:  # noqa: BLE001 - handed to the driver, which raises it
                failed = exc
            with self._cond:
                if failed is not None:
                    self._lanes[pidx] = _Lane.IDLE
                    if self.error is None:
                        self.error = failed
                    self._closing = True
                    self._cond.notify_all()
                elif (moved or self._lanes[pidx] is _Lane.DIRTY) and not self._closing:
                    self._lanes[pidx] = _Lane.QUEUED
                    self._ready.append(pidx)  # this worker or another takes it next
                    self._cond.notify()
                else:
                    self._lanes[pidx] = _Lane.IDLE
            if failed is not None:
                self._on_failed()

    def close(self) -> BaseException | None:
        """Stop: wait for the batches in flight (no lane ships after this returns); returns
        the first failure, if any."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join()
        return self.error


__all__ = ["MAX_WORKERS", "ShipLanes"]
