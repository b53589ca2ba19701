"""Which tables of a cluster follow another cluster's duplication, and which of their
partitions have learned: the one place that changes it (durably first, then the partitions)."""

from __future__ import annotations

from collections.abc import Callable

from ..config import Config
from ..duplication.ports import SourceId
from ..errors import DuplicationError
from .meta import ClusterMeta, FollowerOf, TableRecord
from .opens import FOLLOWER_OPEN_DELAY, BackgroundOpens
from .table import Table
from .tables import Tables


class FollowerTables:
    """A cluster's follower bookkeeping, as the embedded follower and a node of a
    multi-node cluster use it."""

    def __init__(
        self,
        tables: Tables,
        meta: ClusterMeta,
        config: Config,
        opens: BackgroundOpens,
        changed: Callable[[str], object] = lambda name: None,
    ) -> None:
        self._tables = tables
        self._meta = meta
        self._config = config
        self._opens = opens
        #: told once a table's follower record changed (its role: engine/roles.py)
        self._changed = changed

    def record(self, name: str) -> TableRecord | None:
        """The table's metadata record, ``follower_of`` included (None: no such table)."""
        return self._tables.record(name)

    def create(self, name: str, partition_count: int, source: SourceId) -> Table:
        """A duplication's follower table, every partition learning. Its partitions' RocksDB
        open once they have learned (``mark_learned``), not when it is made."""
        table = self._tables.create(name, partition_count, None, follower_of=source)
        self._changed(name)
        return table

    def adopt(self, name: str, source: SourceId, source_partitions: int, continues: bool = False) -> None:
        """An existing table becomes the follower of a duplication without checkpoint; its
        partitions keep serving, and each source partition is marked learned once its start
        decree is set. Another partition count than the source's means re-routing.
        ``continues``: it followed this source table before (FollowerOf.continues)."""
        rec = self.record(name)
        assert rec is not None
        rerouted = source_partitions if source_partitions != rec.partition_count else 0
        self._meta.set_follower_of(
            name,
            FollowerOf(source, (False,) * source_partitions, rerouted, adopted=True, continues=continues),
        )
        self._changed(name)

    def promote(self, name: str, moved_env: str) -> None:
        """A switchover handed the table its source's writes: it follows no one now, and a fence
        an earlier switchover left on it (env ``moved_env``) goes. Persisted, then the table's
        gate opens (engine/roles.py)."""
        rec = self.record(name)
        if rec is None:
            return
        envs = {k: v for k, v in rec.envs.items() if k != moved_env}
        self._meta.set_follower_of(name, None, envs)  # one durable change
        self._changed(name)

    def retarget(self, name: str, source: SourceId) -> None:
        """A follower table that never finished learning, made by an earlier duplication of the
        same source table (one that failed and was removed), follows ``source`` from now on and
        learns every partition afresh: durably first, then the partitions that had learned stop
        serving (learn.py empties each before its new checkpoint goes in)."""
        rec = self.record(name)
        assert rec is not None and rec.follower_of is not None
        n = len(rec.follower_of.learned)
        had = [i for i, done in enumerate(rec.follower_of.learned) if done]
        self._meta.set_follower_of(name, FollowerOf(source, (False,) * n))
        table = self._tables.get(name)
        for pidx in had:
            table.partitions[pidx].restart_learning()

    def mark_learned(self, name: str, pidxs: list[int]) -> None:
        """Persist that follower partitions have their checkpoints, then let them serve."""
        self._meta.set_learned(name, pidxs)
        rec = self.record(name)
        if rec is not None and rec.follower_of is not None and rec.follower_of.rerouted:
            return  # the learned flags are the source's partitions; the table's keep serving
        table = self._tables.get(name)
        for pidx in pidxs:
            table.partitions[pidx].serve_learned()
        if self._config.open_rocksdb_eagerly:
            # In the background a moment after they serve: opening them now would hold up the
            # duplication's last steps, the caller waiting for DS_LOG and the first reads. A
            # read or write that comes first opens its partition itself (a learned snapshot
            # waits in the WAL until then).
            self._opens.open_later([table.partitions[pidx] for pidx in pidxs], FOLLOWER_OPEN_DELAY)

    def restart_learning(self, name: str, pidxs: list[int]) -> None:
        """Follower partitions learn again: not learned durably first, so a restart in between
        opens them learning (empty), never serving what they had."""
        rec = self.record(name)
        if rec is None or rec.follower_of is None:
            raise DuplicationError(f"table {name!r} is not a duplication's follower")
        if rec.follower_of.adopted:
            # its data is its own, not a checkpoint of the source's: learning again would wipe it
            raise DuplicationError(f"table {name!r} was adopted as it was: it never learns again")
        self._meta.set_learned(name, pidxs, learned=False)
        table = self._tables.get(name)
        for pidx in pidxs:
            table.partitions[pidx].restart_learning()


__all__ = ["FollowerTables"]
