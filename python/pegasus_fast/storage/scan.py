"""Scans of a RocksDB instance that never stop short silently.

rocksdict's iterator turns invalid both at the end and on an error (a corrupt
block): every scan asks ``status()`` when it stops, so an error is raised
instead of a short result.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .. import _backend
from ..records import is_meta_key, live_value


def prefix(db: Any, key_prefix: bytes, now: int) -> Iterator[tuple[bytes, bytes]]:
    """Live (sort_key, value) pairs under a hash-key prefix, in order."""
    it = db.iter()
    it.seek(key_prefix)
    n = len(key_prefix)
    while it.valid():
        key = it.key()
        if not key.startswith(key_prefix):
            return
        value = live_value(it.value(), now)
        if value is not None:
            yield key[n:], value
        it.next()
    it.status()


#: entries per backend call of ``records``: enough to amortize the call, few enough that a
#: consumer who stops early has not paid for much more than it took
RECORDS_CHUNK = 1024


def records(db: Any, now: int, chunk: int = RECORDS_CHUNK) -> Iterator[tuple[bytes, bytes, bytes]]:
    """Every live (hash_key, sort_key, value), in key order (the backend drives the iterator,
    ``chunk`` entries per call)."""
    it = db.iter()
    it.seek_to_first()
    scan_records = _backend.impl.scan_records
    more = True
    while more:
        out, more = scan_records(it, now, chunk)
        yield from out


@dataclass(frozen=True)
class RecordBatch:
    """Live records as contiguous buffers: record ``i``'s hash key is
    ``hash_keys[hash_key_offsets[i]:hash_key_offsets[i + 1]]``, and so on.

    Offsets are ``count + 1`` little-endian u64 (``array("Q")`` on little-endian
    machines; ``numpy.frombuffer(..., "<u8")`` views them without a copy).
    """

    count: int
    hash_keys: bytes
    hash_key_offsets: bytes
    sort_keys: bytes
    sort_key_offsets: bytes
    values: bytes
    value_offsets: bytes

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[tuple[bytes, bytes, bytes]]:
        h, s, v = (memoryview(o).cast("B").cast("Q") for o in self._offsets())
        for i in range(self.count):
            yield (
                self.hash_keys[h[i] : h[i + 1]],
                self.sort_keys[s[i] : s[i + 1]],
                self.values[v[i] : v[i + 1]],
            )

    def _offsets(self) -> tuple[bytes, bytes, bytes]:
        return self.hash_key_offsets, self.sort_key_offsets, self.value_offsets


def record_batches(db: Any, now: int, max_bytes: int) -> Iterator[RecordBatch]:
    """Every live record, in key order, in batches of about ``max_bytes`` of keys and values."""
    it = db.iter()
    it.seek_to_first()
    scan_batch = _backend.impl.scan_batch
    more = True
    while more:
        count, buffers, more = scan_batch(it, now, max_bytes)
        if count:
            yield RecordBatch(count, *buffers)


def raw(it: Any) -> Iterator[tuple[bytes, bytes]]:
    """Every stored record as RocksDB key and value, expired included, read from the RocksDB
    iterator ``it`` (made by the caller: it reads the state of the moment it was made)."""
    it.seek_to_first()
    while it.valid():
        key = it.key()
        if not is_meta_key(key):
            yield key, it.value()
        it.next()
    it.status()


__all__ = ["RECORDS_CHUNK", "RecordBatch", "prefix", "raw", "record_batches", "records"]
