"""A node of a multi-node cluster: joins through ZooKeeper, serves the partitions it owns.

The node's own :class:`Cluster` holds every table of the cluster with all its
partitions, but it answers only for the partitions ZooKeeper says it owns
(:meth:`Member.check`); the others stay empty and unopened, or hold what the
node had before a partition moved away (stale, never served).

* **Joining.** The first node makes ``/cluster`` (its name and the cluster id
  every node's timetags carry); each node registers the ephemeral
  ``/nodes/<node_id>`` with its URL. The node id is kept in the node's
  directory (``NODE_ID``), so a node restarted with its disk is the same node.
* **Configuration.** The node reads every table's configuration at start, then
  again whenever the leader bumps ``/config`` (a watch), and at once when the
  leader calls ``Node.Sync``: it makes missing tables, drops dropped ones, and
  starts serving a partition it has learned and now owns.
* **Fencing.** When the ZooKeeper connection is lost, the node refuses writes
  to every partition at once (before the session can expire and anyone could
  act on its absence), and takes them again only after it has reconnected and
  read the configuration anew. A partition fenced for a move that did not
  finish is unfenced after ``Config.fence_lease_seconds`` if the node still owns it.
* **Meta leader.** Every node runs kazoo's Election; the winner writes the
  ephemeral ``/meta/leader`` and answers the Meta service (placement.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import NodeExistsError, NoNodeError
from kazoo.recipe.election import Election

from .. import fileio
from ..coord.layout import (
    CLUSTER,
    CONFIG,
    CONFIRM_WRITE_INTERVAL,
    ELECTION,
    LEADER,
    NODES,
    ClusterDoc,
    NodeDoc,
    PartitionDoc,
    TableConfig,
    dup_partition_path,
    node_path,
    partition_path,
)
from ..coord.zk import ZkAddress, read_cluster, read_dups, read_tables
from ..duplication.ports import SourceId
from ..duplication.status import DupStatus
from ..errors import (
    CoordinationError,
    InvalidArgumentError,
    NotOwnerError,
    PartitionUnavailableError,
    PegasusFastError,
    TableExistsError,
)
from ..net.peer import Peers
from ..node.cluster import Cluster, _default_cluster_id
from ..node.local_follower import LocalFollower
from ..storage.partition import LEARNING, MOVING, SERVING

log = logging.getLogger(__name__)

NODE_ID_FILE = "NODE_ID"
#: a node reads the whole configuration at least this often (seconds), watch or not
RESYNC_INTERVAL = 5.0
#: the longest a stopping node waits on ZooKeeper
STOP_WAIT = 2.0


def node_id_of(directory: str, wanted: str | None = None) -> str:
    """The node id kept in ``directory`` (made, or checked against ``wanted``, on first use)."""
    path = os.path.join(directory, NODE_ID_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            kept = f.read().strip()
    except FileNotFoundError:
        kept = ""
    if kept:
        if wanted is not None and wanted != kept:
            raise InvalidArgumentError(f"{directory} is node {kept!r}, not {wanted!r}")
        return kept
    node_id = wanted or f"node-{uuid.uuid4().hex[:12]}"
    if not node_id.replace("-", "").replace("_", "").replace(".", "").isalnum() or len(node_id) > 64:
        raise InvalidArgumentError(f"a node id is up to 64 letters, digits, '-', '_' or '.': {node_id!r}")
    os.makedirs(directory, exist_ok=True)
    fileio.write_file(path, (node_id + "\n").encode())
    return node_id


def join_cluster(zk: KazooClient, addr: ZkAddress) -> ClusterDoc:
    """The cluster's identity in ZooKeeper, made by the first node to join."""
    for path in (NODES, "/meta", "/apps"):
        zk.ensure_path(path)
    doc = read_cluster(zk)
    if doc is not None:
        return doc
    name = addr.chroot.strip("/").replace("/", ".")
    new = ClusterDoc(name, _default_cluster_id(name), uuid.uuid4().hex)
    with contextlib.suppress(NodeExistsError):
        zk.create(CLUSTER, new.encode())
    doc = read_cluster(zk)
    if doc is None:
        raise CoordinationError(addr.spec, "/cluster vanished after it was made")
    return doc


