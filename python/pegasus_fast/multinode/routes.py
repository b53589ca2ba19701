"""Where a multi-node cluster's partitions are: each table's owners and the live nodes' URLs, as
last read from ZooKeeper (coord/), shared by everything that routes a call to an owner.

The ``zk://`` client (client/routed*.py) holds one :class:`Routes` per
cluster; a duplication into a ``zk://`` cluster (routed_follower.py) one per
connection. It is a cache: a caller reads a table or a partition again
(``fresh``, or :meth:`forget`) when an owner says it is not the owner, or
when :attr:`generation` moved on (the leader bumped ``/config``, watched).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from kazoo.client import KazooClient

from ..coord.layout import CONFIG, NodeDoc, PartitionConfig, TableConfig, partition_path
from ..coord.zk import read_leader, read_nodes, read_table
from ..errors import PartitionUnavailableError, RemoteUnavailableError

#: how long a read of the live nodes routes calls (seconds): a call that fails on a node forgets
#: it sooner (:meth:`Routes.forget`), and an owner missing from it has them read again at once
NODES_FRESH = 1.0


class Routes:
    def __init__(self, zk: KazooClient, spec: str, watch: bool = True) -> None:
        """``watch``: count the bumps of ``/config`` (one watch for as long as the session
        lives: for a long-lived holder, such as a client, not one per call)."""
        self.zk = zk
        self.spec = spec
        self.url = f"zk://{spec}"
        #: the live nodes as last read (:meth:`refresh_nodes`)
        self.nodes: dict[str, NodeDoc] = {}
        #: when they were read (monotonic; 0: to be read again)
        self._nodes_at = 0.0
        self.tables: dict[str, TableConfig] = {}
        #: counts the leader's bumps of ``/config``: a table read before the last one may be stale
        self.generation = 0
        self._lock = threading.Lock()
        if watch:
            zk.DataWatch(CONFIG, self._changed)

    def _changed(self, data: Any, stat: Any) -> None:
        with self._lock:
            self.generation += 1  # tables re-read on their next call

    def refresh_nodes(self) -> None:
        self.nodes = read_nodes(self.zk)
        self._nodes_at = time.monotonic()

    def _fresh_nodes(self) -> bool:
        """The live nodes as read at most NODES_FRESH ago (True), or read now (False)."""
        if self._nodes_at and time.monotonic() - self._nodes_at < NODES_FRESH:
            return True
        self.refresh_nodes()
        return False

    def url_of(self, node: str) -> str | None:
        doc = self.nodes.get(node)
        return doc.url if doc else None

    def leader_url(self) -> str | None:
        """The meta leader's URL, read now."""
        doc = read_leader(self.zk)
        return doc.url if doc else None

    def table(self, name: str, fresh: bool = False) -> TableConfig:
        tc = self.tables.get(name)
        if tc is None or fresh:
            tc = self.tables[name] = read_table(self.zk, name)
        return tc

    def forget(self, name: str) -> None:
        """The table is read again on its next use (a call met a move, a down node, a drop),
        and so are the live nodes."""
        self.tables.pop(name, None)
        self._nodes_at = 0.0

    def partition(self, name: str, pidx: int) -> TableConfig:
        """The table's configuration with partition ``pidx`` read again (one znode, not the
        whole table: what a call that met a move needs)."""
        tc = self.table(name)
        raw, stat = self.zk.get(partition_path(name, pidx))
        parts = list(tc.partitions)
        parts[pidx] = PartitionConfig.read(pidx, raw, stat.version, partition_path(name, pidx))
        tc = self.tables[name] = replace(tc, partitions=tuple(parts))
        return tc

    def owner_urls(self, name: str, pidxs: Iterable[int]) -> dict[str, list[int]]:
        """Owner URL → the partitions of ``pidxs`` it owns, among the live nodes read at most
        NODES_FRESH ago, or read now if they lack an owner (an owner that is not live:
        RemoteUnavailableError, as a duplication retries it). A duplication routes every
        shipped batch here: reading the nodes each time cost ZooKeeper round trips per batch."""
        cfg = self.table(name)
        pidxs = list(pidxs)
        cached = self._fresh_nodes()
        try:
            return self._owners(name, cfg, pidxs)
        except RemoteUnavailableError:
            if not cached:
                raise
            self.refresh_nodes()
            return self._owners(name, cfg, pidxs)

    def _owners(self, name: str, cfg: TableConfig, pidxs: Iterable[int]) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for pidx in pidxs:
            if not 0 <= pidx < len(cfg.partitions):
                raise PartitionUnavailableError(name, pidx, "no such partition on the follower")
            pc = cfg.partitions[pidx]
            if pc.problem:
                raise PartitionUnavailableError(name, pidx, f"bad configuration: {pc.problem}")
            owner = pc.owner
            url = self.url_of(owner)
            if url is None:
                raise RemoteUnavailableError(self.url, f"node {owner} owning {name}.{pidx} is not live")
            out.setdefault(url, []).append(pidx)
        return out


__all__ = ["Routes"]
