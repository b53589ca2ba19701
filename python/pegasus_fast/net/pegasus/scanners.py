"""Server-side scanner contexts of Pegasus's get_scanner / scan / clear_scanner RPCs
(docs/pegasus-protocol.md §4.1; semantics of Pegasus's ``pegasus_server_impl.cpp``).

get_scanner reads a first batch of a partition's key range; if records may be left, the
range's rest is kept as a context whose id the answer carries, and each scan reads the next
batch from after the last key looked at. A context goes when its range is read to its end,
on clear_scanner, after ``idle_seconds`` unused, or, past ``max_contexts``, the least
recently used goes first: a client cannot make the server hold unbounded state. A context
holds a range and a position, not a RocksDB iterator or snapshot: each batch reads the
partition as it is then (a record written ahead of the scanner is seen, one behind is not).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...conditions import filter_fn
from ...data_api import FilterType
from ...errors import InvalidArgumentError
from ...records import encode_key
from ...storage.ranges import KeyRange
from . import codes

#: Pegasus's rocksdb_max_iteration_count: the most records one batch returns
SCAN_MAX_BATCH = 1000
#: stored records one batch may look at (expired and filtered ones included) before it answers
SCAN_MAX_STEPS = 10_000
#: contexts kept at once, over every connection; past it the least recently used goes
MAX_CONTEXTS = 1024
#: a context unused this long goes (Pegasus: 5 minutes)
IDLE_SECONDS = 300.0

ScanResult = tuple[int, list[tuple[bytes, bytes]], int]


@dataclass
class _Context:
    app_id: int
    pidx: int
    partition: Any
    rng: KeyRange
    batch: int
    no_value: bool
    used: float


def _filter(kind: int, pattern: bytes) -> tuple[FilterType, Callable[[bytes], bool] | None]:
    try:
        ft = FilterType(kind)
    except ValueError:
        raise InvalidArgumentError(f"filter type {kind} is not one Pegasus knows") from None
    return ft, filter_fn(ft, pattern)


class Scanners:
    """The scanner contexts of one front end (one batch at a time, like its handler)."""

    def __init__(
        self,
        max_contexts: int = MAX_CONTEXTS,
        idle_seconds: float = IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_contexts = max_contexts
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._contexts: OrderedDict[int, _Context] = OrderedDict()
        self._next_id = 0

    def __len__(self) -> int:
        return len(self._contexts)

    def _expire(self, now: float) -> None:
        while self._contexts:
            cid, ctx = next(iter(self._contexts.items()))
            if now - ctx.used < self.idle_seconds:
                return
            del self._contexts[cid]

    def open(self, app_id: int, pidx: int, partition: Any, args: tuple[Any, ...]) -> ScanResult:
        """get_scanner: the first batch, and a context id when records may be left."""
        start, stop, start_in, stop_in, batch_size, no_value, hk_type, hk_pattern, sk_type, sk_pattern = args
        hk_kind, keep_hk = _filter(hk_type, hk_pattern)
        _, keep_sk = _filter(sk_type, sk_pattern)
        if hk_kind == FilterType.MATCH_PREFIX and hk_pattern:
            first = encode_key(hk_pattern, b"")  # nothing before it can match: start there
            if first > start:
                start, start_in = first, True
        batch = batch_size if 0 < batch_size < SCAN_MAX_BATCH else SCAN_MAX_BATCH
        rng = KeyRange(start, stop, start_in, stop_in, keep_hk, keep_sk)
        ctx = _Context(app_id, pidx, partition, rng, batch, no_value, self._clock())
        return self._read(ctx, None)

    def next(self, app_id: int, pidx: int, context_id: int) -> ScanResult:
        """scan: the context's next batch; kNotFound when it does not exist (any more)."""
        now = self._clock()
        self._expire(now)
        ctx = self._contexts.pop(context_id, None)
        if ctx is None or (ctx.app_id, ctx.pidx) != (app_id, pidx):
            if ctx is not None:  # another partition's: leave it be
                self._contexts[context_id] = ctx
            return codes.K_NOT_FOUND, [], codes.CONTEXT_ID_NOT_EXIST
        ctx.used = now
        return self._read(ctx, context_id)

    def clear(self, context_id: int) -> None:
        """clear_scanner: forget the context (an unknown id is no error: it is oneway)."""
        self._contexts.pop(context_id, None)

    def _read(self, ctx: _Context, context_id: int | None) -> ScanResult:
        kvs, last = ctx.partition.read_keys(ctx.rng, ctx.batch, SCAN_MAX_STEPS, ctx.no_value)
        if last is None:
            return codes.K_OK, kvs, codes.CONTEXT_ID_COMPLETED
        ctx.rng = ctx.rng.after(last)
        if context_id is None:
            context_id = self._next_id
            self._next_id += 1
        self._contexts[context_id] = ctx
        self._expire(ctx.used)
        while len(self._contexts) > self.max_contexts:
            self._contexts.popitem(last=False)
        return codes.K_OK, kvs, context_id
