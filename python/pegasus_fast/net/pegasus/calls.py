"""The client's side of the codec: a call's frame from a compact request's args, and a reply's
compact result (docs/pegasus-protocol.md §2, §4). The twin of the Rust client's
(``front/proto.rs`` encode_request / decode_reply): the same bytes, the same shapes as
requests.py decodes and replies.py encodes, so a call round-trips through a BatchHandler."""

from __future__ import annotations

from typing import Any

from ...errors import PegasusProtocolError
from . import codes
from .frame import encode_v0_header
from .thrift import (
    T_BOOL,
    T_CALL,
    T_I32,
    T_I64,
    T_LIST,
    T_ONEWAY,
    T_REPLY,
    T_STOP,
    T_STRUCT,
    Reader,
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

#: operation -> RPC name
RPC_NAMES = {op: name for name, op in codes.RPC_OPS.items()}


def _blob_list(out: bytearray, fid: int, items: list[bytes]) -> None:
    put_list_begin(out, fid, T_STRUCT, len(items))
    for it in items:
        put_binary_value(out, it)


def encode_call(op: int, seqid: int, app_id: int, pidx: int, args: tuple[Any, ...]) -> bytes:
    """One request frame (v0 header + body) of ``op`` with the args requests.py would decode."""
    out = bytearray()
    put_message_begin(
        out, RPC_NAMES[op].encode(), T_ONEWAY if op == codes.OP_CLEAR_SCANNER else T_CALL, seqid
    )
    if op == codes.OP_QUERY_CFG:
        name, idx = args
        put_field(out, T_STRUCT, 1)
        put_string(out, 1, name.encode())
        put_list_begin(out, 2, T_I32, len(idx))
        for i in idx:
            out += int(i).to_bytes(4, "big", signed=True)
        put_stop(out)
    elif op == codes.OP_PUT:
        key, value, expire_ts = args
        put_field(out, T_STRUCT, 1)
        put_blob(out, 1, key)
        put_blob(out, 2, value)
        put_i32(out, 3, expire_ts)
        put_stop(out)
    elif op == codes.OP_MULTI_PUT:
        hk, kvs, expire_ts = args
        put_field(out, T_STRUCT, 1)
        put_blob(out, 1, hk)
        put_list_begin(out, 2, T_STRUCT, len(kvs))
        for k, v in kvs:
            put_blob(out, 1, k)
            put_blob(out, 2, v)
            put_stop(out)
        put_i32(out, 3, expire_ts)
        put_stop(out)
    elif op in (
        codes.OP_REMOVE,
        codes.OP_GET,
        codes.OP_SORTKEY_COUNT,
        codes.OP_TTL,
        codes.OP_REPLICATE,
        codes.OP_DUP_APPLY,
    ):
        put_blob(out, 1, args[0])
    elif op == codes.OP_MULTI_REMOVE:
        hk, sks = args
        put_field(out, T_STRUCT, 1)
        put_blob(out, 1, hk)
        _blob_list(out, 2, sks)
        put_i64(out, 3, 0)
        put_stop(out)
    elif op == codes.OP_MULTI_GET:
        hk, sks, count, size, no_value, start, stop, start_inc, stop_inc, ftype, pattern, reverse = args
        put_field(out, T_STRUCT, 1)
        put_blob(out, 1, hk)
        _blob_list(out, 2, sks)
        put_i32(out, 3, count)
        put_i32(out, 4, size)
        put_bool(out, 5, no_value)
        put_blob(out, 6, start)
        put_blob(out, 7, stop)
        put_bool(out, 8, start_inc)
        put_bool(out, 9, stop_inc)
        put_i32(out, 10, ftype)
        put_blob(out, 11, pattern)
        put_bool(out, 12, reverse)
        put_stop(out)
    elif op in _CALL_BODIES:
        _CALL_BODIES[op](out, args)
    put_stop(out)
    return encode_v0_header(len(out), app_id, pidx) + bytes(out)


def _incr(out: bytearray, args: tuple[Any, ...]) -> None:
    key, increment, expire_ts = args
    put_field(out, T_STRUCT, 1)
    put_blob(out, 1, key)
    put_i64(out, 2, increment)
    put_i32(out, 3, expire_ts)
    put_stop(out)


def _check_and_set(out: bytearray, args: tuple[Any, ...]) -> None:
    hk, check_sk, check_type, operand, diff, set_sk, value, expire_ts, returned = args
    put_field(out, T_STRUCT, 1)
    put_blob(out, 1, hk)
    put_blob(out, 2, check_sk)
    put_i32(out, 3, check_type)
    put_blob(out, 4, operand)
    put_bool(out, 5, diff)
    put_blob(out, 6, set_sk)
    put_blob(out, 7, value)
    put_i32(out, 8, expire_ts)
    put_bool(out, 9, returned)
    put_stop(out)


def _check_and_mutate(out: bytearray, args: tuple[Any, ...]) -> None:
    hk, check_sk, check_type, operand, mutations, returned = args
    put_field(out, T_STRUCT, 1)
    put_blob(out, 1, hk)
    put_blob(out, 2, check_sk)
    put_i32(out, 3, check_type)
    put_blob(out, 4, operand)
    put_list_begin(out, 5, T_STRUCT, len(mutations))
    for operation, sk, value, expire_ts in mutations:
        put_i32(out, 1, operation)
        put_blob(out, 2, sk)
        put_blob(out, 3, value)
        put_i32(out, 4, expire_ts)
        put_stop(out)
    put_bool(out, 6, returned)
    put_stop(out)


def _batch_get(out: bytearray, args: tuple[Any, ...]) -> None:
    (keys,) = args
    put_field(out, T_STRUCT, 1)
    put_list_begin(out, 1, T_STRUCT, len(keys))
    for hk, sk in keys:
        put_blob(out, 1, hk)
        put_blob(out, 2, sk)
        put_stop(out)
    put_stop(out)


def _get_scanner(out: bytearray, args: tuple[Any, ...]) -> None:
    start, stop, start_inc, stop_inc, batch, no_value, hk_type, hk_pattern, sk_type, sk_pattern = args
    put_field(out, T_STRUCT, 1)
    put_blob(out, 1, start)
    put_blob(out, 2, stop)
    put_bool(out, 3, start_inc)
    put_bool(out, 4, stop_inc)
    put_i32(out, 5, batch)
    put_bool(out, 6, no_value)
    put_i32(out, 7, hk_type)
    put_blob(out, 8, hk_pattern)
    put_i32(out, 9, sk_type)
    put_blob(out, 10, sk_pattern)
    put_stop(out)


def _scan(out: bytearray, args: tuple[Any, ...]) -> None:
    put_field(out, T_STRUCT, 1)
    put_i64(out, 1, args[0])
    put_stop(out)


def _clear_scanner(out: bytearray, args: tuple[Any, ...]) -> None:
    put_i64(out, 1, args[0])


_CALL_BODIES = {
    codes.OP_INCR: _incr,
    codes.OP_CHECK_AND_SET: _check_and_set,
    codes.OP_CHECK_AND_MUTATE: _check_and_mutate,
    codes.OP_BATCH_GET: _batch_get,
    codes.OP_GET_SCANNER: _get_scanner,
    codes.OP_SCAN: _scan,
    codes.OP_CLEAR_SCANNER: _clear_scanner,
}


def _fields(r: Reader, visit: Any) -> None:
    while True:
        ftype, fid = r.field()
        if ftype == T_STOP:
            return
        if not visit(r, fid, ftype):
            r.skip(ftype)


def decode_reply(op: int, data: bytes) -> tuple[str, str, int, Any]:
    """``(error, name, seqid, result)`` of a reply frame's content (after its length); the
    result shaped as replies.py takes it, None unless the error is ERR_OK."""
    r = Reader(data, 4)
    error = r.string("error")
    name, mtype, seqid = r.message_begin()
    if mtype != T_REPLY:
        raise r.fail(f"message type {mtype} is not a reply")
    if error != codes.ERR_OK:
        return error, name, seqid, None
    found: list[Any] = []

    def top(r: Reader, fid: int, ftype: int) -> bool:
        if fid == 0 and ftype == T_STRUCT:
            found.append(_result(r, op))
            return True
        return False

    _fields(r, top)
    if not found:
        raise r.fail("the reply has no result")
    return error, name, seqid, found[0]


def _result(r: Reader, op: int) -> Any:
    st: dict[str, Any] = {"status": 0, "blob": b"", "kvs": [], "err": "", "parts": [], "bools": {}}
    i64s = [0] * 8
    i32s = [0] * 8

    def part(r: Reader, p: list[int]) -> None:
        def visit(r: Reader, fid: int, ftype: int) -> bool:
            if fid == 1 and ftype == T_STRUCT:
                p[0] = r.i64("pid") >> 32
            elif fid == 2 and ftype == T_I64:
                p[1] = r.i64("ballot")
            elif fid == 4 and ftype == T_STRUCT:
                r.i64("primary")  # an rpc_address: an i64 marked T_STRUCT
            elif fid == 7 and ftype == T_I64:
                p[2] = r.i64("last_committed")
            else:
                return False
            return True

        _fields(r, visit)

    def visit(r: Reader, fid: int, ftype: int) -> bool:
        if op == codes.OP_QUERY_CFG and fid == 1 and ftype == T_STRUCT:
            st["err"] = r.string("err")
        elif op == codes.OP_QUERY_CFG and fid == 5 and ftype == T_LIST:
            _, n = r.collection("partitions")
            for _ in range(n):
                p = [0, 0, 0]
                part(r, p)
                st["parts"].append((p[0], p[1], p[2]))
        elif op != codes.OP_QUERY_CFG and fid == 1 and ftype == T_I32:
            st["status"] = r.i32("status")
        elif op in _KV_LISTS and fid == 2 and ftype == T_LIST:
            _, n = r.collection("kvs")
            width = _KV_LISTS[op]
            for _ in range(n):
                kv = [b""] * width

                def pair(r: Reader, fid: int, ftype: int, kv: list[bytes] = kv) -> bool:
                    if 1 <= fid <= width and ftype in (T_STRUCT, 11):
                        kv[fid - 1] = r.binary("blob")
                        return True
                    return False

                _fields(r, pair)
                st["kvs"].append(tuple(kv))
        elif fid in (2, 4) and ftype == T_STRUCT:
            st["blob"] = r.binary("value")
        elif fid in (2, 3) and ftype == T_BOOL:
            st["bools"][fid] = r.bool()
        elif 0 <= fid < 8 and ftype == T_I64:
            i64s[fid] = r.i64()
        elif 0 <= fid < 8 and ftype == T_I32:
            i32s[fid] = r.i32()
        else:
            return False
        return True

    _fields(r, visit)
    s = st["status"]
    if op == codes.OP_QUERY_CFG:
        return st["err"], i32s[2], i32s[3], st["parts"]
    if op in (codes.OP_PUT, codes.OP_MULTI_PUT, codes.OP_REMOVE):
        return s, i64s[4]
    if op == codes.OP_MULTI_REMOVE:
        return s, i64s[2], i64s[5]
    if op == codes.OP_GET or op == codes.OP_REPLICATE or op == codes.OP_DUP_APPLY:
        return s, st["blob"]
    if op == codes.OP_MULTI_GET:
        return s, st["kvs"]
    if op == codes.OP_SORTKEY_COUNT:
        return s, i64s[2]
    if op == codes.OP_TTL:
        return s, i32s[2]
    if op == codes.OP_INCR:
        return s, i64s[2], i64s[5]
    if op in (codes.OP_CHECK_AND_SET, codes.OP_CHECK_AND_MUTATE):
        bools = st["bools"]
        return s, bools.get(2, False), bools.get(3, False), st["blob"], i64s[7]
    if op == codes.OP_BATCH_GET:
        return s, st["kvs"]
    if op in (codes.OP_GET_SCANNER, codes.OP_SCAN):
        return s, st["kvs"], i64s[3]
    return (s,)


#: operations whose response's field 2 is a list of structs of blobs, and their width
_KV_LISTS = {
    codes.OP_MULTI_GET: 2,
    codes.OP_GET_SCANNER: 2,
    codes.OP_SCAN: 2,
    codes.OP_BATCH_GET: 3,
}


__all__ = ["RPC_NAMES", "PegasusProtocolError", "decode_reply", "encode_call"]