class Ownership:
    """The partitions this node owns, table by table, as last read from ZooKeeper; made before
    the node's Cluster opens, whose duplications ship only these (``scope``)."""

    def __init__(self) -> None:
        #: replaced whole, never changed in place: readers take it without a lock
        self.owned: dict[str, frozenset[int]] = {}

    def scope(self, table: str) -> frozenset[int]:
        return self.owned.get(table, frozenset())


class Member:
    """This process's membership in a multi-node cluster (see the module's docstring)."""

    def __init__(
        self,
        zk: KazooClient,
        addr: ZkAddress,
        cluster: Cluster,
        node_id: str,
        token: str | None,
        ownership: Ownership | None = None,
    ) -> None:
        self.zk = zk
        self.addr = addr
        self.cluster = cluster
        self.node_id = node_id
        self.url = ""
        self.peers = Peers(token)
        self.ownership = ownership or Ownership()
        self._confirmed_written: dict[tuple[int, int], int] = {}
        self._confirmed_at = 0.0
        self._synced_at = 0.0
        self._configs: dict[str, TableConfig] = {}
        #: the ZooKeeper connection is lost: refuse writes until it is back and re-read
        self._suspended = threading.Event()
        self._stop = threading.Event()
        self._sync_lock = threading.Lock()
        #: held by every change of a partition's state made on ZooKeeper's word
        self._take_lock = threading.Lock()
        self._taken_at: dict[tuple[str, int], float] = {}
        self._want_sync = threading.Event()
        self._reregister = threading.Event()
        self._leading = threading.Event()
        self._fenced_at: dict[tuple[str, int], float] = {}
        self._threads: list[threading.Thread] = []
        self.placement: Any = None  # set by placement.Placement when it attaches

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, url: str) -> None:
        self.url = url
        self.zk.add_listener(self._on_state)
        self._register()
        self.sync()
        self.zk.DataWatch(CONFIG, self._on_config)
        for name, fn in (("sync", self._sync_loop), ("elect", self._elect_loop)):
            t = threading.Thread(target=fn, name=f"member-{name}-{self.node_id}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Leave the cluster: stop leading, drop the node's registration, close ZooKeeper."""
        self._stop.set()
        self._want_sync.set()
        self._leading.clear()
        if self.zk.connected:
            # the node's absence is seen at once, not after its session expires; bounded, since
            # ZooKeeper may go away meanwhile (closing the session drops the znode as well)
            with contextlib.suppress(Exception):
                self.zk.delete_async(node_path(self.node_id)).get(timeout=STOP_WAIT)
        with contextlib.suppress(Exception):
            self.zk.stop()
        for t in self._threads:
            t.join(timeout=5)
        with contextlib.suppress(Exception):
            self.zk.close()
        self.peers.close()

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    def _register(self) -> None:
        path, doc = node_path(self.node_id), NodeDoc(self.node_id, self.url).encode()
        try:
            self.zk.create(path, doc, ephemeral=True)
        except NodeExistsError:
            # this node's previous process, killed before its session expired (the
            # directory's lock proves no other process is this node now)
            with contextlib.suppress(NoNodeError):
                self.zk.delete(path)
            self.zk.create(path, doc, ephemeral=True)

    def _on_state(self, state: str) -> None:
        # kazoo's connection thread: nothing blocking here
        if state in (KazooState.SUSPENDED, KazooState.LOST):
            self._suspended.set()
            self._leading.clear()
            if state == KazooState.LOST:
                self._reregister.set()
        elif state == KazooState.CONNECTED:
            self._want_sync.set()

    def _on_config(self, data: Any, stat: Any) -> None:
        self._want_sync.set()

    def _sync_loop(self) -> None:
        while not self._stop.is_set():
            self._want_sync.wait(1.0)
            if self._stop.is_set():
                return
            pending = self._want_sync.is_set()
            self._want_sync.clear()
            try:
                if self._reregister.is_set() and self.zk.connected:
                    self._register()
                    self._reregister.clear()
                stale = time.monotonic() - self._synced_at > RESYNC_INTERVAL
                if pending or stale or self._suspended.is_set() or self._fenced_at:
                    if self.zk.connected:
                        self.sync()
                if self.zk.connected and time.monotonic() - self._confirmed_at >= CONFIRM_WRITE_INTERVAL:
                    self._write_confirmed()
            except Exception as exc:  # noqa: BLE001 - retried on the next round
                log.warning("node %s: configuration sync failed: %s", self.node_id, exc)
                time.sleep(0.2)
                self._want_sync.set()

    def _elect_loop(self) -> None:
        while not self._stop.is_set():
            try:
                Election(self.zk, ELECTION, identifier=self.node_id).run(self._lead)
            except Exception as exc:  # noqa: BLE001 - a lost session ends a term; run again
                log.info("node %s: election ended: %s", self.node_id, exc)
            self._leading.clear()
            self._stop.wait(0.5)

    def _lead(self) -> None:
        doc = NodeDoc(self.node_id, self.url).encode()
        while not self._stop.is_set():
            try:
                self.zk.create(LEADER, doc, ephemeral=True)
                break
            except NodeExistsError:
                # the last leader's session has not expired yet; its lock is gone, so it is dead
                raw, _ = self.zk.get(LEADER)
                if raw == doc:
                    break
                self._stop.wait(0.2)
        self._leading.set()
        log.info("node %s leads the cluster", self.node_id)
        try:
            while not self._stop.is_set() and self._leading.is_set() and self.zk.connected:
                self._stop.wait(0.2)
        finally:
            self._leading.clear()
            with contextlib.suppress(Exception):
                raw, _ = self.zk.get(LEADER)
                if raw == doc:
                    self.zk.delete(LEADER)

    # -- configuration ------------------------------------------------------------------

    def sync(self) -> None:
        """Read the whole configuration and act on it (tables made or dropped, partitions served)."""
        with self._sync_lock:
            read_at = time.monotonic()
            configs = read_tables(self.zk)
            owned: dict[str, frozenset[int]] = {}
            for name, tc in configs.items():
                if not self.cluster.has_table(name):
                    with contextlib.suppress(TableExistsError):
                        f = tc.app.follower_of
                        if f is None:
                            self.cluster.create_table(name, tc.app.partition_count, tc.app.envs or None)
                        else:
                            # every partition learning; each owner learns its own from the source
                            LocalFollower(self.cluster).ensure_table(
                                name, tc.app.partition_count, SourceId(**f), True
                            )
                table = self.cluster.table(name)
                mine = frozenset(p.pidx for p in tc.partitions if p.owner == self.node_id)
                for pc in tc.partitions:
                    part = table.partitions[pc.pidx]
                    if pc.owner == self.node_id:
                        with self._take_lock:
                            self._take(part, pc.decree, pc.ballot)
                    else:
                        self._fenced_at.pop((name, pc.pidx), None)
                        with self._take_lock:
                            self._drop_stale(part)
                owned[name] = mine
            for name in [t.name for t in self.cluster.list_tables()]:
                if name not in configs:
                    with contextlib.suppress(Exception):
                        self.cluster.drop_table(name)
            self._configs = configs
            with self._take_lock:
                # a partition taken on ZooKeeper's word while this read was under way stays
                # taken: the read may predate its switch
                for (name, pidx), at in list(self._taken_at.items()):
                    if at > read_at and name in owned:
                        owned[name] = owned[name] | {pidx}
                    elif at <= read_at:
                        del self._taken_at[(name, pidx)]
                self.ownership.owned = owned
            self._sync_dups()
            self._synced_at = time.monotonic()
            if self.zk.connected:
                self._suspended.clear()

    def _sync_dups(self) -> None:
        """Run every duplication of the cluster here, for the partitions this node owns."""
        docs = read_dups(self.zk)
        local = {d.dupid: d for d in self.cluster.duplications()}
        for dupid, doc in sorted(docs.items()):
            d = local.get(dupid)
            if doc.status == "removed":
                if d is not None and d.status != DupStatus.REMOVED:
                    d.remove()
                continue
            if d is None:
                if not self.cluster.has_table(doc.table):
                    continue
                try:
                    d = self.cluster.add_duplication(
                        doc.table,
                        doc.remote,
                        doc.remote_table,
                        with_checkpoint=doc.with_checkpoint,
                        fail_mode=doc.fail_mode,
                        remote_token=doc.remote_token or None,
                        dupid=dupid,
                    )
                except PegasusFastError as exc:
                    log.warning("node %s: duplication %d cannot start here: %s", self.node_id, dupid, exc)
                    continue
            if doc.status == "paused" and d.status == DupStatus.LOG:
                d.pause()
            elif doc.status == "active" and d.status == DupStatus.PAUSE:
                d.resume()
            d.wake()  # the partitions it ships may have changed
        for dupid, d in local.items():
            if dupid not in docs and d.status != DupStatus.REMOVED:
                d.remove()

    def _write_confirmed(self) -> None:
        """Each owned partition's confirmed decree, into ZooKeeper when it moved on."""
        self._confirmed_at = time.monotonic()
        for d in self.cluster.duplications():
            if d.status in (DupStatus.REMOVED, DupStatus.INIT, DupStatus.PREPARE):
                continue
            mine = self.ownership.scope(d.table_name)
            for row in d.progress():
                key = (d.dupid, row.pidx)
                if row.pidx not in mine or self._confirmed_written.get(key) == row.confirmed_decree:
                    continue
                path = dup_partition_path(d.dupid, row.pidx)
                body = json.dumps({"confirmed": row.confirmed_decree, "node": self.node_id}).encode()
                try:
                    self.zk.set(path, body)
                except NoNodeError:
                    try:
                        self.zk.create(path, body)
                    except (NodeExistsError, NoNodeError):
                        continue  # raced another writer, or the duplication's znode is gone
                self._confirmed_written[key] = row.confirmed_decree

    def _take(self, part: Any, handoff_decree: int, ballot: int) -> None:
        """Serve a partition ZooKeeper says is this node's, if its data is whole."""
        key = (part.table, part.pidx)
        if part.state == LEARNING:
            if ballot <= 1:
                pass  # never moved: a follower table's partition, learning from its source
            elif part.last_committed >= handoff_decree:
                # learned through the decree the last owner wrote (a duplication's follower
                # partition: recorded as learned, or its next open would start it empty)
                rec = self.cluster._table_record(part.table)
                if rec is not None and rec.follower_of is not None:
                    self.cluster._mark_learned(part.table, [part.pidx])
                part.state = SERVING
            else:
                log.warning(
                    "node %s owns %s.%d but holds decree %d of %d: not serving it",
                    self.node_id,
                    part.table,
                    part.pidx,
                    part.last_committed,
                    handoff_decree,
                )
        elif part.state == "moving":
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

    def note_fenced(self, table: str, pidx: int) -> None:
        self._fenced_at[(table, pidx)] = time.monotonic()

    def check(self, table: str, pidx: int, write: bool) -> None:
        """Refuse what this node must not answer: a partition it does not own, or a write
        while its ZooKeeper session may be gone."""
        owned = self.ownership.owned.get(table)
        if (owned is None or pidx not in owned) and not self._taken_now(table, pidx):
            raise NotOwnerError(table, pidx, self.node_id)
        if write and self._suspended.is_set():
            raise PartitionUnavailableError(table, pidx, "zookeeper connection lost")

    def _taken_now(self, table: str, pidx: int) -> bool:
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

    def owned(self, table: str) -> list[int]:
        return sorted(self.ownership.owned.get(table, ()))

    def config(self, table: str) -> TableConfig | None:
        return self._configs.get(table)

    def describe(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "url": self.url,
            "leader": self.is_leader,
            "owned": {k: sorted(v) for k, v in self.ownership.owned.items()},
        }

    def __repr__(self) -> str:
        return f"Member({json.dumps(self.describe())})"


__all__ = ["Member", "Ownership", "join_cluster", "node_id_of"]
