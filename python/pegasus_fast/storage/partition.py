"""One partition: a RocksDB instance, its WAL, its decrees and checkpoints."""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections.abc import Iterator

import rocksdict

from .. import _backend, fileio
from ..config import Config
from ..errors import ClosedError, PartitionUnavailableError
from ..records import (
    DECREE,
    META_DECREE_KEY,
    META_SOURCE_DECREE_KEY,
    META_SOURCE_SEEN_KEY,
)
from . import checkpoint, walhead
from .atomic import PartitionAtomic
from .checkpointing import PartitionCheckpointing
from .follower_marks import FollowerMarks
from .layout import check_present, refuse_symlinks
from .moves import FENCE_FILE, PartitionMoves
from .open_slots import UNBOUNDED, OpenSlots
from .rdb import rdb_error
from .reads import PartitionReads
from .state import PartitionState
from .wal import REPLAY_BATCH, Wal
from .writes import PartitionWrites

#: the states by their own names (storage/state.py), for the modules that import them so
SERVING, LEARNING, MOVING = PartitionState.SERVING, PartitionState.LEARNING, PartitionState.MOVING
CLOSED, FAILED = PartitionState.CLOSED, PartitionState.FAILED
UNOPENED = PartitionState.UNOPENED


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

_gc_lock = threading.Lock()
_gc_holds = 0
_gc_restore = False


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The cyclic collector off while any partition replays its log: a replay builds millions
    of short-lived objects that hold no cycles, and the collector scanning them repeatedly
    costs a third of it. Counted, so that opens in several threads at once turn it back on
    only when the last one ends, and only if it was on before the first began."""
    global _gc_holds, _gc_restore
    with _gc_lock:
        if _gc_holds == 0:
            _gc_restore = gc.isenabled()
            gc.disable()
        _gc_holds += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holds -= 1
            if _gc_holds == 0 and _gc_restore:
                gc.enable()


def _rdb_options(config: Config) -> rocksdict.Options:
    opts = rocksdict.Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.set_write_buffer_size(config.rocksdb_write_buffer_size)
    return opts


class Partition(
    PartitionReads, PartitionWrites, PartitionAtomic, PartitionMoves, FollowerMarks, PartitionCheckpointing
):
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
        slots: OpenSlots = UNBOUNDED,
    ) -> None:
        """``must_exist``: the metadata lists this partition as made (the cluster's open).
        ``slots``: the bound on open partitions it takes one of while its files are open; one
        that holds data and finds none left is not opened now (UNOPENED), not refused."""
        self.path = path
        self.table = table
        self.app_id = app_id
        self.pidx = pidx
        self.config = config
        self.cluster_id = cluster_id
        self.state: PartitionState = SERVING
        self.lock = threading.RLock()
        #: one checkpoint at a time (its publishing runs without ``lock``); taken before ``lock``
        self._checkpointing = threading.Lock()
        self.hooks = hooks
        self._slots = slots
        #: it holds one of ``slots`` (from its RocksDB's open to its close)
        self._slot = False
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
        #: SOURCE_DECREE ops logged here since it opened (a secondary of an adopted follower
        #: table learns from them that its primary was told where the source starts)
        self.source_marks = 0
        #: an op other than a SOURCE_DECREE logged here by this process: a secondary opens its
        #: RocksDB (5-10 ms, ~10 fsyncs) for records, not for a new follower table's source
        #: positions alone
        self.logged_records = False
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
        fenced = not learning and os.path.exists(os.path.join(path, FENCE_FILE))
        if os.path.isdir(rdb) or self.wal.has_data():
            if slots.try_take():
                self._slot = True
            elif fenced:
                slots.take_past_bound()  # fenced for a move: it opens whatever the bound
                self._slot = True
            else:
                # Past the bound: nothing of it is opened (not its WAL either), and nothing
                # reads its decrees until check_available opens it.
                self.state = UNOPENED
                return
            try:
                self._open_db()
            except BaseException:
                self._give_back_slot()
                raise
        else:
            # A brand-new partition opens its RocksDB on first use: creating one
            # costs ~10 fsyncs, and most partitions of a new follower table have
            # nothing to store yet.
            self.wal.recover(1)
        self.last_durable = checkpoint.newest_decree(path)
        if fenced:
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
        took = not self._slot
        if took:
            self._slots.take()  # ResourceExhaustedError: nothing opened
            self._slot = True
        try:
            self.wal.ensure_dir()
            fileio.point("rdb_open", rdb)
            try:
                db = rocksdict.Rdict(rdb, _rdb_options(self.config))
            except Exception as exc:
                raise rdb_error(exc, rdb, self.pidx) from exc
        except BaseException:
            if took:
                self._give_back_slot()
            raise
        db.set_write_options(self._write_opts)
        self._opening = True
        self._db = db
        try:
            with _no_cyclic_gc():
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
            self._give_back_slot()
            raise
        self.last_committed = max(self.last_flushed, log_last, self.last_committed)
        self.source_decree = self._read_meta(META_SOURCE_DECREE_KEY)
        self.source_seen = max(self.source_decree, self._read_meta(META_SOURCE_SEEN_KEY))
        #: mutations replayed from the WAL at open
        self.replayed = max(0, log_last - self.last_flushed)
        self._deferred = False
        self._image = None  # RocksDB holds what it held
        self._opening = False

    def _give_back_slot(self) -> None:
        if self._slot:
            self._slot = False
            self._slots.give_back()

    def open_if_unopened(self) -> None:
        """Open a partition the cluster's open left UNOPENED (ResourceExhaustedError while the
        open-partition bound is still reached); anything else is left as it is."""
        if self.state != UNOPENED:
            return
        with self.lock:
            if self.state == UNOPENED:
                self._open_db()
                self.last_durable = checkpoint.newest_decree(self.path)
                self.state = SERVING

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
                    if self.state == UNOPENED:
                        self.open_if_unopened()  # its decrees with it
                    else:
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

    def check_available(self, for_write: bool) -> None:
        """Raise what a read (or a write) of this partition meets now: ClosedError, the failure
        of a failed one, PartitionUnavailableError while it learns (or moves, for a write)."""
        if self.state != SERVING:
            if self.state == UNOPENED:
                self.open_if_unopened()
                return
            if self.state == MOVING and not for_write:
                return
            if self.state == CLOSED:
                raise ClosedError(f"partition {self.table}.{self.pidx} is closed")
            if self.state == FAILED:
                raise self.wal.failure()
            raise PartitionUnavailableError(self.table, self.pidx, self.state.value)

    def serve_learned(self) -> None:
        """A partition learned from another node serves now (the move's ownership switch)."""
        with self.lock:
            if self.state == LEARNING:
                self.state = SERVING
            elif self.state != SERVING:
                self.check_available(True)

    # -- read path ----------------------------------------------------------

    @property
    def holds_nothing(self) -> bool:
        """Never opened and nothing logged: reads need not create its RocksDB."""
        return self._db is None and not self._deferred and self.last_committed == 0 and self.state != UNOPENED

    # -- flush, checkpoint, GC ------------------------------------------------
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
            self._image = None
            try:
                self.wal.close()
            finally:
                if self._db is not None:
                    self._db.close()
                    self._db = None
                self._give_back_slot()

    def restart_learning(self) -> None:
        """A follower partition stops serving to learn a fresh checkpoint (its data stays until
        the learn replaces it; a failed one stays failed until reopened)."""
        with self.lock:
            if self.state == CLOSED:
                raise ClosedError(f"partition {self.table}.{self.pidx} is closed")
            if self.state == SERVING:
                self.state = LEARNING

    def release_handles(self) -> None:
        """Release a partition whose close raised, so its RocksDB LOCK and WAL fd are not held.

        ``close`` stops at its first error (a flush or a WAL sync that failed):
        close it again without the flush, then release whatever that second close
        could not reach. The first error is the one reported; these steps only give
        the handles back.
        """
        with contextlib.suppress(Exception):
            self.close(flush=False)
        with contextlib.suppress(Exception):
            self.wal.close()
        db = self._db
        if db is not None:
            with contextlib.suppress(Exception):
                db.close()
            self._db = None
        self._give_back_slot()
