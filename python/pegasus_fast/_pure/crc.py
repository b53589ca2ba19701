"""CRC32C and CRC-64/NVME in pure Python (twins of the Rust crc module)."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgumentError, InvalidTypeError


def _bytes(value: Any, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise InvalidTypeError(f"{what} must be bytes, not {type(value).__name__}")


def _uint(value: Any, bits: int, what: str) -> int:
    if not isinstance(value, int):
        raise InvalidTypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value < 1 << bits:
        raise InvalidArgumentError(f"{what} out of range: {value}")
    return int(value)


def _table(poly: int) -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _table(0x82F63B78)
_CRC64_TABLE = _table(0x9A6C9329AC4BC9B5)
_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF


def crc32c(data: bytes, crc: int = 0) -> int:
    data, crc = _bytes(data, "data"), _uint(crc, 32, "crc")
    table = _CRC32C_TABLE
    crc ^= _MASK32
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _MASK32


def crc64(data: bytes, crc: int = 0) -> int:
    data, crc = _bytes(data, "data"), _uint(crc, 64, "crc")
    table = _CRC64_TABLE
    crc ^= _MASK64
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _MASK64


def partition_index(hash_key: bytes, partition_count: int, sort_key: bytes = b"") -> int:
    hash_key, sort_key = _bytes(hash_key, "hash_key"), _bytes(sort_key, "sort_key")
    if not isinstance(partition_count, int):
        raise InvalidTypeError(f"partition_count must be an int, not {type(partition_count).__name__}")
    if not 0 < partition_count < 1 << 64:
        raise InvalidArgumentError("partition_count must be positive")
    return crc64(hash_key if len(hash_key) else sort_key) % partition_count
