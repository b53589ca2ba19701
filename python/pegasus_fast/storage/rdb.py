"""What RocksDB (through rocksdict) raises, turned into this package's errors."""

from __future__ import annotations

import errno

from ..errors import DataCorruptionError, PegasusFastError, StorageError


def rdb_error(exc: Exception, path: str, pidx: int) -> Exception:
    """The typed error for an exception rocksdict raised (it raises a bare ``Exception``
    carrying RocksDB's status text): I/O errors stay ``OSError`` with the errno RocksDB
    reported, corruption is ``DataCorruptionError``, anything else ``StorageError``."""
    if isinstance(exc, (OSError, PegasusFastError)):
        return exc
    text = str(exc)
    if "Corruption" in text:
        return DataCorruptionError(path, pidx, text)
    if "No space left" in text:
        return OSError(errno.ENOSPC, text, path)
    if text.startswith("IO error"):
        return OSError(errno.EIO, text, path)
    return StorageError(path, pidx, text)


__all__ = ["rdb_error"]
