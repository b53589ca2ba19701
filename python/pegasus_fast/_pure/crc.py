"""CRC32C and CRC-64/NVME in pure Python (twins of the Rust crc module)."""

from __future__ import annotations


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
    table = _CRC32C_TABLE
    crc ^= _MASK32
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _MASK32


def crc64(data: bytes, crc: int = 0) -> int:
    table = _CRC64_TABLE
    crc ^= _MASK64
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _MASK64


def partition_index(hash_key: bytes, partition_count: int, sort_key: bytes = b"") -> int:
    if partition_count <= 0:
        raise ValueError("partition_count must be positive")
    return crc64(hash_key if len(hash_key) else sort_key) % partition_count
