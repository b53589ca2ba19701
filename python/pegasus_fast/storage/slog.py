"""The shared log of a cluster directory: one fsync makes a batch of writes spread over many
partitions durable (docs/wal-format.md, "The shared log").

A Pegasus-port batch writes each partition's mutation into that partition's own log (its WAL:
what recovery, duplication and learning read) and then, instead of one fdatasync per partition
log, appends the same blocks to this one log and fdatasyncs it once. The partition logs are
made durable later, by their own group commits, rotations and closes, or by a checkpoint of
this log. Pegasus kept a shared log beside its private logs for the same reason.

Until then a partition log's tail may live only in the page cache. After a crash, ``replay``
(run when the cluster opens, before any partition does) appends to each partition log the
blocks it lost, from this log, and makes them durable; then this log is emptied.

Files: ``slog/slog.<seq>``, records appended, ``MAGIC | u32 payload length | u32 CRC-32 of
the payload (zlib's: C in both backends; each block keeps its own CRC32C too) | payload``; the
payload holds entries ``u16 path length | path of the partition log (relative to the cluster
directory) | u64 offset of the block in that log | u64 first decree | u64 last decree | u32
block length | block`` (integers little-endian). A torn record at the end of the newest file was
never acknowledged and is ignored; a bad record anywhere else is corruption.

An entry is replayed only where it continues its partition log exactly (the log ends at its
offset, with the decree before its first): a block already in the log is skipped, and a log
removed meanwhile (a learn, a move, a drop) is never appended to, since removing a partition
log checkpoints this one first (``walhead`` removal hooks) and a dropped table's directory is
never reused (app ids only grow).
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .. import _backend, fileio
from ..errors import WalCorruptionError
from ..logs import get
from . import walhead

if TYPE_CHECKING:
    from .wal import Wal

log = get(__name__)

MAGIC = b"PFSL"
_HEAD = struct.Struct("<4sII")
_ENTRY = struct.Struct("<QQQI")
_PATH_LEN = struct.Struct("<H")
#: a file past this size is checkpointed and a new one begun
ROTATE_BYTES = 64 << 20
#: a record bigger than this is corruption (a batch is far smaller)
MAX_RECORD = 1 << 30

#: (partition log path relative to the cluster directory, offset of the block, first, last, block)
Entry = tuple[str, int, int, int, bytes]


def encode(entries: list[Entry]) -> bytes:
    parts = []
    for path, offset, first, last, block in entries:
        raw = path.encode()
        parts += [_PATH_LEN.pack(len(raw)), raw, _ENTRY.pack(offset, first, last, len(block)), block]
    payload = b"".join(parts)
    return _HEAD.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def _decode_payload(payload: bytes, where: str) -> list[Entry]:
    out: list[Entry] = []
    pos = 0
    try:
        while pos < len(payload):
            (n,) = _PATH_LEN.unpack_from(payload, pos)
            pos += _PATH_LEN.size
            path = payload[pos : pos + n].decode()
            pos += n
            offset, first, last, size = _ENTRY.unpack_from(payload, pos)
            pos += _ENTRY.size
            block = payload[pos : pos + size]
            pos += size
            if len(block) != size or first > last or os.path.isabs(path) or ".." in path.split("/"):
                raise ValueError("bad entry")
            out.append((path, offset, first, last, block))
    except (struct.error, UnicodeDecodeError, ValueError):
        raise WalCorruptionError(
            where, pos, "a shared-log record whose checksum holds but whose entries do not"
        ) from None
    return out


def read_file(path: str, newest: bool) -> Iterator[list[Entry]]:
    """The records of one file, in order. A bad record ends the newest file (a torn write that
    was never acknowledged); in an older one it is corruption."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        bad = None
        if pos + _HEAD.size > len(data):
            bad = "a record header cut short"
        else:
            magic, size, crc = _HEAD.unpack_from(data, pos)
            end = pos + _HEAD.size + size
            if magic != MAGIC or size > MAX_RECORD:
                bad = "not a record"
            elif end > len(data):
                bad = "a record cut short"
            elif zlib.crc32(data[pos + _HEAD.size : end]) != crc:
                bad = "a record whose checksum does not hold"
        if bad is not None:
            if newest:
                return
            raise WalCorruptionError(path, pos, f"{bad} in a shared-log file that is not the newest")
        yield _decode_payload(data[pos + _HEAD.size : end], path)
        pos = end


