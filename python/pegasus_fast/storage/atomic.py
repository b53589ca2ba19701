"""Atomic writes of one partition: incr, check_and_set, check_and_mutate.

Each reads, checks and writes under the partition's lock (``Partition.write_checked``),
and logs its RESULT as one mutation of plain puts and deletes, as Pegasus does since it
makes atomic writes idempotent (apache/incubator-pegasus#2197): an incr logs a put of the
new value, a check that passed logs the sets and deletes it applies, a check that failed
logs nothing. So replay, a follower and a master-master peer see only puts and deletes, and
applying them again gives the same records; they never re-run the operation.

Pegasus's rules, as ``pegasus_write_service_impl.h`` applies them:

- incr: an absent or expired record, or an empty value, counts as 0; a value that is not an
  int64 (``conditions.parse_int64``) or a sum outside int64 is InvalidArgumentError and
  nothing changes. The new value is stored as ASCII decimal. TTL: keep the record's (None),
  clear it (0) or set it (> 0); a record that did not exist gets a TTL only when one is set.
- a check of a record that is absent or expired sees "does not exist".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..conditions import check_passes, parse_int64
from ..data_api import INT64_MAX, INT64_MIN, CheckType
from ..errors import InvalidArgumentError
from ..records import Op, now_pegasus_seconds

if TYPE_CHECKING:
    from .partition import Partition

_PUT, _DELETE = int(Op.PUT), int(Op.DELETE)


_NO_TTL = b"\x00\x00\x00\x00"
_NOTHING: list[tuple[Any, ...]] = []


def _live(raw: bytes | None) -> tuple[bytes | None, int]:
    """(user value or None when absent, expired or a tombstone; its expire_ts)."""
    if raw is None or raw[11] & 1:
        return None, 0
    if raw[:4] == _NO_TTL:
        return raw[12:], 0
    expire_ts = int.from_bytes(raw[:4], "big")
    if expire_ts <= now_pegasus_seconds():
        return None, 0
    return raw[12:], expire_ts


def incr(
    p: Partition, hash_key: bytes, sort_key: bytes, key: bytes, increment: int, expire_ts: int | None
) -> int:
    """Add ``increment`` to the int64 stored at ``key``; returns the new value.

    ``expire_ts``: None keeps the record's TTL, 0 clears it, else the new expire_ts.
    """

    def decide(get_raw: Callable[[bytes], bytes | None]) -> tuple[list[tuple[Any, ...]], int]:
        raw = get_raw(key)
        if raw is not None and raw[:4] == _NO_TTL and not raw[11] & 1:
            value, old_expire = raw[12:], 0  # _live() inline: a live record without TTL, the usual case
        else:
            value, old_expire = _live(raw)
        if not value:
            base = 0
        elif value.isdigit() and len(value) < 19 and (value[0] != 48 or len(value) == 1):
            base = int(value)  # plain decimal (a leading 0 would be octal to Pegasus)
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
        return [(_PUT, hash_key, sort_key, b"%d" % new, old_expire)], new

    return p.write_checked(decide)


def check_and_write(
    p: Partition,
    check_key: bytes,
    check: CheckType,
    operand: bytes,
    ops: list[tuple[Any, ...]],
) -> tuple[bool, bool, bytes | None]:
    """Log and apply ``ops`` as one mutation if the record at ``check_key`` passes ``check``
    against ``operand``. Returns (passed, whether it existed, its value or None)."""

    def decide(
        get_raw: Callable[[bytes], bytes | None],
    ) -> tuple[list[tuple[Any, ...]], tuple[bool, bool, bytes | None]]:
        value = _live(get_raw(check_key))[0]
        if value is None:
            passed = check_passes(check, operand, False, b"")
        else:
            passed = check_passes(check, operand, True, value)
        return (ops if passed else _NOTHING), (passed, value is not None, value)

    return p.write_checked(decide)


def last_per_key(ops: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``ops`` with only the last op of each sort key, in the order of those last ops: what one
    WriteBatch of them leaves, logged as the result (a follower's last-writer-wins then never
    weighs two ops of one mutation on one key against each other)."""
    last: dict[bytes, tuple[Any, ...]] = {}
    for op in ops:
        last.pop(op[2], None)
        last[op[2]] = op
    return list(last.values())


__all__ = ["check_and_write", "incr", "last_per_key"]
