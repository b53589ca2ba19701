"""Sort-key ranges of one hash key, read from a RocksDB instance as Pegasus's server reads
them for multi_get, sortkey_count and a scanner's batches (``pegasus_server_impl.cpp``).

A range is closed or open at each end; an empty stop sort key means "to the end of the
hash key"; a prefix filter narrows the range itself, so a read seeks past what it
cannot match. Expired records and tombstones are skipped as every read skips them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..conditions import filter_fn
from ..data_api import FilterType
from ..records import hash_key_prefix

#: a record is live when its delete bit is clear and its expire_ts (u32 BE) is 0 or after now
_NO_TTL = b"\x00\x00\x00\x00"
_UNLIMITED = 1 << 63


def key_successor(key: bytes) -> bytes:
    """The smallest key greater than every key that starts with ``key`` (Pegasus's
    ``pegasus_generate_next_blob``). Every key here starts with a u16 length below 0xFFFF, so
    one exists."""
    stripped = key.rstrip(b"\xff")
    return stripped[:-1] + bytes([stripped[-1] + 1])


@dataclass(frozen=True)
class SortKeyRange:
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

    def sort_key_filter(self) -> Callable[[bytes], bool] | None:
        if self.filter_type == FilterType.MATCH_PREFIX:
            return None  # bounds() already holds the range to the prefix
        return filter_fn(self.filter_type, self.pattern)


def read(
    db: Any,
    rng: SortKeyRange,
    now: int,
    max_count: int | None = None,
    max_bytes: int | None = None,
    no_value: bool = False,
    reverse: bool = False,
) -> tuple[list[tuple[bytes, bytes]], bool]:
    """Live ``(sort_key, value)`` pairs of ``rng`` in key order (reverse: from the largest
    down), and whether the range was read to its end.

    Limits as Pegasus's multi_get: records are taken while fewer than ``max_count`` were taken
    and their sort keys and values (b"" with ``no_value``) total less than ``max_bytes``, so
    the record that reaches ``max_bytes`` is still taken. The read is incomplete when a limit
    stopped it with keys of the range left unread (some may prove expired or filtered out).
    """
    bounds = rng.bounds()
    if bounds is None:
        return [], True
    low, low_in, high, high_in = bounds
    n = len(hash_key_prefix(rng.hash_key))
    keep = rng.sort_key_filter()
    cap_count = _UNLIMITED if max_count is None else max_count
    cap_bytes = _UNLIMITED if max_bytes is None else max_bytes
    taken = size = 0
    now_bytes = now.to_bytes(4, "big")
    out: list[tuple[bytes, bytes]] = []
    it = db.iter()
    if reverse:
        it.seek_for_prev(high)
        if not high_in and it.key() == high:
            it.prev()
        step = it.prev
    else:
        it.seek(low)
        if not low_in and it.key() == low:
            it.next()
        step = it.next
    key_of, value_of = it.key, it.value
    while True:
        key = key_of()
        if key is None:
            it.status()  # an error that stopped the iterator early raises here
            return out, True
        if reverse:
            if key < low or (key == low and not low_in):
                return out, True
        elif key > high or (key == high and not high_in):
            return out, True
        if taken >= cap_count or size >= cap_bytes:
            return out, False
        raw = value_of()
        if not raw[11] & 1 and (raw[:4] == _NO_TTL or raw[:4] > now_bytes):
            sk = key[n:]
            if keep is None or keep(sk):
                value = b"" if no_value else raw[12:]
                out.append((sk, value))
                taken += 1
                size += len(sk) + len(value)
        step()


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
    read_batch: Callable[[SortKeyRange, int], tuple[list[tuple[bytes, bytes]], bool]],
    rng: SortKeyRange,
    batch_size: int,
) -> Iterator[list[tuple[bytes, bytes]]]:
    """A scanner's batches: ``read_batch(range, batch_size)`` again and again, each time from
    after the last sort key read, until the range is read to its end."""
    while True:
        pairs, complete = read_batch(rng, batch_size)
        if pairs:
            yield pairs
        if complete or not pairs:  # a batch cut short by its count holds batch_size >= 1 records
            return
        rng = SortKeyRange(
            rng.hash_key,
            pairs[-1][0],
            rng.stop,
            False,
            rng.stop_inclusive,
            rng.filter_type,
            rng.pattern,
        )


__all__ = ["SortKeyRange", "batches", "count", "key_successor", "read"]
