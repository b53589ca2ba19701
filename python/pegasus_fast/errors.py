"""Every error pegasus_fast raises on purpose; both backends raise these classes.

I/O failures stay the built-in ``OSError`` subclasses.
"""

from __future__ import annotations


class PegasusFastError(Exception):
    """Base of every pegasus_fast error."""


class InvalidArgumentError(PegasusFastError, ValueError):
    """An argument of the right type with a value the store cannot take."""


class InvalidTypeError(PegasusFastError, TypeError):
    """An argument of the wrong type (keys and values are bytes or str)."""


class ClosedError(PegasusFastError):
    """The cluster or table was closed."""


class WalCorruptionError(PegasusFastError):
    """A WAL block failed its checks somewhere other than a torn tail."""

    def __init__(self, path: str, offset: int, reason: str = "") -> None:
        super().__init__(f"WAL corruption in {path} at offset {offset}: {reason}")
        self.path = str(path)
        self.offset = int(offset)
        self.reason = reason


class MetaCorruptionError(PegasusFastError):
    """The cluster metadata journal is damaged somewhere other than a torn last record."""

    def __init__(self, path: str, offset: int) -> None:
        super().__init__(f"cluster metadata {path} is corrupt at offset {offset}")
        self.path = str(path)
        self.offset = int(offset)


class WalGapError(PegasusFastError):
    """The WAL does not hold a decree that recovery or shipping needs."""

    def __init__(self, path: str, expected_decree: int, found_decree: int) -> None:
        super().__init__(f"WAL {path}: expected decree {expected_decree}, found {found_decree}")
        self.path = str(path)
        self.expected_decree = expected_decree
        self.found_decree = found_decree


class ChecksumMismatchError(PegasusFastError):
    """A copied file's size or hash differs from its manifest."""

    def __init__(self, path: str, expected: str, actual: str) -> None:
        super().__init__(f"checksum mismatch for {path}: expected {expected}, got {actual}")
        self.path = str(path)
        self.expected = expected
        self.actual = actual


class FileChangedError(PegasusFastError):
    """A file changed size (or was rewritten) while it was hashed or copied: no digest of it holds."""

    def __init__(self, path: str, expected_size: int, actual_size: int) -> None:
        super().__init__(
            f"{path} changed while it was read: {expected_size} bytes at open, {actual_size} read"
        )
        self.path = str(path)
        self.expected_size = int(expected_size)
        self.actual_size = int(actual_size)


class TableExistsError(PegasusFastError):
    def __init__(self, name: str) -> None:
        super().__init__(f"table {name!r} already exists")
        self.name = name


class TableNotFoundError(PegasusFastError, KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(f"table {name!r} not found")
        self.name = name

    def __str__(self) -> str:
        return str(self.args[0])


class PartitionUnavailableError(PegasusFastError):
    """The partition cannot serve now (a follower still learning its checkpoint)."""

    def __init__(self, table: str, pidx: int, state: str) -> None:
        super().__init__(f"partition {table}.{pidx} is unavailable: {state}")
        self.table = table
        self.pidx = pidx
        self.state = state


class ClusterLockedError(PegasusFastError):
    """Another process has the cluster directory open."""

    def __init__(self, path: str) -> None:
        super().__init__(f"cluster {path} is open in another process")
        self.path = str(path)


class DuplicationError(PegasusFastError):
    """A duplication cannot be added or driven (see the message)."""


class DuplicationNotFoundError(DuplicationError, KeyError):
    def __init__(self, dupid: int) -> None:
        super().__init__(f"duplication {dupid} not found")
        self.dupid = dupid

    def __str__(self) -> str:
        return str(self.args[0])
