"""The read side of a table's data API (issue #18): exist, ttl, sort_key_count, multi_get,
batch_get, scanners. A mixin of ``Table`` (table.py), which provides the routing.

Semantics follow Pegasus's server (``pegasus_server_impl.cpp``): expired records and
tombstones are invisible to every read; an empty stop sort key reads to the end of the
hash key; a prefix filter narrows the range read; limits cut a read short and say so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from ..conditions import filter_fn
from ..data_api import (
    FilterType,
    MultiGetResult,
    bool_arg,
    filter_arg,
    key_collection,
    limit_arg,
    positive_arg,
)
from ..errors import ClosedError, InvalidArgumentError, InvalidTypeError
from ..records import VALUE_HEADER, as_bytes, encode_key, hash_key_bytes, now_pegasus_seconds
from ..storage.ranges import SortKeyRange, batches

if TYPE_CHECKING:
    from ..storage.partition import Partition

Record = tuple[bytes, bytes, bytes]
Keep = Callable[[bytes], bool] | None


class TableReads:
    if TYPE_CHECKING:  # what Table provides
        name: str
        partitions: list[Partition]
        partition_count: int
        _closed: bool

        def _route(self, hash_key: object, sort_key: object = b"") -> tuple[Partition, bytes, bytes]: ...

        def _route_multi(self, hash_key: object) -> tuple[Partition, bytes, bytes]: ...

        def get(self, hash_key: object, sort_key: object) -> bytes | None: ...

    def _open_check(self) -> None:
        if self._closed:
            raise ClosedError(f"table {self.name!r} is closed")

    def exist(self, hash_key: object, sort_key: object) -> bool:
        """Whether a live record is stored under the key."""
        return self.get(hash_key, sort_key) is not None

    def ttl(self, hash_key: object, sort_key: object) -> int | None:
        """Seconds the record has left, -1 for one without TTL, None when absent or expired."""
        p, hk, sk = self._route(hash_key, sort_key)
        raw = p.get_raw(encode_key(hk, sk))
        if raw is None or raw[11] & 1:
            return None
        expire_ts = VALUE_HEADER.unpack_from(raw)[0]
        if expire_ts == 0:
            return -1
        left = expire_ts - now_pegasus_seconds()
        return left if left > 0 else None

    def sort_key_count(self, hash_key: object) -> int:
        """Live records under ``hash_key`` (which must not be empty, as in Pegasus)."""
        p, hk, _ = self._route_multi(hash_key)
        return p.count_sort_keys(hk)

    def multi_get(
        self,
        hash_key: object,
        sort_keys: Iterable[object] | None = None,
        *,
        start_sort_key: object = b"",
        stop_sort_key: object = b"",
        start_inclusive: bool = True,
        stop_inclusive: bool = False,
        sort_key_filter: tuple[FilterType, object] | None = None,
        max_kv_count: int | None = None,
        max_kv_size: int | None = None,
        no_value: bool = False,
        reverse: bool = False,
    ) -> MultiGetResult:
        """Records of one hash key: those of ``sort_keys``, or else those of a sort-key range.

        ``max_kv_count`` and ``max_kv_size`` (sort keys plus values, counted as Pegasus
        counts them: the record that reaches the size is still returned) limit the result;
        ``.complete`` is then False if records were left. ``sort_keys`` are read in sort key
        order, so a limit keeps the smallest. ``sort_keys`` with any range, filter or
        ``reverse`` is InvalidArgumentError.
        """
        self._open_check()
        max_count = limit_arg(max_kv_count, "max_kv_count")
        max_size = limit_arg(max_kv_size, "max_kv_size")
        no_value = bool_arg(no_value, "no_value")
        if sort_keys is not None:
            sks = sorted({as_bytes(sk, "sort_key") for sk in key_collection(sort_keys)})
            ranged = (
                start_sort_key != b""
                or stop_sort_key != b""
                or start_inclusive is not True
                or stop_inclusive is not False
                or sort_key_filter is not None
                or reverse is not False
            )
            if ranged:
                raise InvalidArgumentError("multi_get takes sort_keys or a range, not both")
            return self._multi_get_keys(hash_key, sks, max_count, max_size, no_value)
        rng = self._range(
            hash_key, start_sort_key, stop_sort_key, start_inclusive, stop_inclusive, sort_key_filter
        )
        reverse = bool_arg(reverse, "reverse")
        p = self._route(rng.hash_key)[0]
        out = MultiGetResult()
        out.complete = p.read_range(rng, out, max_count, max_size, no_value, reverse)
        return out

    def _multi_get_keys(
        self, hash_key: object, sks: list[bytes], max_count: int | None, max_size: int | None, no_value: bool
    ) -> MultiGetResult:
        hk = hash_key_bytes(hash_key)
        if hk:
            p = self._route(hk)[0]
            values = p.get_many([encode_key(hk, sk) for sk in sks])
        else:  # each sort key hashes on its own
            values = [self.get(hk, sk) for sk in sks]
        out = MultiGetResult()
        size = 0
        for sk, value in zip(sks, values):
            if value is None:
                continue
            if (max_count is not None and len(out) >= max_count) or (
                max_size is not None and size >= max_size
            ):
                out.complete = False
                break
            if no_value:
                value = b""
            out[sk] = value
            size += len(sk) + len(value)
        return out

    def _range(
        self,
        hash_key: object,
        start_sort_key: object,
        stop_sort_key: object,
        start_inclusive: object,
        stop_inclusive: object,
        sort_key_filter: object,
    ) -> SortKeyRange:
        """A sort-key range, every argument checked (an empty hash key is refused: its sort
        keys hash to different partitions)."""
        self._open_check()
        hk = hash_key_bytes(hash_key)
        if not hk:
            raise InvalidArgumentError("a sort-key range needs a non-empty hash_key")
        start = as_bytes(start_sort_key, "start_sort_key")
        stop = as_bytes(stop_sort_key, "stop_sort_key")
        start_in = bool_arg(start_inclusive, "start_inclusive")
        stop_in = bool_arg(stop_inclusive, "stop_inclusive")
        kind, pattern = filter_arg(sort_key_filter, "sort_key_filter")
        if stop and start > stop:
            raise InvalidArgumentError("start_sort_key is after stop_sort_key")
        return SortKeyRange(hk, start, stop, start_in, stop_in, kind, pattern)

    def batch_get(self, keys: Iterable[tuple[object, object]]) -> list[bytes | None]:
        """The value of each ``(hash_key, sort_key)`` pair, in order (None: absent)."""
        if isinstance(keys, (bytes, str, bytearray, memoryview)) or not isinstance(keys, Iterable):
            raise InvalidTypeError("keys must be a collection of (hash_key, sort_key) pairs")
        routed: dict[int, list[tuple[int, bytes]]] = {}
        count = 0
        for i, pair in enumerate(keys):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise InvalidTypeError("keys must be (hash_key, sort_key) pairs")
            p, hk, sk = self._route(pair[0], pair[1])
            routed.setdefault(p.pidx, []).append((i, encode_key(hk, sk)))
            count = i + 1
        out: list[bytes | None] = [None] * count
        for pidx, items in routed.items():
            values = self.partitions[pidx].get_many([key for _, key in items])
            for (i, _), value in zip(items, values):
                out[i] = value
        return out

    def get_scanner(
        self,
        hash_key: object,
        start_sort_key: object = b"",
        stop_sort_key: object = b"",
        *,
        start_inclusive: bool = True,
        stop_inclusive: bool = False,
        sort_key_filter: tuple[FilterType, object] | None = None,
        batch_size: int = 1000,
        no_value: bool = False,
    ) -> Iterator[Record]:
        """(hash_key, sort_key, value) of a sort-key range of one hash key, in order, read
        ``batch_size`` records at a time (each batch from after the last key read: a record
        written behind the scanner is not seen, one written ahead of it is)."""
        rng = self._range(
            hash_key, start_sort_key, stop_sort_key, start_inclusive, stop_inclusive, sort_key_filter
        )
        size = positive_arg(batch_size, "batch_size")
        no_value = bool_arg(no_value, "no_value")
        p = self._route(rng.hash_key)[0]

        def read_batch(r: SortKeyRange, n: int) -> tuple[dict[bytes, bytes], bool]:
            self._open_check()
            records: dict[bytes, bytes] = {}
            return records, p.read_range(r, records, n, None, no_value)

        hk = rng.hash_key
        return ((hk, sk, v) for batch in batches(read_batch, rng, size) for sk, v in batch.items())

    def scan(
        self,
        *,
        hash_key_filter: tuple[FilterType, object] | None = None,
        sort_key_filter: tuple[FilterType, object] | None = None,
        batch_size: int = 1000,
        no_value: bool = False,
    ) -> Iterator[Record]:
        """Every live record, partition by partition, in key order within each; with filters,
        those whose hash key and sort key pass them."""
        return self._scan_partitions(self.partitions, hash_key_filter, sort_key_filter, batch_size, no_value)

    def scan_partitions(
        self,
        pidxs: Iterable[int],
        *,
        hash_key_filter: tuple[FilterType, object] | None = None,
        sort_key_filter: tuple[FilterType, object] | None = None,
        batch_size: int = 1000,
        no_value: bool = False,
    ) -> Iterator[Record]:
        """:meth:`scan` of these partitions only, in this order (what a served node owns, or one
        scanner of :meth:`unordered_scanners` read over the wire)."""
        parts = [self.partitions[i] for i in pidxs]
        return self._scan_partitions(parts, hash_key_filter, sort_key_filter, batch_size, no_value)

    def unordered_scanners(
        self,
        max_split_count: int,
        *,
        hash_key_filter: tuple[FilterType, object] | None = None,
        sort_key_filter: tuple[FilterType, object] | None = None,
        batch_size: int = 1000,
        no_value: bool = False,
    ) -> list[Iterator[Record]]:
        """At most ``max_split_count`` scanners over disjoint sets of partitions that together
        cover the table (Pegasus's get_unordered_scanners); each may run on its own thread."""
        split = min(positive_arg(max_split_count, "max_split_count"), self.partition_count)
        groups = [self.partitions[i::split] for i in range(split)]
        return [
            self._scan_partitions(g, hash_key_filter, sort_key_filter, batch_size, no_value) for g in groups
        ]

    def _scan_partitions(
        self,
        partitions: list[Partition],
        hash_key_filter: object,
        sort_key_filter: object,
        batch_size: object,
        no_value: object,
    ) -> Iterator[Record]:
        self._open_check()
        hk_kind, hk_pattern = filter_arg(hash_key_filter, "hash_key_filter")
        sk_kind, sk_pattern = filter_arg(sort_key_filter, "sort_key_filter")
        chunk = positive_arg(batch_size, "batch_size")
        strip = bool_arg(no_value, "no_value")
        keep_hk, keep_sk = filter_fn(hk_kind, hk_pattern), filter_fn(sk_kind, sk_pattern)
        return self._records(partitions, chunk, keep_hk, keep_sk, strip)

    def _records(
        self, partitions: list[Partition], chunk: int, keep_hk: Keep, keep_sk: Keep, strip: bool
    ) -> Iterator[Record]:
        for p in partitions:
            self._open_check()
            records = p.iter_records(chunk=chunk)
            if keep_hk is None and keep_sk is None and not strip:
                yield from records
            elif not strip:
                for r in records:
                    if (keep_hk is None or keep_hk(r[0])) and (keep_sk is None or keep_sk(r[1])):
                        yield r
            else:
                for hk, sk, _v in records:
                    if (keep_hk is None or keep_hk(hk)) and (keep_sk is None or keep_sk(sk)):
                        yield hk, sk, b""


__all__ = ["TableReads"]
