"""What an atomic write (atomic.py) makes of a stored record: whether it is live, an incr's
new value, a check_and_mutate's ops as one WriteBatch leaves them. Pure decisions, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..conditions import parse_int64
from ..data_api import INT64_MAX, INT64_MIN
from ..errors import InvalidArgumentError
from ..records import now_pegasus_seconds

NO_TTL = b"\x00\x00\x00\x00"


def live(raw: bytes | None) -> tuple[bytes | None, int]:
    """(user value or None when absent, expired or a tombstone; its expire_ts)."""
    if raw is None or raw[11] & 1:
        return None, 0
    if raw[:4] == NO_TTL:
        return raw[12:], 0
    expire_ts = int.from_bytes(raw[:4], "big")
    if expire_ts <= now_pegasus_seconds():
        return None, 0
    return raw[12:], expire_ts


def incr_value(raw: bytes | None, increment: int, expire_ts: int | None) -> tuple[bytes, int, int]:
    """What an incr of the stored record ``raw`` (None: absent) writes: (the new value's
    ASCII decimal, the new value, the expire_ts to store); ``expire_ts`` None keeps the
    record's TTL, 0 clears it, else it is the new one. ``Partition.write_incr`` applies it
    under the partition's lock; the backend's ``incr_step`` decides the common cases first,
    alike, and this every other (Pegasus's other int forms, the errors)."""
    value, old_expire = live(raw)
    if not value:
        base = 0
    else:
        parsed = parse_int64(value)
        if parsed is None:
            raise InvalidArgumentError("incr of a value that is not an int64")
        base = parsed
    new = base + increment
    if not INT64_MIN <= new <= INT64_MAX:
        raise InvalidArgumentError("incr overflows int64")
    if expire_ts is not None:
        old_expire = expire_ts
    elif value is None:
        old_expire = 0
    return b"%d" % new, new, old_expire


def last_per_key(ops: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``ops`` with only the last op of each sort key, in the order of those last ops: what one
    WriteBatch of them leaves, logged as the result (a follower's last-writer-wins then never
    weighs two ops of one mutation on one key against each other)."""
    last: dict[bytes, tuple[Any, ...]] = {}
    for op in ops:
        last.pop(op[2], None)
        last[op[2]] = op
    return list(last.values())


__all__ = ["NO_TTL", "incr_value", "last_per_key", "live"]
