"""Requests served, by service, verb and code, and their latency in fixed buckets.

One :class:`RequestMetrics` per cluster registry (``Metrics.requests``). It is a
Prometheus collector of its own rather than prometheus_client's labelled
Counter and Histogram so that an observation can carry a weight (every request
of a batch waited for the batch) and so that the Pegasus port's batch loop can
count without a lock: it counts into a :class:`Tally` of its own (one thread
writes it; a scrape copies its dicts whole, which the GIL makes atomic), and
the scrape merges the tallies in.

Exported:

- ``requests_total{service, verb, code}``: a counter;
- ``request_duration_seconds{service, verb}``: a histogram (``_bucket``, ``_sum``, ``_count``).

``service`` is ``grpc`` (the gRPC services; verb = the method's name, code = the
gRPC status name) or ``pegasus`` (the Pegasus-protocol port; verb = the RPC
name, code = the rDSN error, ERR_OK included; the duration is the batch's time
in the store, from hand-over to answers, not the time on the socket).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterator
from typing import Any

#: seconds: from a cached read (~20 µs) to a stalled write
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class _Hist:
    __slots__ = ("buckets", "count", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.count = 0
        self.sum = 0.0


class Tally:
    """Requests counted by one thread, lock-free: ``counts[(key, code)]`` and ``hists[key]`` (the
    bucket counts of BUCKETS then +Inf, then the sum of seconds), where ``verb(key)`` names the
    verb (a key is what the producer has at hand, e.g. an op number). Only that thread writes."""

    __slots__ = ("counts", "hists", "service", "verb")

    def __init__(self, service: str, verb: Callable[[Any], str]) -> None:
        self.service = service
        self.verb = verb
        self.counts: dict[tuple[Any, str], int] = {}
        self.hists: dict[Any, list[float]] = {}

    def hist(self, key: Any) -> list[float]:
        h = self.hists.get(key)
        if h is None:
            h = self.hists[key] = [0] * (len(BUCKETS) + 1) + [0.0]
        return h

    def snapshot(self) -> tuple[dict[tuple[Any, str], int], dict[Any, list[float]]]:
        # each copy is one C call under the GIL: never a dict changing size mid-iteration
        return dict(self.counts), {k: list(v) for k, v in list(self.hists.items())}


class RequestMetrics:
    """Counts and latency of served requests (a collector; thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], int] = {}
        self._hists: dict[tuple[str, str], _Hist] = {}
        self._tallies: list[Tally] = []

    def tally(self, service: str, verb: Callable[[Any], str]) -> Tally:
        """A new :class:`Tally`, merged into what this exports (for the life of the registry)."""
        t = Tally(service, verb)
        with self._lock:
            self._tallies.append(t)
        return t

    def record(self, service: str, verb: str, code: str, seconds: float) -> None:
        """One request served."""
        i = bisect.bisect_left(BUCKETS, seconds)
        with self._lock:
            key = (service, verb, code)
            self._counts[key] = self._counts.get(key, 0) + 1
            h = self._hists.get((service, verb))
            if h is None:
                h = self._hists[(service, verb)] = _Hist()
            h.buckets[i] += 1
            h.count += 1
            h.sum += seconds

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        with self._lock:
            counts = dict(self._counts)
            hists = {k: (list(h.buckets), h.sum) for k, h in self._hists.items()}
            tallies = list(self._tallies)
        for t in tallies:
            tc, th = t.snapshot()
            for (k, code), n in tc.items():
                full = (t.service, t.verb(k), code)
                counts[full] = counts.get(full, 0) + n
            for k, h in th.items():
                hk = (t.service, t.verb(k))
                old = hists.get(hk)
                buckets, total = [int(x) for x in h[:-1]], h[-1]
                if old is not None:
                    buckets = [a + b for a, b in zip(old[0], buckets)]
                    total += old[1]
                hists[hk] = (buckets, total)
        total = CounterMetricFamily(
            "requests", "requests served, by service, verb and code", labels=["service", "verb", "code"]
        )
        for (service, verb, code), n in sorted(counts.items()):
            total.add_metric([service, verb, code], n)
        yield total
        dur = HistogramMetricFamily(
            "request_duration_seconds",
            "time to serve a request (the Pegasus port: its batch's time in the store)",
            labels=["service", "verb"],
        )
        for (service, verb), (buckets, s) in sorted(hists.items()):
            acc, rows = 0, []
            for bound, n in zip([*BUCKETS, None], buckets):
                acc += n
                rows.append(("+Inf" if bound is None else repr(bound), acc))
            dur.add_metric([service, verb], rows, s)
        yield dur


__all__ = ["BUCKETS", "RequestMetrics", "Tally"]
