"""The background scheduler's priority lanes (DESIGN.md §6).

The scheduler is pure Python and calls no backend function, so these tests
do not use the ``backend`` fixture (running them twice would test nothing new).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from pegasus_fast.engine.scheduler import Lane, Scheduler

TASK = 0.02  # seconds one low-priority task runs


@pytest.fixture
def sched() -> Iterator[Scheduler]:
    s = Scheduler(2, name="test")
    try:
        yield s
    finally:
        s.stop()


def test_high_task_starts_within_one_running_task_when_low_lane_is_saturated(sched: Scheduler) -> None:
    low = [sched.submit(lambda: time.sleep(TASK), Lane.LOW) for _ in range(300)]
    time.sleep(TASK * 2.5)  # both workers busy, hundreds of low tasks queued
    assert sched.pending(Lane.LOW) > 250
    started = threading.Event()
    t_start: list[float] = []
    submitted = time.monotonic()
    high = sched.submit(lambda: (t_start.append(time.monotonic()), started.set()), Lane.HIGH)
    assert started.wait(5)
    delay = t_start[0] - submitted
    assert delay < 3 * TASK, f"HIGH waited {delay * 1000:.1f} ms behind low work"
    high.result(timeout=1)
    assert sched.pending(Lane.LOW) > 200  # it did not wait for the queue to drain
    assert sum(f.done() for f in low) < 50


def test_lanes_run_in_priority_order_then_fifo(sched: Scheduler) -> None:
    gate = threading.Event()
    blockers = [sched.submit(gate.wait, Lane.LOW) for _ in range(2)]  # occupy both workers
    time.sleep(0.05)
    order: list[str] = []
    lock = threading.Lock()

    def rec(tag: str) -> None:
        with lock:
            order.append(tag)

    futs = []
    for tag, lane in [
        ("low1", Lane.LOW),
        ("normal1", Lane.NORMAL),
        ("high1", Lane.HIGH),
        ("low2", Lane.LOW),
        ("high2", Lane.HIGH),
        ("normal2", Lane.NORMAL),
    ]:
        futs.append(sched.submit(lambda tag=tag: rec(tag), lane))
    assert sched.pending() == 6 and sched.pending(Lane.HIGH) == 2
    gate.set()
    for f in futs + blockers:
        f.result(timeout=5)
    # two workers may interleave neighbours, but no lower lane starts before a higher one is taken
    assert order.index("high1") < order.index("normal1") and order.index("high2") < order.index("normal1")
    assert order.index("normal2") < order.index("low1") and order.index("normal1") < order.index("low2")
    assert sched.started[Lane.HIGH] == 2 and sched.started[Lane.NORMAL] == 2


def test_results_exceptions_timers_and_stop() -> None:
    s = Scheduler(1, name="t2")
    gate = threading.Event()
    try:
        assert s.submit(lambda: 41 + 1).result(timeout=5) == 42

        def boom() -> None:
            raise ValueError("task failed")

        with pytest.raises(ValueError, match="task failed"):
            s.submit(boom, Lane.HIGH).result(timeout=5)
        start = time.monotonic()
        assert s.submit_after(0.1, lambda: time.monotonic(), Lane.LOW).result(timeout=5) - start >= 0.095
        ticks: list[float] = []
        s.every(0.02, lambda: ticks.append(time.monotonic()), Lane.LOW)
        time.sleep(0.2)
        assert len(ticks) >= 4
        s.submit(gate.wait)  # the only worker is busy: what follows stays queued
        time.sleep(0.02)
        queued = s.submit(lambda: None, Lane.LOW)
        later = s.submit_after(60, lambda: None)
    finally:
        threading.Timer(0.05, gate.set).start()
        s.stop()
    assert queued.cancelled() and later.cancelled()
    assert s.submit(lambda: None).cancelled()  # a stopped scheduler takes nothing
