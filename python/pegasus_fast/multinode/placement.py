"""The meta leader's decisions on tables and duplications: where a new table's partitions go,
drops, balance, and the duplications every node runs.

Only the elected leader (member.py) places partitions, and every change of a
partition's owner is a compare-and-set on its znode's version (moves.py), so
a second leader acting on a stale view fails instead of overwriting. After
each change the leader bumps ``/config`` (every node and client watches it)
and calls ``Node.Sync`` on the nodes concerned, so a call returns once they
act on it. The Meta service reaches these through meta.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from typing import Any

from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from ..coord.layout import (
    CONFIG,
    DUPS,
    MAX_REPLICAS,
    AppDoc,
    ConfigLog,
    DupDoc,
    NodeDoc,
    PartitionDoc,
    app_path,
    dup_path,
    partition_path,
)
from ..coord.zk import parse_zk, read_dups, read_leader, read_nodes, read_table, read_tables
from ..duplication.ports import SourceId
from ..duplication.status import FAIL_MODES
from ..engine.envs import validate_envs
from ..engine.local_follower import same_source
from ..engine.tables import check_room, validate_table_args
from ..errors import (
    CoordinationError,
    DuplicationError,
    DuplicationNotFoundError,
    InvalidArgumentError,
    InvalidTypeError,
    NotLeaderError,
    TableExistsError,
    TableNotFoundError,
    with_fix,
)
from ..logs import event, get
from ..net import pegasus_fast_pb2 as pb
from ..net.wire import is_url, parse_url
from . import moves, table_envs, takeover
from .failover import Failover
from .member import Member
from .plan import Move, plan_balance, spread_replicas
from .table_envs import CAS_TRIES

log = get(__name__)


class Placement:
    """The Meta service's work, on the node that leads."""

    def __init__(self, member: Member) -> None:
        self.member = member
        self.zk = member.zk
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"placement-{member.node_id}")
        #: a replicated partition's dead replicas replaced while this node leads
        self.failover = Failover(self)
        self.failover.start()

    def close(self) -> None:
        self.failover.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def require_leader(self) -> None:
        if not self.member.is_leader:
            leader = read_leader(self.zk)
            raise NotLeaderError(self.member.node_id, leader.url if leader else None)

    def changed(
        self,
        nodes: dict[str, NodeDoc] | None = None,
        only: set[str] | None = None,
        tables: Iterable[str] | None = None,
    ) -> list[str]:
        """The configuration changed: bump ``/config`` (every watcher re-reads), then have
        ``nodes`` (default: those live once it is bumped; ``only`` those named) act on it
        before this returns. ``tables``: the only tables the change touched (a node that saw
        the bump before re-reads just those; None: any). Returns the ids of the nodes that did
        not act on it (each does at its next sync: the watch, or member.py's RESYNC_INTERVAL)."""
        self.bump(tables)
        return self.sync_nodes(read_nodes(self.zk) if nodes is None else nodes, only)

    def bump(self, tables: Iterable[str] | None = None) -> None:
        """``/config`` bumped by a compare-and-set that appends ``tables`` to its log."""
        names = None if tables is None else tuple(sorted(set(tables)))
        for _ in range(CAS_TRIES):
            try:
                raw, stat = self.zk.get(CONFIG)
            except NoNodeError:
                try:
                    self.zk.create(CONFIG, ConfigLog().bumped(0, None).encode())
                    return
                except NodeExistsError:
                    continue
            data = ConfigLog.decode(raw).bumped(stat.version + 1, names).encode()
            try:
                self.zk.set(CONFIG, data, version=stat.version)
                return
            except BadVersionError:
                continue  # bumped meanwhile (a leader that has not heard it lost): again
        self.zk.set(CONFIG, ConfigLog().encode())  # the log given up: every node reads everything

    def sync_nodes(self, nodes: dict[str, NodeDoc], only: set[str] | None = None) -> list[str]:
        """``Node.Sync`` on ``nodes`` (``only`` those named) at once; the ids of those that failed."""
        m = self.member

        def one(doc: NodeDoc) -> None:
            if doc.node_id == m.node_id:
                m.sync(fresh=True)
            else:
                peer = m.peers.get(doc.url)
                peer(peer.node, "Sync", pb.Empty(), timeout=10.0)

        futures = [
            (doc, self._pool.submit(one, doc))
            for doc in nodes.values()
            if only is None or doc.node_id in only
        ]
        failed = []
        for doc, fut in futures:
            try:
                fut.result()
            except Exception as exc:  # noqa: BLE001 - the node syncs through its watch anyway
                log.warning("node %s did not sync: %s", doc.node_id, exc)
                failed.append(doc.node_id)
        return failed

    # -- tables --------------------------------------------------------------------------

    def create_table(
        self,
        name: str,
        partition_count: int,
        envs: dict[str, str] | None,
        follower_of: dict[str, Any] | None = None,
        replica_count: int | None = None,
    ) -> AppDoc:
        config = self.member.cluster.config
        validate_table_args(name, partition_count)
        table_envs = validate_envs(envs, config.max_env_bytes_per_table)
        self.require_leader()
        nodes = read_nodes(self.zk)
        if not nodes:
            raise CoordinationError(self.member.addr.spec, "no live node to place partitions on")
        # the tables as this node last synced them (it leads: every change is its own, and its
        # sync follows each): the bounds and the load; the transaction below is what refuses
        # a name taken meanwhile
        configs = self.member.configs()
        if name in configs:
            raise TableExistsError(name)
        # Cluster-wide: every node keeps every table's partitions (those it does not own
        # unopened), so the bounds of one node (the leader's, the nodes sharing one
        # configuration) are the cluster's.
        check_room(
            [tc.app for tc in configs.values()],
            partition_count,
            config.max_tables,
            self.member.cluster.partition_limit,
        )
        if replica_count is None:
            replica_count = min(config.default_replica_count, len(nodes))
        elif isinstance(replica_count, bool) or not isinstance(replica_count, int):
            raise InvalidTypeError("replica_count is an int")
        elif not 1 <= replica_count <= MAX_REPLICAS:
            raise InvalidArgumentError(f"replica_count {replica_count} is not in 1..{MAX_REPLICAS}")
        elif replica_count > len(nodes):
            raise InvalidArgumentError(
                f"replica_count {replica_count} needs as many live nodes, and {len(nodes)} are live"
            )
        load: dict[str, int] = {}
        for tc in configs.values():
            for p in tc.partitions:
                for n in p.replicas:
                    load[n] = load.get(n, 0) + 1
        placed = spread_replicas(partition_count, replica_count, list(nodes), load)
        app = AppDoc(
            app_id=max((tc.app.app_id for tc in configs.values()), default=0) + 1,
            partition_count=partition_count,
            create_time=time.time(),
            envs=dict(table_envs),
            follower_of=follower_of,
            replica_count=replica_count,
        )
        tx = self.zk.transaction()
        tx.create(app_path(name), app.encode())
        for i, (owner, secondaries) in enumerate(placed):
            tx.create(partition_path(name, i), PartitionDoc(owner, 1, 0, secondaries).encode())
        results = tx.commit()
        for r in results:
            if isinstance(r, NodeExistsError):
                raise TableExistsError(name)
            if isinstance(r, Exception):
                raise CoordinationError(self.member.addr.spec, f"creating table {name!r}: {r!r}")
        self.changed(nodes, tables=[name])
        return app

    def drop_table(self, name: str) -> None:
        self.require_leader()
        tc = read_table(self.zk, name)
        tx = self.zk.transaction()
        for p in tc.partitions:
            tx.delete(partition_path(name, p.pidx))
        tx.delete(app_path(name))
        for r in tx.commit():
            if isinstance(r, Exception):
                raise CoordinationError(self.member.addr.spec, f"dropping table {name!r}: {r!r}")
        self.changed(tables=[name])

    def set_table_envs(self, name: str, envs: dict[str, str], delete: tuple[str, ...]) -> AppDoc:
        """Set (and delete) a table's envs, applied by every live node before this returns."""
        return table_envs.set_table_envs(self, name, envs, delete)

    # -- moves -------------------------------------------------------------------------------

    def move_partition(self, table: str, pidx: int, node: str, from_node: str = "") -> int:
        """Move one partition to ``node`` while writes continue; returns the handoff decree.
        ``from_node``: the partition's replica on that node moves instead (moves.py)."""
        if from_node:
            learn = self.failover.rereplicator.learn_and_add
            return moves.move_secondary(self, table, pidx, from_node, node, learn)
        return moves.move_partition(self, table, pidx, node)

    def balance(self) -> list[Move]:
        self.require_leader()
        planned = plan_balance(read_tables(self.zk), list(read_nodes(self.zk)))
        log.info("balance: %d moves planned", len(planned), extra=event(moves=len(planned)))
        for i, mv in enumerate(planned, 1):
            log.info(
                "balance: move %d of %d: %s.%d to %s",
                i,
                len(planned),
                mv.table,
                mv.pidx,
                mv.node,
                extra=event(step=i, moves=len(planned), table=mv.table, pidx=mv.pidx, node=mv.node),
            )
            self.move_partition(mv.table, mv.pidx, mv.node, mv.from_node)
        if planned:
            log.info("balance: done, %d moves", len(planned), extra=event(moves=len(planned)))
        return planned

    # -- duplications ------------------------------------------------------------------------

    def ensure_follower_table(
        self, table: str, partition_count: int, source: SourceId, with_checkpoint: bool = True
    ) -> None:
        """The table a duplication into this cluster writes: made, every partition learning
        on its owner (which the source then teaches, partition by partition), or checked. A
        duplication without checkpoint adopts a table that exists (takeover.py: the reverse
        duplication of a switchover into the fenced old source)."""
        self.require_leader()
        try:
            tc = read_table(self.zk, table)
        except TableNotFoundError:
            try:
                self.create_table(table, partition_count, None, follower_of=asdict(source))
                return
            except TableExistsError:
                tc = read_table(self.zk, table)
        f = tc.app.follower_of
        mine = None if f is None else SourceId(**f)
        if mine is not None and same_source(mine, source):
            if tc.app.partition_count != partition_count:
                raise DuplicationError(f"follower table {table!r} has another partition count")
            return
        # a table of its own, or one that followed this same source table before (a switchover
        # back and forth): adopted as it is by a duplication without checkpoint
        again = mine is not None and (mine.cluster_uid, mine.table) == (source.cluster_uid, source.table)
        if with_checkpoint or (mine is not None and not again):
            raise DuplicationError(
                f"table {table!r} of this cluster exists and is not the follower of "
                f"{source.cluster}.{source.table} (duplication {source.dupid})"
            )
        takeover.adopt(self, tc, partition_count, source)

    def take_over(
        self,
        table: str,
        source: SourceId,
        decrees: dict[int, int],
        back_remote: str,
        back_token: str | None = None,
    ) -> tuple[int, dict[int, int]]:
        """This cluster's follower table takes over from its fenced source (takeover.py)."""
        return takeover.take_over(self, table, source, decrees, back_remote, back_token)

    def add_duplication(
        self,
        table: str,
        remote: str,
        remote_table: str | None,
        with_checkpoint: bool,
        fail_mode: str,
        remote_token: str | None,
        accept_gap: bool = False,
    ) -> int:
        """A duplication of the cluster: recorded in ZooKeeper, then started on every node
        (each ships the partitions it owns). Returns its id."""
        dupid = self.record_duplication(
            table, remote, remote_table, with_checkpoint, fail_mode, remote_token, accept_gap
        )
        self.changed()
        return dupid

    def record_duplication(
        self,
        table: str,
        remote: str,
        remote_table: str | None,
        with_checkpoint: bool,
        fail_mode: str,
        remote_token: str | None,
        accept_gap: bool = False,
        with_app: Callable[[AppDoc], AppDoc] | None = None,
    ) -> int:
        """:meth:`add_duplication` without telling the nodes (the caller calls :meth:`changed`).
        ``with_app``: the table's znode changed by it in the same ZooKeeper transaction, by
        compare-and-set of its version (a take-over's promotion, takeover.py)."""
        self.require_leader()
        if fail_mode not in FAIL_MODES:
            raise InvalidArgumentError(f"fail_mode must be one of {FAIL_MODES}")
        if is_url(remote):
            remote = parse_url(remote).url
        elif remote.startswith("zk://"):
            remote = parse_zk(remote).url
        else:
            raise InvalidArgumentError(
                f"a multi-node cluster duplicates to a pegasus:// or zk:// URL, not {remote!r}"
            )
        read_table(self.zk, table)  # it exists
        if remote == self.member.addr.url:
            raise DuplicationError("a cluster cannot duplicate to itself")
        docs = read_dups(self.zk)
        for dupid, d in docs.items():
            if d.table == table and d.remote == remote and d.status != "removed":
                raise with_fix(
                    DuplicationError(f"table {table!r} already duplicates to {remote} (dupid {dupid})"),
                    f"remove_dup {table} {dupid} first (or query_dup {table} -d: it may be running)",
                )
        doc = DupDoc(
            table=table,
            remote=remote,
            remote_table=remote_table or table,
            with_checkpoint=with_checkpoint,
            fail_mode=fail_mode,
            create_time=time.time(),
            remote_token=remote_token or "",
            accept_gap=accept_gap,
        )
        dupid = max(docs, default=0) + 1
        if with_app is not None:
            return self._record_with_app(table, dupid, doc, with_app)
        while True:
            try:
                self.zk.create(dup_path(dupid), doc.encode(), makepath=True)
                break
            except NodeExistsError:
                dupid += 1
        return dupid

    def _record_with_app(
        self, table: str, dupid: int, doc: DupDoc, change: Callable[[AppDoc], AppDoc]
    ) -> int:
        self.zk.ensure_path(DUPS)
        path = app_path(table)
        for _ in range(CAS_TRIES):
            try:
                raw, stat = self.zk.get(path)
            except NoNodeError:
                raise TableNotFoundError(table) from None
            tx = self.zk.transaction()
            tx.create(dup_path(dupid), doc.encode())
            tx.set_data(path, change(AppDoc.decode(raw, path)).encode(), version=stat.version)
            results = tx.commit()
            if not any(isinstance(r, Exception) for r in results):
                return dupid
            if isinstance(results[0], NodeExistsError):
                dupid += 1  # taken meanwhile
            elif isinstance(results[1], NoNodeError):
                raise TableNotFoundError(table)
            elif not isinstance(results[1], BadVersionError):  # else changed meanwhile: again
                raise CoordinationError(self.member.addr.spec, f"duplication of {table!r}: {results!r}")
        raise CoordinationError(self.member.addr.spec, f"table {table!r}: its znode keeps changing")

    def set_duplication(self, dupid: int, status: str) -> None:
        """Pause, resume or remove a duplication on every node."""
        self.require_leader()
        try:
            raw, stat = self.zk.get(dup_path(dupid))
        except NoNodeError:
            raise DuplicationNotFoundError(dupid) from None
        doc = DupDoc.decode(raw, dup_path(dupid))
        if doc.status == "removed" and status != "removed":
            raise DuplicationError(f"duplication {dupid} was removed")
        self.zk.set(dup_path(dupid), replace(doc, status=status).encode(), version=stat.version)
        self.changed()

    def update_duplication(self, dupid: int, remote_token: str | None) -> None:
        """A new token for a duplication: recorded in ZooKeeper, then every node runs it with it."""
        self.require_leader()
        if remote_token is None:
            raise InvalidTypeError("update needs something to change: remote_token")
        if not isinstance(remote_token, str) or not remote_token:
            raise InvalidTypeError("remote_token must be a non-empty str")
        try:
            raw, stat = self.zk.get(dup_path(dupid))
        except NoNodeError:
            raise DuplicationNotFoundError(dupid) from None
        doc = DupDoc.decode(raw, dup_path(dupid))
        if doc.status == "removed":
            raise DuplicationError(f"duplication {dupid} was removed")
        new = replace(doc, remote_token=remote_token)
        self.zk.set(dup_path(dupid), new.encode(), version=stat.version)
        self.changed()


__all__ = ["Placement"]
