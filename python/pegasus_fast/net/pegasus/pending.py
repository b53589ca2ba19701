"""A batch begun by ``BatchHandler.begin_batch``: logged, applied and read, its answers waiting
for its writes to be durable, then counted (requests_total, request_duration_seconds)."""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, Protocol

from ...request_metrics import BUCKETS
from .replies import Response
from .requests import Request


class Handler(Protocol):
    """What a begun batch needs of the BatchHandler that began it."""

    tally: Any

    def finish_syncs(
        self,
        requests: Sequence[Request],
        out: list[Any],
        logged: list[Logged],
        syncs: Future[list[BaseException | None]] | None,
    ) -> None: ...


#: a batch this small is counted answer by answer; a bigger one through a Counter (C)
_SMALL_BATCH = 8

#: a mutation logged and applied, waiting for its fsync: (partition, decree, WAL offset,
#: app id, partition index, [(request index, storage op, size), ...], offset its WAL block
#: begins at, the block)
Logged = tuple[Any, int, int, int, int, list[tuple[int, tuple[Any, ...], int]], int, bytes]


class PendingBatch:
    """A batch logged, applied and read (BatchHandler.begin_batch), its answers waiting for the
    fsyncs of its writes."""

    def __init__(
        self,
        handler: Handler,
        requests: Sequence[Request],
        out: list[Any],
        logged: list[Logged],
        syncs: Future[list[BaseException | None]] | None,
        start: float = 0.0,
    ) -> None:
        self._handler = handler
        self._start = start
        self._requests = requests
        self._out = out
        self._logged = logged
        self._syncs = syncs

    @property
    def has_writes(self) -> bool:
        """True if the batch logged writes (finish waits for their fsyncs)."""
        return bool(self._logged)

    def ready(self) -> bool:
        """True once finish() would not wait (every fsync of the batch has ended)."""
        if self._syncs is None:
            return not self._logged
        return self._syncs.done()

    def finish(self) -> list[Response]:
        """The batch's answers, once its writes are durable (a failed fsync answers its writes
        with the failure); call it once."""
        self._handler.finish_syncs(self._requests, self._out, self._logged, self._syncs)
        out = self._out
        # requests_total and request_duration_seconds: into the handler's tally, no lock (one
        # batch loop writes it); every answer of the batch observed at the batch's time
        count(self._handler.tally, out, time.perf_counter() - self._start)
        return out


def count(tally: Any, out: Sequence[Response | None], secs: float) -> None:
    """The answers ``out`` of one batch, ``secs`` long, into ``tally`` (its one writer's)."""
    counts, hists = tally.counts, tally.hists
    i = bisect.bisect_left(BUCKETS, secs)
    if len(out) <= _SMALL_BATCH:
        for r in out:
            if r is not None:
                key = (r[0], r[5])
                counts[key] = counts.get(key, 0) + 1
                h = hists.get(r[0]) or tally.hist(r[0])
                h[i] += 1
                h[-1] += secs
    else:
        for key, n in Counter((r[0], r[5]) for r in out if r is not None).items():
            counts[key] = counts.get(key, 0) + n
            h = hists.get(key[0]) or tally.hist(key[0])
            h[i] += n
            h[-1] += secs * n


__all__ = ["Logged", "PendingBatch", "count"]
