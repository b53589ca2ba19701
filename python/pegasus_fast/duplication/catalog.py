"""A cluster's duplications: add, find, resume after restart; the hooks its partitions call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..errors import (
    DuplicationError,
    DuplicationNotFoundError,
    FollowerGapError,
    InvalidArgumentError,
    InvalidTypeError,
    with_fix,
)
from ..logs import event, get
from ..storage.partition import Partition, PartitionHooks
from .driver import DupEnv, Duplication
from .observed import DupCollector
from .record import DupRecord, PartitionCheckpoint
from .status import FAIL_MODES, DupStatus

log = get(__name__)

_SETTING_UP = frozenset({DupStatus.INIT, DupStatus.PREPARE, DupStatus.APP})
#: how long adding a duplication without checkpoint waits for its follower's answer
START_JUDGED_WITHIN = 10.0


class DuplicationCatalog(PartitionHooks):
    """Owns the live duplications of one cluster, and answers its partitions' hooks:
    wake shippers on durable writes, bound WAL GC, pin checkpoints being copied."""

    def __init__(
        self,
        env: DupEnv,
        add_record: Callable[[DupRecord, int | None], int],
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._env = env
        self._add_record = add_record
        #: told after a duplication is removed (a table's role may change: engine/roles.py)
        self._on_change = on_change
        self._lock = threading.RLock()
        self._dups: dict[int, Duplication] = {}
        #: table name -> its live duplications (read on the write path, replaced whole)
        self._by_table: dict[str, tuple[Duplication, ...]] = {}
        # pending, confirmed and time lag read at each scrape, of the duplications live then
        env.metrics.add_collector(DupCollector(lambda: list(self._dups.values())))

    def resume(self, records: dict[int, DupRecord]) -> None:
        """Take the persisted duplications back (once the source tables are open) and start them."""
        with self._lock:
            for dupid, rec in records.items():
                if rec.status != DupStatus.REMOVED and self._env.tables.has(rec.table):
                    self._dups[dupid] = self._new(dupid, rec)
            self._reindex()
        for d in list(self._dups.values()):
            d.start()

    def _new(self, dupid: int, rec: DupRecord) -> Duplication:
        return Duplication(dupid, rec, self._env, self._changed)

    def _reindex(self) -> None:
        by_table: dict[str, list[Duplication]] = {}
        for d in self._dups.values():
            if d.status != DupStatus.REMOVED:
                by_table.setdefault(d.table_name, []).append(d)
        self._by_table = {k: tuple(v) for k, v in by_table.items()}

    def _changed(self) -> None:
        with self._lock:
            self._dups = {k: d for k, d in self._dups.items() if d.status != DupStatus.REMOVED}
            self._reindex()
        self._on_change()

    def setting_up(self) -> bool:
        """Whether a duplication is between its start and shipping (INIT, PREPARE, APP): the
        work whose milliseconds this project is about, which background opens yield to."""
        return any(d.status in _SETTING_UP and d.error is None for d in list(self._dups.values()))

    def wake_remote(self, remote: str) -> None:
        """A remote became reachable (an embedded cluster opened): its duplications go on now."""
        for d in list(self._dups.values()):
            if d.remote == remote:
                d.wake()

    # -- PartitionHooks ---------------------------------------------------------------

    def durable(self, partition: Partition, decree: int) -> None:
        for d in self._by_table.get(partition.table, ()):
            d.wake(partition.pidx)

    def wal_retain_after(self, partition: Partition) -> int | None:
        values = [
            v
            for d in self._by_table.get(partition.table, ())
            if (v := d.retain_after(partition.pidx)) is not None
        ]
        return min(values) if values else None

    def pinned_checkpoints(self, partition: Partition) -> frozenset[int]:
        out: frozenset[int] = frozenset()
        for d in self._by_table.get(partition.table, ()):
            out |= d.pinned(partition.pidx)
        return out

    # -- the API's side -----------------------------------------------------------------

    def add(
        self,
        table: str,
        remote: str,
        remote_name: str,
        remote_table: str | None,
        with_checkpoint: bool,
        fail_mode: str,
        remote_token: str | None = None,
        dupid: int | None = None,
        accept_gap: bool = False,
    ) -> Duplication:
        if fail_mode not in FAIL_MODES:
            raise InvalidArgumentError(f"fail_mode must be one of {FAIL_MODES}")
        if remote_token is not None and (not isinstance(remote_token, str) or not remote_token):
            raise InvalidTypeError("remote_token must be a non-empty str or None")
        if not isinstance(with_checkpoint, bool):
            raise InvalidTypeError("with_checkpoint must be a bool")
        if not isinstance(accept_gap, bool):
            raise InvalidTypeError("accept_gap must be a bool")
        remote_table = table if remote_table is None else remote_table
        if not isinstance(remote_table, str) or not remote_table:
            raise InvalidArgumentError("remote_table must be a non-empty str")
        partitions = self._env.tables.partitions(table)
        given_dupid = dupid
        with self._lock:
            for d in self._dups.values():
                if d.table_name == table and d.remote == remote and d.status != DupStatus.REMOVED:
                    raise with_fix(
                        DuplicationError(f"table {table!r} already duplicates to {remote} (dupid {d.dupid})"),
                        f"remove_dup {table} {d.dupid} first (or query_dup {table} -d: it may be running)",
                    )
            now = time.time()
            # the WAL after the current decrees is kept from the moment the record exists
            record = DupRecord(
                table=table,
                remote=remote,
                remote_name=remote_name,
                remote_table=remote_table,
                fail_mode=fail_mode,
                with_checkpoint=with_checkpoint,
                create_time=now,
                status=DupStatus.INIT,
                timeline=((str(DupStatus.INIT), now),),
                partitions=tuple(PartitionCheckpoint(confirmed=p.last_committed) for p in partitions),
                remote_token=remote_token or "",
                accept_gap=accept_gap,
            )
            dupid = self._add_record(record, dupid)
            dup = self._new(dupid, record)
            self._dups[dupid] = dup
            self._reindex()
        log.info(
            "duplication %s added: %s -> %s (%s)",
            dupid,
            table,
            remote,
            "with checkpoint" if with_checkpoint else "without checkpoint",
            extra=event(
                dupid=dupid, table=table, remote=remote, remote_table=remote_table, fail_mode=fail_mode
            ),
        )
        dup.start()
        if not with_checkpoint and given_dupid is None:
            # a follower that missed writes is refused before the caller goes on (when the
            # remote answers within moments; later, the duplication's error says it). A node
            # of a multi-node cluster keeps its run failed: the cluster's client judges it.
            dup.wait_started(START_JUDGED_WITHIN)
            if isinstance(dup.error, FollowerGapError):
                dup.remove()
                raise dup.error
        return dup

    def list(self, table: str | None = None) -> list[Duplication]:
        with self._lock:
            return [d for d in self._dups.values() if table is None or d.table_name == table]

    def get(self, dupid: int) -> Duplication:
        try:
            return self._dups[dupid]
        except KeyError:
            raise DuplicationNotFoundError(dupid) from None

    def active_for(self, table: str) -> list[Duplication]:
        return [d for d in self.list(table) if d.status != DupStatus.REMOVED]
