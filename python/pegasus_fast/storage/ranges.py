"""Sort-key ranges of one hash key, read from a RocksDB instance as Pegasus's server reads
them for multi_get, sortkey_count and a scanner's batches (``pegasus_server_impl.cpp``).

A range is closed or open at each end; an empty stop sort key means "to the end of the
hash key"; a prefix filter narrows the range itself, so a read seeks past what it
cannot match. Expired records and tombstones are skipped as every read skips them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from .. import _backend
from ..data_api import FilterType
from ..records import hash_key_prefix, is_meta_key, live_value

#: a record is live when its delete bit is clear and its expire_ts (u32 BE) is 0 or after now
_NO_TTL = b"\x00\x00\x00\x00"


def key_successor(key: bytes) -> bytes:
    """The smallest key greater than every key that starts with ``key`` (Pegasus's
    ``pegasus_generate_next_blob``). Every key here starts with a u16 length below 0xFFFF, so
    one exists."""
    stripped = key.rstrip(b"\xff")
    return stripped[:-1] + bytes([stripped[-1] + 1])


class SortKeyRange(NamedTuple):
    """Sort keys of ``hash_key`` from ``start`` to ``stop`` (b"": to its end), each end
    inclusive or not, whose sort key passes ``(filter_type, pattern)``."""

    hash_key: bytes
    start: bytes = b""
    stop: bytes = b""
    start_inclusive: bool = True
    stop_inclusive: bool = False
    filter_type: FilterType = FilterType.NO_FILTER
    pattern: bytes = b""

    def bounds(self) -> tuple[bytes, bool, bytes, bool] | None:
        """RocksDB keys ``(low, low_inclusive, high, high_inclusive)``, or None when no key can
        be in the range."""
        prefix = hash_key_prefix(self.hash_key)
        low, low_in = prefix + self.start, self.start_inclusive
        if self.stop:
            high, high_in = prefix + self.stop, self.stop_inclusive
        else:
            high, high_in = key_successor(prefix), False
        if self.filter_type == FilterType.MATCH_PREFIX and self.pattern:
            first = prefix + self.pattern
            if first > low:
                low, low_in = first, True
            after = key_successor(first)
            if after <= high:
                high, high_in = after, False
        if low > high or (low == high and not (low_in and high_in)):
            return None
        return low, low_in, high, high_in

    def after(self, sort_key: bytes) -> SortKeyRange:
        """The rest of the range after ``sort_key`` (a scanner's next batch)."""
        return self._replace(start=sort_key, start_inclusive=False)


def read(
    db: Any,
    rng: SortKeyRange,
    now: int,
    out: dict[bytes, bytes],
    max_count: int | None = None,
    max_bytes: int | None = None,
    no_value: bool = False,
    reverse: bool = False,
) -> bool:
    """Put the live records of ``rng`` in ``out`` (sort key -> value) in key order (reverse:
    from the largest down); returns whether the range was read to its end.

    Limits as Pegasus's multi_get: records are taken while fewer than ``max_count`` were taken
    and their sort keys and values (b"" with ``no_value``) total less than ``max_bytes``, so
    the record that reaches ``max_bytes`` is still taken. The read is incomplete when a limit
    stopped it with keys of the range left unread (some may prove expired or filtered out).
    The loop over the records is the backend's ``scan_range``.
    """
    bounds = rng.bounds()
    if bounds is None:
        return True
    low, low_in, high, high_in = bounds
    it = db.iter()
    # one comparison per key ends the read: ``key > k`` is ``key >= k + b"\0"`` for byte strings
    if reverse:
        it.seek_for_prev(high)
        if not high_in and it.key() == high:
            it.prev()
        end = low if low_in else low + b"\x00"
    else:
        it.seek(low)
        if not low_in and it.key() == low:
            it.next()
        end = high + b"\x00" if high_in else high
    kind, pattern = rng.filter_type, rng.pattern
    if kind == FilterType.MATCH_PREFIX:
        kind, pattern = FilterType.NO_FILTER, b""  # bounds() made the range the prefix's
    prefix_len = 2 + len(rng.hash_key)
    return _backend.impl.scan_range(
        it, now, end, reverse, prefix_len, int(kind), pattern, max_count, max_bytes, no_value, out
    )


def count(db: Any, hash_key: bytes, now: int) -> int:
    """Live records under ``hash_key``."""
    prefix = hash_key_prefix(hash_key)
    high = key_successor(prefix)
    now_bytes = now.to_bytes(4, "big")
    it = db.iter()
    it.seek(prefix)
    key_of, value_of, step = it.key, it.value, it.next
    live = 0
    while True:
        key = key_of()
        if key is None:
            it.status()
            return live
        if key >= high:
            return live
        raw = value_of()
        if not raw[11] & 1 and (raw[:4] == _NO_TTL or raw[:4] > now_bytes):
            live += 1
        step()


def batches(
    read_batch: Callable[[SortKeyRange, int], tuple[dict[bytes, bytes], bool]],
    rng: SortKeyRange,
    batch_size: int,
) -> Iterator[dict[bytes, bytes]]:
    """A scanner's batches: ``read_batch(range, batch_size)`` again and again, each time from
    after the last sort key read, until the range is read to its end."""
    while True:
        records, complete = read_batch(rng, batch_size)
        if records:
            yield records
        if complete or not records:  # a batch cut short by its count holds batch_size >= 1 records
            return
        rng = rng.after(next(reversed(records)))


class KeyRange(NamedTuple):
    """RocksDB keys (u16 length, hash key, sort key) from ``start`` to ``stop``, each end
    inclusive or not, across hash keys: a Pegasus scanner's range (``get_scanner_request``),
    with its hash key and sort key filters (``None``: every key passes)."""

    start: bytes
    stop: bytes
    start_inclusive: bool
    stop_inclusive: bool
    keep_hash_key: Callable[[bytes], bool] | None = None
    keep_sort_key: Callable[[bytes], bool] | None = None

    def empty(self) -> bool:
        c = (self.start > self.stop) - (self.start < self.stop)
        return c > 0 or (c == 0 and not (self.start_inclusive and self.stop_inclusive))

    def after(self, key: bytes) -> KeyRange:
        """The rest of the range after ``key`` (a scanner's next batch)."""
        return self._replace(start=key, start_inclusive=False)


def read_keys(
    db: Any, rng: KeyRange, now: int, max_count: int, max_steps: int, no_value: bool
) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
    """Up to ``max_count`` live records of ``rng`` that pass its filters, as (RocksDB key,
    value), in key order, looking at no more than ``max_steps`` stored records (expired and
    filtered ones count: a scan of a sparse filter answers, maybe empty, rather than read a
    whole partition in one call). Returns them and the last key looked at when records of
    the range may be left, None when the range was read to its end."""
    if rng.empty():
        return [], None
    it = db.iter()
    it.seek(rng.start)
    start, skip_start = rng.start, not rng.start_inclusive
    stop, stop_in = rng.stop, rng.stop_inclusive
    keep_hk, keep_sk = rng.keep_hash_key, rng.keep_sort_key
    out: list[tuple[bytes, bytes]] = []
    steps = 0
    last: bytes | None = None
    while True:
        key = it.key()
        if key is None:
            it.status()
            return out, None
        if key > stop or (key == stop and not stop_in):
            return out, None
        if len(out) >= max_count or steps >= max_steps:
            return out, last
        last = key
        steps += 1
        if not ((skip_start and key == start) or is_meta_key(key)):
            value = live_value(it.value(), now)
            if value is not None and (keep_hk is not None or keep_sk is not None):
                n = 2 + int.from_bytes(key[:2], "big")
                if (keep_hk is not None and not keep_hk(key[2:n])) or (
                    keep_sk is not None and not keep_sk(key[n:])
                ):
                    value = None
            if value is not None:
                out.append((key, b"" if no_value else value))
        it.next()


__all__ = ["KeyRange", "SortKeyRange", "batches", "count", "key_successor", "read", "read_keys"]
