"""WAL block codec and RocksDB record encoding in pure Python (docs/wal-format.md)."""

from __future__ import annotations

import struct
from typing import Any

from ..errors import InvalidArgumentError, InvalidTypeError, WalCorruptionError
from ..records import (
    EPOCH_BEGIN,
    MAX_HASH_KEY,
    META_DECREE_KEY,
    META_SOURCE_DECREE_KEY,
    encode_key,
    hash_key_prefix,
)
from ..records import VALUE_HEADER as _VALUE_HEADER
from ..records import Op as _OpKind
from ..records import timetag as _timetag
from .crc import crc32c

MAGIC = b"PFW1"
BLOCK_HEADER_SIZE = 28
MAX_PAYLOAD = 1 << 30

PUT, DELETE, MULTI_PUT, MULTI_DELETE, EMPTY, RAW_PUT, SOURCE_DECREE = (int(k) for k in _OpKind)

_HEADER = struct.Struct("<4sIQII")  # magic, payload_len, first_decree, count, payload_crc
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")
_U64 = struct.Struct("<Q")
_MUT = struct.Struct("<QQBI")
#: what the WAL's u16 length can hold; records refuse 65535 (records.MAX_HASH_KEY, as Pegasus)
_WAL_MAX_HASH_KEY = 0xFFFF

Op = tuple[Any, ...]
Mutation = tuple[int, int, int, list[Op]]
Write = tuple[bytes, "bytes | None"]


def _b(value: Any, what: str = "a byte string") -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise InvalidTypeError(f"{what} must be bytes, not {type(value).__name__}")


def _int(value: Any, bits: int, what: str) -> int:
    """An int that fits ``bits`` unsigned bits, as the Rust glue takes it."""
    if not isinstance(value, int):
        raise InvalidTypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value < 1 << bits:
        raise InvalidArgumentError(f"{what} out of range: {value}")
    return int(value)


def _seq(value: Any, what: str) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        raise InvalidTypeError(f"{what} must be a list or tuple, not {type(value).__name__}")
    return value


def _fields(t: list[Any] | tuple[Any, ...], n: int, what: str) -> None:
    if len(t) != n:
        raise InvalidArgumentError(f"{what} takes {n} fields, got {len(t)}")


def _check_op(op: Any) -> Op:
    """``op`` as a tuple, its fields checked as the Rust glue checks them."""
    op = tuple(_seq(op, "an op"))
    if not op:
        raise InvalidArgumentError("an op is a non-empty tuple")
    kind = op[0]
    if not isinstance(kind, int):
        raise InvalidTypeError(f"op type must be an int, not {type(kind).__name__}")
    if kind == PUT:
        _fields(op, 5, "PUT")
        return (
            PUT,
            _b(op[1], "hash_key"),
            _b(op[2], "sort_key"),
            _b(op[3], "value"),
            _int(op[4], 32, "expire_ts"),
        )
    if kind == DELETE:
        _fields(op, 3, "DELETE")
        return (DELETE, _b(op[1], "hash_key"), _b(op[2], "sort_key"))
    if kind == MULTI_PUT:
        _fields(op, 4, "MULTI_PUT")
        hash_key = _b(op[1], "hash_key")
        pairs = []
        for pair in _seq(op[2], "MULTI_PUT pairs"):
            pair = _seq(pair, "a MULTI_PUT pair")
            _fields(pair, 2, "a MULTI_PUT pair")
            pairs.append((_b(pair[0], "sort_key"), _b(pair[1], "value")))
        return (MULTI_PUT, hash_key, pairs, _int(op[3], 32, "expire_ts"))
    if kind == MULTI_DELETE:
        _fields(op, 3, "MULTI_DELETE")
        hash_key = _b(op[1], "hash_key")
        return (MULTI_DELETE, hash_key, [_b(sk, "sort_key") for sk in _seq(op[2], "MULTI_DELETE sort keys")])
    if kind == EMPTY:
        _fields(op, 1, "EMPTY")
        return (EMPTY,)
    if kind == RAW_PUT:
        _fields(op, 3, "RAW_PUT")
        return (RAW_PUT, _b(op[1], "key"), _b(op[2], "value"))
    if kind == SOURCE_DECREE:
        _fields(op, 2, "SOURCE_DECREE")
        return (SOURCE_DECREE, _int(op[1], 64, "source decree"))
    raise InvalidArgumentError(f"unknown op type {kind!r}")


