"""A cluster's duplications: add, find, resume after restart, WAL retention."""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

from ..errors import DuplicationError, DuplicationNotFoundError, InvalidArgumentError, InvalidTypeError
from .driver import Duplication, remote_opened
from .status import FAIL_MODES, DupStatus

if TYPE_CHECKING:
    from ..node.cluster import Cluster


class DuplicationCatalog:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._lock = threading.RLock()
        self._dups: dict[int, Duplication] = {}
        for key, rec in cluster.meta.get("duplications").items():
            if rec["status"] != DupStatus.REMOVED.value and cluster.has_table(rec["table"]):
                self._dups[int(key)] = Duplication(cluster, int(key), rec)
        self.install_retention()

    def start_all(self) -> None:
        for d in list(self._dups.values()):
            d.start()
        remote_opened(self.cluster.path)

    def stop_all(self) -> None:
        for d in list(self._dups.values()):
            d.stop()

    def install_retention(self) -> None:
        """Point every partition's WAL GC at the duplications' persisted confirmed decrees."""
        for name in [t.name for t in self.cluster.list_tables()]:
            table = self.cluster.table(name)
            for p in table.partitions:
                p.wal_retain_after = lambda n=name, i=p.pidx: self.retain_after(n, i)

    def retain_after(self, table: str, pidx: int) -> int | None:
        values = [
            v
            for d in list(self._dups.values())
            if d.table_name == table and (v := d.retain_after(pidx)) is not None
        ]
        return min(values) if values else None

    def add(
        self,
        table: str,
        remote: Any,
        remote_table: str | None,
        with_checkpoint: bool,
        fail_mode: str,
    ) -> Duplication:
        from ..node.cluster import Cluster

        c = self.cluster
        if isinstance(remote, Cluster):
            remote_path, remote_name = remote.path, remote.name
        elif isinstance(remote, (str, os.PathLike)):
            remote_path, remote_name = os.path.realpath(os.fspath(remote)), ""
        else:
            raise InvalidTypeError("remote is a pegasus_fast.Cluster or the path of one")
        if fail_mode not in FAIL_MODES:
            raise InvalidArgumentError(f"fail_mode must be one of {FAIL_MODES}")
        if not isinstance(with_checkpoint, bool):
            raise InvalidTypeError("with_checkpoint must be a bool")
        remote_table = table if remote_table is None else remote_table
        if not isinstance(remote_table, str) or not remote_table:
            raise InvalidArgumentError("remote_table must be a non-empty str")
        if remote_path == c.path:
            raise DuplicationError("a cluster cannot duplicate to itself")
        t = c.table(table)
        with self._lock:
            for d in self._dups.values():
                if d.table_name == table and d.remote_path == remote_path and d.status != DupStatus.REMOVED:
                    raise DuplicationError(
                        f"table {table!r} already duplicates to {remote_path} (dupid {d.dupid})"
                    )
            # the WAL after the current decrees is kept from the moment the record exists
            confirmed = [p.last_committed for p in t.partitions]

            def add(state: dict[str, Any]) -> int:
                dupid = state["next_dupid"]
                state["next_dupid"] += 1
                state["duplications"][str(dupid)] = {
                    "table": table,
                    "remote_path": remote_path,
                    "remote_name": remote_name,
                    "remote_table": remote_table,
                    "fail_mode": fail_mode,
                    "with_checkpoint": with_checkpoint,
                    "create_time": time.time(),
                    "status": DupStatus.INIT.value,
                    "timeline": [[str(DupStatus.INIT), time.time()]],
                    "partitions": [
                        {"kind": "", "decree": 0, "state": "pending", "confirmed": x} for x in confirmed
                    ],
                }
                return dupid

            dupid = c.meta.update(add)
            dup = Duplication(c, dupid, c.meta.get("duplications", str(dupid)))
            self._dups[dupid] = dup
        dup.start()
        return dup

    def list(self, table: str | None = None) -> list[Duplication]:
        with self._lock:
            return [d for d in self._dups.values() if table is None or d.table_name == table]

    def get(self, dupid: int) -> Duplication:
        try:
            return self._dups[dupid]
        except KeyError:
            raise DuplicationNotFoundError(dupid) from None

    def changed(self) -> None:
        with self._lock:
            self._dups = {k: d for k, d in self._dups.items() if d.status != DupStatus.REMOVED}

    def active_for(self, table: str) -> list[Duplication]:
        return [d for d in self.list(table) if d.status != DupStatus.REMOVED]
