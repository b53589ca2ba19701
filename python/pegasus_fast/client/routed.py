"""``pf.connect("zk://HOST:PORT/CHROOT")``: a multi-node cluster, each key sent to its owner.

The client reads the cluster's configuration from ZooKeeper (coord/layout.py)
and watches its ``/config`` counter; each call goes to the node that owns
the key's partition (Pegasus's hash, the same as a single-machine table's).
When the configuration it holds is stale:

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

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from ..coord.layout import CONFIG, NodeDoc, PartitionConfig, PartitionDoc, TableConfig, partition_path
from ..coord.zk import connect as zk_connect
from ..coord.zk import list_tables, parse_zk, read_dups, read_leader, read_nodes, read_table
from ..engine.cluster import ClusterInfo
from ..engine.table import PartitionStats, TableHealth, TableInfo
from ..errors import (
    ClosedError,
    DuplicationNotFoundError,
    InvalidArgumentError,
    InvalidTypeError,
    NodeUnavailableError,
    NotLeaderError,
    NotOwnerError,
    PartitionUnavailableError,
    RemoteUnavailableError,
    TableNotFoundError,
)
from ..net import pegasus_fast_pb2 as pb
from ..net.wire import parse_url, token_from_env
from ..storage.checkpoint import CheckpointInfo
from . import args
from .remote import DEFAULT_TIMEOUT, RemoteTable, _Conn
from .routed_dup import RoutedDuplication

#: how long a call waits for a partition's move to switch owner before it gives up
MOVE_WAIT = 5.0
_R = TypeVar("_R")


class _Routes:
    """The configuration a client holds, and one connection per node."""

    def __init__(
        self, zk: KazooClient, spec: str, token: str | None, timeout: float, tls: dict[str, Any]
    ) -> None:
        self.zk = zk
        self.spec = spec
        self.token = token
        self.timeout = timeout
        self.tls = tls
        self.lock = threading.Lock()
        self.nodes: dict[str, NodeDoc] = read_nodes(zk)
        self.conns: dict[str, _Conn] = {}
        self.tables: dict[str, TableConfig] = {}
        self.generation = 0
        self.closed = False
        zk.DataWatch(CONFIG, self._changed)

    def _changed(self, data: Any, stat: Any) -> None:
        self.generation += 1  # tables re-read on their next call

    def conn(self, url: str) -> _Conn:
        c = self.conns.get(url)
        if c is None:
            with self.lock:
                c = self.conns.get(url)
                if c is None:
                    c = self.conns[url] = _Conn(parse_url(url), self.token, self.timeout, self.tls)
        return c

    def refresh_nodes(self) -> None:
        self.nodes = read_nodes(self.zk)

    def table(self, name: str, fresh: bool = False) -> TableConfig:
        tc = self.tables.get(name)
        if tc is None or fresh:
            tc = self.tables[name] = read_table(self.zk, name)
        return tc

    def partition(self, name: str, pidx: int) -> TableConfig:
        """The table's configuration with partition ``pidx`` read again (one znode, not the
        whole table: what a call that met a move needs)."""
        tc = self.table(name)
        raw, stat = self.zk.get(partition_path(name, pidx))
        doc = PartitionDoc.decode(raw, partition_path(name, pidx))
        parts = list(tc.partitions)
        parts[pidx] = PartitionConfig(pidx, doc.owner, doc.ballot, doc.decree, stat.version)
        tc = self.tables[name] = replace(tc, partitions=tuple(parts))
        return tc

    def url_of(self, node: str) -> str | None:
        doc = self.nodes.get(node)
        return doc.url if doc else None

    def leader(self) -> _Conn:
        doc = read_leader(self.zk)
        if doc is None:
            raise NotLeaderError("", None)
        return self.conn(doc.url)

    def close(self) -> None:
        self.closed = True
        for c in self.conns.values():
            c.closed = True
            c.channel.close()


class RoutedTable:
    """A table of a multi-node cluster: the methods of :class:`pegasus_fast.Table`."""

    def __init__(self, routes: _Routes, config: TableConfig) -> None:
        self._r = routes
        self.name = config.name
        self.app_id = config.app.app_id
        self.partition_count = config.app.partition_count
        self._seen = routes.generation
        self._by_node: dict[str, RemoteTable] = {}
        info = TableInfo(
            self.app_id, self.name, self.partition_count, "AVAILABLE", config.app.create_time, config.app.envs
        )
        self._info = info
        self._proto = RemoteTable.__new__(RemoteTable)  # key checks and hashing, no connection
        self._proto.name, self._proto.partition_count = self.name, self.partition_count

    def __repr__(self) -> str:
        return f"RoutedTable(name={self.name!r}, zk={self._r.spec!r}, partition_count={self.partition_count})"

    def partition_index(self, hash_key: object, sort_key: object = b"") -> int:
        return self._proto.partition_index(hash_key, sort_key)

    # -- routing ---------------------------------------------------------------------

    def _config(self, fresh: bool = False) -> TableConfig:
        if self._r.closed:
            raise ClosedError(f"the connection to {self._r.spec} is closed")
        if self._seen != self._r.generation:
            fresh = True
        if fresh:
            self._seen = self._r.generation
        return self._r.table(self.name, fresh)

    def _remote(self, url: str) -> RemoteTable:
        t = self._by_node.get(url)
        if t is None:
            t = self._by_node[url] = RemoteTable(self._r.conn(url), self._info)
        return t

    def _owner(self, pidx: int, fresh: bool = False) -> tuple[str, str]:
        if fresh and self._seen == self._r.generation:
            try:
                cfg = self._r.partition(self.name, pidx)
            except NoNodeError:
                raise TableNotFoundError(self.name) from None
        else:
            cfg = self._config(fresh)
        owner = cfg.partitions[pidx].owner
        url = self._r.url_of(owner)
        if url is None and not fresh:
            self._r.refresh_nodes()
            url = self._r.url_of(owner)
        if url is None:
            raise NodeUnavailableError(self.name, pidx, owner, "", "not live in ZooKeeper")
        return owner, url

    def _call(self, pidx: int, op: Callable[[RemoteTable], _R]) -> _R:
        deadline = None
        retried = False
        fresh = False
        while True:
            owner, url = self._owner(pidx, fresh)
            try:
                return op(self._remote(url))
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
                self._r.refresh_nodes()
                new_owner, new_url = self._owner(pidx, True)
                if retried or (new_owner, new_url) == (owner, url):
                    raise NodeUnavailableError(self.name, pidx, owner, url, exc.reason) from None
                retried, fresh = True, False

    def _keyed(self, hash_key: object, sort_key: object, op: Callable[[RemoteTable], _R]) -> _R:
        return self._call(self.partition_index(hash_key, sort_key), op)

    def _multi(self, hash_key: object, op: Callable[[RemoteTable], _R]) -> _R:
        # every record of one hash key lives in the partition of the hash key alone
        return self._call(self.partition_index(hash_key), op)

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

    def multi_get(self, hash_key: object, sort_keys: Iterable[object] | None = None) -> dict[bytes, bytes]:
        keys = (
            list(sort_keys)
            if sort_keys is not None and not isinstance(sort_keys, (bytes, str))
            else sort_keys
        )
        return self._multi(hash_key, lambda t: t.multi_get(hash_key, keys))

    def scan(self) -> Iterator[tuple[bytes, bytes, bytes]]:
        """Every live record, partition by partition (each from its owner), in key order within each."""
        for pidx in range(self.partition_count):
            batches = self._call(
                pidx,
                lambda t, p=pidx: list(t._c.stream("Scan", pb.TableRef(table=self.name, partitions=[p]))),
            )
            for batch in batches:
                for r in batch.records:
                    yield r.hash_key, r.sort_key, r.value

    def count(self) -> int:
        return sum(
            self._call(p, lambda t, p=p: t._c("Count", pb.TableRef(table=self.name, partitions=[p])).count)
            for p in range(self.partition_count)
        )

    def owners(self) -> list[str]:
        """The node id owning each partition, as last read from ZooKeeper."""
        return list(self._config().owners())

    # -- per partition, from each owner ------------------------------------------------

    def _each_owner(self, fn: Callable[[RemoteTable], list[_R]], key: Callable[[_R], int]) -> list[_R]:
        cfg = self._config()
        out: list[_R] = []
        for node in sorted({p.owner for p in cfg.partitions}):
            mine = {p.pidx for p in cfg.partitions if p.owner == node}
            url = self._r.url_of(node)
            if url is None:
                raise NodeUnavailableError(self.name, min(mine), node, "", "not live in ZooKeeper")
            try:
                out.extend(x for x in fn(self._remote(url)) if key(x) in mine)
            except RemoteUnavailableError as exc:
                raise NodeUnavailableError(self.name, min(mine), node, url, exc.reason) from None
        return sorted(out, key=key)

    def checkpoint(self) -> list[CheckpointInfo]:
        return self._each_owner(lambda t: t.checkpoint(), lambda c: c.pidx)

    def partition_stats(self) -> list[PartitionStats]:
        return self._each_owner(lambda t: t.partition_stats(), lambda s: s.pidx)

    def health(self) -> TableHealth:
        states = self._each_owner(lambda t: t.health().partitions, lambda s: s[0])
        sick = sum(1 for _, s in states if s != "serving")
        return TableHealth(len(states) - sick, sick, sick, sick, states)

    def close(self) -> None:
        """Nothing to release: the connections are the cluster's."""


