"""Decode a request body (a Thrift message) into a compact request (docs/pegasus-protocol.md §3, §4).

A request is a plain tuple ``(op, seqid, app_id, pidx, name, args)``: ``op``
one of codes.OP_*, ``name`` the RPC name as sent, and ``args``:

=================  ============================================================
OP_QUERY_CFG       ``(app_name, partition_indices)``
OP_PUT             ``(key, value, expire_ts)``; ``key`` is Pegasus's rocksdb-style key
OP_MULTI_PUT       ``(hash_key, [(sort_key, value), ...], expire_ts)``
OP_REMOVE, OP_GET, OP_TTL  ``(key,)``
OP_REPLICATE       ``(request,)``: ours, a serialized ReplicateRequest (multinode/links.py)
OP_DUP_APPLY       ``(request,)``: ours, a serialized ApplyRequest (net/follower.py)
OP_MULTI_REMOVE    ``(hash_key, [sort_key, ...])``
OP_MULTI_GET       ``(hash_key, [sort_key, ...], max_kv_count, max_kv_size, no_value,
                   start_sort_key, stop_sort_key, start_inclusive, stop_inclusive,
                   filter_type, filter_pattern, reverse)``
OP_SORTKEY_COUNT   ``(hash_key,)``
OP_INCR            ``(key, increment, expire_ts)``
OP_CHECK_AND_SET   ``(hash_key, check_sort_key, check_type, check_operand,
                   set_diff_sort_key, set_sort_key, set_value, expire_ts, return_check_value)``
OP_CHECK_AND_MUTATE  ``(hash_key, check_sort_key, check_type, check_operand,
                   [(operation, sort_key, value, expire_ts), ...], return_check_value)``
OP_BATCH_GET       ``([(hash_key, sort_key), ...],)``
OP_GET_SCANNER     ``(start_key, stop_key, start_inclusive, stop_inclusive, batch_size,
                   no_value, hash_key_filter_type, hash_key_filter_pattern,
                   sort_key_filter_type, sort_key_filter_pattern)``; keys are rocksdb-style
OP_SCAN, OP_CLEAR_SCANNER  ``(context_id,)``
OP_UNKNOWN         ``()``
OP_BAD_REQUEST     ``(PegasusProtocolError,)``: a known RPC whose arguments did not decode
=================  ============================================================

Fields a request leaves out take Thrift's defaults (empty, 0, false), as
Pegasus's generated C++ reads them; unknown fields are skipped, bounded.
"""

from __future__ import annotations

from typing import Any

from ...errors import PegasusProtocolError
from . import codes
from .thrift import T_BOOL, T_CALL, T_I32, T_I64, T_LIST, T_ONEWAY, T_STOP, T_STRING, T_STRUCT, Reader

Request = tuple[int, int, int, int, str, tuple[Any, ...]]
#: a dsn.blob is marked T_STRUCT by Pegasus's generated code; a plain T_STRING is taken too
_BLOB_TYPES = (T_STRUCT, T_STRING)


def decode_request(body: bytes | memoryview, app_id: int, pidx: int, base: int = 0) -> Request:
    """The compact request of one frame's body. A body whose message header is not a call
    raises :class:`PegasusProtocolError` (the connection cannot be trusted any more); one
    whose arguments do not decode is an ``OP_BAD_REQUEST`` the server answers."""
    r = Reader(body, base)
    name, mtype, seqid = r.message_begin()
    if mtype not in (T_CALL, T_ONEWAY):
        raise PegasusProtocolError(base, f"message type {mtype} is not a call")
    op = codes.RPC_OPS.get(name, codes.OP_UNKNOWN)
    if op == codes.OP_UNKNOWN:
        return op, seqid, app_id, pidx, name, ()
    try:
        args = _ARGS[op](r)
        if r.pos != r.end:
            raise r.fail(f"{r.end - r.pos} bytes after the arguments")
    except PegasusProtocolError as exc:
        return codes.OP_BAD_REQUEST, seqid, app_id, pidx, name, (exc,)
    return op, seqid, app_id, pidx, name, args


def _one_arg(r: Reader, want: tuple[int, ...], read: Any, default: Any) -> Any:
    """The args struct of every rrdb RPC: field 1 is the argument; the rest is skipped."""
    value = default
    while True:
        ftype, fid = r.field()
        if ftype == T_STOP:
            return value
        if fid == 1 and ftype in want:
            value = read(r)
        else:
            r.skip(ftype)


def _blob(r: Reader) -> bytes:
    return r.binary("blob")


