"""The read RPCs of one partition: get, ttl, sortkey_count, batch_get and multi_get (Pegasus's
on_multi_get: sort keys, or a sort-key range with its filter and limits)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...data_api import FilterType
from ...records import encode_key, live_value, now_pegasus_seconds
from ...storage.ranges import SortKeyRange
from . import codes
from .failures import InvalidRequest
from .replies import Response
from .requests import Request

if TYPE_CHECKING:
    from ...engine.table import Table

#: Pegasus's rocksdb_multi_get_max_iteration_count: the most records one multi_get returns
MULTI_GET_MAX_COUNT = 3000


def read(req: Request, table: Table, multi_get_max_count: int) -> Response:
    """The answer of a read request routed to ``table``."""
    op, seqid, app_id, pidx, name, args = req
    p = table.partitions[pidx]
    result: tuple[Any, ...]
    if op == codes.OP_GET:
        value = p.get(args[0])
        result = (codes.K_NOT_FOUND, b"") if value is None else (codes.K_OK, value)
    elif op == codes.OP_TTL:
        result = _ttl(p.get_raw(args[0]))
    elif op == codes.OP_SORTKEY_COUNT:
        result = (codes.K_OK, p.count_sort_keys(args[0]))
    elif op == codes.OP_BATCH_GET:
        keys = args[0]
        values = p.get_many([encode_key(hk, sk) for hk, sk in keys])
        result = (codes.K_OK, [(hk, sk, v) for (hk, sk), v in zip(keys, values) if v is not None])
    else:
        result = multi_get(p, multi_get_max_count, *args)
    return op, seqid, app_id, pidx, name, codes.ERR_OK, result


def multi_get(
    p: Any,
    max_count: int,
    hk: bytes,
    sks: list[bytes],
    max_kv_count: int,
    max_kv_size: int,
    no_value: bool,
    start: bytes,
    stop: bytes,
    start_inclusive: bool,
    stop_inclusive: bool,
    filter_type: int,
    pattern: bytes,
    reverse: bool,
) -> tuple[int, list[tuple[bytes, bytes]]]:
    """Pegasus's on_multi_get: a list of sort keys (in the order asked), or a sort-key range
    (an empty stop: to the end of the hash key) with its filter, in order or reversed; never
    more than ``max_count`` records."""
    count_limit = max_count
    if 0 < max_kv_count < count_limit:
        count_limit = max_kv_count
    size_limit = max_kv_size if max_kv_size > 0 else 1 << 62
    kvs: list[tuple[bytes, bytes]] = []
    count = size = 0
    if sks:
        for sk in sks:
            value = p.get(encode_key(hk, sk))
            if value is None:
                continue
            if count >= count_limit or size >= size_limit:
                return codes.K_INCOMPLETE, kvs
            v = b"" if no_value else value
            kvs.append((sk, v))
            count += 1
            size += len(sk) + len(v)
        return codes.K_OK, kvs
    try:
        kind = FilterType(filter_type)
    except ValueError:
        raise InvalidRequest(f"filter type {filter_type} is not one Pegasus knows") from None
    rng = SortKeyRange(hk, start, stop, start_inclusive, stop_inclusive, kind, pattern)
    records: dict[bytes, bytes] = {}
    size_cap = max_kv_size if max_kv_size > 0 else None
    complete = p.read_range(rng, records, count_limit, size_cap, no_value, reverse)
    return (codes.K_OK if complete else codes.K_INCOMPLETE), list(records.items())


def _ttl(raw: bytes | None) -> tuple[int, int]:
    now = now_pegasus_seconds()
    if live_value(raw, now) is None:
        return codes.K_NOT_FOUND, 0
    assert raw is not None
    expire_ts = int.from_bytes(raw[:4], "big")
    return codes.K_OK, (expire_ts - now) if expire_ts > 0 else -1
