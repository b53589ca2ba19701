"""A table of a multi-node cluster (``pf.connect("zk://...")``): each call sent to the owner of
its key's partition, and sent again when the configuration it was routed by is stale.

* a node answers :class:`NotOwnerError`: the client reads the partition's
  configuration again and retries once;
* a partition being handed over answers ``PartitionUnavailableError`` with
  state ``"moving"`` (nothing was written): the client reads again and
  retries until the move switches owner (at most :data:`MOVE_WAIT`);
* the owner cannot be reached: the client reads the configuration again; if
  the partition is still that node's, :class:`NodeUnavailableError` names the
  node and the partition (only that node's partitions are affected).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from kazoo.exceptions import NoNodeError

from ..coord.layout import TableConfig
from ..engine.table import PartitionStats, TableHealth, TableInfo
from ..errors import (
    NodeUnavailableError,
    NotOwnerError,
    PartitionUnavailableError,
    RemoteUnavailableError,
    TableNotFoundError,
)
from ..net import pegasus_fast_pb2 as pb
from ..storage.checkpoint import CheckpointInfo
from .remote_table import RemoteTable, partition_index
from .routed_data import RoutedDataApi
from .routing import Routing

#: how long a call waits for a partition's move to switch owner before it gives up
MOVE_WAIT = 5.0
_R = TypeVar("_R")


@dataclass(frozen=True)
class PartitionConfig:
    """One partition's replicas (:meth:`RoutedTable.replicas`): the primary that serves it and
    the secondaries every write reaches before it is acknowledged, under one ballot (it grows
    by one at each change of either)."""

    pidx: int
    primary: str
    secondaries: tuple[str, ...]
    ballot: int


def table_info(config: TableConfig) -> TableInfo:
    app = config.app
    return TableInfo(app.app_id, config.name, app.partition_count, "AVAILABLE", app.create_time, app.envs)


def each_owner(
    routing: Routing,
    name: str,
    cfg: TableConfig,
    fn: Callable[[str], list[_R]],
    key: Callable[[_R], int],
    unavailable: dict[int, PartitionUnavailableError] | None = None,
) -> list[_R]:
    """``fn(url)`` on every node owning a partition of table ``name``, each row (``key``: its
    partition) kept from its owner only, sorted by partition. With ``unavailable``, a partition
    that cannot answer (a bad configuration, its node down) is put there, pidx → its error,
    instead of raising."""
    out: list[_R] = []
    for p in cfg.partitions:
        if p.problem:
            exc = PartitionUnavailableError(name, p.pidx, f"bad configuration: {p.problem}")
            if unavailable is None:
                raise exc
            unavailable[p.pidx] = exc
    for node in sorted({p.owner for p in cfg.partitions if not p.problem}):
        mine = {p.pidx for p in cfg.partitions if p.owner == node and not p.problem}
        url = routing.routes.url_of(node)
        try:
            if url is None:
                raise NodeUnavailableError(name, min(mine), node, "", "not live in ZooKeeper")
            try:
                out.extend(x for x in fn(url) if key(x) in mine)
            except RemoteUnavailableError as exc:
                raise NodeUnavailableError(name, min(mine), node, url, exc.reason) from None
        except NodeUnavailableError as exc:
            if unavailable is None:
                raise
            for pidx in mine:
                unavailable[pidx] = NodeUnavailableError(name, pidx, exc.node, exc.url, exc.reason)
    return sorted(out, key=key)


class RoutedTable(RoutedDataApi):
    """A table of a multi-node cluster: the methods of :class:`pegasus_fast.Table`."""

    def __init__(self, routing: Routing, config: TableConfig) -> None:
        self._r = routing
        self.name = config.name
        self.app_id = config.app.app_id
        self.partition_count = config.app.partition_count
        self._seen = routing.routes.generation
        self._by_node: dict[str, RemoteTable] = {}
        self._info = table_info(config)

    def __repr__(self) -> str:
        return f"RoutedTable(name={self.name!r}, zk={self._r.spec!r}, partition_count={self.partition_count})"

    def partition_index(self, hash_key: object, sort_key: object = b"") -> int:
        return partition_index(hash_key, sort_key, self.partition_count)

    # -- routing ---------------------------------------------------------------------

    def _config(self, fresh: bool = False) -> TableConfig:
        self._r.check_open()
        generation = self._r.routes.generation
        if self._seen != generation:
            fresh = True
        if fresh:
            self._seen = generation
        return self._r.table(self.name, fresh)

    def _remote(self, url: str) -> RemoteTable:
        t = self._by_node.get(url)
        if t is None:
            t = self._by_node[url] = RemoteTable(self._r.conn(url), self._info)
        return t

    def _owner(self, pidx: int, fresh: bool = False) -> tuple[str, str]:
        routes = self._r.routes
        if fresh and self._seen == routes.generation:
            try:
                cfg = routes.partition(self.name, pidx)
            except NoNodeError:
                raise TableNotFoundError(self.name) from None
        else:
            cfg = self._config(fresh)
        pc = cfg.partitions[pidx]
        if pc.problem:
            raise PartitionUnavailableError(self.name, pidx, f"bad configuration: {pc.problem}")
        owner = pc.owner
        url = routes.url_of(owner)
        if url is None and not fresh:
            routes.refresh_nodes()
            url = routes.url_of(owner)
        if url is None:
            raise NodeUnavailableError(self.name, pidx, owner, "", "not live in ZooKeeper")
        return owner, url

    def _call(self, pidx: int, op: Callable[[str], _R]) -> _R:
        """``op(url)`` on the owner of partition ``pidx``, routed again as the module says."""
        deadline = None
        retried = False
        fresh = False
        while True:
            owner, url = self._owner(pidx, fresh)
            try:
                return op(url)
            except NotOwnerError as exc:
                fresh = True
                if exc.node != owner:
                    raise  # (a node answering for another id: not something a refresh fixes)
                # the configuration moved on, or the new owner has not read it yet: read it
                # again; the same owner twice means the node is behind, so wait for it
                if not retried:
                    retried = True
                    continue
                now = time.monotonic()
                deadline = deadline or now + MOVE_WAIT
                if now > deadline or self._owner(pidx, True)[0] != owner:
                    if now > deadline:
                        raise
                    continue
                time.sleep(0.001)
            except NodeUnavailableError:
                raise
            except PartitionUnavailableError as exc:
                if exc.state != "moving":
                    raise
                now = time.monotonic()
                deadline = deadline or now + MOVE_WAIT
                if now > deadline:
                    raise
                time.sleep(0.001)
                fresh = True
            except RemoteUnavailableError as exc:
                self._r.routes.refresh_nodes()
                new_owner, new_url = self._owner(pidx, True)
                if retried or (new_owner, new_url) == (owner, url):
                    raise NodeUnavailableError(self.name, pidx, owner, url, exc.reason) from None
                retried, fresh = True, False

    def _keyed(self, hash_key: object, sort_key: object, op: Callable[[RemoteTable], _R]) -> _R:
        return self._call(self.partition_index(hash_key, sort_key), lambda url: op(self._remote(url)))

    def _multi(self, hash_key: object, op: Callable[[RemoteTable], _R]) -> _R:
        # every record of one hash key lives in the partition of the hash key alone
        return self._call(self.partition_index(hash_key), lambda url: op(self._remote(url)))

    # -- records ----------------------------------------------------------------------

    def set(self, hash_key: object, sort_key: object, value: object, ttl_seconds: int | None = None) -> int:
        return self._keyed(hash_key, sort_key, lambda t: t.set(hash_key, sort_key, value, ttl_seconds))

    def delete(self, hash_key: object, sort_key: object) -> int:
        return self._keyed(hash_key, sort_key, lambda t: t.delete(hash_key, sort_key))

    def get(self, hash_key: object, sort_key: object) -> bytes | None:
        return self._keyed(hash_key, sort_key, lambda t: t.get(hash_key, sort_key))

    def multi_set(
        self, hash_key: object, values: Mapping[object, object], ttl_seconds: int | None = None
    ) -> int:
        return self._multi(hash_key, lambda t: t.multi_set(hash_key, values, ttl_seconds))

    def multi_delete(self, hash_key: object, sort_keys: Iterable[object]) -> int:
        keys = list(sort_keys) if not isinstance(sort_keys, (bytes, str)) else sort_keys
        return self._multi(hash_key, lambda t: t.multi_delete(hash_key, keys))

    def count(self) -> int:
        return sum(
            self._call(
                p,
                lambda url, p=p: (
                    self._r.conn(url)("Count", pb.TableRef(table=self.name, partitions=[p])).count
                ),
            )
            for p in range(self.partition_count)
        )

    def owners(self) -> list[str]:
        """The node id owning each partition, as last read from ZooKeeper."""
        return list(self._config().owners())

    def replicas(self) -> list[PartitionConfig]:
        """Each partition's primary, secondaries and ballot, read from ZooKeeper now."""
        cfg = self._config(fresh=True)
        return [PartitionConfig(p.pidx, p.owner, p.secondaries, p.ballot) for p in cfg.partitions]

    # -- per partition, from each owner ------------------------------------------------

    def _each_owner(
        self,
        fn: Callable[[RemoteTable], list[_R]],
        key: Callable[[_R], int],
        unavailable: dict[int, PartitionUnavailableError] | None = None,
    ) -> list[_R]:
        return each_owner(
            self._r, self.name, self._config(), lambda url: fn(self._remote(url)), key, unavailable
        )

    def checkpoint(self) -> list[CheckpointInfo]:
        return self._each_owner(lambda t: t.checkpoint(), lambda c: c.pidx)

    def partition_stats(
        self, unavailable: dict[int, PartitionUnavailableError] | None = None
    ) -> list[PartitionStats]:
        """Each partition's stats, from its owner. With ``unavailable``, the partitions that
        cannot answer are put there (pidx → error) and left out, instead of raising."""
        return self._each_owner(lambda t: t.partition_stats(), lambda s: s.pidx, unavailable)

    def health(self, unavailable: dict[int, PartitionUnavailableError] | None = None) -> TableHealth:
        """As :meth:`partition_stats`: with ``unavailable``, a partition that cannot answer
        counts as unhealthy, its state ``unavailable``, instead of raising."""
        gone: dict[int, PartitionUnavailableError] = {}
        states = self._each_owner(lambda t: t.health().partitions, lambda s: s[0], gone)
        if gone and unavailable is None:
            raise gone[min(gone)]
        if unavailable is not None:
            unavailable.update(gone)
        states = sorted(states + [(pidx, "unavailable") for pidx in gone])
        cfg = self._config()
        if cfg.app.replica_count <= 1:
            sick = sum(1 for _, s in states if s != "serving")
            return TableHealth(len(states) - sick, sick, sick, sick, states)
        # replicas, as Pegasus counts them: fully healthy with a serving primary and every
        # replica live; write-unhealthy without a primary, or with fewer than two replicas
        # live (Pegasus's mutation_2pc_min_replica_count); read-unhealthy without a primary
        self._r.routes.refresh_nodes()
        live = self._r.routes.nodes
        need = min(2, cfg.app.replica_count)
        full = unhealthy = write = read = 0
        for pidx, state in states:
            pc = cfg.partitions[pidx]
            primary = state == "serving" and pc.owner in live
            count = sum(1 for n in pc.replicas if n in live)
            if primary and count >= cfg.app.replica_count:
                full += 1
            else:
                unhealthy += 1
            write += not primary or count < need
            read += not primary
        return TableHealth(full, unhealthy, write, read, states)

    def count_each(self) -> dict[int, int | PartitionUnavailableError]:
        """Each partition's record count, or the error of a partition that cannot answer."""
        out: dict[int, int | PartitionUnavailableError] = {}
        for p in range(self.partition_count):
            try:
                out[p] = self._call(
                    p,
                    lambda url, p=p: (
                        self._r.conn(url)("Count", pb.TableRef(table=self.name, partitions=[p])).count
                    ),
                )
            except PartitionUnavailableError as exc:
                out[p] = exc
        return out

    def close(self) -> None:
        """Nothing to release: the connections are the cluster's."""


__all__ = ["MOVE_WAIT", "PartitionConfig", "RoutedTable", "each_owner", "table_info"]
