"""A cluster's tables: made, opened, found and dropped, their directories and records in step."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from .. import fileio
from ..config import Config
from ..duplication.ports import SourceId
from ..errors import (
    InvalidArgumentError,
    InvalidTypeError,
    MetaFencedError,
    ResourceExhaustedError,
    TableExistsError,
    TableNotFoundError,
)
from ..records import MAX_PARTITIONS
from ..storage.layout import make_durable
from ..storage.open_slots import OpenSlots
from ..storage.partition import Partition, PartitionHooks
from .envs import validate_envs
from .meta import ClusterMeta, FollowerOf, TableRecord, partition_dir, valid_table_name
from .table import Table, TableInfo


def validate_table_args(name: object, partition_count: object) -> None:
    """The checks every new table passes (a multi-node cluster's leader makes them too)."""
    if not isinstance(name, str):
        raise InvalidTypeError("a table name is a str")
    if not valid_table_name(name):
        raise InvalidArgumentError(f"invalid table name {name!r}")
    if isinstance(partition_count, bool) or not isinstance(partition_count, int):
        raise InvalidTypeError("partition_count must be an int")
    if not 1 <= partition_count <= MAX_PARTITIONS:
        raise InvalidArgumentError(f"partition_count must be in 1..{MAX_PARTITIONS}")


def check_room(tables: Iterable[Any], partition_count: int, max_tables: int, max_partitions: int) -> None:
    """ResourceExhaustedError if one more table of ``partition_count`` partitions would pass
    ``max_tables`` or ``max_partitions`` (``tables``: records with a ``partition_count``)."""
    counts = [t.partition_count for t in tables]
    if len(counts) + 1 > max_tables:
        raise ResourceExhaustedError("max_tables", max_tables, len(counts) + 1)
    if sum(counts) + partition_count > max_partitions:
        raise ResourceExhaustedError("max_partitions", max_partitions, sum(counts) + partition_count)


class Tables:
    """The open tables of one cluster directory.

    ``lock`` and ``check_open`` are the cluster's: a table is made, found or
    dropped under its lock, and none once it is closed.
    """

    def __init__(
        self,
        path: str,
        config: Config,
        cluster_id: int,
        meta: ClusterMeta,
        hooks: PartitionHooks,
        run_high: Callable[[Callable[[], Any]], Any],
        lock: threading.RLock,
        check_open: Callable[[], None],
        slots: OpenSlots,
    ) -> None:
        self._path = path
        #: the bound on partitions held (and open at once): Config.max_partitions, or the fd limit's
        self.slots = slots
        self._config = config
        self._cluster_id = cluster_id
        self._meta = meta
        self._hooks = hooks
        self._run_high = run_high
        self._lock = lock
        self._check_open = check_open
        self._tables: dict[str, Table] = {}

    def open_existing(self) -> None:
        """Open every table the metadata names (the cluster's open)."""
        for name, rec in self._meta.state.tables.items():
            self._tables[name] = self._open(name, rec)

    def _open(self, name: str, rec: TableRecord, create: bool = False) -> Table:
        parts: list[Partition] = []
        fo = rec.follower_of
        # a re-routed table's flags are its source's partitions: its own partitions always serve
        learned = fo.learned if fo is not None and not fo.rerouted else None
        try:
            for pidx in range(rec.partition_count):
                parts.append(
                    Partition(
                        partition_dir(self._path, rec.app_id, pidx),
                        name,
                        rec.app_id,
                        pidx,
                        self._config,
                        self._cluster_id,
                        learning=learned is not None and not learned[pidx],
                        hooks=self._hooks,
                        must_exist=not create,
                        slots=self.slots,
                    )
                )
            if create:
                make_durable([p.path for p in parts])
        except BaseException:
            for p in parts:
                p.close(flush=False)
            raise
        return Table(name, rec.app_id, parts, run_high=self._run_high)

    def create(
        self,
        name: str,
        partition_count: int,
        envs: dict[str, str] | None,
        *,
        follower_of: SourceId | None = None,
    ) -> Table:
        """A new table; a duplication's follower table (``follower_of``) starts with every
        partition learning."""
        validate_table_args(name, partition_count)
        table_envs = validate_envs(envs, self._config.max_env_bytes_per_table)
        with self._lock:
            self._check_open()
            if name in self._tables:
                raise TableExistsError(name)
            check_room(
                self._meta.state.tables.values(), partition_count, self._config.max_tables, self.slots.limit
            )

            rec = TableRecord(
                app_id=self._unused_app_id(self._meta.state.next_app_id),
                partition_count=partition_count,
                status="AVAILABLE",
                create_time=time.time(),
                envs=table_envs,
                follower_of=None
                if follower_of is None
                else FollowerOf(follower_of, (False,) * partition_count),
            )
            # Directories first, the record last: the journal append is the one
            # durable step that makes the table exist. A failure before it takes
            # the directories back (none existed: _unused_app_id); a crash
            # before it leaves directories no record names, which the next
            # create skips. The other order could leave a record without a
            # table, and its rollback (a second append) can fail too.
            # The directories are durable before the record names them, so a listed
            # partition whose directory is missing is data loss, not a crash.
            dirs = [partition_dir(self._path, rec.app_id, pidx) for pidx in range(partition_count)]
            try:
                for d in dirs:
                    fileio.makedirs(d, exist_ok=False)
                table = self._open(name, rec, create=True)
                try:
                    self._meta.add_table(name, rec)
                except BaseException:
                    table.release(flush=False)
                    raise
            except MetaFencedError:
                # whether the record is on disk is unknown until reopen: the directories stay
                # (if it is not, the next create skips them: _unused_app_id)
                raise
            except BaseException:
                for d in dirs:
                    shutil.rmtree(d, ignore_errors=True)
                raise
            self._tables[name] = table
        return table

    def _unused_app_id(self, app_id: int) -> int:
        """The first app id from ``app_id`` that no ``tables/<id>.*`` directory uses.

        Directories of an id the metadata does not name are what a crash left
        between creating them and persisting their table: a new table skips
        them rather than adopting another table's data, and they are not
        deleted, since nothing proves they hold nothing of value.
        """
        try:
            taken = {entry.split(".", 1)[0] for entry in os.listdir(os.path.join(self._path, "tables"))}
        except FileNotFoundError:
            return app_id
        while str(app_id) in taken:
            app_id += 1
        return app_id

    def get(self, name: str) -> Table:
        with self._lock:
            self._check_open()
            try:
                return self._tables[name]
            except KeyError:
                raise TableNotFoundError(name) from None

    def has(self, name: str) -> bool:
        return name in self._tables

    def find(self, name: str) -> Table | None:
        """The open table of that name, or None (without the lock)."""
        return self._tables.get(name)

    def names(self) -> list[str]:
        return list(self._tables)

    def open_tables(self) -> list[Table]:
        """The tables open now, without taking the lock (background tasks use it)."""
        return list(self._tables.values())

    def record(self, name: str) -> TableRecord | None:
        """The table's metadata record (None: no such table)."""
        return self._meta.state.tables.get(name)

    def infos(self) -> list[TableInfo]:
        tables = self._meta.state.tables
        return [
            TableInfo(r.app_id, n, r.partition_count, r.status, r.create_time, dict(r.envs))
            for n, r in sorted(tables.items(), key=lambda kv: kv[1].app_id)
        ]

    def info(self, name: str) -> TableInfo:
        r = self.record(name)
        if r is None:
            raise TableNotFoundError(name)
        return TableInfo(r.app_id, name, r.partition_count, r.status, r.create_time, dict(r.envs))

    def drop(self, name: str) -> None:
        """Drop a table (the caller holds the lock and has checked nothing needs it)."""
        table = self.get(name)
        # The record goes first: once it is durable the table is gone, and
        # whatever the removal below leaves (it failed half-way, or a crash
        # came first) is never opened as the table again, and its app id is
        # never reused (_unused_app_id skips it). Removing the files first
        # could leave a record naming a half-empty table.
        self._meta.drop_table(name)
        del self._tables[name]
        table.release(flush=False)  # a dropped table's memtables need no flush
        for p in table.partitions:
            shutil.rmtree(p.path, ignore_errors=True)

    def release(self, flush: bool = True) -> list[tuple[str, BaseException]]:
        """Close every table whatever fails; returns ``(step, exception)`` for each failure."""
        failures: list[tuple[str, BaseException]] = []
        for t in self._tables.values():
            failures += t.release(flush=flush)
        return failures


__all__ = ["Tables", "check_room", "validate_table_args"]
