"""``pf.connect("zk://HOST:PORT/CHROOT")``: a multi-node cluster, each key sent to its owner.

The client reads the cluster's configuration from ZooKeeper (coord/layout.py)
and watches its ``/config`` counter (multinode/routes.py); each call goes to
the node that owns the key's partition (Pegasus's hash, the same as a
single-machine table's), and is routed again when that configuration is stale
(routed_table.py). Tables are made, dropped and moved by the meta leader.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..coord.auth import auth_of
from ..coord.layout import DupDoc
from ..coord.zk import connect as zk_connect
from ..coord.zk import list_tables, parse_zk, read_dups
from ..duplication.catalog import START_JUDGED_WITHIN
from ..duplication.record import check_dupid
from ..engine.cluster import ClusterInfo
from ..engine.envs import validate_envs
from ..engine.roles import TableRole
from ..engine.table import TableInfo
from ..errors import DuplicationNotFoundError, InvalidArgumentError, InvalidTypeError, TableNotFoundError
from ..multinode.table_envs import check_delete, table_role
from ..net import pegasus_fast_pb2 as pb
from ..net.wire import token_from_env
from . import args
from .conn import DEFAULT_TIMEOUT
from .routed_dup import RoutedDuplication
from .routed_table import MOVE_WAIT, RoutedTable, each_owner, table_info
from .routing import Routing


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
        zk_auth_file: str | None = None,
    ) -> None:
        addr = parse_zk(url)
        if zk_auth_file is not None and not isinstance(zk_auth_file, str):
            raise InvalidTypeError("zk_auth_file is a str")
        auth = auth_of(zk_auth_file)
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
        ):
            raise InvalidArgumentError("timeout is a positive number of seconds")
        if token is not None and not isinstance(token, str):
            raise InvalidTypeError("token is a str")
        self.url = addr.url
        zk = zk_connect(addr, auth=auth)
        try:
            self._r = Routing(
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
        self._r.check_open()

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
        self._r.routes.refresh_nodes()
        return {n: d.url for n, d in sorted(self._r.routes.nodes.items())}

    # -- tables (placement is the meta leader's) ---------------------------------------

    def _meta(self, method: str, request: object, timeout: float = 3600.0) -> Any:
        return self._r.meta(method, request, timeout)

    def create_table(
        self,
        name: str,
        partition_count: int = 8,
        envs: dict[str, str] | None = None,
        replica_count: int | None = None,
    ) -> RoutedTable:
        """A table of ``partition_count`` partitions, each kept by ``replica_count`` nodes (1..5,
        each on another node; None: the leader's ``Config.default_replica_count``, at most the
        live nodes): a primary that acknowledges a write once every replica holds it durably."""
        req = args.create_table_request(name, partition_count, envs, replica_count)
        self._meta("CreateTable", req, 120.0)
        return self.table(name)

    def table(self, name: str) -> RoutedTable:
        self._check()
        if not isinstance(name, str):
            raise InvalidTypeError("a table name is a str")
        return RoutedTable(self._r, self._r.table(name, fresh=True))

    def table_info(self, name: str) -> TableInfo:
        self._check()
        if not isinstance(name, str):
            raise InvalidTypeError("a table name is a str")
        return self._info(name, read_dups(self._zk))

    def _info(self, name: str, dups: dict[int, DupDoc]) -> TableInfo:
        """The table's info and its role (``dups``: the cluster's duplications, as read)."""
        cfg = self._r.table(name, fresh=True)
        return replace(table_info(cfg), role=table_role(cfg, dups))

    def table_role(self, name: str) -> TableRole:
        """The table's part in duplication and whether it takes client writes (engine/roles.py),
        from its znode and the cluster's duplications."""
        info = self.table_info(name)
        assert info.role is not None
        return info.role

    def set_table_envs(self, name: str, envs: dict[str, str], delete: tuple[str, ...] = ()) -> TableInfo:
        """Set (and delete) table envs (Pegasus's set_app_envs / del_app_envs) through the meta
        leader; returns once every live node applies them (multinode/table_envs.py)."""
        self._check()
        if not isinstance(name, str):
            raise InvalidTypeError("a table name is a str")
        req = pb.SetTableEnvsRequest(table=name, envs=validate_envs(envs), delete=list(check_delete(delete)))
        self._meta("SetTableEnvs", req, 120.0)
        return self.table_info(name)

    def has_table(self, name: str) -> bool:
        self._check()
        return name in list_tables(self._zk)

    def list_tables(self) -> list[TableInfo]:
        self._check()
        out = []
        dups = read_dups(self._zk)
        for name in list_tables(self._zk):
            try:
                out.append(self._info(name, dups))
            except TableNotFoundError:
                continue
        return out

    def drop_table(self, name: str) -> None:
        if not isinstance(name, str):
            raise InvalidTypeError("a table name is a str")
        self._meta("DropTable", pb.TableRef(table=name), 120.0)
        self._r.routes.forget(name)

    def move_partition(self, table: str, pidx: int, node: str, from_node: str | None = None) -> int:
        """Move partition ``pidx`` of ``table`` to ``node`` while writes go on; returns the
        decree at which ownership switched. ``from_node``: move the partition's replica on that
        node instead, one of its secondaries (``node`` learns it from the primary, then takes
        its place; returns the decree it learned); its primary's node, or None: the primary."""
        if not isinstance(table, str) or not isinstance(node, str):
            raise InvalidTypeError("table and node are str")
        if from_node is not None and not isinstance(from_node, str):
            raise InvalidTypeError("from_node is a str or None")
        if isinstance(pidx, bool) or not isinstance(pidx, int) or not 0 <= pidx < 1 << 32:
            raise InvalidTypeError("pidx is a non-negative int")
        req = pb.MovePartitionRequest(table=table, pidx=pidx, node=node, from_node=from_node or "")
        return self._meta("MovePartition", req).decree

    def balance(self) -> list[tuple[str, int, str]]:
        """Move partitions until every live node holds an even share of primaries (a switch of
        roles with a secondary where it can) and of replicas; returns the moves made, each
        ``(table, pidx, node)``: the partition's primary, or one of its secondaries, to ``node``."""
        r = self._meta("Balance", pb.Empty())
        return [(m.table, m.pidx, m.node) for m in r.moves]

    def compact(self, name: str) -> None:
        """Manual compaction of a table on every node that owns a partition of it."""
        self._check()
        if not isinstance(name, str):
            raise InvalidTypeError("a table name is a str")

        def one(url: str) -> list[int]:
            self._r.conn(url)("Compact", pb.TableRef(table=name), timeout=3600.0)
            return []

        each_owner(self._r, name, self._r.table(name, fresh=True), one, lambda x: x)

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
        accept_gap: bool = False,
    ) -> RoutedDuplication:
        """Duplicate ``table`` to the served cluster at ``remote`` (a pegasus:// URL): every
        node ships the partitions it owns, and a move carries the shipping over."""
        req = args.add_duplication_request(
            "a multi-node cluster",
            table,
            remote,
            remote_table,
            with_checkpoint,
            fail_mode,
            remote_token,
            accept_gap,
        )
        d = self.duplication(self._meta("AddDuplication", req, 120.0).dupid)
        if not with_checkpoint:
            d.judge_start(START_JUDGED_WITHIN)  # FollowerGapError: a follower that missed writes
        return d

    def duplications(self, table: str | None = None) -> list[RoutedDuplication]:
        self._check()
        if table is not None and not isinstance(table, str):
            raise InvalidTypeError("table is a str")
        return [
            RoutedDuplication(self._r, dupid, d.table, d.remote, d.remote_table)
            for dupid, d in sorted(read_dups(self._zk).items())
            if table is None or d.table == table
        ]

    def duplication(self, dupid: int) -> RoutedDuplication:
        self._check()
        check_dupid(dupid, lookup=True)
        d = read_dups(self._zk).get(dupid)
        if d is None:
            raise DuplicationNotFoundError(dupid)
        return RoutedDuplication(self._r, dupid, d.table, d.remote, d.remote_table)


__all__ = ["MOVE_WAIT", "RoutedCluster", "RoutedTable"]