def _files(directory: str) -> list[tuple[int, str]]:
    if not os.path.isdir(directory):
        return []
    out = []
    for name in os.listdir(directory):
        if name.startswith("slog.") and name[5:].isdigit():
            out.append((int(name[5:]), os.path.join(directory, name)))
    return sorted(out)


def replay(root: str, file_size_limit: int) -> int:
    """Append to each partition log under ``root`` the blocks it lost and the shared log holds,
    make them durable (whatever ``wal_sync`` the cluster opens with now), then empty the shared
    log. Returns the blocks appended."""
    from .wal import Wal  # wal.py imports this module's hooks' user, walhead: import late

    directory = os.path.join(root, "slog")
    files = _files(directory)
    if not files:
        return 0
    by_log: dict[str, list[tuple[int, int, int, bytes]]] = {}
    for i, (_, path) in enumerate(files):
        for record in read_file(path, newest=i == len(files) - 1):
            for rel, offset, first, last, block in record:
                by_log.setdefault(rel, []).append((offset, first, last, block))
    appended = 0
    for rel, entries in by_log.items():
        wal_dir = os.path.join(root, rel)
        if not os.path.isdir(wal_dir):
            continue  # the partition is gone (dropped, moved away)
        wal = Wal(wal_dir, "group", file_size_limit, owner=(rel, -1))
        last = wal.recover(1 << 62)  # no mutation decoded: only where the log ends
        try:
            for offset, first, last_decree, block in entries:
                if last_decree <= last:
                    continue  # there already
                if first != last + 1 or offset != wal.written_offset:
                    log.warning(
                        "shared log: a block for %s (decrees %d-%d at offset %d) does not continue"
                        " it (it ends at decree %d, offset %d): not replayed",
                        rel, first, last_decree, offset, last, wal.written_offset,
                    )  # fmt: skip
                    break
                wal.append(block, first, last_decree)
                wal.commit(last_decree)
                last = last_decree
                appended += 1
            wal.sync(wal.written_offset)
        finally:
            wal.close()
    if appended:
        log.info("shared log: %d blocks replayed into the partition logs of %s", appended, root)
    for _, path in files:
        fileio.unlink(path)
    fileio.fsync_dir(directory)
    return appended


class Syncing:
    """A record :meth:`SharedLog.begin` wrote, its fdatasync under way."""

    __slots__ = ("blocks", "started")

    def __init__(self, blocks: list[tuple[Wal, int, int, int, bytes]], started: Any) -> None:
        self.blocks = blocks
        #: the backend's StartedSync
        self.started = started


