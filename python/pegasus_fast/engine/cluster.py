"""An embedded cluster: one directory, its tables, metadata, scheduler and duplications.

This is the composition root (DESIGN.md §10): it builds the storage
partitions, the scheduler and the metadata, and hands duplication the
implementations of the ports it defines (duplication/ports.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

from .. import _backend
from ..config import Config
from ..duplication.catalog import DuplicationCatalog
from ..duplication.driver import DupEnv, Duplication
from ..duplication.record import check_dupid
from ..errors import (
    ClosedError,
    CloseError,
    ClusterLockedError,
    DuplicationError,
    InvalidArgumentError,
    InvalidTypeError,
)
from ..metrics import Metrics
from ..storage import slog
from ..storage.partition import LEARNING, Partition
from . import limits, open_clusters
from .cluster_roles import ClusterRoles
from .followers import FollowerTables
from .journal import JournalMetaStore
from .maintenance import Maintenance
from .meta import ClusterMeta
from .observed import PartitionCollector
from .opens import BackgroundOpens
from .remotes import Network, Remotes, is_url
from .roles import TableRoles
from .scheduler import Lane, Scheduler
from .table import Table, TableInfo
from .tables import Tables


@dataclass(frozen=True)
class ClusterInfo:
    name: str
    cluster_id: int
    #: derived from the name (crc64(name) % 127 + 1) rather than configured: two names can share one
    cluster_id_derived: bool
    #: a random id made when the cluster was created
    uid: str
    path: str
    backend: str
    #: why it serves less than it holds, or can take no new table (over a resource bound:
    #: engine/limits.py); empty when it does not
    warnings: tuple[str, ...] = ()


def default_cluster_id(name: str) -> int:
    """The cluster id a cluster named ``name`` takes when none is configured."""
    return _backend.impl.crc64(name.encode("utf-8")) % 127 + 1


class _Tasks:
    """duplication's Tasks port over the scheduler's lanes."""

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler

    def high(self, fn: Callable[[], Any]) -> Future[Any]:
        return self._scheduler.submit(fn, Lane.HIGH)

    def later(self, delay: float, fn: Callable[[], Any]) -> Future[Any]:
        return self._scheduler.submit_after(delay, fn, Lane.NORMAL)


class _SourceTables:
    """duplication's SourceTables port over this cluster's open tables."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    def partitions(self, table: str) -> list[Partition]:
        return self._cluster.table(table).partitions

    def has(self, table: str) -> bool:
        return self._cluster.has_table(table)


