"""When each shipped write became visible on an embedded follower, for the lag benchmarks.

A reader thread polls every follower partition's applied source decree every 50 us (polling
without a pause would starve the shipper of the GIL) and records, per (pidx, source decree),
the first poll that saw it: a figure is late by up to one poll.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class AppliedPoller:
    """``poll = AppliedPoller(follower_table).start()``; ``poll.applied_at[(pidx, decree)]``; ``poll.stop()``."""

    def __init__(self, follower: Any) -> None:
        self.parts = follower.partitions
        self.applied_at: dict[tuple[int, int], float] = {}
        self._seen = [0] * len(self.parts)
        self._done = threading.Event()
        self._reader = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._done.is_set():
            now = time.perf_counter()
            for pidx, fp in enumerate(self.parts):
                upto = fp.source_decree
                if upto > self._seen[pidx]:
                    for d in range(self._seen[pidx] + 1, upto + 1):
                        self.applied_at[(pidx, d)] = now
                    self._seen[pidx] = upto
            time.sleep(50e-6)

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        """Until ``count`` writes were seen, or ``timeout`` seconds passed."""
        deadline = time.monotonic() + timeout
        while len(self.applied_at) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def start(self) -> AppliedPoller:
        self._reader.start()
        return self

    def stop(self) -> None:
        self._done.set()
        self._reader.join()
