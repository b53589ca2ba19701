"""The rest of Pegasus's data API on a served table (issue #18): :class:`RemoteDataApi`, the
mixin of ``RemoteTable`` that sends ttl, sort_key_count, multi_get with ranges and limits,
batch_get, scanners, incr and the checked writes over gRPC.

Arguments are checked before anything is sent (data_requests.py); the server checks again,
and what only it can judge (a stored value that is no int64, a failed check) comes back typed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..data_api import FilterType, MultiGetResult, key_collection
from ..net import pegasus_fast_pb2 as pb
from .data_calls import DataApiCalls
from .data_requests import (
    Record,
    multi_get_request,
    records,
)

if TYPE_CHECKING:
    from .conn import Conn


class RemoteDataApi(DataApiCalls):
    """The data API of issue #18 on a served table, over gRPC (a plain multi_get keeps the data
    port when the server has one)."""

    if TYPE_CHECKING:  # what RemoteTable provides
        _c: Conn
        name: str
        partition_count: int

        def get(self, hash_key: object, sort_key: object) -> bytes | None: ...

        def _native_multi_get(
            self, hash_key: object, sort_keys: Iterable[object] | None
        ) -> dict[bytes, bytes] | None: ...

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
        """As :meth:`pegasus_fast.Table.multi_get`."""
        plain = (
            start_sort_key == b""
            and stop_sort_key == b""
            and start_inclusive is True
            and stop_inclusive is False
            and sort_key_filter is None
            and max_kv_count is None
            and max_kv_size is None
            and no_value is False
            and reverse is False
        )
        if sort_keys is not None and not isinstance(sort_keys, (list, tuple, set, frozenset)):
            sort_keys = list(key_collection(sort_keys))  # read once: it may be an iterator
        if plain:
            got = self._native_multi_get(hash_key, sort_keys)
            if got is not None:
                return MultiGetResult(sorted(got.items()))
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
        return self.multi_get_sent(req)

    def multi_get_sent(self, req: pb.MultiGetRangeRequest) -> MultiGetResult:
        r = self._c("MultiGetRange", req)
        return MultiGetResult([(kv.sort_key, kv.value) for kv in r.kvs], r.complete)

    def batch_get_checked(self, keys: list[tuple[bytes, bytes]]) -> list[bytes | None]:
        if not keys:
            return []
        req = pb.BatchGetRequest(
            table=self.name, keys=[pb.HashSortKey(hash_key=h, sort_key=s) for h, s in keys]
        )
        return [v.value if v.found else None for v in self._c("BatchGet", req).values]

    # -- the transport (data_calls.py): everything over the one connection ------------------

    def _check_open(self) -> None:
        self._c.check_open()

    def _unary(self, pidx: int, method: str, request: Any) -> Any:
        return self._c(method, request)

    def _scanner(self, pidx: int, method: str, request: Any) -> Iterator[Record]:
        return records(self._c.stream(method, request))

    def _scan_all(self, base: pb.ScanFilteredRequest) -> Iterator[Record]:
        # no partitions named: the whole table (a node of a multi-node cluster: what it owns)
        return records(self._c.stream("ScanFiltered", base))

    def _scan_groups(self, groups: list[list[int]], base: pb.ScanFilteredRequest) -> list[Iterator[Record]]:
        out = []
        for g in groups:
            req = pb.ScanFilteredRequest()
            req.CopyFrom(base)
            req.partitions.extend(g)
            out.append(records(self._c.stream("ScanFiltered", req)))
        return out


__all__ = ["RemoteDataApi"]
