"""The Thrift binary protocol, as much of it as Pegasus's messages use (docs/pegasus-protocol.md §3).

A :class:`Reader` never trusts a length or a count: each is checked against the
bytes that are really left before anything is allocated, and every rejection is
a :class:`~pegasus_fast.errors.PegasusProtocolError` naming the offset of the
field it rejects (``base`` + the position in the buffer). Writers are plain
functions appending to a ``bytearray``.

Pegasus's own types travel "bare" inside fields marked ``T_STRUCT``: a ``blob``
is a Thrift binary, an ``error_code`` a string (its name), a ``gpid`` and an
``rpc_address`` an i64. The readers and writers of those live in codec.py.
"""

from __future__ import annotations

import struct

from ...errors import PegasusProtocolError

# Thrift type ids (TType)
T_STOP, T_BOOL, T_BYTE, T_DOUBLE, T_I16, T_I32, T_I64 = 0, 2, 3, 4, 6, 8, 10
T_STRING, T_STRUCT, T_MAP, T_SET, T_LIST = 11, 12, 13, 14, 15
# message types
T_CALL, T_REPLY, T_EXCEPTION, T_ONEWAY = 1, 2, 3, 4
#: strict binary protocol: the high half of the first i32 of a message
VERSION_1 = 0x80010000
VERSION_MASK = 0xFFFF0000

#: the fewest bytes one element of each type takes, for bounding a list's count before allocating
MIN_SIZE = {T_BOOL: 1, T_BYTE: 1, T_DOUBLE: 8, T_I16: 2, T_I32: 4, T_I64: 8, T_STRING: 4, T_STRUCT: 1}
MIN_SIZE.update({T_MAP: 6, T_SET: 5, T_LIST: 5})
#: nesting deeper than this is refused while skipping unknown fields (a hostile peer could
#: otherwise recurse the decoder into a stack overflow)
MAX_DEPTH = 32

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_DOUBLE = struct.Struct(">d")
_FIELD = struct.Struct(">bh")


