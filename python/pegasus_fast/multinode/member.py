"""A node of a multi-node cluster: joins through ZooKeeper, serves the partitions it owns.

The node's own :class:`Cluster` holds every table of the cluster with all its
partitions, but it answers only for the partitions ZooKeeper says it owns
(:meth:`Member.check`); the others stay empty and unopened, or hold what the
node had before a partition moved away (stale, never served).

* **Joining** (join.py, registration.py). The first node makes ``/cluster``; each
  node registers the ephemeral ``/nodes/<node_id>`` with its URL and its
  directory's identity (refused if a live node of another directory holds the
  id), and makes it again if it vanishes while the node lives.
* **Configuration.** The node reads every table's configuration at start, then
  the tables each bump of ``/config`` names (its log; everything when the log
  cannot say, and once a minute) whenever the leader bumps it (a watch), and at
  once when the leader calls ``Node.Sync``: it makes missing tables, drops dropped ones, and
  starts serving a partition it has learned and now owns (ownership.py), makes
  each table's envs the znode's (table_envs.py: a role env gates its writes), and
  runs the cluster's duplications for what it owns (dup_progress.py). A replicated
  partition's role here (primary or secondary of a ballot) is replication.py's.
* **Fencing.** When the ZooKeeper connection is lost, the node refuses writes
  to every partition at once (before the session can expire and anyone could
  act on its absence), and takes them again only after it has reconnected and
  read the configuration anew. A partition fenced for a move that did not
  finish is unfenced after ``Config.fence_lease_seconds`` if the node still owns it.
* **Meta leader** (election.py). Every node runs kazoo's Election; the winner
  writes the ephemeral ``/meta/leader`` and answers the Meta service
  (placement.py, meta.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

from ..coord.layout import CONFIG, CONFIRM_WRITE_INTERVAL, ConfigLog, TableConfig
from ..coord.zk import ZkAddress, read_nodes, read_table, read_tables
from ..duplication.ports import SourceId
from ..engine.cluster import Cluster
from ..engine.local_follower import LocalFollower, same_source
from ..engine.roles import MOVED_TO_ENV
from ..errors import (
    CoordinationError,
    NotOwnerError,
    PartitionUnavailableError,
    TableExistsError,
    TableNotFoundError,
)
from ..logs import Outage, event, get
from ..net.peer import Peers
from .dup_progress import DupProgress
from .election import LeaderCollector, Leadership
from .ownership import Custody, Ownership
from .registration import Registration
from .replication import Replication

log = get(__name__)

#: a node reads the configuration at least this often (seconds), watch or not: ``/config``,
#: and the tables its log names as changed since the last read
RESYNC_INTERVAL = 5.0
#: and every table at least this often (seconds): what the log does not say (a node's address)
FULL_RESYNC_INTERVAL = 60.0
#: the longest a stopping node waits on ZooKeeper
STOP_WAIT = 2.0


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
        uid: str = "",
    ) -> None:
        self.zk = zk
        self.addr = addr
        self.cluster = cluster
        self.node_id = node_id
        #: the configuration sync failing round after round: two lines, with the count
        self._sync_outage = Outage(
            log, f"node {node_id}: configuration sync", down="failing", up="working again", node=node_id
        )
        self.url = ""
        #: this node's Pegasus-protocol address (registered with its URL), "" without one
        self.pegasus = ""
        self.peers = Peers(token)
        self.ownership = ownership or Ownership()
        self.custody = Custody(zk, cluster, node_id, self.ownership)
        self.dups = DupProgress(zk, cluster, node_id, self.ownership)
        self._want_sync = threading.Event()
        self.replication = Replication(
            zk, cluster, node_id, self.peers, self._want_sync.set, self.resync_all, lambda: self.url
        )
        self._synced_at = 0.0
        #: when the last sync that read every table began
        self._full_at = 0.0
        #: the ``/config`` version the last sync that finished had seen when it began
        self._synced_version = -1
        self._configs: dict[str, TableConfig] = {}
        #: the ZooKeeper connection is lost: refuse writes until it is back and re-read
        self._suspended = threading.Event()
        self._stop = threading.Event()
        self._sync_lock = threading.Lock()
        self.registration = Registration(zk, addr.spec, node_id, uid)
        self._reregister = self.registration.wanted
        self.leadership = Leadership(zk, node_id, lambda: self.url, self._stop)
        cluster.metric_set.add_collector(LeaderCollector(self.leadership))
        self._threads: list[threading.Thread] = []

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, url: str, pegasus: str = "") -> None:
        self.url = url
        self.pegasus = pegasus
        self.zk.add_listener(self._on_state)
        self._register()
        self.registration.watch(self._want_sync.set)
        self.sync()
        self.zk.DataWatch(CONFIG, self._on_config)
        for name, fn in (("sync", self._sync_loop), ("elect", self.leadership.run)):
            t = threading.Thread(target=fn, name=f"member-{name}-{self.node_id}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Leave the cluster: stop leading, drop the node's registration, close ZooKeeper."""
        self._stop.set()
        self._want_sync.set()
        self.leadership.lost()
        if self.zk.connected:
            # the node's absence is seen at once, not after its session expires; bounded, since
            # ZooKeeper may go away meanwhile (closing the session drops the znode as well)
            self.registration.leave(STOP_WAIT)
        with contextlib.suppress(Exception):
            self.zk.stop()
        for t in self._threads:
            t.join(timeout=5)
        self.replication.close()
        with contextlib.suppress(Exception):
            self.zk.close()
        self.peers.close()

    @property
    def is_leader(self) -> bool:
        return self.leadership.is_leader

    def _register(self) -> None:
        self.registration.register(self.url, self.pegasus)

    def _on_state(self, state: str) -> None:
        # kazoo's connection thread: nothing blocking here
        log.log(
            logging.INFO if state == KazooState.CONNECTED else logging.WARNING,
            "node %s: ZooKeeper connection %s",
            self.node_id,
            str(state).lower(),
            extra=event(node=self.node_id, zookeeper=str(state).lower()),
        )
        if state in (KazooState.SUSPENDED, KazooState.LOST):
            self._suspended.set()
            self.leadership.lost()
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
                    try:
                        self._register()
                    except Exception as exc:  # noqa: BLE001 - tried again next round; sync goes on
                        log.warning("node %s: registering again failed: %s", self.node_id, exc)
                stale = time.monotonic() - self._synced_at > RESYNC_INTERVAL
                if pending or stale or self._suspended.is_set() or self.custody.fences_pending:
                    if self.zk.connected:
                        self.sync()
                if self.zk.connected and time.monotonic() - self.dups.confirmed_at >= CONFIRM_WRITE_INTERVAL:
                    self.dups.write_confirmed()
                self._sync_outage.ok()
            except Exception as exc:  # noqa: BLE001 - retried on the next round
                self._sync_outage.failed(f"{type(exc).__name__}: {exc}")
                time.sleep(0.2)
                self._want_sync.set()

    # -- configuration ------------------------------------------------------------------

    def sync(self, fresh: bool = False) -> None:
        """:meth:`_sync`; ZooKeeper's own errors (the session closing under a call, a timeout)
        raised as the CoordinationError they are, so that a caller (the leader's Node.Sync) gets
        it typed and the node does not log it as an error no one foresaw. ``fresh`` (a call
        that waits for it) without a ZooKeeper connection is refused at once: kazoo would hold
        it, and the caller's worker, until the session is back."""
        if fresh and not self.zk.connected:
            raise CoordinationError(self.addr.spec, "not connected: the configuration cannot be read now")
        try:
            self._sync(fresh)
        except (KazooException, KazooTimeoutError) as exc:
            raise CoordinationError(self.addr.spec, f"reading the configuration: {exc!r}") from exc

    def _sync(self, fresh: bool = False) -> None:
        """Read the configuration and act on it (tables made or dropped, partitions served).

        A node that saw the ``/config`` bump before the last ones re-reads only the tables
        they changed (their log in ``/config``: coord/layout.py's ConfigLog), or everything
        when the log cannot say, when its ZooKeeper connection was lost meanwhile, when a
        replica asks (:meth:`resync_all`), and at least every FULL_RESYNC_INTERVAL. ``fresh``: the leader waits for a change it made; a
        sync that began once ``/config`` was bumped for it (the watch's, started meanwhile)
        read it already, and is enough."""
        version = self._config_version() if fresh else None
        with self._sync_lock:
            if version is not None and self._synced_version >= version:
                return
            began, changes = self._config_log()
            read_at = time.monotonic()
            why = (
                "unlogged change"
                if changes is None
                else "connection lost"
                if self._suspended.is_set()
                else "asked or due"
                if time.monotonic() - self._full_at > FULL_RESYNC_INTERVAL
                else ""
            )
            full = bool(why)
            if full:
                configs = read_tables(self.zk)
                changed = set(configs) | {t.name for t in self.cluster.list_tables()}
            else:
                assert changes is not None
                configs = dict(self._configs)
                # and a fenced partition's table, whose lease only a read of it checks
                changed = changes | self.custody.fenced_tables()
                for name in changes:
                    try:
                        configs[name] = read_table(self.zk, name)
                    except TableNotFoundError:
                        configs.pop(name, None)
            owned = {k: v for k, v in self.ownership.owned.items() if k not in changed}
            urls: dict[str, str] | None = None
            read = time.monotonic()
            for name in sorted(changed):
                tc = configs.get(name)
                if tc is None:
                    if self.cluster.has_table(name):
                        self.replication.forget(name)
                        with contextlib.suppress(Exception):
                            self.cluster.drop_table(name)
                    continue
                owned[name], urls = self._adopt_table(name, tc, urls)
            self.replication.reap()
            adopted = time.monotonic()
            self._configs = configs
            self.custody.publish(owned, read_at)
            self.dups.sync()
            # after the duplications: a table taken over runs its reverse duplication here before
            # its gate opens (multinode/takeover.py)
            for name, tc in configs.items():
                self._follow(name, tc)
            self._synced_at = time.monotonic()
            log.debug(
                "node %s: %s sync of %d tables: read %.1f ms, acted %.1f ms, duplications %.1f ms",
                self.node_id,
                f"full ({why})" if full else "partial",
                len(changed),
                (read - read_at) * 1e3,
                (adopted - read) * 1e3,
                (self._synced_at - adopted) * 1e3,
            )
            if full:
                self._full_at = read_at
            if self.zk.connected:
                self._suspended.clear()
            self._synced_version = max(self._synced_version, began)

    def _adopt_table(
        self, name: str, tc: TableConfig, urls: dict[str, str] | None
    ) -> tuple[frozenset[int], dict[str, str] | None]:
        """One table's configuration acted on here: made if missing, its envs, each partition
        served, let go or replicated. The partitions this node owns, and the live nodes' URLs
        (read once per sync, if a replicated partition needs them)."""
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
        # the znode's envs (multinode/table_envs.py), every partition's gate from them
        self.cluster.adopt_table_envs(name, tc.app.envs)
        learned: list[int] = []
        for pc in tc.partitions:
            if pc.problem:
                # not served, nor dropped: its owner is unknown until the znode is good
                log.warning("node %s: %s.%d: %s", self.node_id, name, pc.pidx, pc.problem)
                continue
            part = table.partitions[pc.pidx]
            if pc.owner == self.node_id:
                self.custody.take(part, pc.decree, pc.ballot)
            elif self.node_id not in pc.secondaries:
                self.custody.let_go(part)
            if pc.secondaries or tc.app.replica_count > 1:
                if urls is None:
                    nodes = read_nodes(self.zk)
                    urls = {n: d.url for n, d in nodes.items()}
                    self.replication.pegasus = {n: d.pegasus for n, d in nodes.items()}
                if self.replication.adopt(part, pc.doc, urls):
                    learned.append(pc.pidx)
        if learned:
            self.cluster.followers.mark_learned(name, learned)
        return frozenset(p.pidx for p in tc.partitions if p.owner == self.node_id), urls

    def _config_log(self) -> tuple[int, set[str] | None]:
        """``/config``'s version now, and the tables changed since the last sync's (None: any)."""
        try:
            raw, stat = self.zk.get(CONFIG)
        except NoNodeError:
            return -1, None
        return int(stat.version), ConfigLog.decode(raw).changed_since(self._synced_version, int(stat.version))

    def resync_all(self) -> None:
        """Read every table again soon (not only those ``/config``'s log names): a replica is
        stale or unreachable, and a node's address or a partition may have changed unlogged."""
        self._full_at = 0.0
        self._want_sync.set()

    def _config_version(self) -> int:
        stat = self.zk.exists(CONFIG)
        return -1 if stat is None else int(stat.version)

    def _follow(self, name: str, tc: TableConfig) -> None:
        """Make this node's follower record of the table the znode's ``follower_of``: adopted
        by a duplication without checkpoint, or taken over (it follows no one)."""
        rec = self.cluster.followers.record(name)
        if rec is None:
            return
        mine = None if rec.follower_of is None else rec.follower_of.source
        f = tc.app.follower_of
        want = None if f is None else SourceId(**f)
        if want is None and mine is not None:
            missing = self.dups.missing(name)
            if missing:
                # taken over: its reverse duplication must run here before any client write
                # is taken, or that write would never reach the old source (the next sync
                # tries again: the config watch, or RESYNC_INTERVAL)
                log.warning(
                    "node %s: table %s waits for duplications %s to promote", self.node_id, name, missing
                )
                return
            self.cluster.followers.promote(name, MOVED_TO_ENV)
        elif want is not None and (mine is None or not same_source(mine, want)):
            again = mine is not None and (mine.cluster_uid, mine.table) == (want.cluster_uid, want.table)
            self.cluster.followers.adopt(name, want, tc.app.partition_count, continues=again)

    def note_fenced(self, table: str, pidx: int) -> None:
        self.custody.note_fenced(table, pidx)

    def owns(self, table: str, pidx: int) -> bool:
        """ZooKeeper says this node owns the partition (read again for one learned here)."""
        owned = self.ownership.owned.get(table)
        return (owned is not None and pidx in owned) or self.custody.taken_now(table, pidx)

    def check(self, table: str, pidx: int, write: bool) -> None:
        """Refuse what this node must not answer: a partition it does not own, or a write
        while its ZooKeeper session may be gone (a read too, of a replicated partition: its
        session may expire and another replica be made primary, and take writes)."""
        if not self.owns(table, pidx):
            raise NotOwnerError(table, pidx, self.node_id)
        if self._suspended.is_set() and (write or self.replicated(table)):
            raise PartitionUnavailableError(table, pidx, "zookeeper connection lost")

    def replicated(self, table: str) -> bool:
        tc = self._configs.get(table)
        return tc is not None and tc.app.replica_count > 1

    def owned(self, table: str) -> list[int]:
        return sorted(self.ownership.owned.get(table, ()))

    def configs(self) -> dict[str, TableConfig]:
        """Every table's configuration as the last sync read it."""
        return dict(self._configs)

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


__all__ = ["Member"]
