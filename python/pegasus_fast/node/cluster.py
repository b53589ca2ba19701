"""An embedded cluster: one directory, its tables, metadata, scheduler and duplications."""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import time
from concurrent.futures import Future
from typing import Any

from .. import _backend
from ..config import Config
from ..duplication.catalog import DuplicationCatalog
from ..duplication.driver import Duplication
from ..errors import (
    ClosedError,
    ClusterLockedError,
    DuplicationError,
    InvalidArgumentError,
    InvalidTypeError,
    TableExistsError,
    TableNotFoundError,
)
from ..metrics import Metrics
from ..storage.layout import make_durable
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
            self.meta = ClusterMeta(JournalMetaStore(os.path.join(self.path, "meta")), default_name, cid)
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
                t.close()
            self._release()
            raise
        with _open_lock:
            _open_clusters[self.path] = self
        try:
            self._after_open()
        except BaseException:
            self.close()
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
        if cluster_id is not None and (isinstance(cluster_id, bool) or not isinstance(cluster_id, int)):
            raise InvalidTypeError("cluster_id must be an int in 1..127")
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

    def _before_close(self) -> None:
        if hasattr(self, "_dups"):
            self._dups.stop_all()
        if hasattr(self, "scheduler"):
            self.scheduler.stop()

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

    def _open_table(self, name: str, info: dict[str, Any], create: bool = False) -> Table:
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
                        must_exist=not create,
                    )
                )
            if create:
                make_durable([p.path for p in parts])
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
        if isinstance(partition_count, bool) or not isinstance(partition_count, int):
            raise InvalidTypeError("partition_count must be an int")
        if not 1 <= partition_count <= MAX_PARTITIONS:
            raise InvalidArgumentError(f"partition_count must be in 1..{MAX_PARTITIONS}")

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
        with self._lock:
            self._check_open()
            if name in self._tables:
                raise TableExistsError(name)

            info: dict[str, Any] = {
                "app_id": self.meta.get("next_app_id"),
                "partition_count": partition_count,
                "status": "AVAILABLE",
                "create_time": time.time(),
                "envs": dict(envs or {}),
            }
            if follower_of is not None:
                info["follower_of"] = dict(follower_of, learned=[False] * partition_count)

            def add(state: dict[str, Any]) -> None:
                state["next_app_id"] += 1
                state["tables"][name] = info

            # the partition directories are durable before the metadata names them,
            # so a listed partition whose directory is missing is data loss, not a crash
            table = self._open_table(name, info, create=True)
            try:
                self.meta.update(add)
            except BaseException:
                # the update may be on disk even so (a failed fsync after the rename):
                # the directories stay; unused, the next table with this app_id takes them
                table.close()
                raise
            self._tables[name] = table
            self._dups.install_retention()
            return table

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
            self.meta.update(lambda state: state["tables"].pop(name))
            del self._tables[name]
            table.close()
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
        with self._lock:
            if self._closed:
                return
            self._closed = True
        # Background threads are stopped without holding the cluster lock: a
        # task they are finishing may still look a table up.
        self._before_close()
        with self._lock:
            for t in self._tables.values():
                t.close()
            with _open_lock:
                if _open_clusters.get(self.path) is self:
                    del _open_clusters[self.path]
            self._release()

    def _release(self) -> None:
        meta = getattr(self, "meta", None)
        if meta is not None:
            meta.close()
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1