def _blob_list(r: Reader) -> list[bytes]:
    etype, n = r.collection("list of blobs")
    if etype not in _BLOB_TYPES:
        raise r.fail(f"list of blobs has element type {etype}")
    return [r.binary("blob") for _ in range(n)]


def _struct(r: Reader, fields: dict[int, tuple[tuple[int, ...], Any]], out: list[Any]) -> list[Any]:
    """Read a struct whose known fields ``fid -> (accepted types, reader)`` land in
    ``out[fid - 1]``; others (and known ones of an unexpected type) are skipped."""
    while True:
        ftype, fid = r.field()
        if ftype == T_STOP:
            return out
        spec = fields.get(fid)
        if spec is not None and ftype in spec[0]:
            out[fid - 1] = spec[1](r)
        else:
            r.skip(ftype)


def _i32(r: Reader) -> int:
    return r.i32()


def _i64(r: Reader) -> int:
    return r.i64()


def _bool(r: Reader) -> bool:
    return r.bool()


_B = (_BLOB_TYPES, _blob)
_I32F = ((T_I32,), _i32)
_BOOLF = ((T_BOOL,), _bool)


def _query_cfg(r: Reader) -> tuple[Any, ...]:
    def indices(r: Reader) -> list[int]:
        etype, n = r.collection("partition_indices")
        if etype != T_I32:
            raise r.fail(f"partition_indices has element type {etype}")
        return [r.i32() for _ in range(n)]

    def request(r: Reader) -> list[Any]:
        return _struct(
            r, {1: ((T_STRING,), lambda r: r.string("app_name")), 2: ((T_LIST,), indices)}, ["", []]
        )

    app_name, idx = _one_arg(r, (T_STRUCT,), request, ["", []])
    return app_name, idx


def _put(r: Reader) -> tuple[Any, ...]:
    def request(r: Reader) -> list[Any]:
        return _struct(r, {1: _B, 2: _B, 3: _I32F}, [b"", b"", 0])

    key, value, expire_ts = _one_arg(r, (T_STRUCT,), request, [b"", b"", 0])
    return key, value, expire_ts


def _key_value(r: Reader) -> tuple[bytes, bytes]:
    sk, v = _struct(r, {1: _B, 2: _B}, [b"", b""])
    return sk, v


def _multi_put(r: Reader) -> tuple[Any, ...]:
    def kvs(r: Reader) -> list[tuple[bytes, bytes]]:
        etype, n = r.collection("kvs")
        if etype != T_STRUCT:
            raise r.fail(f"kvs has element type {etype}")
        return [_key_value(r) for _ in range(n)]

    def request(r: Reader) -> list[Any]:
        return _struct(r, {1: _B, 2: ((T_LIST,), kvs), 3: _I32F}, [b"", [], 0])

    hk, pairs, expire_ts = _one_arg(r, (T_STRUCT,), request, [b"", [], 0])
    return hk, pairs, expire_ts


def _key(r: Reader) -> tuple[Any, ...]:
    return (_one_arg(r, _BLOB_TYPES, _blob, b""),)


def _multi_remove(r: Reader) -> tuple[Any, ...]:
    def request(r: Reader) -> list[Any]:
        return _struct(r, {1: _B, 2: ((T_LIST,), _blob_list), 3: ((T_I64,), _i64)}, [b"", [], 0])

    hk, sks, _max_count = _one_arg(r, (T_STRUCT,), request, [b"", [], 0])
    return hk, sks


_MULTI_GET_DEFAULTS = [b"", [], 0, 0, False, b"", b"", False, False, 0, b"", False]


def _multi_get(r: Reader) -> tuple[Any, ...]:
    fields = {
        1: _B,
        2: ((T_LIST,), _blob_list),
        3: _I32F,
        4: _I32F,
        5: _BOOLF,
        6: _B,
        7: _B,
        8: _BOOLF,
        9: _BOOLF,
        10: _I32F,
        11: _B,
        12: _BOOLF,
    }

    def request(r: Reader) -> list[Any]:
        return _struct(r, fields, list(_MULTI_GET_DEFAULTS))

    return tuple(_one_arg(r, (T_STRUCT,), request, list(_MULTI_GET_DEFAULTS)))


def _incr(r: Reader) -> tuple[Any, ...]:
    def request(r: Reader) -> list[Any]:
        return _struct(r, {1: _B, 2: ((T_I64,), _i64), 3: _I32F}, [b"", 0, 0])

    key, increment, expire_ts = _one_arg(r, (T_STRUCT,), request, [b"", 0, 0])
    return key, increment, expire_ts


