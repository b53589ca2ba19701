"""The write path of a partition: log a mutation in the WAL, apply it to RocksDB, wait for it
to be durable; a failure leaves both as they were, or fails the partition.

A mixin of ``Partition`` (partition.py), which provides what is declared below.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import rocksdict

from .. import _backend, fileio
from ..logs import get
from ..records import Op
from .rdb import rdb_error
from .slog import SharedLog, Syncing
from .state import PartitionState
from .wal import Wal, sync_all

log = get(__name__)

#: a partition whose RocksDB is not made yet answers point reads from the writes its log holds
#: (reads.py) while they are at most this many keys and bytes: a table of a few records (the
#: founding scenario), and a bound on what thousands of such partitions keep in memory
IMAGE_KEYS = 256
IMAGE_BYTES = 64 << 10

#: op kinds as plain ints: the write path compares them per write
_SOURCE_DECREE = int(Op.SOURCE_DECREE)


class Replicator(Protocol):
    """A replicated partition's primary side (multinode/replication.py): the secondaries of its
    ballot get each mutation, and a write is acknowledged once all of them hold it durably."""

    def logged(self, first: int, last: int, block: bytes) -> None:
        """Mutations ``first..last`` were logged and applied here as ``block`` (the partition's
        lock held: calls come in decree order). Must not block; they go at :meth:`send`."""

    def send(self) -> None:
        """What was logged goes to the secondaries now (a writer is about to make it durable
        here: a batch's partitions all logged first, then one call per secondary carries them)."""

    def commit(self, decree: int) -> None:
        """Return once every secondary holds ``decree`` durably; raise when that cannot be known
        (:meth:`send` was called for it before)."""


class PartitionWrites:
    path: str
    pidx: int
    state: PartitionState
    lock: threading.RLock
    wal: Wal
    last_committed: int
    source_decree: int
    source_seen: int
    source_marks: int
    _db: rocksdict.Rdict | None
    _deferred: bool
    logged_records: bool
    _tombstones: int
    _must_sync: bool
    #: the WAL block appended last (write_logged hands it on)
    _last_block: bytes = b""
    _image: dict[bytes, bytes | None] | None = None
    _image_bytes: int = 0
    #: a logged block's RocksDB batch not written yet (``write_mutations_unsynced(hold=True)``
    #: leaves it for :meth:`apply_held`, under the same hold of the lock)
    _held: tuple[rocksdict.Rdict, rocksdict.WriteBatch] | None = None
    _last_ts: int
    _durable: Callable[[Any, int], None]
    cluster_id: int
    #: None, or what a client write meets instead of being logged (the table's role: a
    #: read-only follower, a table fenced by a switchover), whatever the partition's state
    #: (a follower partition still learning refuses for good, not for now). Checked under the lock by
    #: write_unsynced, write_incr and write_if only: a duplication's applies (write_mutations) and a
    #: move's replica blocks go through. Only set_client_gate changes it.
    client_gate: Callable[[], BaseException] | None = None
    #: None, or the secondaries this partition's writes reach before they are acknowledged (a
    #: replicated partition's primary). Only set_replicator changes it.
    replicator: Replicator | None = None

    if TYPE_CHECKING:  # what Partition provides

        @property
        def db(self) -> rocksdict.Rdict: ...

        def open_now(self) -> None: ...

        @property
        def holds_nothing(self) -> bool: ...

        def check_available(self, for_write: bool) -> None: ...

    def _note_failure(self) -> None:
        """A write the log could not undo fails the partition until it is reopened."""
        if self.wal.failed is not None and self.state != PartitionState.CLOSED:
            self.state = PartitionState.FAILED

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

    def _log_and_apply(
        self, mutations: list[tuple[int, int, int, list]], apply: bool, hold: bool = False
    ) -> int:
        """Append ``mutations`` to the WAL and apply them: all of it, or none of it (lock held).

        Returns the offset durability waits for. A failure leaves the WAL as
        before (the block is cut back out) and RocksDB untouched, or fails the
        partition when the WAL cannot be cut back. The block is in the WAL
        before its WriteBatch (built with it, in one backend call) is written.
        ``hold``: the WriteBatch is kept for :meth:`apply_held` instead, which the caller calls
        before it lets go of the lock.
        """
        if hold:
            # one held already (a call logging twice): RocksDB takes it before anything more
            # is logged, so a failure of it leaves the log with nothing past what it failed on
            self.apply_held()
        if apply:
            db = self._db or self.db
            wb = rocksdict.WriteBatch(raw_mode=True)
            block = _backend.impl.encode_write(mutations, wb, self._tombstones)
        else:
            block = _backend.impl.encode_block(mutations)
        last = mutations[-1][0]
        self._last_block = block
        try:
            offset = self.wal.append(block, mutations[0][0], last)
        except BaseException:
            self._note_failure()
            raise
        if apply and hold:
            self._held = (db, wb)
        elif apply:
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
        r = self.replicator
        if r is not None:
            # committed here: the secondaries may log it while this node syncs it
            r.logged(mutations[0][0], last, block)
        return offset

    def _image_writes(self, mutations: list[tuple[int, int, int, list]], fresh: bool) -> None:
        """Logged, RocksDB not made yet (lock held): reads find these writes in ``_image`` while
        it stays small (see reads.py), if the partition held nothing before them."""
        image = {} if fresh else self._image
        if image is None:
            return
        try:
            writes = _backend.impl.mutation_writes(mutations, self._tombstones)
        except Exception:  # noqa: BLE001 - logged already: never fail it here; RocksDB answers
            self._image = None
            return
        for key, value in writes:
            image[key] = value
        self._image_bytes = (0 if fresh else self._image_bytes) + sum(
            len(k) + len(v or b"") for k, v in writes
        )
        self._image = image if len(image) <= IMAGE_KEYS and self._image_bytes <= IMAGE_BYTES else None

    def apply_held(self) -> None:
        """Write the RocksDB batch of the block ``write_mutations_unsynced(hold=True)`` logged
        (the caller has held the lock since). That block is committed in the WAL, and may be
        durable already (its fdatasync ran meanwhile), so a failure here cannot cut it back out:
        it fails the partition, whose reopening replays the WAL into RocksDB."""
        held, self._held = self._held, None
        if held is None:
            return
        try:
            self._write_batch(*held)
        except BaseException as exc:
            self.wal._fail(f"RocksDB did not take decrees logged through {self.last_committed}: {exc}")
            self._note_failure()
            raise

    def _committed(self, decree: int) -> None:
        """``decree`` is durable here: once every secondary holds it too (a replicated
        partition's primary), tell the hooks (duplication shippers wake on it)."""
        r = self.replicator
        if r is not None:
            r.commit(decree)
        self._durable(self, decree)

    def _after_commit(self, decree: int, offset: int) -> None:
        """Wait for durability, then tell the hooks (duplication shippers wake on it)."""
        r = self.replicator
        if r is not None:
            r.send()
        if self._must_sync:
            try:
                self.wal.sync(offset)
            except BaseException:
                with self.lock:
                    self._note_failure()
                raise
        self._committed(decree)

    def timestamp_us(self) -> int:
        """A timestamp after every one this partition gave before (its lock held): a logical
        snapshot made of its records carries one, like every write."""
        ts = time.time_ns() // 1000
        if ts <= self._last_ts:
            ts = self._last_ts + 1
        self._last_ts = ts
        return ts

    def set_client_gate(self, refuse: Callable[[], BaseException] | None) -> int:
        """Refuse client writes with ``refuse()`` from now on (None: take them again). Returns
        the last decree logged before the gate changed: with a gate up, no client write gets a
        decree past it (a write logged before is acknowledged once durable: ``sync_wal``)."""
        with self.lock:
            self.client_gate = refuse
            return self.last_committed

    def set_replicator(self, r: Replicator | None) -> None:
        """Send every mutation logged from now on to ``r`` too (None: no more), under the lock:
        no mutation is logged between the last one the old one saw and the first of the new."""
        with self.lock:
            self.replicator = r

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
            if self.client_gate is not None:
                raise self.client_gate()
            if self.state != PartitionState.SERVING:
                self.check_available(True)
            if self._db is None:
                self.open_now()
            decree = self.last_committed + 1
            # timestamp_us inline: a method call is a tenth of the Python cost of a write
            ts = time.time_ns() // 1000
            if ts <= self._last_ts:
                ts = self._last_ts + 1
            self._last_ts = ts
            offset = self._log_and_apply([(decree, ts, self.cluster_id, ops)], True)
            self.last_committed = decree
        return decree, offset

    def write_logged(self, ops: list[tuple[Any, ...]]) -> tuple[int, int, int, bytes]:
        """:meth:`write_unsynced`, and the WAL block it appended with the offset it begins at:
        ``(decree, end offset, start offset, block)`` (a front end puts the blocks of a batch
        in the cluster's shared log, slog.py)."""
        with self.lock:
            decree, offset = self.write_unsynced(ops)
            block = self._last_block
            return decree, offset, offset - len(block), block

    def wait_durable(self, decree: int, offset: int) -> None:
        """Return once a :meth:`write_unsynced` is durable (group commit), telling the hooks."""
        self._after_commit(decree, offset)

    def write_mutations(
        self, build: Callable[[int], list[tuple[int, int, int, list]]], defer_apply: bool = False
    ) -> int:
        """Log and apply mutations built under the lock from the next decree.

        ``build(next_decree)`` returns complete mutations numbered from
        next_decree (a follower uses it to keep the source's timetags and to
        filter by last-writer-wins against what is stored). Returns the last
        decree, or the current one when build returned nothing.
        """
        last, offset = self.write_mutations_unsynced(build, defer_apply)
        if offset is not None:
            self._after_commit(last, offset)
        return last

    def write_mutations_unsynced(
        self,
        build: Callable[[int], list[tuple[int, int, int, list]]],
        defer_apply: bool = False,
        hold: bool = False,
    ) -> tuple[int, int | None]:
        """:meth:`write_mutations` up to durability: ``(last decree, WAL offset)``, logged and
        applied but not yet durable; pass both to :meth:`wait_durable` before telling anyone
        (offset None: build returned nothing, nothing to wait for). ``hold``: applied only by
        :meth:`apply_held`, which the caller calls before it lets go of the lock it holds."""
        with self.lock:
            if self.state in (
                PartitionState.CLOSED,
                PartitionState.FAILED,
                PartitionState.MOVING,
                PartitionState.UNOPENED,
            ):
                self.check_available(True)
            mutations = build(self.last_committed + 1)
            if not mutations:
                return self.last_committed, None
            last = mutations[-1][0]
            # deferred: durable in the WAL; replayed into RocksDB when it is first opened
            deferred = defer_apply and self._db is None
            if not deferred and self._db is None:
                self.open_now()
            fresh = deferred and self.holds_nothing  # nothing stored before these writes
            offset = self._log_and_apply(mutations, not deferred, hold)
            if deferred:
                self._image_writes(mutations, fresh)
                self._deferred = True
            self.last_committed = last
            for m in mutations:
                for op in m[3]:
                    if op[0] == _SOURCE_DECREE:
                        self.source_decree = op[1]
                        self.source_marks += 1
                    elif not self.logged_records:
                        self.logged_records = True
            self.source_seen = max(self.source_seen, self.source_decree)
        return last, offset

    def sync_wal(self) -> None:
        """Make everything committed so far durable (the caller may hold the lock)."""
        try:
            self.wal.sync(self.wal.written_offset)
        except BaseException:
            with self.lock:
                self._note_failure()
            raise


def _send(logged: Sequence[tuple[Any, ...]]) -> None:
    """The replicated partitions among ``logged`` (each ``(partition, ...)``) send what they
    logged, once all of them have logged theirs."""
    for x in logged:
        r = x[0].replicator
        if r is not None:
            r.send()


def wait_durable_all(logged: Sequence[tuple[PartitionWrites, int, int]]) -> list[BaseException | None]:
    """:meth:`PartitionWrites.wait_durable` of several partitions' writes ``(partition, decree,
    offset)`` at once: their logs' fdatasyncs run together (``wal.sync_all``). Each one's
    outcome, in order: None once durable (and the hooks told), else the error ``wait_durable``
    would have raised (the partition is failed, as there)."""
    _send(logged)
    syncing = [(i, p) for i, (p, _, _) in enumerate(logged) if p._must_sync]
    out = sync_all([(p.wal, logged[i][2]) for i, p in syncing]) if syncing else []
    failed: list[BaseException | None] = [None] * len(logged)
    for (i, p), exc in zip(syncing, out, strict=True):
        if exc is not None:
            with p.lock:
                p._note_failure()
            failed[i] = exc
    for i, (p, decree, _) in enumerate(logged):
        if failed[i] is None:
            try:
                p._committed(decree)
            except BaseException as exc:
                failed[i] = exc
    return failed


def wait_durable_shared(
    slog: SharedLog, logged: Sequence[tuple[PartitionWrites, int, int, int, bytes]]
) -> list[BaseException | None]:
    """:func:`wait_durable_all` of writes logged by :meth:`PartitionWrites.write_logged`
    ``(partition, decree, end offset, start offset, block)``, through the cluster's shared log:
    their blocks appended to it as one record and one fdatasync for all of them. A block that
    does not continue what its partition had durable (another writer's bytes before it are not
    yet), or all of them if the shared log fails, is made durable by its partition log's own
    fsync instead."""
    return SharedDurability(slog, logged, started=False).wait()


class SharedDurability:
    """:func:`wait_durable_shared` in two halves, for a caller with work to do while the disk
    syncs (a secondary applies to RocksDB what it logged): made with ``started=True``, the
    record is written and its fdatasync under way when the constructor returns; :meth:`wait`
    (in a ``finally``: the shared log takes no other record until then) waits for it and
    tells each write's outcome."""

    def __init__(
        self, slog: SharedLog, logged: Sequence[tuple[PartitionWrites, int, int, int, bytes]], started: bool
    ) -> None:
        self._slog = slog
        self._logged = logged
        _send(logged)
        self._shared = [i for i, x in enumerate(logged) if x[0]._must_sync]
        self._syncing: Syncing | None = None
        self._failed = False
        if self._shared and started:
            try:
                self._syncing = slog.begin(self._entries())
            except OSError as exc:
                self._report(exc)

    def _entries(self) -> list[tuple[Wal, int, int, int, bytes]]:
        logged = self._logged
        return [
            (logged[i][0].wal, logged[i][3], logged[i][1], logged[i][1], logged[i][4]) for i in self._shared
        ]

    def _report(self, exc: OSError) -> None:
        self._failed = True
        slog = self._slog
        if not slog.failed_reported:
            slog.failed_reported = True
            log.error("the shared log failed, the partition logs are synced one by one from now on: %s", exc)

    def wait(self) -> list[BaseException | None]:
        """Each write's outcome, in order: None once durable (and the hooks told), else the
        error ``wait_durable`` would have raised."""
        logged, shared = self._logged, self._shared
        out: list[BaseException | None] = [None] * len(logged)
        covered = [False] * len(shared)
        if shared and not self._failed:
            try:
                if self._syncing is not None:
                    covered = self._slog.finish(self._syncing)
                else:
                    covered = self._slog.log_and_sync(self._entries())
            except OSError as exc:
                self._report(exc)
        own = [i for i, ok in zip(shared, covered, strict=True) if not ok]
        if own:
            for i, exc in zip(own, wait_durable_all([logged[i][:3] for i in own]), strict=True):
                out[i] = exc
        skip = set(own)
        for i, (p, decree, *_) in enumerate(logged):
            if i in skip:
                continue
            try:
                p._committed(decree)
            except BaseException as exc:
                out[i] = exc
        return out


__all__ = ["PartitionWrites", "Replicator", "SharedDurability", "wait_durable_all", "wait_durable_shared"]
