"""A partition's write-ahead log: append, group commit, rotation, truncation, GC (its open,
replay and torn-tail rules: wal_recovery.py).

Format on disk: docs/wal-format.md. Encoding and scanning are the backend's;
this module owns files and durability.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Sequence

from .. import _backend, fileio
from ..errors import PartitionFailedError
from . import walhead
from .wal_recovery import REPLAY_BATCH, LogFile, WalRecovery


class Wal(WalRecovery):
    """Appends blocks to ``log.<index>.<start_offset>`` files in one directory.

    Callers serialize ``append`` (the partition holds its write lock);
    ``sync`` may be called by many threads at once: the first waiter fsyncs
    for everyone whose bytes are written (group commit).
    """

    def __init__(
        self, path: str, sync_mode: str, file_size_limit: int, owner: tuple[str, int] = ("", -1)
    ) -> None:
        self.path = path
        #: (table, pidx), named by the error a failed log raises
        self.owner = owner
        #: why the log refuses work (a write or fsync failed and could not be undone), or None
        self.failed: str | None = None
        self.sync_mode = sync_mode
        self.file_size_limit = file_size_limit
        self.files: list[LogFile] = []
        self._fd = -1
        self._written = 0  # global offset after the last appended byte
        #: bytes durable: on this log's disk, or in the cluster's shared log (slog.py)
        self._synced = 0
        #: bytes on this log's own disk (<= _synced)
        self._file_synced = 0
        #: decree of the last committed mutation (applied too), and the highest one known on disk
        self._last_decree = 0
        self.synced_decree = 0
        self._sync_cond = threading.Condition(threading.Lock())
        self._syncing = False
        self._files_lock = threading.Lock()
        self._opened = False
        self._head_unsynced = False
        self._before = (0, 0, 0, 0)

    @property
    def is_open(self) -> bool:
        return self._opened

    def ensure_dir(self) -> None:
        """Make the log's directory if it is not there yet: before its first file, and before
        the partition's RocksDB is created (a store without its log is data loss)."""
        if not os.path.isdir(self.path):
            fileio.makedirs(self.path, exist_ok=True)

    def _open_tail(self) -> None:
        self._opened = True
        if self.files:
            tail = self.files[-1]
            self._fd = fileio.open(
                os.path.join(self.path, tail.name), os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW
            )
            self._written = tail.start_offset + tail.size
        # else the first file is created by the first append
        self._synced = self._file_synced = self._written
        self._last_decree = self.synced_decree = max((f.last_decree for f in self.files), default=0)

    def _new_file(self, index: int, start_offset: int, first_decree: int) -> None:
        name = f"log.{index}.{start_offset}"
        full = os.path.join(self.path, name)
        if index == 1:
            # its entry in the partition directory is made durable below, by the HEAD's publish
            self.ensure_dir()
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL | os.O_NOFOLLOW
        fd = fileio.open(full, flags, 0o644)
        self._head_unsynced = False
        try:
            fileio.fsync_dir(self.path)
            # under wal_sync="none" nothing of the log is made durable, its HEAD neither
            durable = self.sync_mode != "none" or index == 1
            tmp = walhead.stage(self.path, index, first_decree, durable)
            self._head_unsynced = True
            # the HEAD sits beside wal/: publishing it fsyncs the partition directory, which
            # also makes a first log's wal/ entry durable (one sync, not two)
            walhead.publish(self.path, tmp, durable)
            self._head_unsynced = False
            if index == 1:
                # the log's first file: the directory above the partition too
                fileio.fsync_dir(os.path.dirname(os.path.dirname(self.path)))
        except BaseException:
            fileio.close(fd)
            if self._head_unsynced:
                # HEAD may already name this file: it must stay, and the log stops here
                self._fail(f"cannot make {walhead.HEAD_NAME} durable for {name}")
                raise
            # left behind, the empty file would make every later rotation fail on O_EXCL
            try:
                fileio.unlink(full)
            except OSError as exc:
                self._fail(f"cannot remove {name} after a failed rotation: {exc}")
            raise
        with self._files_lock:
            self.files.append(LogFile(index, start_offset, name, 0, 0, 0))
        if self._fd >= 0:
            fileio.close(self._fd)
        self._fd = fd
        self._written = start_offset

    # -- failure ----------------------------------------------------------

    def _fail(self, reason: str) -> None:
        if self.failed is None:
            self.failed = reason

    def failure(self) -> PartitionFailedError:
        return PartitionFailedError(self.owner[0], self.owner[1], self.path, self.failed or "")

    # -- write path -------------------------------------------------------

    def append(self, block: bytes, first_decree: int, last_decree: int) -> int:
        """Write one block; returns the global offset its durability waits for.

        The block is not committed (group commit does not count its decree as
        durable) until ``commit``; a caller that cannot apply it calls ``undo``.
        A failed append leaves the log as if it had not been called, or, when
        that cannot be done, the log refuses all work until it is reopened.
        """
        if self.failed is not None:
            raise self.failure()
        if not self.files:
            self._new_file(1, 0, first_decree)
        tail = self.files[-1]
        if tail.size and tail.size + len(block) > self.file_size_limit:
            self._rotate(first_decree)
            tail = self.files[-1]
        # what ``undo`` restores: a plain tuple, as this runs on every write
        self._before = (tail.index, tail.size, tail.first_decree, tail.last_decree)
        try:
            n = fileio.write(self._fd, block)
        except BaseException as exc:
            # Part of the block may be in the file (a full disk stores what fits).
            # Left there, the next block would land behind it and recovery would
            # cut the log at it, taking every acknowledged write after it along.
            try:
                self._cut(tail, tail.size, tail.first_decree, tail.last_decree)
            except OSError:
                pass  # the log is failed now; the write's own error is the one to report
            raise exc
        tail.size += n
        if not tail.first_decree:
            tail.first_decree = first_decree
        tail.last_decree = last_decree
        self._written += n
        return self._written

    def commit(self, last_decree: int) -> None:
        """The block appended last is applied: its decree may now count as durable."""
        # order matters: a group-commit leader reads _last_decree before it
        # syncs, and the bytes of that decree are already written by then
        self._last_decree = last_decree
        if self.sync_mode == "none":
            self.synced_decree = last_decree

    def undo(self) -> None:
        """Cut the block appended last back out of the log (its apply failed; not committed).

        Why cutting bytes that may already be on disk is right: the caller
        still holds the partition lock, so every block before this one belongs
        to a decree already committed, and none after it exists. A group-commit
        leader (another writer, outside the lock) may have fsynced these bytes
        along with its own, but it acknowledges only decrees up to
        ``_last_decree``, which ``commit`` never advanced to this block; so no
        one was ever acknowledged for them, and nothing shipped them
        (duplication ships up to ``synced_decree``, which follows
        ``_last_decree``). Once cut, the decree is free again: the next write
        takes it, and the log never holds two mutations with one decree.
        """
        if self.failed is not None:
            raise self.failure()
        index, size, first, last = self._before
        tail = self.files[-1]
        assert tail.index == index  # a rotation happens before the state is taken
        self._cut(tail, size, first, last)

    def _cut(self, tail: LogFile, size: int, first_decree: int, last_decree: int) -> None:
        with self._sync_cond:
            # no leader may be fsyncing while offsets move back under it
            while self._syncing:
                self._sync_cond.wait()
            end = tail.start_offset + size
            try:
                fileio.truncate(self._fd, size)
                if self._file_synced > end and self.sync_mode != "none":
                    # the cut bytes were made durable by a group commit: make the cut durable too
                    fileio.fdatasync(self._fd)
            except OSError as exc:
                self._fail(f"cannot cut {tail.name} back to {size} bytes after a failed write: {exc}")
                self._sync_cond.notify_all()
                raise
            tail.size, tail.first_decree, tail.last_decree = size, first_decree, last_decree
            self._written = end
            self._synced = min(self._synced, end)
            self._file_synced = min(self._file_synced, end)

    def _rotate(self, first_decree: int) -> None:
        # Everything in the old file is made durable before it stops being the
        # tail, and no group-commit leader may be fsyncing the fd we close.
        with self._sync_cond:
            while self._syncing:
                self._sync_cond.wait()
            if self.sync_mode != "none":
                try:
                    fileio.fdatasync(self._fd)
                except OSError as exc:
                    self._fail(f"fdatasync of the WAL failed: {exc}")
                    self._sync_cond.notify_all()
                    raise
            self._synced = self._file_synced = self._written
            self.synced_decree = max(self.synced_decree, self._last_decree)
            tail = self.files[-1]
            self._new_file(tail.index + 1, tail.start_offset + tail.size, first_decree)

    def sync(self, offset: int) -> None:
        """Return once bytes up to ``offset`` are durable (group commit).

        A failed fdatasync fails the log for good: the kernel may have dropped
        the pages it could not write, and a later fsync that succeeds would
        acknowledge writes that follow a hole (PostgreSQL's "fsyncgate").
        """
        self._sync(offset, False)

    def sync_file(self, offset: int) -> None:
        """:meth:`sync`, on this log's own disk: bytes the shared log made durable count only
        once fsynced here too (the shared log's checkpoint, before its files go)."""
        self._sync(offset, True)

    def covered(self, start: int, end: int, decree: int) -> bool:
        """The block at ``start``..``end`` (decree ``decree``, committed) is durable elsewhere
        (the cluster's shared log, slog.py). It counts as durable here, and with it every decree
        through ``decree``, only if every byte before it already did; else False (the caller
        makes it durable with :meth:`sync`)."""
        with self._sync_cond:
            if self._synced < start or self.failed is not None:
                return False
            if end > self._synced:
                self._synced = end
                self.synced_decree = max(self.synced_decree, decree)
                self._sync_cond.notify_all()
            return True

    def _sync(self, offset: int, own_disk: bool) -> None:
        if self.sync_mode == "none":
            return
        with self._sync_cond:
            while (self._file_synced if own_disk else self._synced) < offset:
                if self.failed is not None:
                    raise self.failure()
                if self._fd < 0:
                    raise OSError(errno.EBADF, f"{self.path}: the log is closed")
                if self._syncing:
                    self._sync_cond.wait()
                    continue
                lead = self._lead()
                self._sync_cond.release()
                ok = False
                try:
                    fileio.fdatasync(lead[2])
                    ok = True
                finally:
                    self._sync_cond.acquire()
                    self._end_lead(lead, ok, "fdatasync of the WAL failed")

    def _lead(self) -> tuple[int, int, int]:
        """Become the group-commit leader (``_sync_cond`` held, no leader yet): what the fsync
        about to run covers, ``(decree, offset, fd)``."""
        self._syncing = True
        return self._last_decree, self._written, self._fd

    def _end_lead(self, lead: tuple[int, int, int], ok: bool, failure: str) -> None:
        """The leader's fsync ended (``_sync_cond`` held): everything it covered is durable,
        or the log is failed for good; the waiters wake."""
        self._syncing = False
        if ok:
            self._synced = max(self._synced, lead[1])
            self._file_synced = max(self._file_synced, lead[1])
            self.synced_decree = max(self.synced_decree, lead[0])
        else:
            self._fail(failure)
        self._sync_cond.notify_all()

    @property
    def written_offset(self) -> int:
        return self._written

    @property
    def file_synced_offset(self) -> int:
        """Bytes on this log's own disk (the rest of what is durable is in the shared log)."""
        return self._file_synced

    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    # -- GC ---------------------------------------------------------------

    def gc(self, max_decree: int) -> list[str]:
        """Remove files whose every decree is <= max_decree, never the tail."""
        removed = []
        with self._files_lock:
            while len(self.files) > 1 and self.files[0].last_decree <= max_decree:
                f = self.files.pop(0)
                fileio.unlink(os.path.join(self.path, f.name))
                removed.append(f.name)
        if removed:
            fileio.fsync_dir(self.path)
        return removed

    def snapshot_files(self) -> list[LogFile]:
        with self._files_lock:
            return [LogFile(**vars(f)) for f in self.files]

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                if self.sync_mode != "none" and self.failed is None:
                    fileio.fdatasync(fd)
                    self._synced = self._file_synced = self._written
            finally:
                fileio.close(fd)


