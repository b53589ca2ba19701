"""Encode a compact response into the bytes of one reply frame (docs/pegasus-protocol.md §2.3, §4).

A response is a plain tuple ``(op, seqid, app_id, pidx, name, error, result)``:
``name`` the request's RPC name, ``error`` the rDSN error name (``"ERR_OK"`` or
another, see codes.py), ``result`` ``None`` unless ``error`` is ``ERR_OK``, and
then:

=========================================  =======================================
OP_QUERY_CFG                               ``(err_name, app_id, partition_count,
                                           [(pidx, ballot, last_committed), ...])``;
                                           a node of a multi-node cluster adds each
                                           partition's primary: ``(..., rpc_address)``
OP_PUT, OP_MULTI_PUT, OP_REMOVE            ``(rocksdb status, decree)``
OP_MULTI_REMOVE                            ``(rocksdb status, count, decree)``
OP_GET, OP_REPLICATE, OP_DUP_APPLY         ``(rocksdb status, value)``
OP_MULTI_GET                               ``(rocksdb status, [(sort_key, value), ...])``
OP_SORTKEY_COUNT                           ``(rocksdb status, count)``
OP_TTL                                     ``(rocksdb status, ttl_seconds)``
OP_INCR                                    ``(rocksdb status, new_value, decree)``
OP_CHECK_AND_SET, OP_CHECK_AND_MUTATE      ``(rocksdb status, check_value_returned,
                                           check_value_exist, check_value, decree)``
OP_BATCH_GET                               ``(rocksdb status, [(hash_key, sort_key, value)])``
OP_GET_SCANNER, OP_SCAN                    ``(rocksdb status, [(key, value), ...],
                                           context_id)``; keys are rocksdb-style
=========================================  =======================================

A reply is ``i32 total length`` (counting itself), the error name as a Thrift
string, a strict message header ``(name + "_ACK", T_REPLY, seqid)``, and, when
the error is ERR_OK, the RPC's result struct (its response in field 0).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from . import codes
from .thrift import (
    T_REPLY,
    T_STRUCT,
    put_binary_value,
    put_blob,
    put_bool,
    put_field,
    put_i32,
    put_i64,
    put_list_begin,
    put_message_begin,
    put_stop,
    put_string,
)

Response = tuple[int, int, int, int, str, str, Any]
_LEN = struct.Struct(">i")


def reply_name(name: str) -> bytes:
    """The reply's message name: the request's plus ``_ACK``, cut as rDSN keeps it."""
    return (name + codes.ACK).encode("utf-8", "replace")[: codes.MAX_RPC_NAME]


def encode_response(resp: Response, server: bytes, primary: int) -> bytes | None:
    """One reply frame, or None for a oneway RPC (clear_scanner) that gets no reply.
    ``server`` is this node's ``host:port``, which rrdb responses carry; ``primary`` the same
    as an rpc_address (:func:`rpc_address`), which the meta query names as every partition's
    primary. Both are the address the client reached, so a front end passes its socket's."""
    op, seqid, app_id, pidx, name, error, result = resp
    if op == codes.OP_CLEAR_SCANNER:
        return None
    out = bytearray(b"\0\0\0\0")
    put_binary_value(out, error.encode("ascii"))
    put_message_begin(out, reply_name(name), T_REPLY, seqid)
    if error == codes.ERR_OK:
        put_field(out, T_STRUCT, 0)
        if op == codes.OP_QUERY_CFG:
            _query_cfg(out, primary, result)
        else:
            _BODIES[op](out, app_id, pidx, server, result)
        put_stop(out)  # end of the result struct
    _LEN.pack_into(out, 0, len(out))
    return bytes(out)


def _tail(out: bytearray, app_id: int, pidx: int, server: bytes, first: int = 3, server_id: int = 6) -> None:
    put_i32(out, first, app_id)
    put_i32(out, first + 1, pidx)
    put_string(out, server_id, server)
    put_stop(out)


def _update(out: bytearray, app_id: int, pidx: int, server: bytes, result: Any) -> None:
    status, decree = result
    put_i32(out, 1, status)
    put_i32(out, 2, app_id)
    put_i32(out, 3, pidx)
    put_i64(out, 4, decree)
    put_string(out, 5, server)
    put_stop(out)


def _multi_remove(out: bytearray, app_id: int, pidx: int, server: bytes, result: Any) -> None:
    status, count, decree = result
    put_i32(out, 1, status)
    put_i64(out, 2, count)
    put_i32(out, 3, app_id)
    put_i32(out, 4, pidx)
    put_i64(out, 5, decree)
    put_string(out, 6, server)
    put_stop(out)


def _read(out: bytearray, app_id: int, pidx: int, server: bytes, result: Any) -> None:
    status, value = result
    put_i32(out, 1, status)
    put_blob(out, 2, value)
    _tail(out, app_id, pidx, server)


def _kvs(out: bytearray, fid: int, kvs: list[tuple[bytes, bytes]]) -> None:
    put_list_begin(out, fid, T_STRUCT, len(kvs))
    for k, v in kvs:
        put_blob(out, 1, k)
        put_blob(out, 2, v)
        put_stop(out)


def _multi_get(out: bytearray, app_id: int, pidx: int, server: bytes, result: Any) -> None:
    status, kvs = result
    put_i32(out, 1, status)
    _kvs(out, 2, kvs)
    _tail(out, app_id, pidx, server)


