"""Serve Pegasus's own client protocol from the Rust front end (DESIGN.md §11).

Rust (tokio, ``front/server.rs``) accepts connections, refuses a peer outside the
allowlist before reading its socket, reads bounded frames and decodes them; one
Python thread here runs the batch loop (``PegasusFrontCore.serve``): it waits for
requests with the GIL released, takes the GIL once to hand every request that is
ready, across all connections, to ``BatchHandler.handle_batch``, and releases it
again while Rust encodes the answers and writes them back. While a batch is in
Python the connections keep reading, so under load the next batch is bigger.

It has the interface of the asyncio front end (pegasus_front.PegasusFront), its
pure-Python twin: the same bytes on the wire, the same counters and metrics.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from .. import _backend
from ..engine.cluster import Cluster
from ..errors import InvalidArgumentError
from ..logs import Refusals, get
from ..net.pegasus import DEFAULT_MAX_FRAME, BatchHandler
from ..net.wire import Address
from .pegasus_front import MAX_BATCH, MAX_INFLIGHT, FrontCollector, PegasusFront, check_listen

log = get(__name__)

#: how often the refused-connection count of the Rust front end is looked at (for the log)
REFUSAL_POLL = 1.0


def front_workers() -> int:
    """tokio worker threads: PEGASUS_FAST_FRONT_WORKERS, else 1: on a small machine the batch loop, the fsyncs and the clients need the other cores."""
    return max(1, int(os.environ.get("PEGASUS_FAST_FRONT_WORKERS", "1")))


def front_pipeline() -> tuple[int, int, int]:
    """``(depth, poll µs, linger µs)`` of the batch loop: PEGASUS_FAST_FRONT_PIPELINE batches begun and not
    yet answered at most (default 1: a batch is answered before the next is taken; more lets
    the next batch be logged while the earlier ones' fsyncs run), and
    PEGASUS_FAST_FRONT_PIPELINE_POLL_US, how often a loop with batches in flight looks whether
    the oldest is durable; then PEGASUS_FAST_FRONT_LINGER_US, how long the loop lingers after a
    batch with writes for as many requests as it and the queue held (group commit; default 200:
    measured +30% durable SET throughput on the 2-core box; 0: none)."""
    depth = max(1, int(os.environ.get("PEGASUS_FAST_FRONT_PIPELINE", "1")))
    poll = max(1, int(os.environ.get("PEGASUS_FAST_FRONT_PIPELINE_POLL_US", "100")))
    linger = max(0, int(os.environ.get("PEGASUS_FAST_FRONT_LINGER_US", "200")))
    return depth, poll, linger


class _Stats(Mapping[str, int]):
    """The Rust front end's counters, read when asked (a dict of the asyncio front end's keys)."""

    def __init__(self, core: Any) -> None:
        self._core = core

    def _now(self) -> dict[str, int]:
        return dict(self._core.stats())

    def __getitem__(self, key: str) -> int:
        return self._now()[key]

    def __iter__(self) -> Any:
        return iter(self._now())

    def __len__(self) -> int:
        return len(self._now())


class RustPegasusFront:
    """A running Pegasus-protocol server over ``cluster`` on the Rust front end; ``stop()`` ends it."""

    def __init__(
        self,
        cluster: Cluster,
        listen: str = "127.0.0.1:0",
        allow: str | Iterable[str] | None = None,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_inflight: int = MAX_INFLIGHT,
        handler: BatchHandler | None = None,
        workers: int | None = None,
    ) -> None:
        addr, self.allow = check_listen(listen, allow)
        if max_frame < 64 or max_inflight < 1:
            raise InvalidArgumentError("max_frame must be at least 64 and max_inflight at least 1")
        core_cls = getattr(_backend.impl, "PegasusFrontCore", None)
        if core_cls is None:
            raise InvalidArgumentError("the Rust front end needs the Rust backend")
        self.cluster = cluster
        self.max_frame = max_frame
        self.max_inflight = max_inflight
        self.handler = handler or BatchHandler(cluster)
        self._pipeline = front_pipeline()
        self.handler.pipeline_depth = self._pipeline[0]
        self._core = core_cls(
            addr.host,
            addr.port,
            [str(n) for n in self.allow],
            max_frame,
            max_inflight,
            workers or front_workers(),
        )
        self.address = Address(addr.host, self._core.port)
        self.stats: Mapping[str, int] = _Stats(self._core)
        self._stop_lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="pegasus-batches", daemon=True)
        self._thread.start()
        #: a node's replication requests, answered apart from the batches (BatchHandler.side_batch)
        self._side: threading.Thread | None = None
        if getattr(self.handler, "takes_replication", False):
            self._side = threading.Thread(target=self._run_side, name="pegasus-replication", daemon=True)
            self._side.start()
        #: refused connections (Rust refuses them before Python hears of it): counted, logged
        #: at most every few seconds
        self.refusals = Refusals(log, "pegasus port: connections")
        self._refusals_seen = 0
        self._watch_stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch_refusals, name="pegasus-refusals", daemon=True)
        self._watcher.start()
        self._collector = FrontCollector(self.stats, self.batch_histogram)
        self._registry = cluster.metric_set.registry
        self._registry.register(self._collector)

    def __repr__(self) -> str:
        return f"RustPegasusFront(address={self.address.target!r})"

    def _run(self) -> None:
        try:
            self._core.serve(self.handler, MAX_BATCH, *self._pipeline)
        except BaseException:  # the loop ends only by stop(); anything else is a bug worth a trace
            log.exception("pegasus front: the batch loop failed")

    def _run_side(self) -> None:
        try:
            self._core.serve_side(self.handler, MAX_BATCH)
        except BaseException:  # as _run
            log.exception("pegasus front: the replication loop failed")

    def _watch_refusals(self) -> None:
        while not self._watch_stop.wait(REFUSAL_POLL):
            self._note_refusals()

    def _note_refusals(self) -> None:
        n = self.stats["connections_refused"]
        if n > self._refusals_seen:
            self.refusals.refused("not in the allowlist", n=n - self._refusals_seen)
            self._refusals_seen = n

    def batch_histogram(self) -> list[tuple[int | None, int]]:
        """``[(upper bound, batches), ...]``; the last bound None (+Inf)."""
        return list(self._core.batch_histogram())

    def stop(self) -> None:
        """Close the port and every connection; a batch in flight finishes first. Safe twice."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self._watch_stop.set()
        self._core.stop()
        self._thread.join(10.0)
        if self._side is not None:
            self._side.join(10.0)
        self._watcher.join(10.0)
        self._note_refusals()
        self.refusals.flush()
        close = getattr(self.handler, "close", None)
        if close is not None:
            close()
        try:
            self._registry.unregister(self._collector)
        except KeyError:
            pass


def open_front(
    cluster: Cluster,
    listen: str = "127.0.0.1:0",
    allow: str | Iterable[str] | None = None,
    *,
    native: bool | None = None,
    **options: Any,
) -> Any:
    """A running Pegasus-protocol front end: this Rust one when the Rust
    backend is active (or ``native=True``), the asyncio one (pegasus_front.py) otherwise (PEGASUS_FAST_PURE_PYTHON=1
    or ``native=False``). Both take the same options and serve the same bytes."""
    if native is None:
        native = _backend.name == "rust"
    if native:
        return RustPegasusFront(cluster, listen, allow, **options)
    return PegasusFront(cluster, listen, allow, **options)


__all__ = ["RustPegasusFront", "open_front"]
