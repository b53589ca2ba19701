"""The rest of Pegasus's data API on a table of a multi-node cluster (issue #18): each call
sent to the owner of its key's partition with the routing and owner-retry of
routed_table.py; scans read partition by partition, each from its owner.

A mixin of ``RoutedTable``. The arguments are checked by the same request builders as a
served table's (data_requests.py), before anything is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ..data_api import (
    CheckAndMutateResult,
    CheckAndSetResult,
    FilterType,
    MultiGetResult,
    bool_arg,
    key_collection,
    limit_arg,
)
from ..net import pegasus_fast_pb2 as pb
from .data_requests import (
    Record,
    batch_keys,
    check_and_mutate_request,
    check_and_set_request,
    check_result,
    incr_request,
    key_request,
    multi_get_request,
    records,
    scan_range_request,
    scan_request,
    split,
)

if TYPE_CHECKING:
    from .remote_table import RemoteTable
    from .routing import Routing

_R = TypeVar("_R")


class RoutedDataApi:
    if TYPE_CHECKING:  # what RoutedTable provides
        _r: Routing
        name: str
        partition_count: int

        def partition_index(self, hash_key: object, sort_key: object = b"") -> int: ...

        def get(self, hash_key: object, sort_key: object) -> bytes | None: ...

        def _call(self, pidx: int, op: Callable[[str], _R]) -> _R: ...

        def _remote(self, url: str) -> RemoteTable: ...

    def _on_owner(self, pidx: int, method: str, request: Any) -> Any:
        return self._call(pidx, lambda url: self._r.conn(url)(method, request))

    def _stream(self, pidx: int, method: str, request: Any) -> Iterator[Record]:
        """The records a stream from the owner of ``pidx`` sends. Its first message is read inside
        the routing (a stale owner answers at once, and the call is routed again); the rest as
        the caller reads."""

        def first(url: str) -> tuple[Iterator[pb.RecordBatch], pb.RecordBatch | None]:
            it = self._r.conn(url).stream(method, request)
            return it, next(it, None)

        it, head = self._call(pidx, first)
        if head is None:
            return
        yield from records([head])
        yield from records(it)

    def exist(self, hash_key: object, sort_key: object) -> bool:
        return self.get(hash_key, sort_key) is not None

    def ttl(self, hash_key: object, sort_key: object) -> int | None:
        req = key_request(self.name, hash_key, sort_key)
        r = self._on_owner(self.partition_index(req.hash_key, req.sort_key), "Ttl", req)
        return r.ttl_seconds if r.found else None

    def sort_key_count(self, hash_key: object) -> int:
        req = key_request(self.name, hash_key, b"")
        return self._on_owner(self.partition_index(req.hash_key), "SortKeyCount", req).count

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
        """As :meth:`pegasus_fast.Table.multi_get`, from the owner of the hash key's partition."""
        if sort_keys is not None:
            sort_keys = list(key_collection(sort_keys))
        req = multi_get_request(
            self.name,
            hash_key,
            sort_keys,
            start_sort_key,
            stop_sort_key,
            start_inclusive,
            stop_inclusive,
            sort_key_filter,
            max_kv_count,
            max_kv_size,
            no_value,
            reverse,
        )
        if req.by_keys and not req.hash_key:
            # each sort key hashes on its own (to any node): read them, then limit as a table does
            values = self.batch_get_checked([(b"", sk) for sk in req.sort_keys])
            return _limited(
                [(sk, v) for sk, v in zip(req.sort_keys, values) if v is not None],
                limit_arg(max_kv_count, "max_kv_count"),
                limit_arg(max_kv_size, "max_kv_size"),
                bool_arg(no_value, "no_value"),
            )
        return self._call(
            self.partition_index(req.hash_key), lambda url: self._remote(url).multi_get_sent(req)
        )

    def batch_get(self, keys: Iterable[tuple[object, object]]) -> list[bytes | None]:
        return self.batch_get_checked(batch_keys(keys))

    def batch_get_checked(self, keys: list[tuple[bytes, bytes]]) -> list[bytes | None]:
        by_pidx: dict[int, list[int]] = {}
        for i, (hk, sk) in enumerate(keys):
            by_pidx.setdefault(self.partition_index(hk, sk), []).append(i)
        out: list[bytes | None] = [None] * len(keys)
        for pidx, idxs in by_pidx.items():
            mine = [keys[i] for i in idxs]
            values = self._call(pidx, lambda url, mine=mine: self._remote(url).batch_get_checked(mine))
            for i, v in zip(idxs, values):
                out[i] = v
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
        self._r.check_open()  # refused now, as an embedded table refuses it
        req = scan_range_request(
            self.name,
            hash_key,
            start_sort_key,
            stop_sort_key,
            start_inclusive,
            stop_inclusive,
            sort_key_filter,
            batch_size,
            no_value,
        )
        return self._stream(self.partition_index(req.hash_key), "ScanRange", req)

    def _scan_partitions(self, pidxs: list[int], base: pb.ScanFilteredRequest) -> Iterator[Record]:
        for pidx in pidxs:
            req = pb.ScanFilteredRequest()
            req.CopyFrom(base)
            req.partitions.append(pidx)
            yield from self._stream(pidx, "ScanFiltered", req)

    def scan(
        self,
        *,
        hash_key_filter: tuple[FilterType, object] | None = None,
        sort_key_filter: tuple[FilterType, object] | None = None,
        batch_size: int = 1000,
        no_value: bool = False,
    ) -> Iterator[Record]:
        """Every live record that passes the filters, partition by partition (each from its owner)."""
        self._r.check_open()
        base = scan_request(self.name, hash_key_filter, sort_key_filter, batch_size, no_value)
        return self._scan_partitions(list(range(self.partition_count)), base)

    def unordered_scanners(
        self,
        max_split_count: int,
        *,
        hash_key_filter: tuple[FilterType, object] | None = None,
        sort_key_filter: tuple[FilterType, object] | None = None,
        batch_size: int = 1000,
        no_value: bool = False,
    ) -> list[Iterator[Record]]:
        self._r.check_open()
        groups = split(max_split_count, self.partition_count)
        base = scan_request(self.name, hash_key_filter, sort_key_filter, batch_size, no_value)
        return [self._scan_partitions(g, base) for g in groups]

    def incr(
        self, hash_key: object, sort_key: object, increment: int = 1, ttl_seconds: int | None = None
    ) -> int:
        req = incr_request(self.name, hash_key, sort_key, increment, ttl_seconds)
        return self._on_owner(self.partition_index(req.hash_key, req.sort_key), "Incr", req).value

    def check_and_set(
        self,
        hash_key: object,
        check_sort_key: object,
        check_type: int,
        check_operand: object,
        set_sort_key: object,
        set_value: object,
        ttl_seconds: int | None = None,
        return_check_value: bool = False,
    ) -> CheckAndSetResult:
        req = check_and_set_request(
            self.name,
            hash_key,
            check_sort_key,
            check_type,
            check_operand,
            set_sort_key,
            set_value,
            ttl_seconds,
            return_check_value,
        )
        pidx = self.partition_index(req.hash_key, req.check_sort_key)
        return CheckAndSetResult(*check_result(self._on_owner(pidx, "CheckAndSet", req)))

    def check_and_mutate(
        self,
        hash_key: object,
        check_sort_key: object,
        check_type: int,
        check_operand: object,
        mutations: Any,
        return_check_value: bool = False,
    ) -> CheckAndMutateResult:
        req = check_and_mutate_request(
            self.name, hash_key, check_sort_key, check_type, check_operand, mutations, return_check_value
        )
        pidx = self.partition_index(req.hash_key, req.check_sort_key)
        return CheckAndMutateResult(*check_result(self._on_owner(pidx, "CheckAndMutate", req)))


def _limited(
    items: list[tuple[bytes, bytes]], max_count: int | None, max_size: int | None, no_value: bool
) -> MultiGetResult:
    """Records in sort key order cut by the limits as a table cuts multi_get of sort keys."""
    out = MultiGetResult()
    size = 0
    for sk, value in items:
        if (max_count is not None and len(out) >= max_count) or (max_size is not None and size >= max_size):
            out.complete = False
            break
        value = b"" if no_value else value
        out[sk] = value
        size += len(sk) + len(value)
    return out


__all__ = ["RoutedDataApi"]
