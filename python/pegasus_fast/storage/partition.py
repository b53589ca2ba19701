"""One partition: a RocksDB instance, its WAL, its decrees and checkpoints."""

from __future__ import annotations

import gc
import os
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import rocksdict

from .. import _backend, fileio
from ..config import Config
from ..errors import ClosedError, PartitionUnavailableError
from ..records import (
    DECREE,
    META_DECREE_KEY,
    META_REROUTED_KEY,
    META_SOURCE_DECREE_KEY,
    META_SOURCE_SEEN_KEY,
    Op,
)
from . import checkpoint, expiry, replica, walhead
from .layout import check_present, refuse_symlinks
from .rdb import rdb_error
from .reads import PartitionReads
from .wal import REPLAY_BATCH, Wal

SERVING, LEARNING, CLOSED, FAILED = "serving", "learning", "closed", "failed"
#: handing the partition over to another node: reads go on, writes are refused (Partition.fence)
MOVING = "moving"
#: a fenced partition (see Partition.fence): it stays fenced across a restart
FENCE_FILE = "FENCED"
_REROUTED = struct.Struct("<IQ")
#: op kinds as plain ints: the write path compares them per write
_SOURCE_DECREE = int(Op.SOURCE_DECREE)


class PartitionHooks:
    """What the layers above a partition tell it and learn from it: one small interface.

    The defaults do nothing; a cluster's duplications override them (DESIGN.md §10:
    hooks are interfaces passed down, not attributes patched in from above).
    """

    def durable(self, partition: Partition, decree: int) -> None:
        """A write up to ``decree`` is durable (duplication shippers wake on it)."""

    def wal_retain_after(self, partition: Partition) -> int | None:
        """The WAL must keep every decree after this one (None: no bound)."""
        return None

    def pinned_checkpoints(self, partition: Partition) -> frozenset[int]:
        """Checkpoint decrees someone is copying from: GC leaves them."""
        return frozenset()


NO_HOOKS = PartitionHooks()


def _rdb_options(config: Config) -> rocksdict.Options:
    opts = rocksdict.Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.set_write_buffer_size(config.rocksdb_write_buffer_size)
    return opts


