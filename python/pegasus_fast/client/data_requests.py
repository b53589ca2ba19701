"""The requests of Pegasus's data API (issue #18) on a served or routed table, every argument
checked with the embedded table's rules (data_api.py), so a bad one raises the same typed
error before anything is sent; and what comes back, turned into the embedded results."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..data_api import (
    INT64_MAX,
    bool_arg,
    check_type_arg,
    filter_arg,
    int64_arg,
    key_collection,
    limit_arg,
    mutations_arg,
    mutations_size_arg,
    operand_arg,
    positive_arg,
)
from ..errors import InvalidArgumentError, InvalidTypeError
from ..net import pegasus_fast_pb2 as pb
from ..records import MAX_VALUE, as_bytes, check_size, expire_ts_for, hash_key_bytes

Record = tuple[bytes, bytes, bytes]


def _key_filter(value: object, what: str) -> pb.KeyFilter:
    kind, pattern = filter_arg(value, what)
    return pb.KeyFilter(type=int(kind), pattern=pattern)


def _ttl(ttl_seconds: object) -> int | None:
    expire_ts_for(ttl_seconds)  # its type and range, as an embedded write checks them
    return None if ttl_seconds is None else int(ttl_seconds)  # type: ignore[call-overload]


def key_request(table: str, hash_key: object, sort_key: object) -> pb.KeyRequest:
    return pb.KeyRequest(
        table=table, hash_key=hash_key_bytes(hash_key), sort_key=as_bytes(sort_key, "sort_key")
    )


def multi_get_request(
    table: str,
    hash_key: object,
    sort_keys: Iterable[object] | None,
    start_sort_key: object,
    stop_sort_key: object,
    start_inclusive: object,
    stop_inclusive: object,
    sort_key_filter: object,
    max_kv_count: object,
    max_kv_size: object,
    no_value: object,
    reverse: object,
) -> pb.MultiGetRangeRequest:
    max_count = limit_arg(max_kv_count, "max_kv_count")
    max_size = limit_arg(max_kv_size, "max_kv_size")
    req = pb.MultiGetRangeRequest(table=table, no_value=bool_arg(no_value, "no_value"))
    if max_count is not None:
        req.max_kv_count = min(max_count, INT64_MAX)
    if max_size is not None:
        req.max_kv_size = min(max_size, INT64_MAX)
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
        req.hash_key = hash_key_bytes(hash_key)
        req.by_keys = True
        req.sort_keys.extend(sks)
        return req
    rng = scan_range_request(
        table,
        hash_key,
        start_sort_key,
        stop_sort_key,
        start_inclusive,
        stop_inclusive,
        sort_key_filter,
        1,
        False,
    )
    req.hash_key = rng.hash_key
    req.start_sort_key, req.stop_sort_key = rng.start_sort_key, rng.stop_sort_key
    req.start_inclusive, req.stop_inclusive = rng.start_inclusive, rng.stop_inclusive
    req.sort_key_filter.CopyFrom(rng.sort_key_filter)
    req.reverse = bool_arg(reverse, "reverse")
    return req


def scan_range_request(
    table: str,
    hash_key: object,
    start_sort_key: object,
    stop_sort_key: object,
    start_inclusive: object,
    stop_inclusive: object,
    sort_key_filter: object,
    batch_size: object,
    no_value: object,
) -> pb.ScanRangeRequest:
    """A sort-key range of one (non-empty) hash key, every argument checked."""
    hk = hash_key_bytes(hash_key)
    if not hk:
        raise InvalidArgumentError("a sort-key range needs a non-empty hash_key")
    start = as_bytes(start_sort_key, "start_sort_key")
    stop = as_bytes(stop_sort_key, "stop_sort_key")
    start_in = bool_arg(start_inclusive, "start_inclusive")
    stop_in = bool_arg(stop_inclusive, "stop_inclusive")
    key_filter = _key_filter(sort_key_filter, "sort_key_filter")
    if stop and start > stop:
        raise InvalidArgumentError("start_sort_key is after stop_sort_key")
    return pb.ScanRangeRequest(
        table=table,
        hash_key=hk,
        start_sort_key=start,
        stop_sort_key=stop,
        start_inclusive=start_in,
        stop_inclusive=stop_in,
        sort_key_filter=key_filter,
        batch_size=min(positive_arg(batch_size, "batch_size"), INT64_MAX),
        no_value=bool_arg(no_value, "no_value"),
    )


def scan_request(
    table: str, hash_key_filter: object, sort_key_filter: object, batch_size: object, no_value: object
) -> pb.ScanFilteredRequest:
    return pb.ScanFilteredRequest(
        table=table,
        hash_key_filter=_key_filter(hash_key_filter, "hash_key_filter"),
        sort_key_filter=_key_filter(sort_key_filter, "sort_key_filter"),
        batch_size=min(positive_arg(batch_size, "batch_size"), INT64_MAX),
        no_value=bool_arg(no_value, "no_value"),
    )


def batch_keys(keys: object) -> list[tuple[bytes, bytes]]:
    if isinstance(keys, (bytes, str, bytearray, memoryview)) or not isinstance(keys, Iterable):
        raise InvalidTypeError("keys must be a collection of (hash_key, sort_key) pairs")
    out = []
    for pair in keys:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise InvalidTypeError("keys must be (hash_key, sort_key) pairs")
        out.append((hash_key_bytes(pair[0]), as_bytes(pair[1], "sort_key")))
    return out


def incr_request(
    table: str, hash_key: object, sort_key: object, increment: object, ttl_seconds: object
) -> pb.IncrRequest:
    hk, sk = hash_key_bytes(hash_key), check_size(as_bytes(sort_key, "sort_key"), "sort_key")
    req = pb.IncrRequest(table=table, hash_key=hk, sort_key=sk, increment=int64_arg(increment, "increment"))
    if (ttl := _ttl(ttl_seconds)) is not None:
        req.ttl_seconds = ttl
    return req


def check_and_set_request(
    table: str,
    hash_key: object,
    check_sort_key: object,
    check_type: object,
    check_operand: object,
    set_sort_key: object,
    set_value: object,
    ttl_seconds: object,
    return_check_value: object,
) -> pb.CheckAndSetRequest:
    req = pb.CheckAndSetRequest(
        table=table,
        hash_key=hash_key_bytes(hash_key),
        check_sort_key=check_size(as_bytes(check_sort_key, "check_sort_key"), "check_sort_key"),
        check_type=int(check_type_arg(check_type)),
        check_operand=operand_arg(check_operand),
        set_sort_key=check_size(as_bytes(set_sort_key, "set_sort_key"), "set_sort_key"),
        set_value=check_size(as_bytes(set_value, "set_value"), "set_value", MAX_VALUE),
        return_check_value=bool_arg(return_check_value, "return_check_value"),
    )
    if (ttl := _ttl(ttl_seconds)) is not None:
        req.ttl_seconds = ttl
    return req


def check_and_mutate_request(
    table: str,
    hash_key: object,
    check_sort_key: object,
    check_type: object,
    check_operand: object,
    mutations: object,
    return_check_value: object,
) -> pb.CheckAndMutateRequest:
    req = pb.CheckAndMutateRequest(
        table=table,
        hash_key=hash_key_bytes(hash_key),
        check_sort_key=check_size(as_bytes(check_sort_key, "check_sort_key"), "check_sort_key"),
        check_type=int(check_type_arg(check_type)),
        check_operand=operand_arg(check_operand),
        return_check_value=bool_arg(return_check_value, "return_check_value"),
    )
    muts = mutations_arg(mutations)
    mutations_size_arg(req.hash_key, muts)
    for m in muts:
        pm = req.mutations.add(operation=int(m.operation), sort_key=m.sort_key, value=m.value)
        if m.ttl_seconds is not None:
            pm.ttl_seconds = m.ttl_seconds
    return req


def check_result(reply: pb.CheckReply) -> tuple[bool, bool, bool, bytes | None]:
    value = reply.check_value if reply.HasField("check_value") else None
    return reply.succeed, reply.check_value_returned, reply.check_value_exist, value


def records(batches: Iterable[pb.RecordBatch]) -> Iterator[Record]:
    for batch in batches:
        for r in batch.records:
            yield r.hash_key, r.sort_key, r.value


def split(max_split_count: object, partition_count: int) -> list[list[int]]:
    """The partitions of each of unordered_scanners' scanners, as an embedded table splits them."""
    n = min(positive_arg(max_split_count, "max_split_count"), partition_count)
    return [list(range(i, partition_count, n)) for i in range(n)]


__all__ = [
    "Record",
    "batch_keys",
    "check_and_mutate_request",
    "check_and_set_request",
    "check_result",
    "incr_request",
    "key_request",
    "multi_get_request",
    "records",
    "scan_range_request",
    "scan_request",
    "split",
]
