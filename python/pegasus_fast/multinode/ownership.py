"""The partitions ZooKeeper says this node owns, and their state changes made on its word.

:class:`Ownership` is the owned set, table by table (made before the node's
Cluster opens: its duplications ship only these). :class:`Custody` serves a
partition whose data is whole once this node owns it (a move in), reclaims a
stale copy once another node owns it (a move away), and unfences a partition
fenced for a move that never switched owner after ``Config.fence_lease_seconds``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from kazoo.client import KazooClient

from ..coord.layout import PartitionDoc, partition_path
from ..engine.cluster import Cluster
from ..errors import PegasusFastError
from ..storage.partition import LEARNING, MOVING, SERVING

log = logging.getLogger(__name__)


class Ownership:
    """The partitions this node owns, table by table, as last read from ZooKeeper; made before
    the node's Cluster opens, whose duplications ship only these (``scope``)."""

    def __init__(self) -> None:
        #: replaced whole, never changed in place: readers take it without a lock
        self.owned: dict[str, frozenset[int]] = {}

    def scope(self, table: str) -> frozenset[int]:
        return self.owned.get(table, frozenset())


class Custody:
    def __init__(self, zk: KazooClient, cluster: Cluster, node_id: str, ownership: Ownership) -> None:
        self.zk = zk
        self.cluster = cluster
        self.node_id = node_id
        self.ownership = ownership
        #: held by every change of a partition's state made on ZooKeeper's word
        self._take_lock = threading.Lock()
        self._taken_at: dict[tuple[str, int], float] = {}
        self._fenced_at: dict[tuple[str, int], float] = {}

    @property
    def fences_pending(self) -> bool:
        """A partition here is fenced for a move: the next syncs watch its lease."""
        return bool(self._fenced_at)

    def fenced_tables(self) -> set[str]:
        """The tables of the partitions fenced here: each sync reads them again, whatever
        changed, so that a fence whose move never switched is lifted once its lease passed."""
        return {table for table, _ in list(self._fenced_at)}

    def note_fenced(self, table: str, pidx: int) -> None:
        self._fenced_at[(table, pidx)] = time.monotonic()

    def take(self, part: Any, handoff_decree: int, ballot: int) -> None:
        """Serve a partition ZooKeeper says is this node's, if its data is whole."""
        with self._take_lock:
            self._take(part, handoff_decree, ballot)

    def let_go(self, part: Any) -> None:
        """A partition ZooKeeper says is another node's."""
        self._fenced_at.pop((part.table, part.pidx), None)
        with self._take_lock:
            self._drop_stale(part)

    def publish(self, owned: dict[str, frozenset[int]], read_at: float) -> None:
        """``owned``, read from ZooKeeper at ``read_at``, is what this node owns now."""
        with self._take_lock:
            # a partition taken on ZooKeeper's word while this read was under way stays
            # taken: the read may predate its switch
            for (name, pidx), at in list(self._taken_at.items()):
                if at > read_at and name in owned:
                    owned[name] = owned[name] | {pidx}
                elif at <= read_at:
                    del self._taken_at[(name, pidx)]
            self.ownership.owned = owned

    def _take(self, part: Any, handoff_decree: int, ballot: int) -> None:
        """Serve a partition ZooKeeper says is this node's, if its data is whole."""
        key = (part.table, part.pidx)
        if part.state == LEARNING:
            if ballot <= 1:
                pass  # never moved: a follower table's partition, learning from its source
            elif part.last_committed >= handoff_decree:
                # learned through the decree the last owner wrote (a duplication's follower
                # partition: recorded as learned, or its next open would start it empty)
                rec = self.cluster.followers.record(part.table)
                if rec is not None and rec.follower_of is not None:
                    self.cluster.followers.mark_learned(part.table, [part.pidx])
                part.serve_learned()
            else:
                log.warning(
                    "node %s owns %s.%d but holds decree %d of %d: not serving it",
                    self.node_id,
                    part.table,
                    part.pidx,
                    part.last_committed,
                    handoff_decree,
                )
        elif part.state == MOVING:
            fenced = self._fenced_at.setdefault(key, time.monotonic())
            if time.monotonic() - fenced > self.cluster.config.fence_lease_seconds:
                log.warning("node %s: move of %s.%d never switched owner; unfencing", self.node_id, *key)
                part.unfence()
                self._fenced_at.pop(key, None)

    def _drop_stale(self, part: Any) -> None:
        """A partition another node owns, holding data here: a move switched it away (this
        node fenced it), or this node restarted since. Its copy is stale: reclaim the disk.
        A learning one is a move to here under way, and stays."""
        if part.state in (SERVING, MOVING) and not part.holds_nothing:
            # this sync's read may predate a switch to this node: ask ZooKeeper again, now
            try:
                raw, _ = self.zk.get(partition_path(part.table, part.pidx))
                if PartitionDoc.decode(raw, partition_path(part.table, part.pidx)).owner == self.node_id:
                    return
            except Exception:  # noqa: BLE001 - not sure: keep it (the next sync tries again)
                return
            log.info("node %s: %s.%d moved away; dropping its copy here", self.node_id, part.table, part.pidx)
            try:
                part.clear()
            except Exception as exc:  # noqa: BLE001 - tried again at the next sync
                log.warning("node %s: dropping %s.%d failed: %s", self.node_id, part.table, part.pidx, exc)

    def taken_now(self, table: str, pidx: int) -> bool:
        """A partition learned here whose switch to this node is in ZooKeeper, before the
        leader's Sync or the watch says so: read its znode now and take it (the clients see
        the new owner as soon as the switch is made; this node must not refuse them)."""
        try:
            part = self.cluster.table(table).partitions[pidx]
        except (KeyError, IndexError, PegasusFastError):
            return False
        if part.state != LEARNING:
            return False
        try:
            raw, _ = self.zk.get(partition_path(table, pidx))
            doc = PartitionDoc.decode(raw, partition_path(table, pidx))
        except Exception:  # noqa: BLE001 - not taken: the caller hears NotOwnerError
            return False
        if doc.owner != self.node_id:
            return False
        # not behind a whole sync (the leader's Sync may be reading every table now): the
        # partition's own take, under the lock every take holds
        with self._take_lock:
            self._take(part, doc.decree, doc.ballot)
            if part.state != SERVING:
                return False
            owned = self.ownership.owned
            self.ownership.owned = {**owned, table: owned.get(table, frozenset()) | {pidx}}
            self._taken_at[(table, pidx)] = time.monotonic()
        return True


__all__ = ["Custody", "Ownership"]
