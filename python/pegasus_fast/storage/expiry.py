"""Dropping expired records from a partition's RocksDB (Pegasus's compaction filter, by hand).

rocksdict has no compaction filter from Python, so expired records are found
by a scan, deleted in WriteBatches, and a compaction then removes them from
the SST files.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

import rocksdict

from ..records import is_expired, is_meta_key, now_pegasus_seconds
from .state import PartitionState


class Expiring(Protocol):
    """A partition, as dropping its expired records sees it (storage/partition.py)."""

    @property
    def state(self) -> PartitionState: ...

    @property
    def lock(self) -> AbstractContextManager[Any]:
        """Held by every write while it applies."""

    @property
    def db(self) -> rocksdict.Rdict: ...

    @property
    def holds_nothing(self) -> bool: ...


#: keys re-checked and deleted per hold of the partition lock: a writer waits at most one chunk
CHUNK = 1024


def _serving(partition: Expiring) -> bool:
    return partition.state == PartitionState.SERVING and not partition.holds_nothing


def iter_expired(partition: Expiring) -> Iterator[bytes]:
    """Keys whose records are expired now, read without the lock: candidates only
    (delete_expired checks each again under it)."""
    if not _serving(partition):
        return
    now = now_pegasus_seconds()
    it = partition.db.iter()
    it.seek_to_first()
    while it.valid():
        key = it.key()
        # a delete's tombstone counts too, once expired (before that it still decides last-writer-wins)
        if not is_meta_key(key) and is_expired(it.value(), now):
            yield key
        it.next()


def drop_expired(partition: Expiring) -> int:
    """Delete every expired record, a chunk at a time as the scan finds them; returns the count."""
    dropped = 0
    chunk: list[bytes] = []
    for key in iter_expired(partition):
        chunk.append(key)
        if len(chunk) == CHUNK:
            dropped += delete_expired(partition, chunk)
            chunk = []
    return dropped + delete_expired(partition, chunk)


def delete_expired(partition: Expiring, keys: list[bytes]) -> int:
    """Delete those of ``keys`` still expired; returns how many were deleted.

    Each chunk is re-checked and deleted under the partition lock, which
    every write holds while it applies: a key overwritten with a fresh value
    since iter_expired() read it is live here and kept.

    These deletes are not mutations: no decree, no WAL record, RocksDB's own
    WAL off as for every write. The records were already invisible to every
    read, so no reader, checkpoint or follower can tell whether they are
    gone, and the decree bookkeeping stays exact. If a crash loses the
    deletes, or WAL replay writes an expired record again, it is still
    invisible and the next drop removes it. A follower drops its own expired
    copies the same way.
    """
    deleted = 0
    for start in range(0, len(keys), CHUNK):
        with partition.lock:
            if partition.state != PartitionState.SERVING:
                break
            db = partition.db
            now = now_pegasus_seconds()
            wb = rocksdict.WriteBatch(raw_mode=True)
            n = 0
            for key in keys[start : start + CHUNK]:
                raw = db.get(key)
                if raw is not None and is_expired(raw, now):
                    wb.delete(key)
                    n += 1
            if n:
                db.write(wb)
            deleted += n
    return deleted
