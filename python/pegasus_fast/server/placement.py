"""The meta leader's decisions: where a new table's partitions go, moves, balance.

Only the elected leader (member.py) places partitions, and every change of a
partition's owner is a compare-and-set on its znode's version, so a second
leader acting on a stale view fails instead of overwriting. After each change
the leader bumps ``/config`` (every node and client watches it) and calls
``Node.Sync`` on the nodes concerned, so a call returns once they act on it.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Any

from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from ..coord.layout import (
    CONFIG,
    AppDoc,
    DupDoc,
    NodeDoc,
    PartitionDoc,
    TableConfig,
    app_path,
    dup_path,
    partition_path,
)
from ..coord.zk import parse_zk, read_dups, read_leader, read_nodes, read_table, read_tables
from ..duplication.ports import SourceId
from ..duplication.status import FAIL_MODES, DupStatus
from ..errors import (
    CoordinationError,
    DuplicationError,
    DuplicationNotFoundError,
    InvalidArgumentError,
    NodeUnavailableError,
    NotLeaderError,
    TableExistsError,
    TableNotFoundError,
)
from ..net import pegasus_fast_pb2 as pb
from ..net.peer import Peer
from ..net.wire import is_url, parse_url
from ..node.cluster import Cluster
from ..node.envs import validate_envs
from ..node.local_follower import same_source
from .member import Member

log = logging.getLogger(__name__)

#: how long a move waits for the table's duplications to ship the partition past the decree
#: its target learned (writes go on meanwhile)
DUP_CATCH_UP_WAIT = 10.0


@dataclass(frozen=True)
class Move:
    table: str
    pidx: int
    node: str


def spread(partition_count: int, nodes: list[str], load: dict[str, int]) -> list[str]:
    """Owners for a new table's partitions: round robin over the live nodes, the least
    loaded first, so no two nodes differ by more than one partition of this table."""
    order = sorted(nodes, key=lambda n: (load.get(n, 0), n))
    return [order[i % len(order)] for i in range(partition_count)]


def plan_balance(configs: dict[str, TableConfig], nodes: list[str]) -> list[Move]:
    """Moves that leave every live node within one partition of the others, in total and
    within each table, moving as few partitions as it can."""
    owners = {(name, p.pidx): p.owner for name, tc in configs.items() for p in tc.partitions}
    moves: list[Move] = []
    live = sorted(nodes)
    if not live:
        return moves
    for name in sorted(configs):
        while True:
            count = {n: 0 for n in live}
            for (t, _), o in owners.items():
                if t == name and o in count:
                    count[o] += 1
            total = {n: sum(1 for o in owners.values() if o == n) for n in live}
            hi = max(live, key=lambda n: (count[n], total[n], n))
            lo = min(live, key=lambda n: (count[n], total[n], n))
            if count[hi] - count[lo] <= 1:
                break
            pidx = min(p for (t, p), o in owners.items() if t == name and o == hi)
            owners[(name, pidx)] = lo
            moves.append(Move(name, pidx, lo))
    while True:
        total = {n: sum(1 for o in owners.values() if o == n) for n in live}
        hi = max(live, key=lambda n: (total[n], n))
        lo = min(live, key=lambda n: (total[n], n))
        if total[hi] - total[lo] <= 1:
            break
        # a table where moving one keeps that table within one too
        done = False
        for (t, p), o in sorted(owners.items()):
            if o != hi:
                continue
            per = {n: sum(1 for (t2, _), o2 in owners.items() if t2 == t and o2 == n) for n in live}
            if per[lo] + 1 - (per[hi] - 1) <= 1:
                owners[(t, p)] = lo
                moves.append(Move(t, p, lo))
                done = True
                break
        if not done:
            break
    return moves


class Placement:
    """The Meta service's work, on the node that leads."""

    def __init__(self, member: Member, cluster: Cluster) -> None:
        self.m = member
        self.zk = member.zk
        self.cluster = cluster
        member.placement = self
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"placement-{member.node_id}")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _require_leader(self) -> None:
        if not self.m.is_leader:
            leader = read_leader(self.zk)
            raise NotLeaderError(self.m.node_id, leader.url if leader else None)

    def forward(self, method: str, request: object) -> object:
        """Answer a Meta call here when this node leads, else pass it to the leader."""
        if self.m.is_leader:
            return _answer(self, method, request)
        leader = read_leader(self.zk)
        if leader is None or leader.node_id == self.m.node_id:
            raise NotLeaderError(self.m.node_id, None)
        peer = self.m.peers.get(leader.url)
        return peer(peer.meta, method, request, timeout=3600)

    def leader_url(self) -> str | None:
        leader = read_leader(self.zk)
        return leader.url if leader else None

    def _bump(self) -> None:
        try:
            self.zk.set(CONFIG, str(time.time()).encode())
        except NoNodeError:
            try:
                self.zk.create(CONFIG, b"0")
            except NodeExistsError:
                self.zk.set(CONFIG, str(time.time()).encode())

    def _sync_nodes(self, nodes: dict[str, NodeDoc], only: set[str] | None = None) -> None:
        def one(doc: NodeDoc) -> None:
            if doc.node_id == self.m.node_id:
                self.m.sync()
            else:
                peer = self.m.peers.get(doc.url)
                peer(peer.node, "Sync", pb.Empty(), timeout=10.0)

        futures = [
            (doc, self._pool.submit(one, doc))
            for doc in nodes.values()
            if only is None or doc.node_id in only
        ]
        for doc, fut in futures:
            try:
                fut.result()
            except Exception as exc:  # noqa: BLE001 - the node syncs through its watch anyway
                log.warning("node %s did not sync: %s", doc.node_id, exc)

    # -- tables --------------------------------------------------------------------------

    def create_table(
        self,
        name: str,
        partition_count: int,
        envs: dict[str, str] | None,
        follower_of: dict[str, Any] | None = None,
    ) -> AppDoc:
        Cluster._validate_table_args(name, partition_count)
        table_envs = validate_envs(envs)
        self._require_leader()
        nodes = read_nodes(self.zk)
        if not nodes:
            raise CoordinationError(self.m.addr.spec, "no live node to place partitions on")
        configs = read_tables(self.zk)
        if name in configs:
            raise TableExistsError(name)
        load: dict[str, int] = {}
        for tc in configs.values():
            for p in tc.partitions:
                load[p.owner] = load.get(p.owner, 0) + 1
        owners = spread(partition_count, list(nodes), load)
        app = AppDoc(
            app_id=max((tc.app.app_id for tc in configs.values()), default=0) + 1,
            partition_count=partition_count,
            create_time=time.time(),
            envs=dict(table_envs),
            follower_of=follower_of,
        )
        tx = self.zk.transaction()
        tx.create(app_path(name), app.encode())
        for i, owner in enumerate(owners):
            tx.create(partition_path(name, i), PartitionDoc(owner, 1, 0).encode())
        results = tx.commit()
        for r in results:
            if isinstance(r, NodeExistsError):
                raise TableExistsError(name)
            if isinstance(r, Exception):
                raise CoordinationError(self.m.addr.spec, f"creating table {name!r}: {r!r}")
        self._bump()
        self._sync_nodes(nodes)
        return app

    def drop_table(self, name: str) -> None:
        self._require_leader()
        tc = read_table(self.zk, name)
        tx = self.zk.transaction()
        for p in tc.partitions:
            tx.delete(partition_path(name, p.pidx))
        tx.delete(app_path(name))
        for r in tx.commit():
            if isinstance(r, Exception):
                raise CoordinationError(self.m.addr.spec, f"dropping table {name!r}: {r!r}")
        self._bump()
        self._sync_nodes(read_nodes(self.zk))

    # -- moves -------------------------------------------------------------------------------

    def move_partition(self, table: str, pidx: int, node: str) -> int:
        """Move one partition to ``node`` while writes continue; returns the handoff decree."""
        self._require_leader()
        tc = read_table(self.zk, table)
        if isinstance(pidx, bool) or not isinstance(pidx, int) or not 0 <= pidx < tc.app.partition_count:
            raise InvalidArgumentError(f"table {table!r} has no partition {pidx!r}")
        pc = tc.partitions[pidx]
        nodes = read_nodes(self.zk)
        if node not in nodes:
            raise InvalidArgumentError(f"no live node {node!r} (live: {sorted(nodes)})")
        if pc.owner == node:
            return pc.decree
        src_doc = nodes.get(pc.owner)
        if src_doc is None:
            raise NodeUnavailableError(table, pidx, pc.owner, "", "the owner is not live")
        src, dst = self.m.peers.get(src_doc.url), self.m.peers.get(nodes[node].url)
        ref = pb.PartitionRef(table=table, pidx=pidx)
        # 1. the target copies a checkpoint and the log after it, writes going on
        learned = dst(
            dst.node,
            "Learn",
            pb.LearnPartitionRequest(table=table, pidx=pidx, source_url=src.url),
            timeout=3600,
        ).decree
        self._wait_shipped(src, table, pidx, learned)
        # 2. the owner stops taking writes to it
        fenced = time.monotonic()
        last = src(src.node, "Fence", ref).decree
        try:
            # 3. the target reaches the owner's last decree
            got = dst(
                dst.node,
                "CatchUp",
                pb.LearnPartitionRequest(table=table, pidx=pidx, source_url=src.url, through=last),
            ).decree
            if got != last:
                raise CoordinationError(self.m.addr.spec, f"{node} reached decree {got}, not {last}")
            if time.monotonic() - fenced > self.m.cluster.config.fence_lease_seconds / 2:
                raise CoordinationError(self.m.addr.spec, "the handoff outlasted half the fence lease")
            # 4. the switch: a compare-and-set on the version read above
            self.zk.set(
                partition_path(table, pidx),
                PartitionDoc(node, pc.ballot + 1, last).encode(),
                version=pc.version,
            )
        except BaseException as exc:
            try:
                src(src.node, "Unfence", ref)
            except Exception as unfence_exc:  # noqa: BLE001 - its fence lease unfences it
                log.warning("unfence of %s.%d on %s failed: %s", table, pidx, pc.owner, unfence_exc)
            if isinstance(exc, BadVersionError):
                raise CoordinationError(self.m.addr.spec, f"{table}.{pidx} changed during the move") from None
            raise
        # 5. both sides act on it now (the others through the /config watch)
        self._bump()
        self._sync_nodes(nodes, {node, pc.owner})
        log.info("moved %s.%d from %s to %s at decree %d", table, pidx, pc.owner, node, last)
        return last

    # -- duplications ------------------------------------------------------------------------

    def ensure_follower_table(self, table: str, partition_count: int, source: SourceId) -> None:
        """The table a duplication into this cluster writes: made, every partition learning
        on its owner (which the source then teaches, partition by partition), or checked."""
        self._require_leader()
        try:
            tc = read_table(self.zk, table)
        except TableNotFoundError:
            try:
                self.create_table(table, partition_count, None, follower_of=asdict(source))
                return
            except TableExistsError:
                tc = read_table(self.zk, table)
        f = tc.app.follower_of
        if f is None or not same_source(SourceId(**f), source):
            raise DuplicationError(
                f"table {table!r} of this cluster exists and is not the follower of "
                f"{source.cluster}.{source.table} (duplication {source.dupid})"
            )
        if tc.app.partition_count != partition_count:
            raise DuplicationError(f"follower table {table!r} has another partition count")

    def add_duplication(
        self,
        table: str,
        remote: str,
        remote_table: str | None,
        with_checkpoint: bool,
        fail_mode: str,
        remote_token: str | None,
    ) -> int:
        """A duplication of the cluster: recorded in ZooKeeper, then started on every node
        (each ships the partitions it owns). Returns its id."""
        self._require_leader()
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
        if remote == self.m.addr.url:
            raise DuplicationError("a cluster cannot duplicate to itself")
        docs = read_dups(self.zk)
        for dupid, d in docs.items():
            if d.table == table and d.remote == remote and d.status != "removed":
                raise DuplicationError(f"table {table!r} already duplicates to {remote} (dupid {dupid})")
        doc = DupDoc(
            table=table,
            remote=remote,
            remote_table=remote_table or table,
            with_checkpoint=with_checkpoint,
            fail_mode=fail_mode,
            create_time=time.time(),
            remote_token=remote_token or "",
        )
        dupid = max(docs, default=0) + 1
        while True:
            try:
                self.zk.create(dup_path(dupid), doc.encode(), makepath=True)
                break
            except NodeExistsError:
                dupid += 1
        self._bump()
        self._sync_nodes(read_nodes(self.zk))
        return dupid

    def set_duplication(self, dupid: int, status: str) -> None:
        """Pause, resume or remove a duplication on every node."""
        self._require_leader()
        try:
            raw, stat = self.zk.get(dup_path(dupid))
        except NoNodeError:
            raise DuplicationNotFoundError(dupid) from None
        doc = DupDoc.decode(raw, dup_path(dupid))
        if doc.status == "removed" and status != "removed":
            raise DuplicationError(f"duplication {dupid} was removed")
        self.zk.set(dup_path(dupid), replace(doc, status=status).encode(), version=stat.version)
        self._bump()
        self._sync_nodes(read_nodes(self.zk))

    def _wait_shipped(self, src: Peer, table: str, pidx: int, decree: int) -> None:
        """Before a move's fence: every duplication of the table has shipped the partition
        past ``decree`` (the target holds the log after its checkpoint only; it takes the
        shipping over from the follower's decree, which must be in that log)."""
        for dupid, doc in read_dups(self.zk).items():
            if doc.table != table or doc.status == "removed":
                continue
            deadline = time.monotonic() + DUP_CATCH_UP_WAIT
            while True:
                info = src(src.client, "QueryDuplication", pb.DupRef(dupid=dupid))
                if info.status not in (str(DupStatus.LOG), str(DupStatus.PAUSE)):
                    raise DuplicationError(
                        f"duplication {dupid} of {table!r} is {info.status} on the owner: move after it ships"
                    )
                rows = src(src.client, "DuplicationProgress", pb.DupRef(dupid=dupid)).partitions
                if rows[pidx].confirmed_decree >= decree:
                    break
                if info.status == str(DupStatus.PAUSE) or time.monotonic() > deadline:
                    raise DuplicationError(
                        f"duplication {dupid} has shipped {table}.{pidx} to decree "
                        f"{rows[pidx].confirmed_decree}, not yet {decree}: move it when it catches up"
                    )
                time.sleep(0.005)

    def balance(self) -> list[Move]:
        self._require_leader()
        moves = plan_balance(read_tables(self.zk), list(read_nodes(self.zk)))
        for mv in moves:
            self.move_partition(mv.table, mv.pidx, mv.node)
        return moves