def _check_mutations(mutations: Any) -> list[Mutation]:
    """Mutations with every field checked, so both backends reject bad input alike."""
    out: list[Mutation] = []
    for m in _seq(mutations, "mutations"):
        m = _seq(m, "a mutation")
        _fields(m, 4, "a mutation (decree, timestamp_us, cluster_id, ops)")
        decree = _int(m[0], 64, "decree")
        timestamp_us = _int(m[1], 64, "timestamp_us")
        cluster_id = _int(m[2], 8, "cluster_id")
        if cluster_id > 127:
            raise InvalidArgumentError("cluster_id must be in 0..127")
        out.append((decree, timestamp_us, cluster_id, [_check_op(op) for op in _seq(m[3], "ops")]))
    return out


def _put_hk(out: bytearray, hash_key: bytes) -> None:
    if len(hash_key) > _WAL_MAX_HASH_KEY:
        raise InvalidArgumentError(f"hash_key longer than {_WAL_MAX_HASH_KEY} bytes")
    out += _U16.pack(len(hash_key))
    out += hash_key


def _put_b32(out: bytearray, data: bytes) -> None:
    if len(data) > 0xFFFFFFFF:
        raise InvalidArgumentError("byte string longer than 4 GiB")
    out += _U32.pack(len(data))
    out += data


def _encode_op(out: bytearray, op: Op) -> None:
    kind = op[0]
    if kind == PUT:
        _, hash_key, sort_key, value, expire_ts = op
        out.append(PUT)
        _put_hk(out, hash_key)
        _put_b32(out, sort_key)
        _put_b32(out, value)
        out += _U32.pack(expire_ts)
    elif kind == DELETE:
        _, hash_key, sort_key = op
        out.append(DELETE)
        _put_hk(out, hash_key)
        _put_b32(out, sort_key)
    elif kind == MULTI_PUT:
        _, hash_key, pairs, expire_ts = op
        out.append(MULTI_PUT)
        _put_hk(out, hash_key)
        out += _U32.pack(expire_ts)
        out += _U32.pack(len(pairs))
        for sort_key, value in pairs:
            _put_b32(out, sort_key)
            _put_b32(out, value)
    elif kind == MULTI_DELETE:
        _, hash_key, sort_keys = op
        out.append(MULTI_DELETE)
        _put_hk(out, hash_key)
        out += _U32.pack(len(sort_keys))
        for sort_key in sort_keys:
            _put_b32(out, sort_key)
    elif kind == EMPTY:
        out.append(EMPTY)
    elif kind == RAW_PUT:
        _, key, value = op
        out.append(RAW_PUT)
        _put_b32(out, key)
        _put_b32(out, value)
    else:  # SOURCE_DECREE; _check_op let nothing else through
        out.append(SOURCE_DECREE)
        out += _U64.pack(op[1])


def encode_block(mutations: list[Mutation]) -> bytes:
    mutations = _check_mutations(mutations)
    if not mutations:
        raise InvalidArgumentError("a block holds at least one mutation")
    payload = bytearray()
    for decree, timestamp_us, cluster_id, ops in mutations:
        payload += _MUT.pack(decree, timestamp_us, cluster_id, len(ops))
        for op in ops:
            _encode_op(payload, op)
    if len(payload) > MAX_PAYLOAD:
        raise InvalidArgumentError("block payload over 1 GiB")
    header = _HEADER.pack(MAGIC, len(payload), mutations[0][0], len(mutations), crc32c(payload))
    return header + _U32.pack(crc32c(header)) + payload


class _Malformed(Exception):
    pass


