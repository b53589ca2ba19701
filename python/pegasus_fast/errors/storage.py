"""Errors of what a cluster keeps on disk: its WAL, metadata journal, RocksDB data, copied
and backed-up files, and its directory (lock, paths, close)."""

from __future__ import annotations

from .base import PegasusFastError, Retry


class WalCorruptionError(PegasusFastError):
    """A WAL block failed its checks somewhere other than a torn tail."""

    retry = Retry.FAILURE

    def __init__(self, path: str, offset: int, reason: str = "") -> None:
        super().__init__(f"WAL corruption in {path} at offset {offset}: {reason}")
        self.path = str(path)
        self.offset = int(offset)
        self.reason = reason


class WalGapError(PegasusFastError):
    """The WAL does not hold a decree that recovery or shipping needs."""

    retry = Retry.FAILURE

    def __init__(self, path: str, expected_decree: int, found_decree: int) -> None:
        super().__init__(f"WAL {path}: expected decree {expected_decree}, found {found_decree}")
        self.path = str(path)
        self.expected_decree = expected_decree
        self.found_decree = found_decree


class MetaCorruptionError(PegasusFastError):
    """The cluster metadata journal is damaged somewhere other than a torn last record."""

    def __init__(self, path: str, offset: int, reason: str = "") -> None:
        super().__init__(
            f"cluster metadata {path} is corrupt at offset {offset}" + (f": {reason}" if reason else "")
        )
        self.path = str(path)
        self.offset = int(offset)
        self.reason = reason


class MetaFencedError(PegasusFastError):
    """A failed metadata change could not be taken back off the journal.

    Whether the change that raised it is on disk is unknown until the cluster
    is opened again (its load decides, and either answer is a whole state), so
    the store accepts no further change until then.
    """

    #: the I/O failure behind it; reopening the cluster clears it, so a slow duplication waits
    retry = Retry.FAILURE

    def __init__(self, path: str) -> None:
        super().__init__(f"cluster metadata {path} refuses changes after a failed write; reopen the cluster")
        self.path = str(path)


class StorageError(PegasusFastError):
    """RocksDB refused an operation of a partition for a reason other than plain I/O."""

    def __init__(self, path: str, pidx: int, reason: str) -> None:
        super().__init__(f"storage error in {path} (partition {pidx}): {reason}")
        self.path = str(path)
        self.pidx = int(pidx)
        self.reason = reason


class DataCorruptionError(StorageError):
    """Stored data (a RocksDB file of a partition, or a checkpoint) failed its checksums."""


class DataLossError(PegasusFastError):
    """Files that held data are missing (removed outside the store): opening would serve less
    than was acknowledged, so the open is refused instead."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"data missing at {path}: {reason}")
        self.path = str(path)
        self.reason = reason


class ChecksumMismatchError(PegasusFastError):
    """A copied file's size or hash differs from its manifest."""

    retry = Retry.FAILURE

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


class UnsafePathError(PegasusFastError):
    """A store path is a symlink (or not the kind of file it must be): it is never followed."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"refusing {path}: {reason}")
        self.path = str(path)
        self.reason = reason


class ClusterLockedError(PegasusFastError):
    """Another process has the cluster directory open."""

    def __init__(self, path: str) -> None:
        super().__init__(f"cluster {path} is open in another process")
        self.path = str(path)


class CloseError(PegasusFastError):
    """Closing released everything, but some steps failed; ``failures`` says which.

    ``subject`` is what was closed (a cluster's path, or ``"table <name>"``);
    each failure is ``(step, exception)``, ``step`` naming what failed (e.g.
    ``"table t partition 3"``, ``"metadata"``). Every handle and the directory
    lock are released all the same, so the cluster can be opened again.
    """

    def __init__(self, subject: str, failures: list[tuple[str, BaseException]]) -> None:
        steps = ", ".join(f"{step}: {exc!r}" for step, exc in failures)
        super().__init__(f"closing {subject} failed in {len(failures)} step(s): {steps}")
        self.subject = str(subject)
        self.failures = list(failures)


class BackupError(PegasusFastError):
    """A backup (``pegasus-fast backup``) that cannot be restored as it is, or cannot be made:
    ``path`` is the backup directory, ``file`` the file at fault relative to it (None: the backup
    as a whole), ``reason`` one of :data:`BACKUP_REASONS`. A restore that raises it created
    nothing."""

    def __init__(self, path: str, file: str | None, reason: str, detail: str = "") -> None:
        where = f"{path}: {file}" if file is not None else str(path)
        super().__init__(f"backup {where}: {reason}" + (f" ({detail})" if detail else ""))
        self.path = str(path)
        self.file = file
        self.reason = reason
        self.detail = detail


#: what a :class:`BackupError` found: no manifest or one that does not parse; a name that
#: leaves its directory; a file missing, extra, of another size or another hash; a directory
#: that is not empty for a new backup; a restore whose data is not the manifest's decree
BACKUP_REASONS = (
    "bad_manifest",
    "unsafe_path",
    "missing",
    "extra",
    "size",
    "hash",
    "not_empty",
    "decree",
)
