"""One thread that cancels what overstays: callbacks armed with a fixed delay, each called once
its time comes unless disarmed first.

All deadlines share one delay, so they come due in the order they were armed: a queue, not a heap.
Disarmed entries leave it from the front as calls end (roughly in order), so it holds about the
calls in flight.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

_ARMED, _DISARMED, _FIRED = 0, 1, 2


class Timer:
    __slots__ = ("callback", "due", "state")

    def __init__(self, due: float, callback: Callable[[], object]) -> None:
        self.due = due
        self.callback = callback
        self.state = _ARMED


class Deadlines:
    """Calls ``callback`` ``seconds`` after :meth:`arm`, unless :meth:`disarm` came first."""

    def __init__(self, seconds: float, name: str) -> None:
        self.seconds = seconds
        self._name = name
        self._cv = threading.Condition()
        self._queue: deque[Timer] = deque()
        self._thread: threading.Thread | None = None
        self._closed = False

    def arm(self, callback: Callable[[], object]) -> Timer:
        timer = Timer(time.monotonic() + self.seconds, callback)
        with self._cv:
            if self._closed:
                timer.state = _DISARMED
                return timer
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._queue.append(timer)
            if len(self._queue) == 1:
                self._cv.notify()
        return timer

    def disarm(self, timer: Timer) -> bool:
        """True if the callback was called (or is being called) already."""
        with self._cv:
            if timer.state == _FIRED:
                return True
            timer.state = _DISARMED
            while self._queue and self._queue[0].state != _ARMED:
                self._queue.popleft()
            return False

    def close(self) -> None:
        """Stop the thread; armed callbacks are not called."""
        with self._cv:
            self._closed = True
            self._queue.clear()
            self._cv.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._closed and not self._queue:
                    self._cv.wait()
                if self._closed:
                    return
                head = self._queue[0]
                wait = head.due - time.monotonic()
                if wait > 0:
                    self._cv.wait(wait)
                    continue
                self._queue.popleft()
                if head.state != _ARMED:
                    continue
                head.state = _FIRED
            try:
                head.callback()
            except Exception:  # noqa: BLE001 - one failed cancel must not stop the others
                pass
