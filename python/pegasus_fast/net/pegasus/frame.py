"""The request frame's fixed header (docs/pegasus-protocol.md §2), parsed without trusting it.

A request is ``"THFT"``, a u32 header version, then either the 48-byte v0
header (every number big-endian) or the 16-byte v1 header followed by a Thrift
``request_meta`` struct; then the body, a Thrift message. A reader takes
:data:`PREFIX` bytes, asks :func:`header_length` how many the header has, reads
the rest, and :func:`parse_header` bounds every length it announces.
"""

from __future__ import annotations

import struct

from ...errors import FrameTooLargeError, PegasusProtocolError
from .thrift import T_I32, T_STOP, Reader

MAGIC = b"THFT"
#: magic + header version: enough to know the header's length
PREFIX = 8
HEADER_V0 = 48
HEADER_V1 = 16
#: the default frame-size limit (meta + body): a largest value (64 MiB) and its keys, with room
DEFAULT_MAX_FRAME = (64 << 20) + (1 << 20)

#: v0: magic, version, header length, header crc32, body length, body crc32, app id,
#: partition index, client timeout, thread hash, partition hash
V0 = struct.Struct(">4sIIIIIiiiiQ")
#: v1: magic, version, meta length, body length
V1 = struct.Struct(">4sIII")

#: (version, meta length, body length, app id, partition index); v1's ids are in its meta
FrameHeader = tuple[int, int, int, int, int]


def header_length(prefix: bytes, base: int = 0) -> int:
    """The fixed header's length given its first :data:`PREFIX` bytes (v0: 48, v1: 16)."""
    if prefix[:4] != MAGIC:
        raise PegasusProtocolError(base, f"frame does not start with 'THFT' but {bytes(prefix[:4])!r}")
    version = int.from_bytes(prefix[4:8], "big")
    if version == 0:
        return HEADER_V0
    if version == 1:
        return HEADER_V1
    raise PegasusProtocolError(base + 4, f"unknown header version {version}")


def parse_header(hdr: bytes, base: int = 0, max_frame: int = DEFAULT_MAX_FRAME) -> FrameHeader:
    """Check a whole fixed header; every length it announces is within ``max_frame``."""
    n = header_length(hdr, base)
    if len(hdr) != n:
        raise PegasusProtocolError(base, f"header is {len(hdr)} bytes, version needs {n}")
    if n == HEADER_V0:
        _, version, hdr_len, _, body_len, _, app_id, pidx, _, _, _ = V0.unpack(hdr)
        if hdr_len != HEADER_V0:
            raise PegasusProtocolError(base + 8, f"v0 header length field is {hdr_len}, not 48")
        if body_len > max_frame:
            raise FrameTooLargeError(base + 16, body_len, max_frame)
        return version, 0, body_len, app_id, pidx
    _, version, meta_len, body_len = V1.unpack(hdr)
    if meta_len > max_frame:
        raise FrameTooLargeError(base + 8, meta_len, max_frame)
    if meta_len + body_len > max_frame:
        raise FrameTooLargeError(base + 12, meta_len + body_len, max_frame)
    return version, meta_len, body_len, 0, 0


def decode_meta(meta: bytes, base: int = 0) -> tuple[int, int]:
    """``(app_id, partition_index)`` of a v1 header's ``request_meta`` struct."""
    r = Reader(meta, base)
    app_id = pidx = 0
    while True:
        ftype, fid = r.field()
        if ftype == T_STOP:
            break
        if fid == 1 and ftype == T_I32:
            app_id = r.i32("app_id")
        elif fid == 2 and ftype == T_I32:
            pidx = r.i32("partition_index")
        else:
            r.skip(ftype)  # client timeout, partition hash, backup request: not used here
    if r.pos != r.end:
        raise r.fail(f"{r.end - r.pos} bytes after the request meta")
    return app_id, pidx


def encode_v0_header(body_length: int, app_id: int, pidx: int, partition_hash: int = 0) -> bytes:
    """A v0 request header (what pypegasus3 and the Go client send); for clients and tests."""
    thread_hash = app_id * 7919 + pidx
    return V0.pack(MAGIC, 0, HEADER_V0, 0, body_length, 0, app_id, pidx, 0, thread_hash, partition_hash)
