"""A partition's flushes, checkpoints, compactions and GC.

A mixin of ``Partition`` (partition.py), which provides what is declared below.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import rocksdict

from .. import fileio
from ..config import Config
from ..errors import ClosedError
from . import checkpoint, expiry
from .rdb import rdb_error
from .state import PartitionState
from .wal import Wal

#: how long a checkpoint waits for RocksDB's background flush before it flushes itself (seconds)
FLUSH_AHEAD_WAIT = 30.0


class PartitionCheckpointing:
    path: str
    table: str
    pidx: int
    config: Config
    state: PartitionState
    lock: threading.RLock
    wal: Wal
    hooks: Any
    last_committed: int
    last_flushed: int
    last_durable: int
    _db: rocksdict.Rdict | None
    _deferred: bool
    _checkpointing: threading.Lock

    if TYPE_CHECKING:  # what Partition provides

        @property
        def db(self) -> rocksdict.Rdict: ...

        @property
        def last_applied(self) -> int: ...

        def check_available(self, for_write: bool) -> None: ...

    def data_bytes(self) -> int:
        if self._db is None:
            return self.wal.total_bytes() if self._deferred else 0
        sst = self.db.property_int_value("rocksdb.total-sst-files-size") or 0
        mem = self.db.property_int_value("rocksdb.cur-size-all-mem-tables") or 0
        return int(sst) + int(mem)

    def flush(self) -> int:
        self._flush_ahead()
        with self.lock:
            if self.state == PartitionState.FAILED:
                # its memtable may hold a write whose WAL fsync failed: never made durable here
                raise self.wal.failure()
            decree = self.last_committed
            if self._db is None and not self._deferred:
                self.last_flushed = decree
                return decree
            fileio.point("rdb_flush", self.path)
            try:
                self.db.flush(wait=True)
            except Exception as exc:
                raise rdb_error(exc, self.path, self.pidx) from exc
            self.last_flushed = decree
        return decree

    def checkpoint(self) -> checkpoint.CheckpointInfo:
        """A RocksDB checkpoint published as ``checkpoint.<decree>``.

        Writes wait only for RocksDB's part (the flush and the hard links); the
        hashing and fsyncs of the files happen after the partition's lock is
        released, one checkpoint of the partition at a time.
        """
        with self._checkpointing:
            self._flush_ahead()
            with self.lock:
                if self.state in (PartitionState.CLOSED, PartitionState.FAILED, PartitionState.UNOPENED):
                    self.check_available(False)
                decree = self.last_committed
                staged = checkpoint.stage(self.path, self.db, self.pidx, decree)
                self.last_flushed = max(self.last_flushed, decree)
            info = checkpoint.publish(self.path, self.pidx, decree, *staged)
            with self.lock:
                self.last_durable = max(self.last_durable, info.decree)
        self.gc()
        return info

    def _flush_ahead(self) -> None:
        """Before a checkpoint: the memtable flushed in RocksDB's background, waited for in
        short sleeps, without the partition's lock. RocksDB's checkpoint flushes what is left,
        and holds the GIL while it does (rocksdict): a large memtable flushed there stalled
        every thread of the process, a primary's reads too, for as long as it took. Best
        effort: on any error the checkpoint flushes it as before."""
        db = self._db
        if db is None or self.state != PartitionState.SERVING or self.wal.failed is not None:
            return  # (a failed one's memtable may hold writes never made durable: not flushed)
        try:
            db.flush(wait=False)
            deadline = time.monotonic() + FLUSH_AHEAD_WAIT
            while time.monotonic() < deadline:
                if not db.property_int_value("rocksdb.num-immutable-mem-table") and not db.property_int_value(
                    "rocksdb.mem-table-flush-pending"
                ):
                    return
                time.sleep(0.002)
        except Exception:  # noqa: BLE001 - closed meanwhile, or no such property: the checkpoint decides
            return

    def compact(self) -> int:
        """Drop expired records, then compact the whole key range; returns how many were dropped.

        Pegasus drops expired records in its compaction filter; rocksdict has
        no compaction filter from Python, so they are deleted first and the
        compaction then removes them from the SST files.
        """
        if self.state == PartitionState.CLOSED:
            raise ClosedError(f"partition {self.table}.{self.pidx} is closed")
        dropped = self.drop_expired()
        if self._db is not None or self._deferred:
            try:
                self.db.compact_range(None, None)
            except Exception as exc:
                raise rdb_error(exc, self.path, self.pidx) from exc
        return dropped

    def drop_expired(self) -> int:
        """Delete every expired record (what Pegasus's compaction filter drops); returns the count."""
        return expiry.drop_expired(self)

    def has_checkpoint(self) -> bool:
        return bool(checkpoint.list_decrees(self.path))

    def gc(self) -> None:
        checkpoint.gc(self.path, self.config, self.hooks.pinned_checkpoints(self))
        keep = self.last_flushed
        retain = self.hooks.wal_retain_after(self)
        if retain is not None:
            keep = min(keep, retain)
        with self.lock:
            if self.state != PartitionState.CLOSED:
                self.wal.gc(keep)

    def stats(self) -> dict[str, int]:
        return {
            "pidx": self.pidx,
            "last_committed_decree": self.last_committed,
            "last_applied_decree": self.last_applied,
            "last_flushed_decree": self.last_flushed,
            "last_durable_decree": self.last_durable,
            "wal_bytes": self.wal.total_bytes(),
            "data_bytes": self.data_bytes(),
        }


__all__ = ["PartitionCheckpointing"]
