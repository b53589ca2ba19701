"""Consistent views of a partition and the digests of their records, for verifying a
duplication (docs/verify.md).

A view is a RocksDB iterator made under the partition lock, where the decrees the partition
reports and what RocksDB holds agree: every write is logged and applied under that lock
(writes.py), so an iterator made there reads exactly the writes through ``last_committed`` and,
on a follower, exactly the source decrees through ``source_decree``/``source_seen``, for as long
as it lives, wherever it seeks. It is an iterator, not ``db.snapshot()``: rocksdict's
``Snapshot.iter`` (0.3.29) reads the live database, not the snapshot. One call at a time reads
a view (it is one iterator: ``View.lock``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from .. import _backend
from ..records import is_meta_key
from .partition import Partition

#: a chunk of the digest holds about 2**CHUNK_BITS records
CHUNK_BITS = 10
#: stored bytes read per backend call (the digest runs with the GIL released between reads)
FEED_BYTES = 4 << 20

#: (last RocksDB key, record count, 32-byte BLAKE3) of one chunk
Chunk = tuple[bytes, int, bytes]
#: (RocksDB key, expire_ts, user value) of one live record
Record = tuple[bytes, int, bytes]


@dataclass
class View:
    """A partition's records as they stood at one moment."""

    partition: Partition
    #: a rocksdict iterator made under the partition lock: RocksDB pins what it reads there
    iterator: Any
    #: the partition's own last committed decree at that moment
    committed: int
    #: the last source decree it held then (applied or seen), as a follower
    source_held: int
    #: one reader at a time: the view is one iterator
    lock: threading.Lock = field(default_factory=threading.Lock)


def take_view(partition: Partition) -> View:
    """The partition's view now (reads must be allowed: PartitionUnavailableError while it learns)."""
    p = partition
    with p.lock:
        p.check_available(False)
        it = p.db.iter()
        return View(p, it, p.last_committed, max(p.source_decree, p.source_seen))


def _iter(view: View, start: bytes) -> Any:
    it = view.iterator
    if start:
        it.seek(start)
    else:
        it.seek_to_first()
    return it


def digest(
    view: View, now: int, start: bytes = b"", end: bytes | None = None, chunk_bits: int = CHUNK_BITS
) -> list[Chunk]:
    """The chunks of the live records (at Pegasus time ``now``) with keys in [start, end)."""
    d = _backend.impl.RecordDigest(chunk_bits)
    with view.lock:
        it = _iter(view, start)
        while d.feed(it, now, end, FEED_BYTES):
            pass
    return d.finish()


def records(view: View, now: int, start: bytes, end: bytes | None, limit: int) -> list[Record]:
    """Up to ``limit`` live records (at ``now``) with keys in [start, end), in key order."""
    out: list[Record] = []
    with view.lock:
        it = _iter(view, start)
        while len(out) < limit:
            key = it.key()
            if key is None:
                it.status()
                break
            if end is not None and key >= end:
                break
            raw = it.value()
            it.next()
            if is_meta_key(key) or len(raw) < 12 or raw[11] & 1:
                continue
            expire_ts = int.from_bytes(raw[:4], "big")
            if 0 < expire_ts <= now:
                continue
            out.append((key, expire_ts, raw[12:]))
    return out


__all__ = ["CHUNK_BITS", "Chunk", "Record", "View", "digest", "records", "take_view"]
