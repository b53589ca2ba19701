"""Scans of a RocksDB instance that never stop short silently.

rocksdict's iterator turns invalid both at the end and on an error (a corrupt
block): every scan asks ``status()`` when it stops, so an error is raised
instead of a short result.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..records import decode_key, is_meta_key, live_value


def prefix(db: Any, key_prefix: bytes, now: int) -> Iterator[tuple[bytes, bytes]]:
    """Live (sort_key, value) pairs under a hash-key prefix, in order."""
    it = db.iter()
    it.seek(key_prefix)
    n = len(key_prefix)
    while it.valid():
        key = it.key()
        if not key.startswith(key_prefix):
            return
        value = live_value(it.value(), now)
        if value is not None:
            yield key[n:], value
        it.next()
    it.status()


def records(db: Any, now: int) -> Iterator[tuple[bytes, bytes, bytes]]:
    """Every live (hash_key, sort_key, value), in key order."""
    it = db.iter()
    it.seek_to_first()
    while it.valid():
        key = it.key()
        if not is_meta_key(key):
            value = live_value(it.value(), now)
            if value is not None:
                hk, sk = decode_key(key)
                yield hk, sk, value
        it.next()
    it.status()


def raw(source: Any) -> Iterator[tuple[bytes, bytes]]:
    """Every stored record as RocksDB key and value, expired included (source: a DB or snapshot)."""
    it = source.iter()
    it.seek_to_first()
    while it.valid():
        key = it.key()
        if not is_meta_key(key):
            yield key, it.value()
        it.next()
    it.status()


__all__ = ["prefix", "raw", "records"]