class SharedLog:
    """The shared log of one cluster directory (created on its first append)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.directory = os.path.join(root, "slog")
        self._lock = threading.Lock()
        self._fd = -1
        self._seq = 0
        self._size = 0
        #: why it takes no more writes (an append or fsync failed), or None
        self.failed: str | None = None
        #: its failure was logged (once)
        self.failed_reported = False
        #: partition logs with blocks in the current files, and the offset each must reach on
        #: its own disk before those files may go
        self._covered: dict[str, tuple[Wal, int]] = {}
        #: each partition log's path relative to the cluster directory, as entries name it
        self._rel: dict[str, str] = {}
        walhead.add_removal_hook(self._forget)

    def log_and_sync(self, blocks: list[tuple[Wal, int, int, int, bytes]]) -> list[bool]:
        """Append the blocks ``(wal, offset, first, last, block)`` as one record and fdatasync
        it; each log's bytes through its block then count as durable (``Wal.covered``) where
        they continue what was durable before: True for those, False for the others (the caller
        syncs their logs). Raises OSError (and takes no more writes) if the record cannot be
        made durable."""
        record = self._record(blocks)
        with self._lock:
            self._write(record)
            try:
                fileio.fdatasync(self._fd)
            except OSError as exc:
                # a torn record ends the file at replay; nothing after it may be acknowledged
                self.failed = str(exc)
                raise
            return self._covered_by(blocks)

    def begin(self, blocks: list[tuple[Wal, int, int, int, bytes]]) -> Syncing:
        """:meth:`log_and_sync` in two halves, for a caller with work to do while the disk
        syncs: the record is written and its fdatasync started on a backend thread. The caller
        must pass the answer to :meth:`finish` (in a ``finally``): this log takes no other
        record until then. Raises as log_and_sync does."""
        record = self._record(blocks)
        self._lock.acquire()
        try:
            self._write(record)
            try:
                fileio.fdatasync_point(self._fd)
                started = _backend.impl.fdatasync_start(self._fd)
            except OSError as exc:
                self.failed = str(exc)
                raise
        except BaseException:
            self._lock.release()
            raise
        return Syncing(blocks, started)

    def finish(self, syncing: Syncing) -> list[bool]:
        """Wait for the fdatasync :meth:`begin` started: what :meth:`log_and_sync` returns or
        raises."""
        try:
            code = syncing.started.wait()
            if code:
                exc = OSError(code, f"fdatasync: {os.strerror(code)}", self.directory)
                self.failed = str(exc)
                raise exc
            return self._covered_by(syncing.blocks)
        finally:
            self._lock.release()

    def _record(self, blocks: list[tuple[Wal, int, int, int, bytes]]) -> bytes:
        rel = self._rel
        entries: list[Entry] = []
        for wal, offset, first, last, block in blocks:
            path = rel.get(wal.path)
            if path is None:
                path = rel[wal.path] = os.path.relpath(wal.path, self.root)
            entries.append((path, offset, first, last, block))
        return encode(entries)

    def _write(self, record: bytes) -> None:
        """Append one record, not yet durable (lock held)."""
        if self.failed is not None:
            raise OSError(f"the shared log failed: {self.failed}")
        if self._fd < 0 or self._size >= ROTATE_BYTES:
            self._rotate()
        try:
            fileio.write(self._fd, record)
        except OSError as exc:
            # a torn record ends the file at replay; nothing after it may be acknowledged
            self.failed = str(exc)
            raise
        self._size += len(record)

    def _covered_by(self, blocks: list[tuple[Wal, int, int, int, bytes]]) -> list[bool]:
        """The record of ``blocks`` is durable (lock held): which of them count so in their
        own logs."""
        out = []
        for wal, offset, _first, last, block in blocks:
            end = offset + len(block)
            if not wal.covered(offset, end, last):
                out.append(False)
                continue
            out.append(True)
            seen = self._covered.get(wal.path)
            if seen is None or seen[1] < end:
                self._covered[wal.path] = (wal, end)
        return out

    def _rotate(self) -> None:
        """Begin a new file; the older ones go once every partition log they cover is on its own
        disk (lock held)."""
        if not os.path.isdir(self.directory):
            fileio.makedirs(self.directory, exist_ok=True)
            fileio.fsync_dir(self.root)
        old = _files(self.directory)
        if old and self._checkpoint():
            for _, path in old:
                fileio.unlink(path)
        if self._fd >= 0:
            fileio.close(self._fd)
            self._fd = -1
        self._seq = max([self._seq] + [s for s, _ in _files(self.directory)]) + 1
        path = os.path.join(self.directory, f"slog.{self._seq:08d}")
        self._fd = fileio.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
        self._size = 0
        fileio.fsync_dir(self.directory)

    def _checkpoint(self) -> bool:
        """Make every covered partition log durable on its own (lock held); True if all were."""
        ok = True
        for path, (wal, end) in list(self._covered.items()):
            try:
                wal.sync_file(end)
            except Exception as exc:
                log.error("shared log: %s could not be made durable on its own: %s", path, exc)
                ok = False
                continue
            del self._covered[path]
        return ok

    def _forget(self, wal_dir: str) -> None:
        """A partition log is about to be removed: none of this log's entries may outlive it
        (a log made later in its place must never be appended to from them)."""
        wal_dir = os.path.realpath(wal_dir)
        with self._lock:
            if self._fd < 0 or not any(os.path.realpath(p) == wal_dir for p in self._covered):
                return
            self._covered = {p: v for p, v in self._covered.items() if os.path.realpath(p) != wal_dir}
            self._rotate()

    def close(self, keep: bool = False) -> None:
        """Stop: with every partition log closed (each made durable on its own), its files go,
        unless ``keep`` (a partition could not be closed cleanly: replay needs them)."""
        walhead.remove_removal_hook(self._forget)
        with self._lock:
            if self._fd >= 0:
                fileio.close(self._fd)
                self._fd = -1
            if keep or self.failed is not None or not self._checkpoint():
                return
            files = _files(self.directory)
            for _, path in files:
                fileio.unlink(path)
            if files:
                fileio.fsync_dir(self.directory)


__all__ = ["MAGIC", "ROTATE_BYTES", "SharedLog", "Syncing", "encode", "read_file", "replay"]
