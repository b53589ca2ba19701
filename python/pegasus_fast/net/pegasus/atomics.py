"""Pegasus's read-modify-write RPCs against a partition: incr, check_and_set, check_and_mutate
(docs/pegasus-protocol.md §4; semantics of Pegasus's ``pegasus_write_service_impl.h``).

Each is one ``Partition.write_incr`` or ``write_if`` (storage/atomic.py): the check and the write happen
under the partition's lock and are logged as one mutation of their result, durable before
the answer. Arguments arrive as requests.py decodes them; what the store refuses for its
arguments raises ``InvalidArgumentError`` (answered kInvalidArgument by the handler).
"""

from __future__ import annotations

from typing import Any

from ...data_api import CheckType, MutateOperation
from ...errors import InvalidArgumentError
from ...records import MAX_HASH_KEY, MAX_VALUE, MAX_WRITE, Op, encode_key
from ...storage.stored import last_per_key
from . import codes

_PUT, _DELETE = int(Op.PUT), int(Op.DELETE)


def _expire_ts(wire: int) -> int:
    """A put's absolute expire_ts as the wire's i32 carries it (0: none)."""
    return wire & 0xFFFFFFFF


def _check(check_type: int) -> CheckType:
    try:
        return CheckType(check_type)
    except ValueError:
        raise InvalidArgumentError(f"check type {check_type} is not one Pegasus knows") from None


def _sizes(hash_key: bytes, *parts: bytes) -> None:
    if len(hash_key) > MAX_HASH_KEY:
        raise InvalidArgumentError(f"hash key of {len(hash_key)} bytes")
    for part in parts:
        if len(part) > MAX_VALUE:
            raise InvalidArgumentError(f"a sort key or value of {len(part)} bytes; the limit is {MAX_VALUE}")


def written_sort_keys(op: int, args: tuple[Any, ...]) -> list[bytes]:
    """The sort keys a check_and_set / check_and_mutate would write (for routing: with an empty
    hash key each sort key hashes on its own, so only the checked one may be written)."""
    if op == codes.OP_CHECK_AND_SET:
        return [args[5] if args[4] else args[1]]
    return [m[1] for m in args[4]]


def incr(p: Any, hash_key: bytes, sort_key: bytes, args: tuple[Any, ...]) -> tuple[int, int, int]:
    """``(status, new value, decree)``. The wire's expire_ts: 0 keeps the record's TTL, > 0 is
    the new absolute expire_ts, < 0 clears it (rrdb.thrift incr_request)."""
    key, increment, wire_ts = args
    _sizes(hash_key, sort_key)
    expire_ts = None if wire_ts == 0 else (0 if wire_ts < 0 else wire_ts)
    new = p.write_incr(key, hash_key, sort_key, increment, expire_ts)
    return codes.K_OK, new, p.last_committed


def check_and_set(p: Any, args: tuple[Any, ...]) -> tuple[int, bool, bool, bytes, int]:
    """``(status, check_value_returned, check_value_exist, check_value, decree)``; status
    kTryAgain when the check did not pass (nothing written)."""
    hk, check_sk, check_type, operand, diff, set_sk, value, wire_ts, returned = args
    if not diff:
        set_sk = check_sk
    _sizes(hk, check_sk, operand, set_sk, value)
    ops = [(_PUT, hk, set_sk, value, _expire_ts(wire_ts))]
    passed, exists, current = p.write_if(encode_key(hk, check_sk), _check(check_type), operand, ops)
    return _answer(p, passed, returned, exists, current)


def check_and_mutate(p: Any, args: tuple[Any, ...]) -> tuple[int, bool, bool, bytes, int]:
    """As :func:`check_and_set`, the mutations applied together when the check passes."""
    hk, check_sk, check_type, operand, mutations, returned = args
    if not mutations:
        raise InvalidArgumentError("check_and_mutate needs at least one mutation")
    _sizes(hk, check_sk, operand, *(x for m in mutations for x in m[1:3]))
    total = len(hk) + sum(len(m[1]) + len(m[2]) for m in mutations)
    if total > MAX_WRITE:
        raise InvalidArgumentError(f"check_and_mutate of {total} bytes; the limit is {MAX_WRITE}")
    ops: list[tuple[Any, ...]] = []
    for operation, sk, value, wire_ts in mutations:
        if operation == MutateOperation.PUT:
            ops.append((_PUT, hk, sk, value, _expire_ts(wire_ts)))
        elif operation == MutateOperation.DELETE:
            ops.append((_DELETE, hk, sk))
        else:
            raise InvalidArgumentError(f"mutate operation {operation} is not one Pegasus knows")
    passed, exists, current = p.write_if(
        encode_key(hk, check_sk), _check(check_type), operand, last_per_key(ops)
    )
    return _answer(p, passed, returned, exists, current)


def _answer(
    p: Any, passed: bool, returned: bool, exists: bool, current: bytes | None
) -> tuple[int, bool, bool, bytes, int]:
    status = codes.K_OK if passed else codes.K_TRY_AGAIN
    if not returned:
        return status, False, False, b"", p.last_committed
    return status, True, exists, current or b"", p.last_committed


def status_only(op: int, status: int) -> tuple[Any, ...]:
    """The result of an atomic RPC carrying only a failing status."""
    if op == codes.OP_INCR:
        return status, 0, 0
    return status, False, False, b"", 0
