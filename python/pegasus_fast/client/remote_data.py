"""The rest of Pegasus's data API on a served table (issue #18): :class:`RemoteDataApi`, the
mixin of ``RemoteTable`` that sends ttl, sort_key_count, multi_get with ranges and limits,
batch_get, scanners, incr and the checked writes over gRPC.

Arguments are checked before anything is sent (data_requests.py); the server checks again,
and what only it can judge (a stored value that is no int64, a failed check) comes back typed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..data_api import CheckAndMutateResult, CheckAndSetResult, FilterType, MultiGetResult, key_collection
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
    from .conn import Conn


class RemoteDataApi:
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

    def exist(self, hash_key: object, sort_key: object) -> bool:
        return self.get(hash_key, sort_key) is not None

    def ttl(self, hash_key: object, sort_key: object) -> int | None:
        r = self._c("Ttl", key_request(self.name, hash_key, sort_key))
        return r.ttl_seconds if r.found else None

    def sort_key_count(self, hash_key: object) -> int:
        return self._c("SortKeyCount", key_request(self.name, hash_key, b"")).count

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

    def batch_get(self, keys: Iterable[tuple[object, object]]) -> list[bytes | None]:
        return self.batch_get_checked(batch_keys(keys))

    def batch_get_checked(self, keys: list[tuple[bytes, bytes]]) -> list[bytes | None]:
        if not keys:
            return []
        req = pb.BatchGetRequest(
            table=self.name, keys=[pb.HashSortKey(hash_key=h, sort_key=s) for h, s in keys]
        )
        return [v.value if v.found else None for v in self._c("BatchGet", req).values]

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
        """As :meth:`pegasus_fast.Table.get_scanner`, streamed by the server ``batch_size``
        records a message; the server reads ahead of the client by what the stream buffers.
        A scanner dropped before its end cancels the stream, which frees the server's side."""
        self._c.check_open()  # refused now, as an embedded table refuses it
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
        return records(self._c.stream("ScanRange", req))

    def scan(
        self,
        *,
        hash_key_filter: tuple[FilterType, object] | None = None,
        sort_key_filter: tuple[FilterType, object] | None = None,
        batch_size: int = 1000,
        no_value: bool = False,
    ) -> Iterator[Record]:
        """Every live record (as :meth:`pegasus_fast.Table.scan`), streamed by the server."""
        self._c.check_open()
        req = scan_request(self.name, hash_key_filter, sort_key_filter, batch_size, no_value)
        return records(self._c.stream("ScanFiltered", req))

    def unordered_scanners(
        self,
        max_split_count: int,
        *,
        hash_key_filter: tuple[FilterType, object] | None = None,
        sort_key_filter: tuple[FilterType, object] | None = None,
        batch_size: int = 1000,
        no_value: bool = False,
    ) -> list[Iterator[Record]]:
        self._c.check_open()
        groups = split(max_split_count, self.partition_count)
        base = scan_request(self.name, hash_key_filter, sort_key_filter, batch_size, no_value)
        out = []
        for g in groups:
            req = pb.ScanFilteredRequest()
            req.CopyFrom(base)
            req.partitions.extend(g)
            out.append(records(self._c.stream("ScanFiltered", req)))
        return out

    def incr(
        self, hash_key: object, sort_key: object, increment: int = 1, ttl_seconds: int | None = None
    ) -> int:
        return self._c("Incr", incr_request(self.name, hash_key, sort_key, increment, ttl_seconds)).value

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
        return CheckAndSetResult(*check_result(self._c("CheckAndSet", req)))

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
        return CheckAndMutateResult(*check_result(self._c("CheckAndMutate", req)))


__all__ = ["RemoteDataApi"]
