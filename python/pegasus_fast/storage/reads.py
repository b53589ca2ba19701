"""The read path of a partition: point reads and scans, every RocksDB error typed.

A mixin of ``Partition`` (partition.py), which provides ``db``, ``check_available``,
``holds_nothing``, ``path`` and ``pidx``.

Point reads of a partition whose RocksDB is not made yet, and whose log holds only a few
writes (a follower's partition that learned a small snapshot), are answered from those writes
(``_image``, kept by the write path while it is small: writes.py ``IMAGE_KEYS``,
``IMAGE_BYTES``) instead of making RocksDB first: 5-10 ms of fsyncs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..records import live_value, now_pegasus_seconds
from . import ranges, scan
from .rdb import rdb_error

if TYPE_CHECKING:
    import rocksdict


class PartitionReads:
    path: str
    pidx: int
    _db: rocksdict.Rdict | None
    #: the RocksDB writes the log holds, key to stored value (None: deleted), of a partition
    #: that held nothing before them and whose RocksDB is not made yet; None otherwise
    #: (writes.py keeps it, ``_open_db`` drops it)
    _image: dict[bytes, bytes | None] | None = None

    if TYPE_CHECKING:  # what Partition provides

        @property
        def db(self) -> rocksdict.Rdict: ...

        @property
        def holds_nothing(self) -> bool: ...

        def check_available(self, for_write: bool) -> None: ...

    def _get(self, key: bytes) -> bytes | None:
        image = self._image
        if image is not None and self._db is None:
            return image.get(key)
        try:
            return self.db.get(key)
        except Exception as exc:
            raise rdb_error(exc, self.path, self.pidx) from exc

    def get_raw(self, key: bytes) -> bytes | None:
        self.check_available(False)
        if self.holds_nothing:
            return None
        return self._get(key)

    def get(self, key: bytes) -> bytes | None:
        self.check_available(False)
        if self.holds_nothing:
            return None
        return live_value(self._get(key), now_pegasus_seconds())

    def get_at(self, key: bytes, now: int) -> bytes | None:
        """``get`` at Pegasus time ``now`` (``now_pegasus_seconds()``): a batch of reads takes
        the clock once."""
        self.check_available(False)
        if self.holds_nothing:
            return None
        return live_value(self._get(key), now)

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """``get`` of each key, with one RocksDB multi-get."""
        self.check_available(False)
        if self.holds_nothing or not keys:
            return [None] * len(keys)
        image = self._image
        try:
            raws = (
                [image.get(k) for k in keys] if image is not None and self._db is None else self.db.get(keys)
            )
        except Exception as exc:
            raise rdb_error(exc, self.path, self.pidx) from exc
        now = now_pegasus_seconds()
        return [live_value(raw, now) for raw in raws]

    def read_range(
        self,
        rng: ranges.SortKeyRange,
        out: dict[bytes, bytes],
        max_count: int | None = None,
        max_bytes: int | None = None,
        no_value: bool = False,
        reverse: bool = False,
    ) -> bool:
        """Put the live records of a sort-key range in ``out`` (sort key -> value, in the order
        read); returns whether it was read to its end (``ranges.read``)."""
        self.check_available(False)
        if self.holds_nothing:
            return True
        try:
            return ranges.read(
                self.db, rng, now_pegasus_seconds(), out, max_count, max_bytes, no_value, reverse
            )
        except Exception as exc:
            raise rdb_error(exc, self.path, self.pidx) from exc

    def read_keys(
        self, rng: ranges.KeyRange, max_count: int, max_steps: int, no_value: bool = False
    ) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
        """A batch of a key range across hash keys (a Pegasus scanner's, ``ranges.read_keys``):
        the records and the key to resume after, None when the range is read to its end."""
        self.check_available(False)
        if self.holds_nothing:
            return [], None
        try:
            return ranges.read_keys(self.db, rng, now_pegasus_seconds(), max_count, max_steps, no_value)
        except Exception as exc:
            raise rdb_error(exc, self.path, self.pidx) from exc

    def count_sort_keys(self, hash_key: bytes) -> int:
        """Live records under ``hash_key``."""
        self.check_available(False)
        if self.holds_nothing:
            return 0
        try:
            return ranges.count(self.db, hash_key, now_pegasus_seconds())
        except Exception as exc:
            raise rdb_error(exc, self.path, self.pidx) from exc

    def _typed(self, it: Iterator[Any]) -> Iterator[Any]:
        """Iterate ``it``, turning RocksDB's errors (a corrupt block met mid-scan) into typed ones."""
        try:
            yield from it
        except Exception as exc:
            raise rdb_error(exc, self.path, self.pidx) from exc

    def _scan(self, fn: Callable[..., Iterator[Any]], *args: Any) -> Iterator[Any]:
        self.check_available(False)
        if self.holds_nothing:
            return
        yield from self._typed(fn(self.db, *args))

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Live (sort_key, value) pairs under a hash-key prefix, in order."""
        return self._scan(scan.prefix, prefix, now_pegasus_seconds())

    def iter_records(self, batch_bytes: int = 0, chunk: int = scan.RECORDS_CHUNK) -> Iterator[Any]:
        """Live (hash_key, sort_key, value) records, read ``chunk`` entries per backend call;
        with ``batch_bytes``, ``scan.RecordBatch``es."""
        if batch_bytes:
            return self._scan(scan.record_batches, now_pegasus_seconds(), batch_bytes)
        return self._scan(scan.records, now_pegasus_seconds(), chunk)

    def raw_view(self) -> Iterator[tuple[bytes, bytes]]:
        """Every stored record as RocksDB key and value, expired included, as of this call:
        its RocksDB iterator is made now (call it under the lock to pin a decree), and reads
        that state however late it is consumed."""
        return self._typed(scan.raw(self.db.iter()))
