"""The data API's calls as a served and a routed table make them alike (issue #18).

Each method checks its arguments and builds its request (data_requests.py), then hands it to
the table's transport: a served table sends everything over its one connection
(remote_data.py), a routed one sends each call to the owner of its partition and reads scans
partition by partition (routed_data.py). Only the transport hooks differ between them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..data_api import CheckAndMutateResult, CheckAndSetResult, FilterType
from ..net import pegasus_fast_pb2 as pb
from .data_requests import (
    Record,
    batch_keys,
    check_and_mutate_request,
    check_and_set_request,
    check_result,
    incr_request,
    key_request,
    scan_range_request,
    scan_request,
    split,
)


class DataApiCalls:
    """A mixin; the table provides ``name``, ``partition_count``, ``partition_index``, ``get``
    and ``batch_get_checked``, and the transport hooks below."""

    if TYPE_CHECKING:  # what the table provides
        name: str
        partition_count: int

        def partition_index(self, hash_key: object, sort_key: object = b"") -> int: ...

        def get(self, hash_key: object, sort_key: object) -> bytes | None: ...

        def batch_get_checked(self, keys: list[tuple[bytes, bytes]]) -> list[bytes | None]: ...

    # -- the transport ------------------------------------------------------------------

    def _check_open(self) -> None:
        """ClosedError once the table's connection is closed (a scanner is refused at once)."""
        raise NotImplementedError

    def _unary(self, pidx: int, method: str, request: Any) -> Any:
        """One call answered by the partition ``pidx``'s server."""
        raise NotImplementedError

    def _scanner(self, pidx: int, method: str, request: Any) -> Iterator[Record]:
        """The records of one streamed call answered by the partition ``pidx``'s server."""
        raise NotImplementedError

    def _scan_all(self, base: pb.ScanFilteredRequest) -> Iterator[Record]:
        """The records of every partition the table's server(s) answer for."""
        raise NotImplementedError

    def _scan_groups(self, groups: list[list[int]], base: pb.ScanFilteredRequest) -> list[Iterator[Record]]:
        """One iterator of the table's records a group of partitions."""
        raise NotImplementedError

    # -- the calls ----------------------------------------------------------------------

    def exist(self, hash_key: object, sort_key: object) -> bool:
        return self.get(hash_key, sort_key) is not None

    def ttl(self, hash_key: object, sort_key: object) -> int | None:
        req = key_request(self.name, hash_key, sort_key)
        r = self._unary(self.partition_index(req.hash_key, req.sort_key), "Ttl", req)
        return r.ttl_seconds if r.found else None

    def sort_key_count(self, hash_key: object) -> int:
        req = key_request(self.name, hash_key, b"")
        return self._unary(self.partition_index(req.hash_key), "SortKeyCount", req).count

    def batch_get(self, keys: Iterable[tuple[object, object]]) -> list[bytes | None]:
        return self.batch_get_checked(batch_keys(keys))

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
        self._check_open()  # refused now, as an embedded table refuses it
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
        return self._scanner(self.partition_index(req.hash_key), "ScanRange", req)

    def scan(
        self,
        *,
        hash_key_filter: tuple[FilterType, object] | None = None,
        sort_key_filter: tuple[FilterType, object] | None = None,
        batch_size: int = 1000,
        no_value: bool = False,
    ) -> Iterator[Record]:
        """Every live record that passes the filters (as :meth:`pegasus_fast.Table.scan`)."""
        self._check_open()
        return self._scan_all(scan_request(self.name, hash_key_filter, sort_key_filter, batch_size, no_value))

    def unordered_scanners(
        self,
        max_split_count: int,
        *,
        hash_key_filter: tuple[FilterType, object] | None = None,
        sort_key_filter: tuple[FilterType, object] | None = None,
        batch_size: int = 1000,
        no_value: bool = False,
    ) -> list[Iterator[Record]]:
        self._check_open()
        groups = split(max_split_count, self.partition_count)
        base = scan_request(self.name, hash_key_filter, sort_key_filter, batch_size, no_value)
        return self._scan_groups(groups, base)

    def incr(
        self, hash_key: object, sort_key: object, increment: int = 1, ttl_seconds: int | None = None
    ) -> int:
        req = incr_request(self.name, hash_key, sort_key, increment, ttl_seconds)
        return self._unary(self.partition_index(req.hash_key, req.sort_key), "Incr", req).value

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
        return CheckAndSetResult(*check_result(self._unary(pidx, "CheckAndSet", req)))

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
        return CheckAndMutateResult(*check_result(self._unary(pidx, "CheckAndMutate", req)))


__all__ = ["DataApiCalls"]
