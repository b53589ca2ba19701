"""Decode a request body (a Thrift message) into a compact request (docs/pegasus-protocol.md §3, §4).

A request is a plain tuple ``(op, seqid, app_id, pidx, name, args)``: ``op``
one of codes.OP_*, ``name`` the RPC name as sent, and ``args``:

=================  ============================================================
OP_QUERY_CFG       ``(app_name, partition_indices)``
OP_PUT             ``(key, value, expire_ts)``; ``key`` is Pegasus's rocksdb-style key
OP_MULTI_PUT       ``(hash_key, [(sort_key, value), ...], expire_ts)``
OP_REMOVE, OP_GET, OP_TTL  ``(key,)``
OP_MULTI_REMOVE    ``(hash_key, [sort_key, ...])``
OP_MULTI_GET       ``(hash_key, [sort_key, ...], max_kv_count, max_kv_size, no_value,
                   start_sort_key, stop_sort_key, start_inclusive, stop_inclusive,
                   filter_type, filter_pattern, reverse)``
OP_SORTKEY_COUNT   ``(hash_key,)``
not served ops     ``()``
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
        args = _ARGS[op](r) if op in _ARGS else _skip_args(r)
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


def _skip_args(r: Reader) -> tuple[()]:
    r.skip(T_STRUCT)
    return ()


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


_ARGS = {
    codes.OP_QUERY_CFG: _query_cfg,
    codes.OP_PUT: _put,
    codes.OP_MULTI_PUT: _multi_put,
    codes.OP_REMOVE: _key,
    codes.OP_MULTI_REMOVE: _multi_remove,
    codes.OP_GET: _key,
    codes.OP_MULTI_GET: _multi_get,
    codes.OP_SORTKEY_COUNT: _key,
    codes.OP_TTL: _key,
}
