"""Moving one partition to another node while writes continue: the leader's steps.

The target learns the partition from its owner (a checkpoint, then the log:
transfer.py), the owner fences it, the target catches up to the owner's last
decree, and ownership switches by a compare-and-set on the partition's znode
version, so a second leader acting on a stale view fails instead of
overwriting. A handoff that fails unfences the owner; one that outlasts half
the fence lease gives up, since the owner unfences itself after the lease.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

from kazoo.exceptions import BadVersionError

from ..coord.layout import NodeDoc, PartitionConfig, PartitionDoc, partition_path
from ..coord.zk import read_dups, read_nodes, read_table
from ..duplication.status import DupStatus
from ..errors import CoordinationError, DuplicationError, InvalidArgumentError, NodeUnavailableError
from ..logs import event, get
from ..net import pegasus_fast_pb2 as pb
from ..net.peer import Peer
from .member import Member

log = get(__name__)

#: how long a move waits for the table's duplications to ship the partition past the decree
#: its target learned (writes go on meanwhile)
DUP_CATCH_UP_WAIT = 10.0


class Leading(Protocol):
    """What a move needs of the leader that makes it (placement.py)."""

    member: Member

    def require_leader(self) -> None: ...

    def changed(
        self,
        nodes: dict[str, NodeDoc] | None = None,
        only: set[str] | None = None,
        tables: Iterable[str] | None = None,
    ) -> list[str]:
        """The configuration changed: every node and client is told, ``only`` are waited for."""
        ...


def _config_of(leader: Leading, table: str, pidx: int) -> PartitionConfig:
    """``table.pidx``'s configuration as ZooKeeper has it now, for a move this leader makes."""
    leader.require_leader()
    m = leader.member
    tc = read_table(m.zk, table)
    if isinstance(pidx, bool) or not isinstance(pidx, int) or not 0 <= pidx < tc.app.partition_count:
        raise InvalidArgumentError(f"table {table!r} has no partition {pidx!r}")
    pc = tc.partitions[pidx]
    if pc.problem:
        raise CoordinationError(m.addr.spec, f"{table}.{pidx}: {pc.problem}")
    return pc


def move_secondary(
    leader: Leading,
    table: str,
    pidx: int,
    from_node: str,
    node: str,
    learn_and_add: Callable[[str, int, str, str], int | None],
) -> int:
    """Move the secondary of ``table.pidx`` on ``from_node`` to ``node`` while writes go on:
    ``node`` learns the partition from its primary, then replaces ``from_node`` among the
    secondaries by a compare-and-set (ballot + 1; ``learn_and_add``: rereplicate.py's), and
    ``from_node`` drops its copy once it reads that. ``from_node`` the primary: the primary
    moves (:func:`move_partition`). Returns the decree learned."""
    m = leader.member
    pc = _config_of(leader, table, pidx)
    if from_node == pc.owner:
        return move_partition(leader, table, pidx, node)
    if from_node not in pc.secondaries:
        raise InvalidArgumentError(
            f"{table}.{pidx} has no secondary on {from_node!r} (primary {pc.owner}, "
            f"secondaries {list(pc.secondaries)})"
        )
    nodes = read_nodes(m.zk)
    if node not in nodes:
        raise InvalidArgumentError(f"no live node {node!r} (live: {sorted(nodes)})")
    if node == from_node:
        return pc.decree
    if node in pc.replicas:
        raise InvalidArgumentError(f"{node} holds a replica of {table}.{pidx} already")
    if pc.owner not in nodes:
        raise NodeUnavailableError(table, pidx, pc.owner, "", "the primary is not live")
    learned = learn_and_add(table, pidx, node, from_node)
    if learned is None:
        raise CoordinationError(
            m.addr.spec, f"{table}.{pidx}'s configuration changed during the move: nothing moved, ask again"
        )
    return learned


