"""The storage op of each plain write request (put, remove, multi_put, multi_remove), refused
as Table would refuse it, and the key split every keyed request needs."""

from __future__ import annotations

from typing import Any

from ...records import KEY_LEN, MAX_HASH_KEY, MAX_VALUE, MAX_WRITE, Op
from . import codes
from .failures import InvalidRequest

_PUT, _DELETE, _MULTI_PUT, _MULTI_DELETE = (
    int(Op.PUT),
    int(Op.DELETE),
    int(Op.MULTI_PUT),
    int(Op.MULTI_DELETE),
)


def split_key(key: bytes) -> tuple[bytes, bytes]:
    """``(hash_key, sort_key)`` of Pegasus's rocksdb-style key (u16 BE length, hash key,
    sort key); a key whose length field overruns it is refused."""
    if len(key) < KEY_LEN.size:
        raise InvalidRequest(f"key of {len(key)} bytes has no hash key length")
    (n,) = KEY_LEN.unpack_from(key)
    if n > MAX_HASH_KEY or KEY_LEN.size + n > len(key):
        raise InvalidRequest(f"hash key length {n} overruns the {len(key)}-byte key")
    return key[2 : 2 + n], key[2 + n :]


def write_op(op: int, args: tuple[Any, ...]) -> tuple[tuple[Any, ...], int]:
    """The storage op of a write request and its size; refuses what Table would refuse."""
    if op == codes.OP_PUT:
        key, value, expire_ts = args
        hk, sk = split_key(key)
        return put_op(hk, sk, value, expire_ts, len(key))
    if op == codes.OP_REMOVE:
        hk, sk = split_key(args[0])
        _check_size(sk)
        return (_DELETE, hk, sk), len(args[0])
    if op == codes.OP_MULTI_PUT:
        hk, pairs, expire_ts = args
        if not pairs:
            raise InvalidRequest("multi_put needs at least one sort key")
        _check_size(*(x for kv in pairs for x in kv))
        size = len(hk) + sum(len(sk) + len(v) for sk, v in pairs)
        if size > MAX_WRITE:
            raise InvalidRequest(f"multi_put of {size} bytes; the limit is {MAX_WRITE}")
        return (_MULTI_PUT, hk, list(pairs), expire_ts & 0xFFFFFFFF), size
    hk, sks = args
    if not sks:
        raise InvalidRequest("multi_remove needs at least one sort key")
    _check_size(*sks)
    size = len(hk) + sum(len(sk) for sk in sks)
    if size > MAX_WRITE:
        raise InvalidRequest(f"multi_remove of {size} bytes; the limit is {MAX_WRITE}")
    return (_MULTI_DELETE, hk, list(sks)), size


def put_op(hk: bytes, sk: bytes, value: bytes, expire_ts: int, key_len: int) -> tuple[tuple[Any, ...], int]:
    """The storage op of a put of ``hk``/``sk`` (its encoded key ``key_len`` bytes) and its size."""
    if len(sk) > MAX_VALUE or len(value) > MAX_VALUE:
        _check_size(sk, value)
    return (_PUT, hk, sk, value, expire_ts & 0xFFFFFFFF), key_len + len(value)


def _check_size(*parts: bytes) -> None:
    for part in parts:
        if len(part) > MAX_VALUE:
            raise InvalidRequest(f"a sort key or value of {len(part)} bytes; the limit is {MAX_VALUE}")
