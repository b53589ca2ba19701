"""The table-role half of an embedded cluster (issue #21 §2, §3), a mixin of Cluster: each
table's role and its envs, and switching a duplication's table over to its follower."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from ..duplication.ports import SourceId
from ..errors import PegasusFastError
from ..storage.partition import SERVING
from . import switchover, takeover
from .envs import validate_envs
from .remotes import Remotes
from .roles import MOVED_TO_ENV, DupView, TableRole, TableRoles
from .switchover import SwitchoverReport
from .table import Table, TableInfo

if TYPE_CHECKING:
    from ..config import Config
    from ..duplication.catalog import DuplicationCatalog
    from .meta import ClusterMeta
    from .tables import Tables

log = logging.getLogger(__name__)


class ClusterRoles:
    config: Config
    meta: ClusterMeta
    roles: TableRoles
    _remotes: Remotes
    _dups: DuplicationCatalog
    _tables: Tables
    _lock: threading.RLock

    if TYPE_CHECKING:

        def _check_open(self) -> None: ...

        def table(self, name: str) -> Table: ...

        def table_info(self, name: str) -> TableInfo: ...

    @property
    def remotes(self) -> Remotes:
        """How this cluster reaches its duplications' followers (engine/remotes.py)."""
        return self._remotes

    def switchover(
        self,
        dupid: int,
        timeout: float = 30.0,
        reverse_remote: str | None = None,
        reverse_token: str | None = None,
    ) -> SwitchoverReport:
        """Hand the duplication's table over to its follower, nothing lost, and make this
        cluster follow it (engine/switchover.py; also ``Duplication.switchover``)."""
        self._check_open()
        return switchover.switchover(self, dupid, timeout, reverse_remote, reverse_token)

    def take_over(
        self,
        table: str,
        source: SourceId,
        decrees: dict[int, int],
        back_remote: str,
        back_token: str | None = None,
    ) -> tuple[int, dict[int, int]]:
        """The follower's half of a switchover (engine/takeover.py)."""
        self._check_open()
        return takeover.take_over(self, table, source, decrees, back_remote, back_token)

    def _dup_views(self, table: str) -> list[DupView]:
        return [DupView(d.dupid, d.remote_name, d.remote_table) for d in self._dups.active_for(table)]

    def table_role(self, name: str) -> TableRole:
        """The table's part in duplication (plain, source, follower, master-master) and
        whether it takes client writes."""
        self._check_open()
        self.table(name)
        return self.roles.role(name)

    def set_table_envs(self, name: str, envs: dict[str, str], delete: tuple[str, ...] = ()) -> TableInfo:
        """Set (and delete) table envs, Pegasus's ``set_app_envs`` / ``del_app_envs``; a role
        env (``duplication.follower_writable``, ``duplication.moved_to``) takes effect at once."""
        with self._lock:
            self._check_open()
            self.table(name)
            rec = self._tables.record(name)
            assert rec is not None
            merged = {k: v for k, v in rec.envs.items() if k not in set(delete)}
            merged.update(validate_envs(envs))
            self.meta.set_envs(name, validate_envs(merged, self.config.max_env_bytes_per_table))
            self.roles.refresh(name)
        return self.table_info(name)

    def adopt_table_envs(self, name: str, envs: dict[str, str]) -> bool:
        """Make the table's envs exactly ``envs``, as a multi-node cluster's meta leader set
        them (multinode/table_envs.py: checked there against its limits); a role env takes
        effect at once. Returns whether anything changed."""
        with self._lock:
            self._check_open()
            self.table(name)
            rec = self._tables.record(name)
            assert rec is not None
            wanted = validate_envs(envs)
            if rec.envs == wanted:
                return False
            self.meta.set_envs(name, wanted)
            decrees = self.roles.refresh(name)
            fenced = MOVED_TO_ENV in wanted and MOVED_TO_ENV not in rec.envs
        if fenced:
            # a switchover's fence (multinode/switchover.py): every write logged before the gate
            # is made durable before the leader asks for the fenced decrees
            for p in self.table(name).partitions:
                if decrees.get(p.pidx, 0) > 0 and p.state is SERVING:
                    try:
                        p.sync_wal()
                    except (OSError, PegasusFastError) as exc:  # one this node does not serve
                        log.warning("table %s partition %d: WAL sync at the fence: %s", name, p.pidx, exc)
        return True


__all__ = ["ClusterRoles"]