def move_partition(leader: Leading, table: str, pidx: int, node: str) -> int:
    """Move one partition to ``node`` while writes continue; returns the handoff decree."""
    m = leader.member
    pc = _config_of(leader, table, pidx)
    nodes = read_nodes(m.zk)
    if node not in nodes:
        raise InvalidArgumentError(f"no live node {node!r} (live: {sorted(nodes)})")
    if pc.owner == node:
        log.info(
            "move of %s.%d: already on %s",
            table,
            pidx,
            node,
            extra=event(table=table, pidx=pidx, node=node, step="noop"),
        )
        return pc.decree
    src_doc = nodes.get(pc.owner)
    if src_doc is None:
        raise NodeUnavailableError(table, pidx, pc.owner, "", "the owner is not live")
    src, dst = m.peers.get(src_doc.url), m.peers.get(nodes[node].url)
    ref = pb.PartitionRef(table=table, pidx=pidx)
    fields = {"table": table, "pidx": pidx, "source": pc.owner, "node": node}
    started = time.monotonic()
    log.info(
        "move of %s.%d from %s to %s: learning",
        table,
        pidx,
        pc.owner,
        node,
        extra=event(step="learn", **fields),
    )
    # 1. the target copies a checkpoint and the log after it, writes going on
    learned = dst(
        dst.node,
        "Learn",
        pb.LearnPartitionRequest(table=table, pidx=pidx, source_url=src.url),
        timeout=3600,
    ).decree
    wait_shipped(m, src, table, pidx, learned)
    # 2. the owner stops taking writes to it
    fenced = time.monotonic()
    last = src(src.node, "Fence", ref).decree
    log.info(
        "move of %s.%d: learned through decree %d, fenced at %d",
        table,
        pidx,
        learned,
        last,
        extra=event(step="fence", learned=learned, decree=last, **fields),
    )
    try:
        # 3. the target reaches the owner's last decree
        got = dst(
            dst.node,
            "CatchUp",
            pb.LearnPartitionRequest(table=table, pidx=pidx, source_url=src.url, through=last),
        ).decree
        if got != last:
            raise CoordinationError(m.addr.spec, f"{node} reached decree {got}, not {last}")
        if time.monotonic() - fenced > m.cluster.config.fence_lease_seconds / 2:
            raise CoordinationError(m.addr.spec, "the handoff outlasted half the fence lease")
        # 4. the switch: a compare-and-set on the version read above
        # a replicated partition keeps its replicas: a secondary made primary leaves its place
        # to the old primary, whose copy is whole through ``last`` (fenced)
        secondaries = pc.secondaries
        if node in secondaries:
            secondaries = tuple(pc.owner if s == node else s for s in secondaries)
        m.zk.set(
            partition_path(table, pidx),
            PartitionDoc(node, pc.ballot + 1, last, secondaries).encode(),
            version=pc.version,
        )
    except BaseException as exc:
        log.warning(
            "move of %s.%d from %s to %s failed: %s; unfencing",
            table,
            pidx,
            pc.owner,
            node,
            exc,
            extra=event(step="failed", error=type(exc).__name__, **fields),
        )
        try:
            src(src.node, "Unfence", ref)
        except Exception as unfence_exc:  # noqa: BLE001 - its fence lease unfences it
            log.warning("unfence of %s.%d on %s failed: %s", table, pidx, pc.owner, unfence_exc)
        if isinstance(exc, BadVersionError):
            raise CoordinationError(m.addr.spec, f"{table}.{pidx} changed during the move") from None
        raise
    # 5. both sides act on it now (the others through the /config watch)
    leader.changed(nodes, {node, pc.owner}, tables=[table])
    log.info(
        "moved %s.%d from %s to %s at decree %d",
        table,
        pidx,
        pc.owner,
        node,
        last,
        extra=event(
            step="switched",
            decree=last,
            seconds=round(time.monotonic() - started, 3),
            fenced_ms=round((time.monotonic() - fenced) * 1000, 1),
            **fields,
        ),
    )
    return last


def wait_shipped(m: Member, src: Peer, table: str, pidx: int, decree: int) -> None:
    """Before a move's fence: every duplication of the table has shipped the partition
    past ``decree`` (the target holds the log after its checkpoint only; it takes the
    shipping over from the follower's decree, which must be in that log)."""
    for dupid, doc in read_dups(m.zk).items():
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


__all__ = ["DUP_CATCH_UP_WAIT", "Leading", "move_partition", "wait_shipped"]