class RoutedCluster:
    """A multi-node cluster (``pf.connect("zk://...")``): the methods of :class:`RemoteCluster`
    for tables and records, plus :meth:`move_partition`, :meth:`balance` and :meth:`nodes`."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        tls_ca: str | None = None,
        timeout: float | None = None,
        *,
        tls_cert: str | None = None,
        tls_key: str | None = None,
    ) -> None:
        addr = parse_zk(url)
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
        ):
            raise InvalidArgumentError("timeout is a positive number of seconds")
        if token is not None and not isinstance(token, str):
            raise InvalidTypeError("token is a str")
        self.url = addr.url
        zk = zk_connect(addr)
        try:
            self._r = _Routes(
                zk,
                addr.spec,
                token if token is not None else token_from_env(),
                float(timeout) if timeout is not None else DEFAULT_TIMEOUT,
                {"tls_ca": tls_ca, "tls_cert": tls_cert, "tls_key": tls_key},
            )
        except BaseException:
            zk.stop()
            zk.close()
            raise
        self._zk = zk

    def __enter__(self) -> RoutedCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RoutedCluster(url={self.url!r})"

    @property
    def closed(self) -> bool:
        return self._r.closed

    def close(self) -> None:
        if not self._r.closed:
            self._r.close()
            self._zk.stop()
            self._zk.close()

    def _check(self) -> None:
        if self._r.closed:
            raise ClosedError(f"the connection to {self.url} is closed")

    def info(self) -> ClusterInfo:
        self._check()
        r = self._r.leader()("Info", pb.Empty())
        return ClusterInfo(r.name, r.cluster_id, r.cluster_id_derived, r.uid, self.url, r.backend)

    @property
    def name(self) -> str:
        return self.info().name

    def nodes(self) -> dict[str, str]:
        """The live nodes: node id → URL."""
        self._check()
        self._r.refresh_nodes()
        return {n: d.url for n, d in sorted(self._r.nodes.items())}

    # -- tables (placement is the meta leader's) ---------------------------------------

    def _meta(self, method: str, request: object, timeout: float = 3600.0) -> Any:
        self._check()
        return self._r.leader().meta_call(method, request, timeout)

    def create_table(
        self, name: str, partition_count: int = 8, envs: dict[str, str] | None = None
    ) -> RoutedTable:
        req = args.create_table_request(name, partition_count, envs)
        self._meta("CreateTable", req, 120.0)
        return self.table(name)

    def table(self, name: str) -> RoutedTable:
        self._check()
        if not isinstance(name, str):
            raise InvalidTypeError("a table name is a str")
        return RoutedTable(self._r, self._r.table(name, fresh=True))

    def table_info(self, name: str) -> TableInfo:
        return self.table(name)._info

    def has_table(self, name: str) -> bool:
        self._check()
        return name in list_tables(self._zk)

    def list_tables(self) -> list[TableInfo]:
        self._check()
        out = []
        for name in list_tables(self._zk):
            try:
                out.append(self.table_info(name))
            except TableNotFoundError:
                continue
        return out

    def drop_table(self, name: str) -> None:
        if not isinstance(name, str):
            raise InvalidTypeError("a table name is a str")
        self._meta("DropTable", pb.TableRef(table=name), 120.0)
        self._r.tables.pop(name, None)

    def move_partition(self, table: str, pidx: int, node: str) -> int:
        """Move partition ``pidx`` of ``table`` to ``node`` while writes go on; returns the
        decree at which ownership switched."""
        if not isinstance(table, str) or not isinstance(node, str):
            raise InvalidTypeError("table and node are str")
        if isinstance(pidx, bool) or not isinstance(pidx, int) or not 0 <= pidx < 1 << 32:
            raise InvalidTypeError("pidx is a non-negative int")
        return self._meta("MovePartition", pb.MovePartitionRequest(table=table, pidx=pidx, node=node)).decree

    def balance(self) -> list[tuple[str, int, str]]:
        """Move partitions until every live node owns an even share; returns the moves made."""
        r = self._meta("Balance", pb.Empty())
        return [(m.table, m.pidx, m.node) for m in r.moves]

    def compact(self, name: str) -> None:
        """Manual compaction of a table on every node that owns a partition of it."""
        t = self.table(name)

        def one(rt: RemoteTable) -> list[int]:
            rt._c("Compact", pb.TableRef(table=name), timeout=3600.0)
            return []

        t._each_owner(one, lambda x: x)

    # -- duplications (each partition ships from its owner) -------------------------------

    def add_duplication(
        self,
        table: str,
        remote: str,
        remote_table: str | None = None,
        with_checkpoint: bool = True,
        fail_mode: str = "slow",
        *,
        remote_token: str | None = None,
    ) -> RoutedDuplication:
        """Duplicate ``table`` to the served cluster at ``remote`` (a pegasus:// URL): every
        node ships the partitions it owns, and a move carries the shipping over."""
        req = args.add_duplication_request(
            "a multi-node cluster", table, remote, remote_table, with_checkpoint, fail_mode, remote_token
        )
        return self.duplication(self._meta("AddDuplication", req, 120.0).dupid)

    def duplications(self, table: str | None = None) -> list[RoutedDuplication]:
        self._check()
        if table is not None and not isinstance(table, str):
            raise InvalidTypeError("table is a str")
        return [
            RoutedDuplication(self, dupid, d.table, d.remote, d.remote_table)
            for dupid, d in sorted(read_dups(self._zk).items())
            if table is None or d.table == table
        ]

    def duplication(self, dupid: int) -> RoutedDuplication:
        self._check()
        if isinstance(dupid, bool) or not isinstance(dupid, int) or not 0 <= dupid < 1 << 62:
            raise InvalidTypeError("dupid is a non-negative int")
        d = read_dups(self._zk).get(dupid)
        if d is None:
            raise DuplicationNotFoundError(dupid)
        return RoutedDuplication(self, dupid, d.table, d.remote, d.remote_table)


__all__ = ["MOVE_WAIT", "RoutedCluster", "RoutedTable"]
