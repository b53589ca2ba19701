"""Twin of rust/src/digest.rs and its glue: record digests for verifying a duplication."""

from __future__ import annotations

from typing import Any

from blake3 import blake3

from ..errors import InvalidArgumentError
from .crc import crc32c

_SHORT = "a stored value is shorter than its 12-byte header"


class RecordDigest:
    def __init__(self, chunk_bits: int = 10) -> None:
        if not 0 <= chunk_bits <= 31:
            raise InvalidArgumentError(f"chunk_bits out of range: {chunk_bits}")
        self._mask = (1 << chunk_bits) - 1
        self._hasher = blake3()
        self._count = 0
        self._last_key = b""
        self._chunks: list[tuple[bytes, int, bytes]] = []

    def _add(self, key: bytes, raw: bytes, now: int) -> None:
        if len(key) < 2:
            return
        if len(raw) < 12:
            raise InvalidArgumentError(_SHORT)
        if raw[11] & 1:
            return
        expire_ts = int.from_bytes(raw[:4], "big")
        if 0 < expire_ts <= now:
            return
        value = raw[12:]
        h = self._hasher
        h.update(len(key).to_bytes(4, "little"))
        h.update(key)
        h.update(raw[:4])
        h.update(len(value).to_bytes(4, "little"))
        h.update(value)
        self._count += 1
        if crc32c(key) & self._mask == 0:
            self._close(key)
        else:
            self._last_key = key

    def _close(self, key: bytes) -> None:
        self._chunks.append((key, self._count, self._hasher.digest()))
        self._hasher = blake3()
        self._count = 0
        self._last_key = b""

    def feed(self, it: Any, now: int, end: bytes | None, max_bytes: int) -> bool:
        size = 0
        while True:
            key = it.key()  # None once the iterator is invalid
            if key is None:
                it.status()
                return False
            if end is not None and key >= end:
                return False
            raw = it.value()
            self._add(key, raw, now)
            it.next()
            size += len(key) + len(raw)
            if size >= max(max_bytes, 1):
                return True

    def finish(self) -> list[tuple[bytes, int, bytes]]:
        if self._count:
            self._close(self._last_key)
        chunks, self._chunks = self._chunks, []
        return chunks