class Cluster(ClusterRoles):
    """Open with ``Cluster.open(path)``; close it (or use ``with``) to release the directory."""

    def __init__(
        self,
        path: str,
        name: str | None,
        config: Config,
        cluster_id: int | None,
        uid: str | None = None,
        duplication_scope: Callable[[str], frozenset[int] | None] | None = None,
        network: Network | None = None,
    ) -> None:
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
        self._remotes = Remotes(network)
        #: one switchover (or take-over) of this cluster's tables at a time
        self.switch_lock = threading.RLock()
        try:
            default_name = name or os.path.basename(self.path)
            if cluster_id is not None:
                Config(cluster_id=cluster_id)  # the same checks as the knob
                if config.cluster_id is not None and config.cluster_id != cluster_id:
                    raise InvalidArgumentError("cluster_id and config.cluster_id differ")
            configured = cluster_id if cluster_id is not None else config.cluster_id
            cid = configured if configured is not None else default_cluster_id(default_name)
            # a crash may have left partition logs short of what the shared log made durable:
            # mended before any partition opens (storage/slog.py)
            slog.replay(self.path, config.log_private_file_size_mb << 20)
            #: the shared log of Pegasus-port batches (one fsync for a batch's partitions)
            self.shared_log = slog.SharedLog(self.path)
            store = JournalMetaStore(
                os.path.join(self.path, "meta"), data_dir=os.path.join(self.path, "tables")
            )
            self.meta = ClusterMeta(store, default_name, cid, configured is None, uid)
            state = self.meta.state
            if uid is not None and state.uid != uid:
                raise InvalidArgumentError(f"{self.path} holds cluster uid {state.uid}, not {uid}")
            if name is not None and state.name != name:
                raise InvalidArgumentError(f"{self.path} holds cluster {state.name!r}, not {name!r}")
            if configured is not None and state.cluster_id != configured:
                # last-writer-wins ties break on the id stored in every record: it never changes
                raise InvalidArgumentError(
                    f"{self.path} holds cluster id {state.cluster_id}, not {configured}"
                )
            self.name: str = state.name
            self.cluster_id: int = state.cluster_id
            self.metric_set = Metrics()
            self.scheduler = Scheduler(self.config.background_workers, name=f"cluster-{self.name}")
            self._dups = DuplicationCatalog(
                DupEnv(
                    config=config,
                    metrics=self.metric_set,
                    tables=_SourceTables(self),
                    tasks=_Tasks(self.scheduler),
                    connector=self._remotes,
                    save=self.meta.save_duplication,
                    cluster_name=self.name,
                    cluster_uid=state.uid,
                    cluster_id=self.cluster_id,
                    scope=duplication_scope or (lambda table: None),
                    switchover=lambda *a: self.switchover(*a),
                ),
                self.meta.add_duplication,
                lambda: self.roles.refresh_all(),
            )
            self._opens = BackgroundOpens(self.scheduler, self._setting_up)
            slots, self._limit_warnings = limits.open_slots(config)
            self._tables = Tables(
                self.path,
                config,
                self.cluster_id,
                self.meta,
                self._dups,
                self._run_high,
                self._lock,
                self._check_open,
                slots,
            )
            #: the follower bookkeeping of the tables that duplications of other clusters made
            #: or adopted here (engine/local_follower.py, a node of a multi-node cluster)
            #: each table's role in duplication, and the client-write gate it sets (issue #21 §3)
            self.roles = TableRoles(
                self._tables.record, self._tables.find, self._dup_views, self._tables.names
            )
            self.followers = FollowerTables(self._tables, self.meta, config, self._opens, self.roles.refresh)
            self.metric_set.add_collector(
                PartitionCollector(
                    self._tables.open_tables, self._tables.record, duplication_scope or (lambda table: None)
                )
            )
            self._tables.open_existing()
            limits.log_warnings(self.name, self._limit_warnings + self._over_limits())
        except BaseException:
            self._before_close()
            tables: Tables | None = getattr(self, "_tables", None)
            if tables is not None:
                tables.release(flush=False)
            shared: slog.SharedLog | None = getattr(self, "shared_log", None)
            if shared is not None:
                shared.close(keep=True)
            self._release()
            raise
        open_clusters.register(self)
        try:
            self.maintenance = Maintenance(self.config, self.scheduler, self.metric_set, self.open_tables)
            self.maintenance.start()
            self._dups.resume(dict(state.duplications))
            self.roles.refresh_all()
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
        *,
        uid: str | None = None,
        duplication_scope: Callable[[str], frozenset[int] | None] | None = None,
        network: Network | None = None,
    ) -> Cluster:
        """``uid``: the identity the cluster must have (a node of a multi-node cluster takes
        the cluster's from ZooKeeper); a new directory takes it. ``duplication_scope(table)``:
        the partitions of ``table`` this process's duplications ship (a node: those it owns;
        None, the default: all). ``network``: how duplications reach remotes behind a URL
        (engine/remotes.py); ``pegasus_fast.Cluster.open`` gives the package's, and a cluster
        opened here without one duplicates only to clusters open in this process."""
        if config is None:
            config = Config()
        elif not isinstance(config, Config):
            raise InvalidTypeError("config must be a pegasus_fast.Config")
        if name is not None and (not isinstance(name, str) or not name):
            raise InvalidArgumentError("a cluster name is a non-empty str")
        if cluster_id is not None and (isinstance(cluster_id, bool) or not isinstance(cluster_id, int)):
            raise InvalidTypeError("cluster_id must be an int in 1..127")
        if uid is not None and (not isinstance(uid, str) or not uid.isalnum()):
            raise InvalidArgumentError("uid is a non-empty alphanumeric str")
        return cls(os.fspath(path), name, config, cluster_id, uid, duplication_scope, network)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Cluster(name={self.name!r}, path={self.path!r})"

    def info(self) -> ClusterInfo:
        """Who this cluster is: name, cluster id (and whether it was derived from the name)."""
        state = self.meta.state
        return ClusterInfo(
            name=self.name,
            cluster_id=self.cluster_id,
            cluster_id_derived=state.cluster_id_derived,
            uid=state.uid,
            path=self.path,
            backend=_backend.name,
            warnings=tuple(self._limit_warnings + self._over_limits()),
        )

    @property
    def partition_limit(self) -> int:
        """The partitions it may hold and have open at once: Config.max_partitions, or what the
        fd limit has room for, whichever is lower (engine/limits.py)."""
        return self._tables.slots.limit

    def _over_limits(self) -> list[str]:
        tables = self._tables.open_tables()
        parts = [p for t in tables for p in t.partitions]
        return limits.warnings(self.config, self._tables.slots, parts, len(tables))

    # -- background work and duplication ---------------------------------------

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
        self._remotes.close()
        return failures

    def wake_duplications_to(self, remote: str) -> None:
        """The cluster at ``remote`` opened in this process: duplications to it go on now."""
        dups = getattr(self, "_dups", None)
        if dups is not None and not self._closed:
            dups.wake_remote(remote)

    def compact(self, name: str) -> Future[None]:
        """Drop expired records and compact every partition of a table, in the low-priority lane."""
        table = self.table(name)
        dropped = self.metric_set.expired_records_dropped.labels(name)

        def run() -> None:
            for p in table.partitions:
                dropped.inc(p.compact())

        return self.scheduler.submit(run, Lane.LOW)

    def add_duplication(
        self,
        table: str,
        remote: Cluster | str | os.PathLike[str],
        remote_table: str | None = None,
        with_checkpoint: bool = True,
        fail_mode: str = "slow",
        *,
        remote_token: str | None = None,
        dupid: int | None = None,
        accept_gap: bool = False,
    ) -> Duplication:
        """Duplicate ``table`` to ``remote``: a served cluster's ``pegasus://host:port`` URL, or an
        embedded Cluster (or its path). ``remote_token`` is what a served remote is shown, kept
        with the duplication (default: this process's PEGASUS_FAST_TOKEN, read when it connects).
        ``dupid``: the id to give it (a node of a multi-node cluster takes the cluster's).
        Without a checkpoint, a follower table that followed this table before and missed writes
        since is refused (FollowerGapError: how many source decrees it lacks) unless
        ``accept_gap``; the refusal is raised here when the remote answers within moments."""
        if dupid is not None:
            check_dupid(dupid)
        self._check_open()
        if is_url(remote):
            assert isinstance(remote, str)
            remote_path, remote_name = self._remotes.canonical(remote), ""
        elif isinstance(remote, Cluster):
            remote_path, remote_name = remote.path, remote.name
            if remote.cluster_id == self.cluster_id and remote.path != self.path:
                raise DuplicationError(
                    f"clusters {self.name!r} and {remote.name!r} share cluster id {self.cluster_id}: "
                    "last-writer-wins could not break ties (configure Config(cluster_id=...))"
                )
        elif isinstance(remote, (str, os.PathLike)):
            remote_path, remote_name = os.path.realpath(os.fspath(remote)), ""
        else:
            raise InvalidTypeError("remote is a pegasus:// URL, a pegasus_fast.Cluster or the path of one")
        if remote_path == self.path:
            raise DuplicationError("a cluster cannot duplicate to itself")
        self.table(table)
        dup = self._dups.add(
            table,
            remote_path,
            remote_name,
            remote_table,
            with_checkpoint,
            fail_mode,
            remote_token,
            dupid,
            accept_gap,
        )
        self.roles.refresh(table)  # a follower duplicating back to its source is a master now
        return dup

    def duplications(self, table: str | None = None) -> list[Duplication]:
        self._check_open()
        return self._dups.list(table)

    def duplication(self, dupid: int) -> Duplication:
        self._check_open()
        return self._dups.get(dupid)

    def metrics(self) -> dict[str, float]:
        """Current metric values, ``name{labels}`` -> value (Prometheus names)."""
        return self.metric_set.snapshot()

    # -- tables -------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"cluster {self.name!r} is closed")

    def _run_high(self, fn: Callable[[], Any]) -> Any:
        """User-requested maintenance runs in the scheduler's high lane (DESIGN.md §6)."""
        return self.scheduler.submit(fn, Lane.HIGH).result()

    def create_table(self, name: str, partition_count: int = 8, envs: dict[str, str] | None = None) -> Table:
        """A new table of ``partition_count`` partitions (Pegasus ``create``)."""
        table = self._tables.create(name, partition_count, envs)
        self.roles.refresh(name)
        if self.config.open_rocksdb_eagerly:
            # a duplication's follower table opens its partitions once they have learned
            # (FollowerTables.mark_learned)
            self._opens.open_later(table.partitions)
        return table

    def open_later(
        self, partitions: list[Partition], delay: float, still: Callable[[Partition], bool] | None = None
    ) -> None:
        """Open these partitions' RocksDB in the background after ``delay`` seconds (each that
        is not open by then, and that ``still(p)`` says is to be opened still; a read or write
        that comes first opens it itself)."""
        self._opens.open_later(partitions, delay, still)

    def _setting_up(self) -> bool:
        """Duplication work runs here: a duplication setting up, or a follower partition learning."""
        if self._dups.setting_up():
            return True
        return any(p.state == LEARNING for t in self.open_tables() for p in t.partitions)

    def table(self, name: str) -> Table:
        return self._tables.get(name)

    def has_table(self, name: str) -> bool:
        return self._tables.has(name)

    def open_tables(self) -> list[Table]:
        """The tables open now, without taking the cluster lock (background tasks use it)."""
        return self._tables.open_tables()

    def list_tables(self) -> list[TableInfo]:
        self._check_open()
        return [replace(i, role=self.roles.role(i.name)) for i in self._tables.infos()]

    def table_info(self, name: str) -> TableInfo:
        """What ``list_tables`` says of one table."""
        self._check_open()
        return replace(self._tables.info(name), role=self.roles.role(name))

    def drop_table(self, name: str) -> None:
        with self._lock:
            self._check_open()
            self.table(name)
            active = self._dups.active_for(name)
            if active:
                raise DuplicationError(
                    f"table {name!r} has duplications {[d.dupid for d in active]}; remove them first"
                )
            self._tables.drop(name)
            self.metric_set.forget_table(name)

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
            failures += self._tables.release()
            try:
                # its files go once every partition log is durable on its own (closed above)
                self.shared_log.close(keep=bool(failures))
            except OSError as exc:
                failures.append(("shared log", exc))
            open_clusters.unregister(self)
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