class Reader:
    """Reads Thrift binary values from ``buf``; ``base`` is ``buf``'s offset in its stream."""

    __slots__ = ("buf", "pos", "end", "base")

    def __init__(self, buf: bytes | memoryview, base: int = 0, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf)
        self.base = base

    def fail(self, reason: str, at: int | None = None) -> PegasusProtocolError:
        return PegasusProtocolError(self.base + (self.pos if at is None else at), reason)

    def need(self, n: int, what: str) -> int:
        """The position of ``n`` bytes of ``what``, or an error when fewer are left."""
        p = self.pos
        if n > self.end - p:
            raise self.fail(f"{what} needs {n} bytes, {self.end - p} left")
        self.pos = p + n
        return p

    def byte(self, what: str = "byte") -> int:
        p = self.need(1, what)
        b = self.buf[p]
        return b - 256 if b > 127 else b

    def bool(self, what: str = "bool") -> bool:
        return self.byte(what) != 0

    def i16(self, what: str = "i16") -> int:
        return _I16.unpack_from(self.buf, self.need(2, what))[0]

    def i32(self, what: str = "i32") -> int:
        return _I32.unpack_from(self.buf, self.need(4, what))[0]

    def u32(self, what: str = "u32") -> int:
        return _U32.unpack_from(self.buf, self.need(4, what))[0]

    def i64(self, what: str = "i64") -> int:
        return _I64.unpack_from(self.buf, self.need(8, what))[0]

    def binary(self, what: str = "binary") -> bytes:
        at = self.pos
        n = self.i32(f"length of {what}")
        if n < 0:
            raise self.fail(f"{what} has negative length {n}", at)
        if n > self.end - self.pos:
            raise self.fail(f"{what} claims {n} bytes, {self.end - self.pos} left", at)
        p = self.pos
        self.pos = p + n
        return bytes(self.buf[p : p + n])

    def string(self, what: str = "string") -> str:
        at = self.pos
        raw = self.binary(what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not UTF-8", at) from None

    def field(self) -> tuple[int, int]:
        """``(type, id)`` of the next field; type ``T_STOP`` ends the struct."""
        p = self.need(1, "field type")
        ftype = self.buf[p]
        if ftype == T_STOP:
            return T_STOP, 0
        self.pos = p
        ftype, fid = _FIELD.unpack_from(self.buf, self.need(3, "field header"))
        return ftype, fid

    def collection(self, what: str) -> tuple[int, int]:
        """``(element type, count)`` of a list or set, the count bounded by the bytes left."""
        at = self.pos
        etype = self.byte(f"element type of {what}")
        n = self.i32(f"count of {what}")
        self._bound(n, (MIN_SIZE.get(etype, 1),), what, at)
        return etype, n

    def _bound(self, n: int, sizes: tuple[int, ...], what: str, at: int) -> None:
        if n < 0:
            raise self.fail(f"{what} has negative count {n}", at)
        if n * sum(sizes) > self.end - self.pos:
            raise self.fail(f"{what} claims {n} elements, only {self.end - self.pos} bytes left", at)

    def skip(self, ftype: int, depth: int = 0) -> None:
        """Skip one value of ``ftype`` (an unknown field), bounded in size and depth."""
        if depth > MAX_DEPTH:
            raise self.fail(f"values nested deeper than {MAX_DEPTH}")
        size = {T_BOOL: 1, T_BYTE: 1, T_I16: 2, T_I32: 4, T_I64: 8, T_DOUBLE: 8}.get(ftype)
        if size is not None:
            self.need(size, "skipped value")
        elif ftype == T_STRING:
            at = self.pos
            n = self.i32("length of skipped string")
            if n < 0:
                raise self.fail(f"skipped string has negative length {n}", at)
            self.need(n, "skipped string")
        elif ftype == T_STRUCT:
            while True:
                t, _ = self.field()
                if t == T_STOP:
                    return
                self.skip(t, depth + 1)
        elif ftype in (T_LIST, T_SET):
            etype, n = self.collection("skipped list")
            for _ in range(n):
                self.skip(etype, depth + 1)
        elif ftype == T_MAP:
            at = self.pos
            ktype = self.byte("key type of skipped map")
            vtype = self.byte("value type of skipped map")
            n = self.i32("count of skipped map")
            self._bound(n, (MIN_SIZE.get(ktype, 1), MIN_SIZE.get(vtype, 1)), "skipped map", at)
            for _ in range(n):
                self.skip(ktype, depth + 1)
                self.skip(vtype, depth + 1)
        else:
            raise self.fail(f"unknown Thrift type {ftype}", self.pos - 3 if self.pos >= 3 else None)

    def message_begin(self) -> tuple[str, int, int]:
        """``(name, message type, seqid)``, strict (versioned) or old-style."""
        at = self.pos
        first = self.i32("message header")
        if first < 0:
            if (first & VERSION_MASK) != VERSION_1:
                raise self.fail(f"bad Thrift message version {first & 0xFFFFFFFF:#010x}", at)
            mtype = first & 0xFF
            name = self.string("message name")
        else:
            if first > self.end - self.pos:
                raise self.fail(f"message name claims {first} bytes, {self.end - self.pos} left", at)
            p = self.need(first, "message name")
            try:
                name = bytes(self.buf[p : p + first]).decode("utf-8")
            except UnicodeDecodeError:
                raise self.fail("message name is not UTF-8", p) from None
            mtype = self.byte("message type")
        seqid = self.i32("sequence id")
        return name, mtype, seqid


# -- writers ------------------------------------------------------------------------


def put_field(out: bytearray, ftype: int, fid: int) -> None:
    out += _FIELD.pack(ftype, fid)


def put_i32(out: bytearray, fid: int, value: int) -> None:
    out += _FIELD.pack(T_I32, fid)
    out += _I32.pack(value)


def put_i64(out: bytearray, fid: int, value: int) -> None:
    out += _FIELD.pack(T_I64, fid)
    out += _I64.pack(value)


def put_bool(out: bytearray, fid: int, value: bool) -> None:
    out += _FIELD.pack(T_BOOL, fid)
    out.append(1 if value else 0)


def put_binary_value(out: bytearray, data: bytes) -> None:
    out += _I32.pack(len(data))
    out += data


def put_string(out: bytearray, fid: int, data: bytes) -> None:
    out += _FIELD.pack(T_STRING, fid)
    put_binary_value(out, data)


def put_blob(out: bytearray, fid: int, data: bytes) -> None:
    """A ``dsn.blob`` field: marked T_STRUCT, its payload a bare Thrift binary."""
    out += _FIELD.pack(T_STRUCT, fid)
    put_binary_value(out, data)


def put_list_begin(out: bytearray, fid: int, etype: int, count: int) -> None:
    out += _FIELD.pack(T_LIST, fid)
    out.append(etype)
    out += _I32.pack(count)


def put_stop(out: bytearray) -> None:
    out.append(T_STOP)


def put_message_begin(out: bytearray, name: bytes, mtype: int, seqid: int) -> None:
    """A strict (versioned) message header, as Pegasus's C++ writes its replies."""
    out += _U32.pack(VERSION_1 | mtype)
    put_binary_value(out, name)
    out += _I32.pack(seqid)
