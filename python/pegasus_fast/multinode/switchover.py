"""A multi-node cluster's duplication switched over to its follower (docs/switchover.md), run
by the meta leader: the steps are the single cluster's (engine/switchover.py ``run``), each
made here across the nodes.

- **Fence**: the env ``duplication.moved_to`` goes into the table's znode by compare-and-set
  (table_envs.py), and the call returns once every live node has applied it: each node's gate
  on every partition of the table is up, and the node synced the WAL of each partition as it
  raised it (engine/cluster_roles.py ``adopt_table_envs``). Each owner then answers its
  partitions' last decrees (``DuplicationProgress``: ``last_committed_decree``): no client write
  is logged past them, and every write logged before is durable. A live node that did not apply it fails the fence (nothing is
  left fenced).
- **Catch up**: each owner ships its own partitions as always; the leader asks each one for its
  partitions' confirmed decrees (``DuplicationProgress``) until every fenced decree is confirmed.
- **Take over**: through the follower port as the duplication (a served follower, or another
  multi-node cluster's leader: takeover.py), from the leader.
- **Unfence / remove**: the env deleted the same way; the duplication removed through ``/dups``.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any

from ..coord.layout import DupDoc
from ..coord.zk import read_dups, read_nodes, read_table
from ..duplication.ports import Follower, SourceId
from ..duplication.status import DupStatus
from ..engine.roles import MOVED_TO_ENV
from ..engine.switchover import SwitchoverReport, check_reverse_remote, check_timeout, run
from ..errors import DuplicationNotFoundError, PegasusFastError, RemoteUnavailableError
from ..logs import get
from ..net import pegasus_fast_pb2 as pb
from .placement import Placement

log = get(__name__)

#: how often the catch-up asks the owners whether the duplication still ships (seconds)
NOT_SHIPPING_EVERY = 0.1
#: the deadline of one call to an owner
CALL_TIMEOUT = 10.0
#: the calls to the owners, made at once (a switchover waits on the slowest, not on their sum)
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="switchover")
#: one switchover at a time on a leader
_lock = threading.Lock()


def _each(owners: list[tuple[Any, list[int]]], method: str, request: object) -> list[tuple[Any, Any]]:
    """``method`` of the Client service on every owner at once: (its peer, its answer) each."""
    calls = [(peer, _pool.submit(peer, peer.client, method, request, CALL_TIMEOUT)) for peer, _ in owners]
    return [(peer, fut.result()) for peer, fut in calls]


class ZkSource:
    """engine/switchover.py's SwitchSource over the nodes of a multi-node cluster."""

    def __init__(self, placement: Placement, dupid: int) -> None:
        self.p = placement
        self.m = placement.member
        self.dupid = dupid
        doc = self._doc()
        self.table = doc.table
        self.remote = doc.remote
        self.remote_table = doc.remote_table
        self._token = doc.remote_token or None
        #: the owners as the fence found them (a switchover does not race a move)
        self._kept: list[tuple[Any, list[int]]] | None = None
        self._checked_at = 0.0
        #: the progress rows the fence read, the catch-up's first look
        self._first: list[Any] | None = None

    def _doc(self) -> DupDoc:
        doc = read_dups(self.m.zk).get(self.dupid)
        if doc is None:
            raise DuplicationNotFoundError(self.dupid)
        return doc

    def lock(self) -> AbstractContextManager[Any]:
        return _lock

    def _owners(self) -> list[tuple[Any, list[int]]]:
        """Each owner of a partition of the table (its peer) with the partitions it owns."""
        tc = read_table(self.m.zk, self.table)
        nodes = read_nodes(self.m.zk)
        out = []
        for owner in sorted(set(tc.owners())):
            doc = nodes.get(owner)
            if doc is None:
                raise RemoteUnavailableError(owner, "not live in ZooKeeper")
            out.append((self.m.peers.get(doc.url), [pc.pidx for pc in tc.partitions if pc.owner == owner]))
        return out

    def not_shipping(self) -> str | None:
        # asked on every round of the catch-up's wait: each owner is asked ten times a second
        if time.monotonic() - self._checked_at < NOT_SHIPPING_EVERY:
            return None
        self._checked_at = time.monotonic()
        doc = self._doc()
        if doc.status != "active":
            return f"the duplication is {doc.status}"
        try:
            answers = _each(self._owners(), "QueryDuplication", pb.DupRef(dupid=self.dupid))
        except RemoteUnavailableError:
            return None  # the fence or the catch-up's timeout says so if it lasts
        for peer, info in answers:
            if info.error or DupStatus(info.status) is not DupStatus.LOG:
                return f"the duplication is {info.status} on {peer.url}" + (
                    f": {info.error}" if info.error else ""
                )
        return None

    def moved_to(self) -> str:
        return read_table(self.m.zk, self.table).app.envs.get(MOVED_TO_ENV, "")

    def fence(self) -> dict[int, int]:
        self.p.set_table_envs(self.table, {MOVED_TO_ENV: self.remote}, ())
        decrees: dict[int, int] = {}
        self._kept = self._owners()
        # each owner's progress rows, asked once the gate is up everywhere: their last committed
        # decrees are the fenced ones (no client write passes them), and their confirmed decrees
        # the catch-up's first look
        rows = self._progress()
        for r in rows:
            decrees[r.pidx] = r.last_committed_decree
        self._first = rows
        return decrees

    def unfence(self) -> bool:
        try:
            self.p.set_table_envs(self.table, {}, (MOVED_TO_ENV,))
            return True
        except PegasusFastError as exc:
            log.warning("switchover of %s: the fence could not be lifted: %s", self.table, exc)
            return False

    def _progress(self) -> list[Any]:
        """Each partition's progress row (pb.PartitionProgress), from its owner."""
        owners = self._kept or self._owners()
        mine = {peer.url: set(pidxs) for peer, pidxs in owners}
        return [
            r
            for peer, reply in _each(owners, "DuplicationProgress", pb.DupRef(dupid=self.dupid))
            for r in reply.partitions
            if r.pidx in mine[peer.url]
        ]

    def confirmed(self) -> tuple[dict[int, int], str]:
        try:
            rows, self._first = self._first or self._progress(), None
        except RemoteUnavailableError as exc:
            # an owner out of reach for a moment: asked again on the next round (the timeout
            # says why if it stays so)
            return {}, f"an owner is unreachable: {exc.reason or exc}"
        return {r.pidx: r.confirmed_decree for r in rows}, next((r.reason for r in rows if r.reason), "")

    def drain(self, behind: dict[int, tuple[int, int]]) -> dict[int, int]:
        return {}  # each owner's driver ships its own partitions' tails (woken by the fence)

    def follower(self) -> tuple[Follower, SourceId]:
        c = self.m.cluster
        source = SourceId(c.name, c.info().uid, self.table, self.dupid)
        return c.remotes.connect(self.remote, self._token, source), source

    def remove(self) -> None:
        self.p.set_duplication(self.dupid, "removed")


def switchover(
    placement: Placement,
    dupid: int,
    timeout: float = 30.0,
    reverse_remote: str | None = None,
    reverse_token: str | None = None,
) -> SwitchoverReport:
    """engine/switchover.py's ``switchover`` for a duplication of this multi-node cluster, on
    its meta leader. ``reverse_remote`` defaults to the cluster's own ``zk://`` URL."""
    timeout = check_timeout(timeout)
    check_reverse_remote(reverse_remote)
    placement.require_leader()
    side = ZkSource(placement, dupid)
    return run(side, timeout, reverse_remote or placement.member.addr.url, reverse_token)


__all__ = ["ZkSource", "switchover"]
