"""Twin of rust/src/python/scan.rs: scans of a RocksDB iterator (a rocksdict ``RdictIter``)."""

from __future__ import annotations

import struct
from typing import Any

from ..conditions import matches
from ..data_api import FilterType
from ..errors import InvalidArgumentError

_U64 = struct.Struct("<Q")


def _live(key: bytes, raw: bytes, now: int) -> tuple[bytes, bytes, bytes] | None:
    """``records.live_value`` after ``is_meta_key``, with the key split (``records.decode_key``)."""
    if len(key) < 2:
        return None
    if len(raw) < 12:
        raise InvalidArgumentError("a stored value is shorter than its 12-byte header")
    if raw[11] & 1:
        return None
    expire_ts = int.from_bytes(raw[:4], "big")
    if 0 < expire_ts <= now:
        return None
    end = 2 + int.from_bytes(key[:2], "big")
    return key[2:end], key[end:], raw[12:]


def _end(it: Any) -> bool:
    it.status()  # a RocksDB error that stopped the iterator early raises here
    return False


def scan_records(it: Any, now: int, limit: int) -> tuple[list[tuple[bytes, bytes, bytes]], bool]:
    out = []
    for _ in range(limit):
        key = it.key()  # None once the iterator is invalid
        if key is None:
            return out, _end(it)
        record = _live(key, it.value(), now)
        if record is not None:
            out.append(record)
        it.next()
    return out, True


def scan_batch(it: Any, now: int, max_bytes: int) -> tuple[int, list[bytes], bool]:
    bufs: list[bytearray] = [bytearray(), bytearray(), bytearray()]
    offsets: list[bytearray] = [bytearray(_U64.pack(0)) for _ in range(3)]
    count = total = 0
    while True:
        key = it.key()
        if key is None:
            more = _end(it)
            break
        record = _live(key, it.value(), now)
        it.next()
        if record is not None:
            for buf, offs, part in zip(bufs, offsets, record):
                buf += part
                offs += _U64.pack(len(buf))
                total += len(part)
            count += 1
            if total >= max(max_bytes, 1):
                more = True
                break
    return count, [bytes(b) for pair in zip(bufs, offsets) for b in pair], more


def scan_range(
    it: Any,
    now: int,
    end: bytes,
    reverse: bool,
    prefix_len: int,
    filter_type: int,
    pattern: bytes,
    max_count: int | None,
    max_bytes: int | None,
    no_value: bool,
    out: dict[bytes, bytes],
) -> bool:
    try:
        kind = FilterType(filter_type)
    except ValueError:
        raise InvalidArgumentError(f"unknown filter type {filter_type}") from None
    cap_count = 1 << 64 if max_count is None else max_count
    cap_bytes = 1 << 64 if max_bytes is None else max_bytes
    step = it.prev if reverse else it.next
    taken = size = 0
    while True:
        key = it.key()
        if key is None:
            it.status()
            return True
        if (key < end) if reverse else (key >= end):
            return True
        if taken >= cap_count or size >= cap_bytes:
            return False
        raw = it.value()
        if len(raw) < 12:
            raise InvalidArgumentError("a stored value is shorter than its 12-byte header")
        expire_ts = int.from_bytes(raw[:4], "big")
        if not raw[11] & 1 and not 0 < expire_ts <= now:
            sk = key[prefix_len:]
            if matches(kind, pattern, sk):
                value = b"" if no_value else raw[12:]
                out[sk] = value
                taken += 1
                size += len(sk) + len(value)
        step()