_CAS_DEFAULTS = [b"", b"", 0, b"", False, b"", b"", 0, False]


def _check_and_set(r: Reader) -> tuple[Any, ...]:
    fields = {1: _B, 2: _B, 3: _I32F, 4: _B, 5: _BOOLF, 6: _B, 7: _B, 8: _I32F, 9: _BOOLF}

    def request(r: Reader) -> list[Any]:
        return _struct(r, fields, list(_CAS_DEFAULTS))

    return tuple(_one_arg(r, (T_STRUCT,), request, list(_CAS_DEFAULTS)))


def _mutate(r: Reader) -> tuple[Any, ...]:
    operation, sk, value, expire_ts = _struct(r, {1: _I32F, 2: _B, 3: _B, 4: _I32F}, [0, b"", b"", 0])
    return operation, sk, value, expire_ts


_CAM_DEFAULTS: list[Any] = [b"", b"", 0, b"", [], False]


def _check_and_mutate(r: Reader) -> tuple[Any, ...]:
    def mutations(r: Reader) -> list[tuple[Any, ...]]:
        etype, n = r.collection("mutate_list")
        if etype != T_STRUCT:
            raise r.fail(f"mutate_list has element type {etype}")
        return [_mutate(r) for _ in range(n)]

    fields = {1: _B, 2: _B, 3: _I32F, 4: _B, 5: ((T_LIST,), mutations), 6: _BOOLF}

    def request(r: Reader) -> list[Any]:
        return _struct(r, fields, list(_CAM_DEFAULTS))

    return tuple(_one_arg(r, (T_STRUCT,), request, list(_CAM_DEFAULTS)))


def _batch_get(r: Reader) -> tuple[Any, ...]:
    def full_key(r: Reader) -> tuple[bytes, bytes]:
        hk, sk = _struct(r, {1: _B, 2: _B}, [b"", b""])
        return hk, sk

    def keys(r: Reader) -> list[tuple[bytes, bytes]]:
        etype, n = r.collection("keys")
        if etype != T_STRUCT:
            raise r.fail(f"keys has element type {etype}")
        return [full_key(r) for _ in range(n)]

    def request(r: Reader) -> list[Any]:
        return _struct(r, {1: ((T_LIST,), keys)}, [[]])

    (got,) = _one_arg(r, (T_STRUCT,), request, [[]])
    return (got,)


_SCANNER_DEFAULTS: list[Any] = [b"", b"", False, False, 0, False, 0, b"", 0, b""]


def _get_scanner(r: Reader) -> tuple[Any, ...]:
    fields = {1: _B, 2: _B, 3: _BOOLF, 4: _BOOLF, 5: _I32F, 6: _BOOLF, 7: _I32F, 8: _B, 9: _I32F, 10: _B}

    def request(r: Reader) -> list[Any]:
        return _struct(r, fields, list(_SCANNER_DEFAULTS))

    return tuple(_one_arg(r, (T_STRUCT,), request, list(_SCANNER_DEFAULTS)))


def _scan(r: Reader) -> tuple[Any, ...]:
    def request(r: Reader) -> list[Any]:
        return _struct(r, {1: ((T_I64,), _i64)}, [0])

    (context_id,) = _one_arg(r, (T_STRUCT,), request, [0])
    return (context_id,)


def _clear_scanner(r: Reader) -> tuple[Any, ...]:
    return (_one_arg(r, (T_I64,), _i64, 0),)


_ARGS = {
    codes.OP_QUERY_CFG: _query_cfg,
    codes.OP_PUT: _put,
    codes.OP_MULTI_PUT: _multi_put,
    codes.OP_REMOVE: _key,
    codes.OP_MULTI_REMOVE: _multi_remove,
    codes.OP_GET: _key,
    codes.OP_REPLICATE: _key,
    codes.OP_DUP_APPLY: _key,
    codes.OP_MULTI_GET: _multi_get,
    codes.OP_SORTKEY_COUNT: _key,
    codes.OP_TTL: _key,
    codes.OP_INCR: _incr,
    codes.OP_CHECK_AND_SET: _check_and_set,
    codes.OP_CHECK_AND_MUTATE: _check_and_mutate,
    codes.OP_BATCH_GET: _batch_get,
    codes.OP_GET_SCANNER: _get_scanner,
    codes.OP_SCAN: _scan,
    codes.OP_CLEAR_SCANNER: _clear_scanner,
}
