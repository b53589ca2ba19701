"""Moving a partition between nodes (server/transfer.py): fence it, take another node's WAL
blocks, install a checkpoint copy, or clear what a move left here.

A mixin of ``Partition`` (partition.py), which provides what is declared below.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import rocksdict

from .. import fileio
from ..errors import ClosedError, PartitionUnavailableError
from ..records import META_REROUTED_KEY, META_SOURCE_SEEN_KEY
from . import adopted_log, checkpoint, walhead
from .state import PartitionState
from .wal import Wal

#: a fenced partition (see fence): it stays fenced across a restart
FENCE_FILE = "FENCED"


class PartitionMoves:
    path: str
    table: str
    pidx: int
    state: PartitionState
    lock: threading.RLock
    wal: Wal
    last_committed: int
    last_flushed: int
    last_durable: int
    source_decree: int
    source_seen: int
    _db: rocksdict.Rdict | None
    _deferred: bool
    _image: dict[bytes, bytes | None] | None
    _last_ts: int
    _last_block: bytes
    _checkpointing: threading.Lock

    if TYPE_CHECKING:  # what Partition provides

        @property
        def db(self) -> rocksdict.Rdict: ...

        @property
        def durable_decree(self) -> int: ...

        def check_available(self, for_write: bool) -> None: ...

        def sync_wal(self) -> None: ...

        def write_mutations_unsynced(
            self,
            build: Callable[[int], list[tuple[int, int, int, list]]],
            defer_apply: bool = False,
            hold: bool = False,
        ) -> tuple[int, int | None]: ...

        def write_mutations(
            self, build: Callable[[int], list[tuple[int, int, int, list]]], defer_apply: bool = False
        ) -> int: ...

        def _new_wal(self) -> Wal: ...

        def _open_db(self) -> None: ...

    def fence(self) -> int:
        """Stop taking writes (reads go on) and return the last decree, durable.

        Once the state is PartitionState.MOVING under the lock, no write can be logged; every
        write logged before is then made durable, so the decree returned is one
        the target can pull whole from this WAL.
        """
        with self.lock:
            if self.state != PartitionState.MOVING:
                self.check_available(True)
                # durable first: a node restarted before the switch must not take writes the
                # switch would leave behind (it comes back moving; its node lifts the fence
                # only while it still owns the partition)
                fileio.write_file(os.path.join(self.path, FENCE_FILE), b"moving\n")
                self.state = PartitionState.MOVING
            decree = self.last_committed
        self.sync_wal()
        return decree

    def unfence(self) -> None:
        """A move that failed before the ownership switch: take writes again."""
        with self.lock:
            if self.state == PartitionState.MOVING:
                self._drop_fence_file()
                self.state = PartitionState.SERVING
            elif self.state != PartitionState.SERVING:
                self.check_available(True)

    def _drop_fence_file(self) -> None:
        path = os.path.join(self.path, FENCE_FILE)
        if os.path.lexists(path):
            fileio.unlink(path)
            fileio.fsync_dir(self.path)

    def append_replica(self, blocks: bytes) -> int:
        """Log and apply another node's WAL blocks (as stored) with their own decrees and
        timetags; returns the last decree, durable.

        Mutations at or below the last decree are skipped (a batch sent again);
        one that would leave a hole is a WalGapError, and nothing is stored. New
        mutations are taken only while the partition learns.
        """
        mutations = adopted_log.decode(blocks)

        def build(next_decree: int) -> list[tuple[int, int, int, list]]:
            new = adopted_log.after(mutations, next_decree, self.wal.path)
            if new and self.state != PartitionState.LEARNING:
                raise PartitionUnavailableError(self.table, self.pidx, self.state.value)
            if new:
                self._last_ts = max(self._last_ts, max(m[1] for m in new))
            return new

        last = self.write_mutations(build)
        if self.durable_decree < last:  # nothing new, but what is here may be another call's, unsynced
            self.sync_wal()
        return last

    def log_replica(
        self, blocks: bytes, defer_apply: bool = False, hold: bool = False
    ) -> tuple[int, int | None, bytes]:
        """A secondary's: log and apply its primary's WAL blocks (as stored) with their own
        decrees and timetags, not yet durable: ``(last decree, WAL end offset, the block
        logged)``, the offset None when nothing was new. The caller holds the lock it checked
        the primary's ballot under, and makes them durable (``wait_durable_all`` or the shared
        log) before it says so. ``defer_apply``: a partition whose RocksDB is not open yet
        only logs them, and replays them when it opens. ``hold``: RocksDB gets them only at
        ``apply_held``, which the caller calls before it lets go of the lock. Mutations at or
        below the last decree are skipped (sent again); one that would leave a hole is a
        WalGapError, and nothing is stored."""
        mutations = adopted_log.decode(blocks)

        def build(next_decree: int) -> list[tuple[int, int, int, list]]:
            new = adopted_log.after(mutations, next_decree, self.wal.path)
            if new:
                self._last_ts = max(self._last_ts, max(m[1] for m in new))
            return new

        last, offset = self.write_mutations_unsynced(build, defer_apply, hold)
        return last, offset, self._last_block if offset is not None else b""

    def install_rdb(self, directory: str, own_copy: bool = False) -> None:
        """Replace this (learning) partition's data with a verified checkpoint copy.

        Its WAL is dropped: it described the empty store that is replaced; the
        decree continues from the one the checkpoint holds. ``own_copy``: the copy
        is this same partition moving from another node of the cluster, so its
        follower bookkeeping (the source decrees it applied and saw) is its own and
        is kept; a copy of another cluster's partition keeps none of it.
        """
        with self.lock:
            if self.state == PartitionState.CLOSED:
                raise ClosedError(f"partition {self.table}.{self.pidx} is closed")
            if self._db is not None:
                self._db.close()
                self._db = None
            self.wal.close()
            rdb, wal_dir = os.path.join(self.path, "rdb"), os.path.join(self.path, "wal")
            walhead.remove(wal_dir)
            fileio.rmtree(rdb, ignore_errors=True)
            fileio.rename(directory, rdb)
            fileio.fsync_dir(self.path)
            self.wal = self._new_wal()
            self.last_committed = 0
            self._open_db()
            if own_copy:
                return  # _open_db read the source decrees it carries
            # the copy's own follower bookkeeping (from its upstream) is not ours
            for key in (META_SOURCE_SEEN_KEY, META_REROUTED_KEY):
                if self.db.get(key) is not None:
                    opts = rocksdict.WriteOptions()
                    opts.sync = True
                    self.db.delete(key, write_opt=opts)
            self.source_decree = self.source_seen = 0

    def clear(self) -> None:
        """Drop everything this partition holds: another node of the cluster owns it now (a
        move switched it away), so its copy here is stale and its disk space is reclaimed.

        It is left as a partition that never stored anything (serving, empty, unopened),
        ready to learn it again should it move back. A failed or closed one raises.
        """
        with self._checkpointing, self.lock:
            if self.state in (PartitionState.CLOSED, PartitionState.FAILED):
                self.check_available(True)
            if self._db is not None:
                self._db.close()
                self._db = None
            self.wal.close()
            wal_dir = os.path.join(self.path, "wal")
            walhead.remove(wal_dir)
            for d in checkpoint.list_decrees(self.path):
                fileio.rmtree(checkpoint.dir_for(self.path, d), ignore_errors=True)
            fileio.rmtree(os.path.join(self.path, "rdb"), ignore_errors=True)
            fileio.rmtree(wal_dir, ignore_errors=True)
            self._drop_fence_file()
            fileio.fsync_dir(self.path)
            self.wal = self._new_wal()
            self.wal.recover(1)
            self.last_committed = self.last_flushed = self.last_durable = 0
            self.source_decree = self.source_seen = 0
            self._deferred = False
            self._image = None
            self.state = PartitionState.SERVING


__all__ = ["FENCE_FILE", "PartitionMoves"]