def _count(out: bytearray, app_id: int, pidx: int, server: bytes, result: Any) -> None:
    status, count = result
    put_i32(out, 1, status)
    put_i64(out, 2, count)
    _tail(out, app_id, pidx, server)


def _ttl(out: bytearray, app_id: int, pidx: int, server: bytes, result: Any) -> None:
    status, ttl = result
    put_i32(out, 1, status)
    put_i32(out, 2, ttl)
    _tail(out, app_id, pidx, server)


def _incr(out: bytearray, app_id: int, pidx: int, server: bytes, result: Any) -> None:
    status, new_value, decree = result
    put_i32(out, 1, status)
    put_i64(out, 2, new_value)
    put_i32(out, 3, app_id)
    put_i32(out, 4, pidx)
    put_i64(out, 5, decree)
    put_string(out, 6, server)
    put_stop(out)


def _check_and(out: bytearray, app_id: int, pidx: int, server: bytes, result: Any) -> None:
    # check_and_set_response and check_and_mutate_response have the same fields
    status, returned, exists, value, decree = result
    put_i32(out, 1, status)
    put_bool(out, 2, returned)
    put_bool(out, 3, exists)
    put_blob(out, 4, value)
    put_i32(out, 5, app_id)
    put_i32(out, 6, pidx)
    put_i64(out, 7, decree)
    put_string(out, 8, server)
    put_stop(out)


def _batch_get(out: bytearray, app_id: int, pidx: int, server: bytes, result: Any) -> None:
    status, data = result
    put_i32(out, 1, status)
    put_list_begin(out, 2, T_STRUCT, len(data))
    for hk, sk, v in data:
        put_blob(out, 1, hk)
        put_blob(out, 2, sk)
        put_blob(out, 3, v)
        put_stop(out)
    _tail(out, app_id, pidx, server)


def _scan(out: bytearray, app_id: int, pidx: int, server: bytes, result: Any) -> None:
    status, kvs, context_id = result
    put_i32(out, 1, status)
    _kvs(out, 2, kvs)
    put_i64(out, 3, context_id)
    _tail(out, app_id, pidx, server, first=4)


def _partition(out: bytearray, app_id: int, primary: int, part: tuple[int, ...]) -> None:
    """``part``: (pidx, ballot, last committed decree[, its primary]); without a primary of its
    own (a single node; or None) the partition's primary is ``primary``, the address the client
    reached; 0 is none."""
    pidx, ballot, last_committed = part[:3]
    if len(part) > 3 and part[3] is not None:
        primary = part[3]
    put_field(out, T_STRUCT, 1)  # pid: a gpid, an i64 marked T_STRUCT
    out += struct.pack(">q", gpid(app_id, pidx))
    put_i64(out, 2, ballot)
    put_i32(out, 3, 1)  # max_replica_count: one node holds the one replica
    put_field(out, T_STRUCT, 4)  # primary: an rpc_address, an i64 marked T_STRUCT
    out += struct.pack(">q", primary)
    put_list_begin(out, 5, T_STRUCT, 0)  # secondaries
    put_list_begin(out, 6, T_STRUCT, 0)  # last_drops
    put_i64(out, 7, last_committed)
    put_i32(out, 8, 0)  # partition_flags
    put_stop(out)


def _query_cfg(out: bytearray, primary: int, result: Any) -> None:
    err, app_id, partition_count, parts = result
    put_field(out, T_STRUCT, 1)  # err: an error_code, a string marked T_STRUCT
    put_binary_value(out, err.encode("ascii"))
    put_i32(out, 2, app_id)
    put_i32(out, 3, partition_count)
    put_bool(out, 4, err == codes.ERR_OK)  # is_stateful
    put_list_begin(out, 5, T_STRUCT, len(parts))
    for part in parts:
        _partition(out, app_id, primary, part)
    put_stop(out)


def gpid(app_id: int, pidx: int) -> int:
    """A gpid as its i64: the app id in the low 32 bits, the partition index in the high."""
    v = ((pidx & 0xFFFFFFFF) << 32) | (app_id & 0xFFFFFFFF)
    return v - (1 << 64) if v >= 1 << 63 else v


def rpc_address(ipv4: str, port: int) -> int:
    """An rDSN rpc_address as its i64: IPv4 in the high 32 bits, the port in the next 16,
    the host type (1: IPv4) in the low 2."""
    a, b, c, d = (int(x) for x in ipv4.split("."))
    v = (a << 56) | (b << 48) | (c << 40) | (d << 32) | (port << 16) | 1
    return v - (1 << 64) if v >= 1 << 63 else v


_BODIES: dict[int, Callable[[bytearray, int, int, bytes, Any], None]] = {
    codes.OP_PUT: _update,
    codes.OP_MULTI_PUT: _update,
    codes.OP_REMOVE: _update,
    codes.OP_MULTI_REMOVE: _multi_remove,
    codes.OP_GET: _read,
    codes.OP_REPLICATE: _read,
    codes.OP_DUP_APPLY: _read,
    codes.OP_MULTI_GET: _multi_get,
    codes.OP_SORTKEY_COUNT: _count,
    codes.OP_TTL: _ttl,
    codes.OP_INCR: _incr,
    codes.OP_CHECK_AND_SET: _check_and,
    codes.OP_CHECK_AND_MUTATE: _check_and,
    codes.OP_BATCH_GET: _batch_get,
    codes.OP_GET_SCANNER: _scan,
    codes.OP_SCAN: _scan,
}

__all__ = ["Response", "encode_response", "gpid", "reply_name", "rpc_address"]
