"""A multi-node cluster as a switchover's follower (docs/switchover.md), on the meta leader:
a fenced source's table taken over, and a table adopted by a duplication without checkpoint.

Everything a node acts on is in the table's znode (``/apps/<table>``, its ``follower_of`` and
envs) and in ``/dups``, changed by compare-and-set here and applied by every live node at its
sync (member.py reconciles its own follower record with ``follower_of``).

A take-over, in the single cluster's order (engine/takeover.py): every owner must hold the
fenced decree of its partitions (each answers for its own, ``Follower.PartitionStatus``) and the
old source must answer back, or nothing changes. Then one ZooKeeper transaction records the
reverse duplication (no checkpoint) and makes the znode say the table follows no one and has no
``duplication.moved_to``: the take-over's one commit point. Each node, in its sync, starts its
run of the reverse duplication first (from the decrees its partitions have then) and only then
promotes its copy of the table, which opens its gates; a node that could not start it keeps
refusing client writes until it has (member.py), so no write escapes the way back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from typing import Any, Protocol

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NoNodeError

from ..coord.layout import AppDoc, NodeDoc, TableConfig, app_path
from ..coord.zk import read_dups, read_nodes, read_table
from ..duplication.ports import SourceId
from ..engine.local_follower import same_source
from ..engine.roles import MOVED_TO_ENV
from ..engine.takeover import check_back, check_held
from ..errors import CoordinationError, DuplicationError, SwitchoverError, TableNotFoundError
from ..logs import event, get
from ..net import pegasus_fast_pb2 as pb
from . import table_envs
from .member import Member

log = get(__name__)

#: compare-and-set attempts before a znode that keeps changing is an error
CAS_TRIES = 20


class Leader(Protocol):
    """What a take-over needs of the leader that makes it (placement.py)."""

    member: Member
    zk: KazooClient

    def require_leader(self) -> None: ...

    def changed(self, nodes: dict[str, NodeDoc] | None = None, only: set[str] | None = None) -> list[str]: ...

    def sync_nodes(self, nodes: dict[str, NodeDoc], only: set[str] | None = None) -> list[str]: ...

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
    ) -> int: ...

    def set_duplication(self, dupid: int, status: str) -> None: ...


#: one take-over or adoption at a time on a leader
_lock = threading.Lock()


def update_app(p: Leader, name: str, change: Callable[[AppDoc], AppDoc]) -> AppDoc:
    """``change`` applied to the table's znode by compare-and-set (read again on a race)."""
    path = app_path(name)
    for _ in range(CAS_TRIES):
        try:
            raw, stat = p.zk.get(path)
        except NoNodeError:
            raise TableNotFoundError(name) from None
        app = AppDoc.decode(raw, path)
        new = change(app)
        if new == app:
            return app
        try:
            p.zk.set(path, new.encode(), version=stat.version)
            return new
        except BadVersionError:
            continue
        except NoNodeError:
            raise TableNotFoundError(name) from None
    raise CoordinationError(p.member.addr.spec, f"table {name!r}: its znode keeps changing")


def adopt(p: Leader, tc: TableConfig, partition_count: int, source: SourceId) -> None:
    """An existing table becomes the follower of a duplication without checkpoint (the reverse
    duplication of a switchover adopting the fenced old source, or Pegasus's add_dup into a
    table as it is): recorded in its znode, then adopted by every live node before this
    returns (CoordinationError naming one that did not)."""
    if tc.app.partition_count != partition_count:
        raise DuplicationError(
            f"table {tc.name!r} has {tc.app.partition_count} partitions, its source {partition_count}: "
            "a multi-node cluster adopts a table of the same partition count only"
        )
    with _lock:
        update_app(p, tc.name, lambda app: replace(app, follower_of=asdict(source)))
        log.info(
            "table %s: adopted by %s.%s#%d",
            tc.name,
            source.cluster,
            source.table,
            source.dupid,
            extra=event(table=tc.name, dupid=source.dupid),
        )
        table_envs.wait_applied(p, tc.name)


