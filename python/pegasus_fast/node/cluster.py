"""An embedded cluster: one directory, its tables, metadata, scheduler and duplications."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from .. import _backend, fileio
from ..config import Config
from ..duplication.catalog import DuplicationCatalog
from ..duplication.driver import Duplication
from ..errors import (
    ClosedError,
    CloseError,
    ClusterLockedError,
    DuplicationError,
    InvalidArgumentError,
    InvalidTypeError,
    TableExistsError,
    TableNotFoundError,
)
from ..metrics import Metrics
from ..records import as_bytes
from ..storage.partition import Partition
from .journal import JournalMetaStore
from .maintenance import Maintenance
from .meta import ClusterMeta
from .scheduler import Lane, Scheduler
from .table import Table, TableInfo

MAX_PARTITIONS = 1024

#: clusters open in this process, by real path (embedded duplication remotes find each other here)
_open_clusters: dict[str, Cluster] = {}
_open_lock = threading.Lock()


def open_cluster_at(path: str) -> Cluster | None:
    with _open_lock:
        return _open_clusters.get(os.path.realpath(path))


def _default_cluster_id(name: str) -> int:
    return _backend.impl.crc64(name.encode("utf-8")) % 127 + 1


class Cluster:
    """Open with ``Cluster.open(path)``; close it (or use ``with``) to release the directory."""

    def __init__(self, path: str, name: str | None, config: Config, cluster_id: int | None) -> None:
        self.path = os.path.realpath(path)
        self.config = config
        os.makedirs(self.path, exist_ok=True)
        self._lock_fd = os.open(os.path.join(self.path, "LOCK"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise ClusterLockedError(self.path) from None
        self._closed = False
        self._lock = threading.RLock()
        try:
            default_name = name or os.path.basename(self.path)
            cid = cluster_id if cluster_id is not None else _default_cluster_id(default_name)
            if not 1 <= cid <= 127:
                raise InvalidArgumentError("cluster_id must be in 1..127")
            store = JournalMetaStore(
                os.path.join(self.path, "meta"), data_dir=os.path.join(self.path, "tables")
            )
            self.meta = ClusterMeta(store, default_name, cid)
            stored = self.meta.read()
            if name is not None and stored["name"] != name:
                raise InvalidArgumentError(f"{self.path} holds cluster {stored['name']!r}, not {name!r}")
            self.name: str = stored["name"]
            self.cluster_id: int = stored["cluster_id"]
            self._tables: dict[str, Table] = {}
            for tname, info in stored["tables"].items():
                self._tables[tname] = self._open_table(tname, info)
        except BaseException:
            for t in getattr(self, "_tables", {}).values():
                t.release(flush=False)
            self._release()
            raise
        with _open_lock:
            _open_clusters[self.path] = self
        try:
            self._after_open()
        except BaseException:
            with contextlib.suppress(CloseError):
                self.close()  # the error that stopped the open is the one to report
            raise

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        name: str | None = None,
        config: Config | None = None,
        cluster_id: int | None = None,
    ) -> Cluster:
        if config is None:
            config = Config()
        elif not isinstance(config, Config):
            raise InvalidTypeError("config must be a pegasus_fast.Config")
        if name is not None and (not isinstance(name, str) or not name):
            raise InvalidArgumentError("a cluster name is a non-empty str")
        return cls(os.fspath(path), name, config, cluster_id)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Cluster(name={self.name!r}, path={self.path!r})"

    # -- background work and duplication ---------------------------------------

    def _after_open(self) -> None:
        self.metric_set = Metrics()
        self.scheduler = Scheduler(self.config.background_workers, name=f"cluster-{self.name}")
        self.maintenance = Maintenance(self)
        self.maintenance.start()
        self._dups = DuplicationCatalog(self)
        self._dups.start_all()

    def _before_close(self) -> list[tuple[str, BaseException]]:
        """Stop duplications and background work; returns what failed (close goes on regardless)."""
        failures: list[tuple[str, BaseException]] = []
        if hasattr(self, "_dups"):
            # one by one, so a duplication that fails to persist its progress
            # does not leave the others running
            for d in self._dups.list():
                try:
                    d.stop()
                except Exception as exc:
                    failures.append((f"duplication {d.dupid}", exc))
        if hasattr(self, "scheduler"):
            try:
                self.scheduler.stop()
            except Exception as exc:
                failures.append(("scheduler", exc))
        return failures

    def compact(self, name: str) -> Future[None]:
        """Compact every partition of a table in the scheduler's low-priority lane."""
        table = self.table(name)

        def run() -> None:
            for p in table.partitions:
                p.compact()

        return self.scheduler.submit(run, Lane.LOW)

    def record_checkpoint(self, kind: str, duration_ms: float) -> None:
        self.metric_set.checkpoint_count.labels(kind).inc()
        self.metric_set.checkpoint_duration_ms.labels(kind).observe(duration_ms)

    def add_duplication(
        self,
        table: str,
        remote: Cluster | str | os.PathLike[str],
        remote_table: str | None = None,
        with_checkpoint: bool = True,
        fail_mode: str = "slow",
    ) -> Duplication:
        """Duplicate ``table`` to ``remote`` (a Cluster, or the path of an embedded one)."""
        self._check_open()
        return self._dups.add(table, remote, remote_table, with_checkpoint, fail_mode)

    def duplications(self, table: str | None = None) -> list[Duplication]:
        self._check_open()
        return self._dups.list(table)

    def duplication(self, dupid: int) -> Duplication:
        self._check_open()
        return self._dups.get(dupid)

    def duplications_changed(self) -> None:
        self._dups.changed()

    def metrics(self) -> dict[str, float]:
        """Current metric values, ``name{labels}`` -> value (Prometheus names)."""
        return self.metric_set.snapshot()

    # -- tables -------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"cluster {self.name!r} is closed")

    def _partition_dir(self, app_id: int, pidx: int) -> str:
        return os.path.join(self.path, "tables", f"{app_id}.{pidx}")

    def _open_table(self, name: str, info: dict[str, Any]) -> Table:
        parts: list[Partition] = []
        learned = info.get("follower_of", {}).get("learned")
        try:
            for pidx in range(info["partition_count"]):
                parts.append(
                    Partition(
                        self._partition_dir(info["app_id"], pidx),
                        name,
                        info["app_id"],
                        pidx,
                        self.config,
                        self.cluster_id,
                        learning=learned is not None and not learned[pidx],
                    )
                )
        except BaseException:
            for p in parts:
                p.close(flush=False)
            raise
        table = Table(name, info["app_id"], parts)
        table.run_high = lambda fn: self.scheduler.submit(fn, Lane.HIGH).result()
        return table

    @staticmethod
    def _validate_table_args(name: object, partition_count: object) -> None:
        if not isinstance(name, str):
            raise InvalidTypeError("a table name is a str")
        if not name or len(name) > 255 or "/" in name or name.strip() != name:
            raise InvalidArgumentError(f"invalid table name {name!r}")
        as_bytes(name, "a table name")  # a lone surrogate is not a name
        if isinstance(partition_count, bool) or not isinstance(partition_count, int):
            raise InvalidTypeError("partition_count must be an int")
        if not 1 <= partition_count <= MAX_PARTITIONS:
            raise InvalidArgumentError(f"partition_count must be in 1..{MAX_PARTITIONS}")

    @staticmethod
    def _validate_envs(envs: object) -> dict[str, str]:
        """Table envs are str -> str, as Pegasus's are; they are stored in the JSON metadata."""
        if envs is None:
            return {}
        if not isinstance(envs, Mapping):
            raise InvalidTypeError("envs must be a mapping of str to str")
        for key, value in envs.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidTypeError("envs must be a mapping of str to str")
            as_bytes(key, "an env name")
            as_bytes(value, "an env value")
        return dict(envs)

    def create_table(
        self,
        name: str,
        partition_count: int = 8,
        envs: dict[str, str] | None = None,
        *,
        follower_of: dict[str, Any] | None = None,
    ) -> Table:
        """A new table; ``follower_of`` (duplication's use) makes every partition start learning."""
        self._validate_table_args(name, partition_count)
        envs = self._validate_envs(envs)
        with self._lock:
            self._check_open()
            if name in self._tables:
                raise TableExistsError(name)

            app_id = self._unused_app_id(self.meta.get("next_app_id"))
            info: dict[str, Any] = {
                "app_id": app_id,
                "partition_count": partition_count,
                "status": "AVAILABLE",
                "create_time": time.time(),
                "envs": envs,
            }
            if follower_of is not None:
                info["follower_of"] = dict(follower_of, learned=[False] * partition_count)

            def add(state: dict[str, Any]) -> None:
                state["next_app_id"] = max(state["next_app_id"], app_id + 1)
                state["tables"][name] = info

            # Directories first, the record last: the journal append is the one
            # durable step that makes the table exist. A failure before it takes
            # the directories back (none existed: _unused_app_id); a crash
            # before it leaves directories no record names, which the next
            # create skips. The other order could leave a record without a
            # table, and its rollback (a second append) can fail too.
            dirs = [self._partition_dir(app_id, pidx) for pidx in range(partition_count)]
            try:
                for d in dirs:
                    fileio.makedirs(d, exist_ok=False)
                table = self._open_table(name, info)
                try:
                    self.meta.update(add)
                except BaseException:
                    table.release(flush=False)
                    raise
            except BaseException:
                for d in dirs:
                    shutil.rmtree(d, ignore_errors=True)
                raise
            self._tables[name] = table
            self._dups.install_retention()
            return table

    def _unused_app_id(self, app_id: int) -> int:
        """The first app id from ``app_id`` that no ``tables/<id>.*`` directory uses.

        Directories of an id the metadata does not name are what a crash left
        between creating them and persisting their table: a new table skips
        them rather than adopting another table's data, and they are not
        deleted, since nothing proves they hold nothing of value.
        """
        try:
            taken = {entry.split(".", 1)[0] for entry in os.listdir(os.path.join(self.path, "tables"))}
        except FileNotFoundError:
            return app_id
        while str(app_id) in taken:
            app_id += 1
        return app_id

    def table(self, name: str) -> Table:
        with self._lock:
            self._check_open()
            try:
                return self._tables[name]
            except KeyError:
                raise TableNotFoundError(name) from None

    def has_table(self, name: str) -> bool:
        return name in self._tables

    def open_tables(self) -> list[Table]:
        """The tables open now, without taking the cluster lock (background tasks use it)."""
        return list(self._tables.values())

    def list_tables(self) -> list[TableInfo]:
        self._check_open()
        tables = self.meta.get("tables")
        return [
            TableInfo(i["app_id"], n, i["partition_count"], i["status"], i["create_time"])
            for n, i in sorted(tables.items(), key=lambda kv: kv[1]["app_id"])
        ]

    def table_meta(self, name: str) -> dict[str, Any]:
        try:
            return self.meta.get("tables", name)
        except KeyError:
            raise TableNotFoundError(name) from None

    def mark_learned(self, name: str, pidxs: list[int]) -> None:
        """Persist that follower partitions have their checkpoints, then let them serve."""

        def learned(state: dict[str, Any]) -> None:
            for pidx in pidxs:
                state["tables"][name]["follower_of"]["learned"][pidx] = True

        self.meta.update(learned)
        table = self.table(name)
        for pidx in pidxs:
            table.partitions[pidx].state = "serving"

    def drop_table(self, name: str) -> None:
        with self._lock:
            self._check_open()
            table = self.table(name)
            self._before_drop(name)
            # The record goes first: once it is durable the table is gone, and
            # whatever the removal below leaves (it failed half-way, or a crash
            # came first) is never opened as the table again, and its app id is
            # never reused (_unused_app_id skips it). Removing the files first
            # could leave a record naming a half-empty table.
            self.meta.update(lambda state: state["tables"].pop(name))
            del self._tables[name]
            table.release(flush=False)  # a dropped table's memtables need no flush
            for p in table.partitions:
                shutil.rmtree(p.path, ignore_errors=True)

    def _before_drop(self, name: str) -> None:
        active = self._dups.active_for(name)
        if active:
            raise DuplicationError(
                f"table {name!r} has duplications {[d.dupid for d in active]}; remove them first"
            )

    # -- life cycle ---------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Release every partition, the metadata journal and the directory lock.

        Each step runs whatever the others do; if any failed (a flush or a sync
        on a full disk), ``CloseError`` lists them once everything is released,
        so the same process can open the cluster again.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        # Background threads are stopped without holding the cluster lock: a
        # task they are finishing may still look a table up.
        failures = self._before_close()
        with self._lock:
            for t in self._tables.values():
                failures += t.release()
            with _open_lock:
                if _open_clusters.get(self.path) is self:
                    del _open_clusters[self.path]
            failures += self._release()
        if failures:
            raise CloseError(self.path, failures)

    def _release(self) -> list[tuple[str, BaseException]]:
        failures: list[tuple[str, BaseException]] = []
        meta = getattr(self, "meta", None)
        if meta is not None:
            try:
                meta.close()
            except Exception as exc:
                failures.append(("metadata", exc))
        if self._lock_fd >= 0:
            fd, self._lock_fd = self._lock_fd, -1
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError as exc:
                failures.append(("lock", exc))
            finally:
                os.close(fd)  # closing the fd drops the flock even if the unlock failed
        return failures
