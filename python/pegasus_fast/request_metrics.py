"""Requests served, by service, verb and code, and their latency in fixed buckets.

One :class:`RequestMetrics` per cluster registry (``Metrics.requests``). It is a
Prometheus collector of its own rather than prometheus_client's labelled
Counter and Histogram so that a front end can count a whole batch in one call
(``record_batch``: one lock, one bisect per verb, n requests added at once),
which keeps the Pegasus port's hot path cheap, and so that an observation can
carry a weight (every request of a batch waited for the batch).

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
from collections.abc import Iterable, Iterator
from typing import Any

#: seconds: from a cached read (~20 µs) to a stalled write
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class _Hist:
    __slots__ = ("buckets", "count", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.count = 0
        self.sum = 0.0


class RequestMetrics:
    """Counts and latency of served requests (a collector; thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], int] = {}
        self._hists: dict[tuple[str, str], _Hist] = {}

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

    def record_batch(
        self, service: str, counts: Iterable[tuple[tuple[str, str], int]], seconds: float
    ) -> None:
        """A batch served in ``seconds``: ``counts`` are ``((verb, code), requests)``; each request
        is observed at the batch's duration."""
        i = bisect.bisect_left(BUCKETS, seconds)
        with self._lock:
            for (verb, code), n in counts:
                key = (service, verb, code)
                self._counts[key] = self._counts.get(key, 0) + n
                h = self._hists.get((service, verb))
                if h is None:
                    h = self._hists[(service, verb)] = _Hist()
                h.buckets[i] += n
                h.count += n
                h.sum += seconds * n

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        with self._lock:
            counts = dict(self._counts)
            hists = {k: (list(h.buckets), h.sum) for k, h in self._hists.items()}
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


__all__ = ["BUCKETS", "RequestMetrics"]
