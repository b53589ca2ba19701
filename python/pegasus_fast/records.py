"""The record model in one place: op kinds, key/value rules and limits, TTL, the RocksDB
record layout (DESIGN.md §3) and the last-writer-wins timetag."""

from __future__ import annotations

import os
import re
import struct
import time
from enum import IntEnum

from .errors import InvalidArgumentError, InvalidTypeError

#: Pegasus expire_ts counts seconds from 2016-01-01 00:00:00 UTC.
EPOCH_BEGIN = 1451606400
#: Pegasus refuses a hash key of 65535 bytes or more (CHECK_LT(len, UINT16_MAX)),
#: although the u16 length field of the key could hold 65535.
MAX_HASH_KEY = 0xFFFE
#: partitions of one table (Pegasus allows up to 1024 too)
MAX_PARTITIONS = 1024
#: Largest value, and largest sort key, a write takes (64 MiB). Every write is
#: one WAL block and the format caps a block's payload at 1 GiB
#: (docs/wal-format.md); these limits keep a write far below that, and a value
#: this large already fills a memtable on its own.
MAX_VALUE = 64 << 20
#: Largest write: the hash key plus every sort key and value of one mutation (256 MiB).
MAX_WRITE = 256 << 20
VALUE_HEADER = struct.Struct(">IQ")
KEY_LEN = struct.Struct(">H")
DECREE = struct.Struct("<Q")
META_DECREE_KEY = b"\x00"
META_SOURCE_DECREE_KEY = b"\x01"
#: the highest source decree a follower has seen and needed nothing from (its own writes coming
#: back, bookkeeping): written outside our WAL, with RocksDB's own WAL and a sync
META_SOURCE_SEEN_KEY = b"\x02"
#: a follower fed by a source of another partition count: the source decree each source
#: partition homed here has reached (u32 source pidx, u64 decree pairs), written like the above
META_REROUTED_KEY = b"\x03"


class Op(IntEnum):
    """Op kinds of a mutation, as stored in the WAL (docs/wal-format.md, "Operations")."""

    PUT = 0
    DELETE = 1
    MULTI_PUT = 2
    MULTI_DELETE = 3
    #: advances the decree only
    EMPTY = 4
    #: an already-encoded RocksDB key and value (logical snapshots)
    RAW_PUT = 5
    #: a follower records the source decree it has applied
    SOURCE_DECREE = 6


def timetag(timestamp_us: int, cluster_id: int, delete: bool = False) -> int:
    """Pegasus's last-writer-wins tag: ``timestamp_us << 8 | cluster_id << 1 | delete``."""
    return (timestamp_us << 8) | (cluster_id << 1) | int(delete)


def timetag_of(raw_value: bytes) -> int:
    """The timetag stored in a RocksDB value."""
    return VALUE_HEADER.unpack_from(raw_value)[1]


def as_bytes(value: object, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            # a lone surrogate (e.g. a non-UTF-8 byte decoded with surrogateescape)
            raise InvalidArgumentError(
                f"{what} is a str that is not valid Unicode (a lone surrogate)"
            ) from None
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise InvalidTypeError(f"{what} must be bytes or str, not {type(value).__name__}")


def hash_key_bytes(hash_key: object) -> bytes:
    hk = as_bytes(hash_key, "hash_key")
    if len(hk) > MAX_HASH_KEY:
        raise InvalidArgumentError(f"hash_key is {len(hk)} bytes; the limit is {MAX_HASH_KEY}")
    return hk


def check_size(data: bytes, what: str, limit: int = MAX_VALUE) -> bytes:
    if len(data) > limit:
        raise InvalidArgumentError(f"{what} is {len(data)} bytes; the limit is {limit}")
    return data


def now_pegasus_seconds() -> int:
    return int(time.time()) - EPOCH_BEGIN


def expire_ts_for(ttl_seconds: object) -> int:
    """The expire_ts of a record written now: 0 (no TTL) for None or 0, as a Pegasus client stores."""
    if ttl_seconds is None:
        return 0
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int):
        raise InvalidTypeError("ttl_seconds must be an int or None")
    if ttl_seconds < 0:
        raise InvalidArgumentError("ttl_seconds must not be negative")
    if ttl_seconds == 0:
        return 0
    expire = now_pegasus_seconds() + ttl_seconds
    if expire > 0xFFFFFFFF:
        raise InvalidArgumentError("ttl_seconds is too large")
    return expire


def encode_key(hash_key: bytes, sort_key: bytes) -> bytes:
    return KEY_LEN.pack(len(hash_key)) + hash_key + sort_key


def hash_key_prefix(hash_key: bytes) -> bytes:
    """The RocksDB key prefix of every record under ``hash_key``."""
    return KEY_LEN.pack(len(hash_key)) + hash_key


def is_record(key: bytes, value: bytes) -> bool:
    """Whether a RocksDB key and value are a well-formed record: a length-prefixed hash key
    that fits the key, and a value that holds its header. Shipped RAW_PUTs must be."""
    return (
        len(key) >= KEY_LEN.size
        and KEY_LEN.size + KEY_LEN.unpack_from(key)[0] <= len(key)
        and len(value) >= VALUE_HEADER.size
    )


def decode_key(key: bytes) -> tuple[bytes, bytes]:
    (n,) = KEY_LEN.unpack_from(key)
    return key[2 : 2 + n], key[2 + n :]


def is_meta_key(key: bytes) -> bool:
    return len(key) < 2


def live_value(raw: bytes | None, now: int) -> bytes | None:
    """The user value of a stored record, or None when absent, expired or a delete's tombstone."""
    if raw is None or raw[11] & 1:
        return None
    expire_ts = (raw[0] << 24) | (raw[1] << 16) | (raw[2] << 8) | raw[3]
    if 0 < expire_ts <= now:
        return None
    return raw[12:]


def is_expired(raw: bytes, now: int) -> bool:
    """Whether a stored record (a tombstone too) has expired: it then counts as absent."""
    expire_ts = (raw[0] << 24) | (raw[1] << 16) | (raw[2] << 8) | raw[3]
    return 0 < expire_ts <= now


#: a WAL file's name: log.<index>.<start_offset> (docs/wal-format.md)
LOG_FILE_NAME = re.compile(r"log\.(\d+)\.(\d+)")


def list_log_files(path: str) -> list[tuple[int, int, str]]:
    """(index, start offset, name) of the WAL files in a directory, in log order: the one
    listing the WAL (storage/wal.py) and the pure-Python log scan both read."""
    found = []
    for name in os.listdir(path):
        m = LOG_FILE_NAME.fullmatch(name)
        if m:
            found.append((int(m.group(1)), int(m.group(2)), name))
    found.sort()
    return found
