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
    FilterType,
    MultiGetResult,
    bool_arg,
    key_collection,
    limit_arg,
)
from ..net import pegasus_fast_pb2 as pb
from .data_calls import DataApiCalls
from .data_requests import (
    Record,
    multi_get_request,
    records,
)

if TYPE_CHECKING:
    from .remote_table import RemoteTable
    from .routing import Routing

_R = TypeVar("_R")


class RoutedDataApi(DataApiCalls):
    if TYPE_CHECKING:  # what RoutedTable provides
        _r: Routing
        name: str
        partition_count: int

        def partition_index(self, hash_key: object, sort_key: object = b"") -> int: ...

        def get(self, hash_key: object, sort_key: object) -> bytes | None: ...

        def _call(self, pidx: int, op: Callable[[str], _R]) -> _R: ...

        def _remote(self, url: str) -> RemoteTable: ...

    # -- the transport (data_calls.py): each call to its partition's owner -----------------

    def _check_open(self) -> None:
        self._r.check_open()

    def _unary(self, pidx: int, method: str, request: Any) -> Any:
        return self._call(pidx, lambda url: self._r.conn(url)(method, request))

    def _scanner(self, pidx: int, method: str, request: Any) -> Iterator[Record]:
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

    def _scan_partitions(self, pidxs: list[int], base: pb.ScanFilteredRequest) -> Iterator[Record]:
        for pidx in pidxs:
            req = pb.ScanFilteredRequest()
            req.CopyFrom(base)
            req.partitions.append(pidx)
            yield from self._scanner(pidx, "ScanFiltered", req)

    def _scan_all(self, base: pb.ScanFilteredRequest) -> Iterator[Record]:
        return self._scan_partitions(list(range(self.partition_count)), base)

    def _scan_groups(self, groups: list[list[int]], base: pb.ScanFilteredRequest) -> list[Iterator[Record]]:
        return [self._scan_partitions(g, base) for g in groups]


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