class _Reader:
    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: bytes, pos: int, end: int) -> None:
        self.buf, self.pos, self.end = buf, pos, end

    def take(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise _Malformed("field runs past the payload")
        data = self.buf[self.pos : self.pos + n]
        self.pos += n
        return data

    def unpack(self, st: struct.Struct) -> tuple[Any, ...]:
        if self.pos + st.size > self.end:
            raise _Malformed("field runs past the payload")
        values = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return values

    def u8(self) -> int:
        if self.pos >= self.end:
            raise _Malformed("field runs past the payload")
        value = self.buf[self.pos]
        self.pos += 1
        return value

    def u32(self) -> int:
        return self.unpack(_U32)[0]

    def hk(self) -> bytes:
        return self.take(self.unpack(_U16)[0])

    def b32(self) -> bytes:
        return self.take(self.u32())


def _decode_op(r: _Reader) -> Op:
    kind = r.u8()
    if kind == PUT:
        hash_key = r.hk()
        sort_key = r.b32()
        value = r.b32()
        return (PUT, hash_key, sort_key, value, r.u32())
    if kind == DELETE:
        hash_key = r.hk()
        return (DELETE, hash_key, r.b32())
    if kind == MULTI_PUT:
        hash_key = r.hk()
        expire_ts = r.u32()
        n = r.u32()
        if n > r.end - r.pos:
            raise _Malformed("multi_put count larger than the payload")
        pairs = []
        for _ in range(n):
            sort_key = r.b32()
            pairs.append((sort_key, r.b32()))
        return (MULTI_PUT, hash_key, pairs, expire_ts)
    if kind == MULTI_DELETE:
        hash_key = r.hk()
        n = r.u32()
        if n > r.end - r.pos:
            raise _Malformed("multi_delete count larger than the payload")
        return (MULTI_DELETE, hash_key, [r.b32() for _ in range(n)])
    if kind == EMPTY:
        return (EMPTY,)
    if kind == RAW_PUT:
        key = r.b32()
        return (RAW_PUT, key, r.b32())
    if kind == SOURCE_DECREE:
        return (SOURCE_DECREE, r.unpack(_U64)[0])
    raise _Malformed(f"unknown op type {kind}")


def decode_payload(
    buf: bytes, start: int, end: int, count: int, first_decree: int, start_decree: int = 0
) -> list[Mutation]:
    """Mutations of one payload; raises _Malformed when it does not parse exactly (rule 6)."""
    if count == 0:
        raise _Malformed("a block holds at least one mutation")
    r = _Reader(buf, start, end)
    out: list[Mutation] = []
    for i in range(count):
        decree, timestamp_us, cluster_id, op_count = r.unpack(_MUT)
        if i == 0 and decree != first_decree:
            raise _Malformed("first_decree differs from the first mutation's decree")
        if cluster_id > 127:  # it would spill into the timestamp bits of the timetag
            raise _Malformed("cluster_id over 127")
        if op_count > end - r.pos:
            raise _Malformed("op count larger than the payload")
        ops = [_decode_op(r) for _ in range(op_count)]
        if decree >= start_decree:
            out.append((decree, timestamp_us, cluster_id, ops))
    if r.pos != end:
        raise _Malformed("payload longer than its mutations")
    return out


# Header classification results of read_header().
OK, CLEAN_END, TORN = 0, 1, 2


def check_header(header: bytes) -> tuple[bool, int, int, str]:
    """(valid, payload_len, mutation_count, reason) of a whole 28-byte header."""
    magic, payload_len, _first, count, _pcrc = _HEADER.unpack_from(header, 0)
    (header_crc,) = _U32.unpack_from(header, 24)
    if magic != MAGIC or crc32c(header[:24]) != header_crc:
        return False, 0, 0, "bad block header"
    if payload_len > MAX_PAYLOAD:
        return False, 0, 0, "block payload over 1 GiB"
    return True, payload_len, count, ""


def read_header(buf: bytes, pos: int, size: int) -> tuple[int, int, int, str]:
    """(state, payload_len, count, reason); state -1 means corruption at pos."""
    remaining = size - pos
    if remaining == 0:
        return CLEAN_END, 0, 0, ""
    if remaining < BLOCK_HEADER_SIZE:
        return TORN, 0, 0, "header cut short"
    valid, payload_len, count, reason = check_header(buf[pos : pos + BLOCK_HEADER_SIZE])
    if not valid:
        if not any(buf[pos:size]):
            return TORN, 0, 0, "zero-filled tail"
        return -1, 0, 0, reason
    if pos + BLOCK_HEADER_SIZE + payload_len > size:
        return TORN, payload_len, count, "payload cut short"
    return OK, payload_len, count, ""


def decode_block(data: bytes) -> list[Mutation]:
    buf = _b(data, "data")
    state, payload_len, count, reason = read_header(buf, 0, len(buf))
    if state != OK or BLOCK_HEADER_SIZE + payload_len != len(buf):
        raise WalCorruptionError("<buffer>", 0, reason or "not exactly one block")
    start = BLOCK_HEADER_SIZE
    if crc32c(buf[start:]) != _U32.unpack_from(buf, 20)[0]:
        raise WalCorruptionError("<buffer>", 0, "payload checksum mismatch")
    try:
        return decode_payload(buf, start, len(buf), count, _U64.unpack_from(buf, 8)[0])
    except _Malformed as exc:
        raise WalCorruptionError("<buffer>", 0, str(exc)) from None


def decode_blocks(data: bytes) -> list[Mutation]:
    """The mutations of whole blocks back to back (a shipped batch); no torn tail allowed."""
    buf = _b(data)
    size = len(buf)
    pos = 0
    out: list[Mutation] = []
    while pos < size:
        state, payload_len, count, reason = read_header(buf, pos, size)
        if state != OK:
            raise WalCorruptionError("<buffer>", pos, reason or "block cut short")
        start, end = pos + BLOCK_HEADER_SIZE, pos + BLOCK_HEADER_SIZE + payload_len
        if crc32c(buf[start:end]) != _U32.unpack_from(buf, pos + 20)[0]:
            raise WalCorruptionError("<buffer>", pos, "payload checksum mismatch")
        try:
            out.extend(decode_payload(buf, start, end, count, _U64.unpack_from(buf, pos + 8)[0]))
        except _Malformed as exc:
            raise WalCorruptionError("<buffer>", pos, str(exc)) from None
        pos = end
    return out


def mutation_writes(mutations: list[Mutation], tombstone_seconds: int = 0) -> list[Write]:
    """RocksDB writes of ``mutations``; a hash key longer than MAX_HASH_KEY is refused, as in Pegasus.
    With ``tombstone_seconds``, a delete writes a tombstone (docs/last-writer-wins.md)."""
    return _writes(mutations, MAX_HASH_KEY, tombstone_seconds)


def replay_writes(mutations: list[Mutation], tombstone_seconds: int = 0) -> list[Write]:
    """Like mutation_writes, for WAL replay: hash keys up to the WAL format's 65535
    bytes are taken, so a log written before the Pegasus limit still opens."""
    return _writes(mutations, _WAL_MAX_HASH_KEY, tombstone_seconds)


def _tombstone(timestamp_us: int, cluster_id: int, tombstone_seconds: int) -> bytes:
    expire = max(1, max(0, timestamp_us // 1_000_000 - EPOCH_BEGIN) + tombstone_seconds)
    return _VALUE_HEADER.pack(min(expire, 0xFFFFFFFF), _timetag(timestamp_us, cluster_id, True))


def _writes(mutations: list[Mutation], max_hash_key: int, tombstone_seconds: int = 0) -> list[Write]:
    if isinstance(tombstone_seconds, bool) or not isinstance(tombstone_seconds, int):
        raise InvalidTypeError("tombstone_seconds must be an int")
    if not 0 <= tombstone_seconds <= 0xFFFFFFFF:
        raise InvalidArgumentError("tombstone_seconds must fit a u32")
    mutations = _check_mutations(mutations)
    writes: list[Write] = []
    for _decree, timestamp_us, cluster_id, ops in mutations:
        # only a record's value carries the timetag: a mutation without one takes any timestamp
        fits = 0 <= timestamp_us < 1 << 56
        timetag = _timetag(timestamp_us, cluster_id)
        for op in ops:
            if op[0] in (PUT, MULTI_PUT) and not fits:
                raise InvalidArgumentError("timestamp_us does not fit a timetag (>= 2^56)")
            kind = op[0]
            if 0 <= kind <= 3 and len(op[1]) > max_hash_key:
                raise InvalidArgumentError(f"hash_key longer than {max_hash_key} bytes")
            if not fits and (kind == PUT or kind == MULTI_PUT):
                raise InvalidArgumentError("timestamp_us does not fit a timetag (>= 2^56)")
            if kind == PUT:
                writes.append((encode_key(op[1], op[2]), _VALUE_HEADER.pack(op[4], timetag) + op[3]))
            elif kind == DELETE:
                if not fits and tombstone_seconds:
                    raise InvalidArgumentError("timestamp_us does not fit a timetag (>= 2^56)")
                gone = _tombstone(timestamp_us, cluster_id, tombstone_seconds) if tombstone_seconds else None
                writes.append((encode_key(op[1], op[2]), gone))
            elif kind == MULTI_PUT:
                header = _VALUE_HEADER.pack(op[3], timetag)
                prefix = hash_key_prefix(op[1])
                writes.extend((prefix + sk, header + v) for sk, v in op[2])
            elif kind == MULTI_DELETE:
                if not fits and tombstone_seconds:
                    raise InvalidArgumentError("timestamp_us does not fit a timetag (>= 2^56)")
                prefix = hash_key_prefix(op[1])
                gone = _tombstone(timestamp_us, cluster_id, tombstone_seconds) if tombstone_seconds else None
                writes.extend((prefix + sk, gone) for sk in op[2])
            elif kind == RAW_PUT:
                writes.append((op[1], op[2]))
            elif kind == SOURCE_DECREE:
                writes.append((META_SOURCE_DECREE_KEY, _U64.pack(op[1])))
            elif kind != EMPTY:
                raise InvalidArgumentError(f"unknown op type {kind!r}")
    if mutations:
        writes.append((META_DECREE_KEY, _U64.pack(mutations[-1][0])))
    return writes


def encode_write(mutations: list[Mutation], batch: Any, tombstone_seconds: int = 0) -> bytes:
    """The WAL block of ``mutations``, their RocksDB writes put into ``batch`` (a WriteBatch)."""
    block = encode_block(mutations)
    writes = mutation_writes(mutations, tombstone_seconds)
    for key, value in writes:
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    return block


def pairs_bytes(pairs: Any) -> int:
    """``sum(len(k) + len(v))`` over a dict of exactly-``bytes`` keys and values; -1 otherwise."""
    if type(pairs) is not dict:
        return -1
    total = 0
    for k, v in pairs.items():
        if type(k) is not bytes or type(v) is not bytes:
            return -1
        total += len(k) + len(v)
    return total