class Partition(PartitionReads):
    def __init__(
        self,
        path: str,
        table: str,
        app_id: int,
        pidx: int,
        config: Config,
        cluster_id: int,
        learning: bool = False,
        hooks: PartitionHooks = NO_HOOKS,
        must_exist: bool = False,
    ) -> None:
        """``must_exist``: the metadata lists this partition as made (the cluster's open)."""
        self.path = path
        self.table = table
        self.app_id = app_id
        self.pidx = pidx
        self.config = config
        self.cluster_id = cluster_id
        self.state = SERVING
        self.lock = threading.RLock()
        #: one checkpoint at a time (its publishing runs without ``lock``); taken before ``lock``
        self._checkpointing = threading.Lock()
        self.hooks = hooks
        self._tombstones = config.delete_tombstone_seconds
        self._durable = hooks.durable
        self._write_opts = rocksdict.WriteOptions()
        self._write_opts.disable_wal = True
        self._must_sync = config.wal_sync != "none"
        self._last_ts = 0
        self.last_committed = 0
        self.last_flushed = 0
        self.last_durable = 0
        #: a follower's last source decree applied, logged with the data (SOURCE_DECREE ops)
        self.source_decree = 0
        #: the last source decree it has durably seen, applied or not (>= source_decree)
        self.source_seen = 0
        refuse_symlinks(os.path.dirname(path), path, os.path.join(path, "rdb"), os.path.join(path, "wal"))
        if not learning:
            check_present(path, must_exist)
        if learning:
            # A learning partition holds nothing valid yet: start it empty. Files
            # of an interrupted checkpoint copy (learn/) stay, to be verified.
            self.state = LEARNING
            walhead.remove(os.path.join(path, "wal"))
            fileio.rmtree(os.path.join(path, "rdb"), ignore_errors=True)
        fileio.makedirs(path, exist_ok=True)
        checkpoint.remove_tmp_dirs(path)
        rdb = os.path.join(path, "rdb")
        self.wal = self._new_wal()
        self._db: rocksdict.Rdict | None = None
        #: set while _open_db replays the WAL into a RocksDB already assigned to _db: readers
        #: on other threads wait for the lock rather than read a half-replayed store
        self._opening = False
        #: the WAL holds mutations the (not yet opened) RocksDB has not seen
        self._deferred = False
        self.replayed = 0
        if os.path.isdir(rdb) or self.wal.has_data():
            self._open_db()
        else:
            # A brand-new partition opens its RocksDB on first use: creating one
            # costs ~10 fsyncs, and most partitions of a new follower table have
            # nothing to store yet.
            self.wal.recover(1)
        self.last_durable = checkpoint.newest_decree(path)
        if not learning and os.path.exists(os.path.join(path, FENCE_FILE)):
            self.state = MOVING  # fenced for a move before a restart (see fence())
        elif learning:
            self._drop_fence_file()

    def _new_wal(self) -> Wal:
        return Wal(
            os.path.join(self.path, "wal"),
            self.config.wal_sync,
            self.config.log_private_file_size_mb << 20,
            owner=(self.table, self.pidx),
        )

    def _open_db(self) -> None:
        """Open RocksDB and replay the WAL after its flushed decree (recovery)."""
        rdb = os.path.join(self.path, "rdb")
        # a WAL already open for appends (the lazy first open) stays open if this fails
        wal_was_open = self.wal.is_open
        self.wal.ensure_dir()
        fileio.point("rdb_open", rdb)
        try:
            db = rocksdict.Rdict(rdb, _rdb_options(self.config))
        except Exception as exc:
            raise rdb_error(exc, rdb, self.pidx) from exc
        db.set_write_options(self._write_opts)
        self._opening = True
        self._db = db
        gc_was_enabled = gc.isenabled()
        # Replay builds millions of short-lived objects that hold no cycles; the
        # cyclic collector scanning them repeatedly costs a third of the replay.
        gc.disable()
        try:
            self.last_flushed = self._read_meta(META_DECREE_KEY)
            if self.wal.is_open:  # the first open of a partition whose WAL ran ahead
                batches, infos = _backend.impl.replay_log_dir(
                    self.wal.path, self.last_flushed + 1, REPLAY_BATCH, self._tombstones
                )
                for _last_decree, writes in batches:
                    self._apply_writes(writes)
                log_last = max((i[2] for i in infos), default=0)
            else:
                log_last = self.wal.recover(self.last_flushed + 1, self._apply_writes, self._tombstones)
        except BaseException:
            # a corrupt WAL must not leave RocksDB locked behind the error
            self._db = None
            self._opening = False
            db.close()
            if not wal_was_open:
                self.wal.close()
            raise
        finally:
            if gc_was_enabled:
                gc.enable()
        self.last_committed = max(self.last_flushed, log_last, self.last_committed)
        self.source_decree = self._read_meta(META_SOURCE_DECREE_KEY)
        self.source_seen = max(self.source_decree, self._read_meta(META_SOURCE_SEEN_KEY))
        #: mutations replayed from the WAL at open
        self.replayed = max(0, log_last - self.last_flushed)
        self._deferred = False
        self._opening = False

    @property
    def is_open(self) -> bool:
        """Its RocksDB is open and replayed (a read or write need not open it first)."""
        return self._db is not None and not self._opening

    def open_now(self) -> None:
        """Open RocksDB if it is not: before anything is logged (if it fails, nothing was),
        or ahead of the first write (Config.open_rocksdb_eagerly)."""
        self.db  # noqa: B018 - opens it

    @property
    def db(self) -> rocksdict.Rdict:
        db = self._db
        if db is None or self._opening:
            with self.lock:
                if self.state == CLOSED:
                    raise ClosedError(f"partition {self.table}.{self.pidx} is closed")
                if self._db is None:
                    self._open_db()
                db = self._db
                assert db is not None
        return db

    # -- bookkeeping --------------------------------------------------------

    def _read_meta(self, key: bytes) -> int:
        raw = self._get(key)
        return DECREE.unpack(raw)[0] if raw is not None else 0

    @property
    def last_applied(self) -> int:
        return self.last_committed

    @property
    def durable_decree(self) -> int:
        """The highest decree whose WAL bytes are on disk (under wal_sync="none": written).

        Duplication ships nothing past it, so a follower never holds a write
        that a crash could take back from the source.
        """
        return self.wal.synced_decree

    def _check(self, for_write: bool) -> None:
        if self.state != SERVING:
            if self.state == MOVING and not for_write:
                return
            if self.state == CLOSED:
                raise ClosedError(f"partition {self.table}.{self.pidx} is closed")
            if self.state == FAILED:
                raise self.wal.failure()
            raise PartitionUnavailableError(self.table, self.pidx, self.state)

    def _note_failure(self) -> None:
        """A write the log could not undo fails the partition until it is reopened."""
        if self.wal.failed is not None and self.state != CLOSED:
            self.state = FAILED

    # -- write path ---------------------------------------------------------

    def _apply_writes(self, writes: list[tuple[bytes, bytes | None]]) -> None:
        """One WriteBatch (RocksDB's own WAL is off: set_write_options at open)."""
        wb = rocksdict.WriteBatch(raw_mode=True)
        for key, value in writes:
            if value is None:
                wb.delete(key)
            else:
                wb.put(key, value)
        self._write_batch(self._db or self.db, wb)

    def _write_batch(self, db: rocksdict.Rdict, wb: rocksdict.WriteBatch) -> None:
        fileio.point("rdb_write", self.path)
        try:
            db.write(wb)
        except Exception as exc:
            raise rdb_error(exc, self.path, self.pidx) from exc

    def _log_and_apply(self, mutations: list[tuple[int, int, int, list]], apply: bool) -> int:
        """Append ``mutations`` to the WAL and apply them: all of it, or none of it (lock held).

        Returns the offset durability waits for. A failure leaves the WAL as
        before (the block is cut back out) and RocksDB untouched, or fails the
        partition when the WAL cannot be cut back. The block is in the WAL
        before its WriteBatch (built with it, in one backend call) is written.
        """
        if apply:
            db = self._db or self.db
            wb = rocksdict.WriteBatch(raw_mode=True)
            block = _backend.impl.encode_write(mutations, wb, self._tombstones)
        else:
            block = _backend.impl.encode_block(mutations)
        last = mutations[-1][0]
        try:
            offset = self.wal.append(block, mutations[0][0], last)
        except BaseException:
            self._note_failure()
            raise
        if apply:
            try:
                self._write_batch(db, wb)
            except BaseException as exc:
                try:
                    self.wal.undo()
                except OSError:
                    pass  # the WAL is failed now; the apply's own error is the one to report
                self._note_failure()
                raise exc
        self.wal.commit(last)
        return offset

    def _after_commit(self, decree: int, offset: int) -> None:
        """Wait for durability, then tell the hooks (duplication shippers wake on it)."""
        if self._must_sync:
            try:
                self.wal.sync(offset)
            except BaseException:
                with self.lock:
                    self._note_failure()
                raise
        self._durable(self, decree)

    def _timestamp_us(self) -> int:
        ts = time.time_ns() // 1000
        if ts <= self._last_ts:
            ts = self._last_ts + 1
        self._last_ts = ts
        return ts

    def write(self, ops: list[tuple[Any, ...]]) -> int:
        """Log and apply one mutation made of ``ops``; returns its decree once durable."""
        decree, offset = self.write_unsynced(ops)
        self.wait_durable(decree, offset)
        return decree

    def write_unsynced(self, ops: list[tuple[Any, ...]]) -> tuple[int, int]:
        """:meth:`write` up to durability: ``(decree, WAL offset)``, logged and applied but not
        yet acknowledged; pass both to :meth:`wait_durable` before answering anyone. A front end
        writes several partitions this way and waits for their fsyncs at once."""
        with self.lock:
            if self.state != SERVING:
                self._check(True)
            if self._db is None:
                self.open_now()
            decree = self.last_committed + 1
            # _timestamp_us inline: a method call is a tenth of the Python cost of a write
            ts = time.time_ns() // 1000
            if ts <= self._last_ts:
                ts = self._last_ts + 1
            self._last_ts = ts
            offset = self._log_and_apply([(decree, ts, self.cluster_id, ops)], True)
            self.last_committed = decree
        return decree, offset

    def wait_durable(self, decree: int, offset: int) -> None:
        """Return once a :meth:`write_unsynced` is durable (group commit), telling the hooks."""
        if self._must_sync:
            self._after_commit(decree, offset)
        else:
            self._durable(self, decree)

    def write_mutations(
        self, build: Callable[[int], list[tuple[int, int, int, list]]], defer_apply: bool = False
    ) -> int:
        """Log and apply mutations built under the lock from the next decree.

        ``build(next_decree)`` returns complete mutations numbered from
        next_decree (a follower uses it to keep the source's timetags and to
        filter by last-writer-wins against what is stored). Returns the last
        decree, or the current one when build returned nothing.
        """
        with self.lock:
            if self.state in (CLOSED, FAILED, MOVING):
                self._check(True)
            mutations = build(self.last_committed + 1)
            if not mutations:
                return self.last_committed
            last = mutations[-1][0]
            # deferred: durable in the WAL; replayed into RocksDB when it is first opened
            deferred = defer_apply and self._db is None
            if not deferred and self._db is None:
                self.open_now()
            offset = self._log_and_apply(mutations, not deferred)
            if deferred:
                self._deferred = True
            self.last_committed = last
            for m in mutations:
                for op in m[3]:
                    if op[0] == _SOURCE_DECREE:
                        self.source_decree = op[1]
            self.source_seen = max(self.source_seen, self.source_decree)
        self._after_commit(last, offset)
        return last

    # -- moving a partition to another node (server/transfer.py) -------------------

    def fence(self) -> int:
        """Stop taking writes (reads go on) and return the last decree, durable.

        Once the state is MOVING under the lock, no write can be logged; every
        write logged before is then made durable, so the decree returned is one
        the target can pull whole from this WAL.
        """
        with self.lock:
            if self.state != MOVING:
                self._check(True)
                # durable first: a node restarted before the switch must not take writes the
                # switch would leave behind (it comes back moving; its node lifts the fence
                # only while it still owns the partition)
                fileio.write_file(os.path.join(self.path, FENCE_FILE), b"moving\n")
                self.state = MOVING
            decree = self.last_committed
        self.sync_wal()
        return decree

    def unfence(self) -> None:
        """A move that failed before the ownership switch: take writes again."""
        with self.lock:
            if self.state == MOVING:
                self._drop_fence_file()
                self.state = SERVING
            elif self.state != SERVING:
                self._check(True)

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
        mutations = replica.decode(blocks)

        def build(next_decree: int) -> list[tuple[int, int, int, list]]:
            new = replica.after(mutations, next_decree, self.wal.path)
            if new and self.state != LEARNING:
                raise PartitionUnavailableError(self.table, self.pidx, self.state)
            if new:
                self._last_ts = max(self._last_ts, max(m[1] for m in new))
            return new

        last = self.write_mutations(build)
        if self.durable_decree < last:  # nothing new, but what is here may be another call's, unsynced
            self.sync_wal()
        return last

    def serve_learned(self) -> None:
        """A partition learned from another node serves now (the move's ownership switch)."""
        with self.lock:
            if self.state == LEARNING:
                self.state = SERVING
            elif self.state != SERVING:
                self._check(True)

    def record_source_seen(self, decree: int) -> None:
        """Durably note that source decrees up to ``decree`` need nothing applied here.

        It is no mutation of this partition: a decree of its own would be shipped
        back to a master-master peer, which would note it, and so on for ever.
        So it is one RocksDB write with RocksDB's own WAL on and a sync.
        """
        self._write_source_seen(decree, reset=False)

    def reset_source(self, decree: int) -> None:
        """A follower starts over from source ``decree`` (a new duplication into a table that has one)."""
        self.write_mutations(lambda next_decree: [(next_decree, 0, 0, [(_SOURCE_DECREE, decree)])])
        self._write_source_seen(decree, reset=True)

    def _write_source_seen(self, decree: int, reset: bool) -> None:
        with self.lock:
            if decree <= self.source_seen and not reset:
                return
            self._put_meta_synced(META_SOURCE_SEEN_KEY, DECREE.pack(decree))
            self.source_seen = decree

    def _put_meta_synced(self, key: bytes, value: bytes) -> None:
        """A bookkeeping key written outside our WAL: RocksDB's own WAL, synced (lock held)."""
        if self.state in (CLOSED, FAILED):
            self._check(True)
        opts = rocksdict.WriteOptions()
        opts.sync = self._must_sync
        try:
            self.db.put(key, value, write_opt=opts)
        except Exception as exc:
            raise rdb_error(exc, self.path, self.pidx) from exc

    def rerouted_progress(self) -> dict[int, int]:
        """source pidx -> source decree reached, for the source partitions homed here."""
        with self.lock:
            raw = None if self.holds_nothing else self.db.get(META_REROUTED_KEY)
        if not raw:
            return {}
        return {pidx: decree for pidx, decree in _REROUTED.iter_unpack(raw)}

    def record_rerouted(self, source_pidx: int, decree: int) -> None:
        """Durably note that the data of source partition ``source_pidx`` up to ``decree`` is
        applied (where its ops landed); outside our WAL, so it is never shipped on."""
        with self.lock:
            progress = self.rerouted_progress()
            progress[source_pidx] = decree
            self._put_meta_synced(
                META_REROUTED_KEY, b"".join(_REROUTED.pack(p, d) for p, d in sorted(progress.items()))
            )

    def sync_wal(self) -> None:
        """Make everything committed so far durable (the caller may hold the lock)."""
        try:
            self.wal.sync(self.wal.written_offset)
        except BaseException:
            with self.lock:
                self._note_failure()
            raise

    # -- read path ----------------------------------------------------------

    @property
    def holds_nothing(self) -> bool:
        """Never opened and nothing logged: reads need not create its RocksDB."""
        return self._db is None and not self._deferred and self.last_committed == 0

    # -- flush, checkpoint, GC ------------------------------------------------

    def data_bytes(self) -> int:
        if self._db is None:
            return self.wal.total_bytes() if self._deferred else 0
        sst = self.db.property_int_value("rocksdb.total-sst-files-size") or 0
        mem = self.db.property_int_value("rocksdb.cur-size-all-mem-tables") or 0
        return int(sst) + int(mem)

    def flush(self) -> int:
        with self.lock:
            if self.state == FAILED:
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
            with self.lock:
                if self.state in (CLOSED, FAILED):
                    self._check(False)
                decree = self.last_committed
                staged = checkpoint.stage(self, decree)
                self.last_flushed = max(self.last_flushed, decree)
            info = checkpoint.publish(self, decree, *staged)
            with self.lock:
                self.last_durable = max(self.last_durable, info.decree)
        self.gc()
        return info

    def compact(self) -> int:
        """Drop expired records, then compact the whole key range; returns how many were dropped.

        Pegasus drops expired records in its compaction filter; rocksdict has
        no compaction filter from Python, so they are deleted first and the
        compaction then removes them from the SST files.
        """
        if self.state == CLOSED:
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
            if self.state != CLOSED:
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

    # -- life cycle ---------------------------------------------------------

    def close(self, flush: bool = True) -> None:
        with self.lock:
            if self.state == CLOSED:
                return
            failed = self.state == FAILED
            self.state = CLOSED
            # A failed partition's memtable is not flushed: what it holds is replayed
            # from the WAL at the next open, or was never acknowledged. A flush that
            # fails (a full disk) loses nothing either: the WAL holds every write the
            # memtable does, so closing goes on and releases everything.
            if flush and self._db is not None and not failed:
                try:
                    self._db.flush(wait=True)
                    self.last_flushed = self.last_committed
                except Exception:  # noqa: BLE001, S110 - see above
                    pass
            try:
                self.wal.close()
            finally:
                if self._db is not None:
                    self._db.close()
                    self._db = None

    def restart_learning(self) -> None:
        """A follower partition stops serving to learn a fresh checkpoint (its data stays until
        the learn replaces it; a failed one stays failed until reopened)."""
        with self.lock:
            if self.state == CLOSED:
                raise ClosedError(f"partition {self.table}.{self.pidx} is closed")
            if self.state == SERVING:
                self.state = LEARNING

    def install_rdb(self, directory: str, own_copy: bool = False) -> None:
        """Replace this (learning) partition's data with a verified checkpoint copy.

        Its WAL is dropped: it described the empty store that is replaced; the
        decree continues from the one the checkpoint holds. ``own_copy``: the copy
        is this same partition moving from another node of the cluster, so its
        follower bookkeeping (the source decrees it applied and saw) is its own and
        is kept; a copy of another cluster's partition keeps none of it.
        """
        with self.lock:
            if self.state == CLOSED:
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
            if self.state in (CLOSED, FAILED):
                self._check(True)
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
            self.state = SERVING

    def destroy(self) -> None:
        self.close(flush=False)
        fileio.rmtree(self.path, ignore_errors=True)