def sync_all(wals: Sequence[tuple[Wal, int]]) -> list[BaseException | None]:
    """:meth:`Wal.sync` of several logs at once (a batch of writes spread over partitions):
    their fdatasyncs run together (``_backend.impl.fdatasync_all``, the GIL released), so the
    file system overlaps them. Each one's outcome, in order: None once durable, else what
    ``sync`` would have raised. A log whose group commit another thread leads already is waited
    for as ``sync`` would."""
    out: list[BaseException | None] = [None] * len(wals)
    leads: list[tuple[int, Wal, tuple[int, int, int]]] = []
    behind: list[int] = []
    for i, (wal, offset) in enumerate(wals):
        if wal.sync_mode == "none":
            continue
        with wal._sync_cond:
            if wal._synced >= offset:
                continue
            if wal.failed is not None:
                out[i] = wal.failure()
            elif wal._syncing:
                behind.append(i)
            else:
                leads.append((i, wal, wal._lead()))
    if leads:
        codes: list[int | OSError] = []
        fds: list[int] = []
        for _, _, lead in leads:
            try:
                fileio.fdatasync_point(lead[2])
            except OSError as exc:  # a planned fault (tests): this log's fsync fails
                codes.append(exc)
                continue
            codes.append(-1)
            fds.append(lead[2])
        done = iter(_backend.impl.fdatasync_all(fds))
        for (i, wal, lead), code in zip(leads, codes, strict=True):
            err: OSError | None = code if isinstance(code, OSError) else None
            if code == -1:
                errno_ = next(done)
                if errno_:
                    err = OSError(errno_, os.strerror(errno_))
            with wal._sync_cond:
                wal._end_lead(lead, err is None, f"fdatasync of the WAL failed: {err}")
            out[i] = err
    for i in behind:
        wal, offset = wals[i]
        try:
            wal.sync(offset)
        except BaseException as exc:
            out[i] = exc
    return out


__all__ = ["REPLAY_BATCH", "LogFile", "Wal", "sync_all"]