__all__ = ["Move", "Placement", "plan_balance", "spread"]


def _answer(p: Placement, method: str, request: object) -> object:
    if method == "CreateTable":
        assert isinstance(request, pb.CreateTableRequest)
        app = p.create_table(request.table, request.partition_count, dict(request.envs) or None)
        return pb.TableInfo(
            app_id=app.app_id,
            name=request.table,
            partition_count=app.partition_count,
            status="AVAILABLE",
            create_time=app.create_time,
            envs=app.envs,
        )
    if method == "DropTable":
        assert isinstance(request, pb.TableRef)
        p.drop_table(request.table)
        return pb.Empty()
    if method == "MovePartition":
        assert isinstance(request, pb.MovePartitionRequest)
        return pb.MoveReply(decree=p.move_partition(request.table, request.pidx, request.node))
    if method == "AddDuplication":
        assert isinstance(request, pb.AddDuplicationRequest)
        dupid = p.add_duplication(
            request.table,
            request.remote,
            request.remote_table if request.HasField("remote_table") else None,
            request.with_checkpoint,
            request.fail_mode or "slow",
            request.remote_token if request.HasField("remote_token") else None,
        )
        return pb.DupRef(dupid=dupid)
    if method in ("PauseDuplication", "ResumeDuplication", "RemoveDuplication"):
        assert isinstance(request, pb.DupRef)
        status = {"Pause": "paused", "Resume": "active", "Remove": "removed"}[method[: -len("Duplication")]]
        p.set_duplication(request.dupid, status)
        return pb.DupRef(dupid=request.dupid)
    if method == "EnsureFollowerTable":
        assert isinstance(request, pb.EnsureTableRequest)
        s = request.source
        p.ensure_follower_table(
            request.table, request.partition_count, SourceId(s.cluster, s.cluster_uid, s.table, s.dupid)
        )
        return pb.Empty()
    if method == "Balance":
        moves = p.balance()
        return pb.BalanceReply(
            moves=[pb.MovePartitionRequest(table=m.table, pidx=m.pidx, node=m.node) for m in moves]
        )
    raise InvalidArgumentError(f"no Meta method {method!r}")