def _pb_source(s: SourceId) -> pb.SourceId:
    return pb.SourceId(cluster=s.cluster, cluster_uid=s.cluster_uid, table=s.table, dupid=s.dupid)


def held(p: Leader, tc: TableConfig, source: SourceId) -> tuple[dict[int, int], bool]:
    """The source decree each partition holds durably, as its owner says (every owner asked at
    once), and whether every partition has learned."""
    nodes = read_nodes(p.zk)
    owners = sorted(set(tc.owners()))
    for owner in owners:
        if owner not in nodes:
            raise SwitchoverError(tc.name, source.dupid, "take_over", f"node {owner} is not live")
    req = pb.PartitionStatusRequest(table=tc.name, count=tc.app.partition_count, source=_pb_source(source))

    def ask(owner: str) -> Any:
        peer = p.member.peers.get(nodes[owner].url)
        return peer(peer.follower, "PartitionStatus", req, timeout=10.0)

    with ThreadPoolExecutor(max_workers=len(owners) or 1, thread_name_prefix="take-over") as pool:
        replies = dict(zip(owners, pool.map(ask, owners)))
    out: dict[int, int] = {}
    learned = True
    for pc in tc.partitions:
        row = replies[pc.owner].partitions[pc.pidx]
        out[pc.pidx] = row.source_decree
        learned = learned and row.learned
    return out, learned


def _back_to(p: Leader, table: str, back: str) -> list[int]:
    """Live duplications of ``table`` to ``back`` (a repeated take-over finds its own)."""
    return [
        dupid
        for dupid, d in sorted(read_dups(p.zk).items())
        if d.table == table and d.remote == back and d.status != "removed"
    ]


def take_over(
    p: Leader,
    table: str,
    source: SourceId,
    decrees: dict[int, int],
    back_remote: str,
    back_token: str | None = None,
) -> tuple[int, dict[int, int]]:
    """See the module's docstring and duplication/ports.py ``Follower.take_over``."""
    p.require_leader()
    cluster = p.member.cluster
    back = cluster.remotes.canonical(back_remote)
    with _lock:
        tc = read_table(p.zk, table)
        f = tc.app.follower_of
        if f is None:
            done = _back_to(p, table, back)
            if done:
                # taken over already: the answer to a retried call, whose first run checked
                # that every partition held its fenced decree before anything changed
                return done[0], dict(decrees)
            raise DuplicationError(f"table {table!r} of cluster {cluster.name!r} follows no one")
        fo = SourceId(**f)
        if not same_source(fo, source):
            raise DuplicationError(
                f"table {table!r} of cluster {cluster.name!r} follows "
                f"{fo.cluster}.{fo.table}#{fo.dupid}, not this duplication"
            )
        have, learned = held(p, tc, source)
        check_held(table, source.dupid, decrees, have, learned)
        existing = _back_to(p, table, back)
        if not existing:
            check_back(cluster, table, source, back_remote, back_token)

        def promoted(app: AppDoc) -> AppDoc:
            envs = {k: v for k, v in app.envs.items() if k != MOVED_TO_ENV}
            return replace(app, follower_of=None, envs=envs)

        # one commit point: the reverse duplication and the promotion in one transaction; each
        # node starts the duplication before it promotes its copy (member.py)
        if existing:
            dupid = existing[0]
            update_app(p, table, promoted)
        else:
            dupid = p.record_duplication(
                table, back, source.table, False, "slow", back_token, with_app=promoted
            )
        late = p.changed()
        if late:  # each takes writes at its next sync (its watch, or RESYNC_INTERVAL)
            log.warning("table %s: taken over; nodes %s not synced yet", table, sorted(late))
        log.info(
            "table %s: took over from %s.%s#%d, duplicating back as %d",
            table,
            source.cluster,
            source.table,
            source.dupid,
            dupid,
            extra=event(table=table, dupid=dupid),
        )
        return dupid, have


__all__ = ["adopt", "held", "take_over", "update_app"]
