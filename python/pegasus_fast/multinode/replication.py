"""A replicated partition's writes, in the model of PacificA: the primary logs a mutation, every
secondary of the ballot logs it durably, and only then is the write acknowledged.

The configuration (primary, secondaries, ballot) is the partition's znode, changed only by the
meta leader by compare-and-set (failover.py). On this node, :class:`Replication` follows it:

* **Primary.** A :class:`ReplicaSet` per partition it leads, set as the partition's replicator
  (storage/writes.py). Each mutation logged is kept in memory; once a batch's partitions are
  logged (``send``), one :class:`Link` per secondary node sends whatever its partitions hold
  past what that secondary acknowledged, all of them in one request of the
  ``Node.ReplicateStream`` it keeps open, one request in flight: under load a request
  carries what piled up meanwhile, as group commit does. The
  secondaries log while this node syncs its own copy. A write returns once every secondary
  of the ballot has acknowledged its decree durable (``replica_ack_timeout_seconds``, then
  PartitionUnavailableError: outcome unknown). A secondary that is behind (it restarted, it
  is new in the ballot) answers GAP with its decree, and gets the rest from the WAL.
* **Secondary.** :meth:`Replication.receive` logs a primary's blocks with their decrees only
  if the primary and the ballot are the znode's, and no failover has promised a newer ballot
  (:meth:`Replication.promise`): all checked and logged under the partition's lock.
* **Failover** (failover.py). Before it picks a new primary, the leader makes every surviving
  replica promise the new ballot and tell its decree: from then on no replica takes anything
  from the old primary, so the one with the highest decree holds every acknowledged write
  (each was on every replica) and every other replica holds a prefix of its log.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import ExitStack

from kazoo.client import KazooClient

from ..coord.layout import PartitionDoc, partition_path
from ..engine.cluster import Cluster
from ..errors import CoordinationError, PegasusFastError, WalGapError
from ..logs import get
from ..net import pegasus_fast_pb2 as pb
from ..net.peer import Peers
from ..storage.partition import LEARNING, MOVING, Partition
from ..storage.writes import SharedDurability, wait_durable_all
from .links import Link
from .replica_set import FAILED, GAP, OK, STALE, ReplicaSet

log = get(__name__)

#: a secondary's partition logs what it is sent without opening its RocksDB; it opens this
#: long after (seconds)
SECONDARY_OPEN_DELAY = 0.25


class Replication:
    """This node's part in its partitions' replication: the primaries' sets and links, the
    secondaries' checks (see the module's docstring)."""

    def __init__(
        self,
        zk: KazooClient,
        cluster: Cluster,
        node_id: str,
        peers: Peers,
        want_sync: Callable[[], None],
        resync_all: Callable[[], None],
        url: Callable[[], str],
    ) -> None:
        """``want_sync()``: have the node read its configuration soon; ``resync_all()``: every
        table of it (something changed that /config's log does not name); ``url()``: the
        node's URL."""
        self.resync_all = resync_all
        self.url = url
        self.zk = zk
        self.cluster = cluster
        self.node_id = node_id
        self.peers = peers
        self.want_sync = want_sync
        self._lock = threading.Lock()
        self.sets: dict[tuple[str, int], ReplicaSet] = {}
        self.links: dict[tuple[str, str], Link] = {}
        #: each partition's configuration as this node last adopted it (ballot, owner, secondaries)
        self.roles: dict[tuple[str, int], tuple[int, str, tuple[str, ...]]] = {}
        #: the highest ballot a failover made this replica promise: nothing of an older one is taken
        self.promised: dict[tuple[str, int], int] = {}
        #: each live node's Pegasus address ("": none), as a sync last read them (links.py)
        self.pegasus: dict[str, str] = {}

    def close(self) -> None:
        with self._lock:
            sets, links = list(self.sets.values()), list(self.links.values())
            self.sets.clear()
            self.links.clear()
        for rs in sets:
            rs.part.set_replicator(None)
            rs.retire(None)
        for link in links:
            link.stop()

    # -- the configuration, as each sync reads it ---------------------------------------------

    def adopt(self, part: Partition, doc: PartitionDoc, urls: dict[str, str]) -> bool:
        """``doc`` is ``part``'s configuration now (``urls``: the live nodes'). True: ``part`` is
        a follower table's replica new here, which the caller records as learned (one record
        for all of a table's: each costs an fsync)."""
        key = (part.table, part.pidx)
        with part.lock:
            learned = self._set_role(part, doc)
        with self._lock:
            old = self.sets.get(key)
        if doc.owner == self.node_id and doc.secondaries:
            where = {n: urls.get(n) for n in doc.secondaries}
            if (
                old is not None
                and old.ballot == doc.ballot
                and old.secondaries == doc.secondaries
                and old.urls == where
            ):
                return learned
            # a new ballot, or a secondary at another address (restarted before its session
            # expired): a new set, which asks each secondary its decree first
            rs = ReplicaSet(
                part, doc.ballot, doc.secondaries, self.cluster.config.replica_ack_timeout_seconds
            )
            rs.urls = where
            with self._lock:
                self.sets[key] = rs
            for n in doc.secondaries:
                url = urls.get(n)
                if url is not None:  # a dead one never acknowledges: the failover removes it
                    self._attach(n, url, rs)
            part.set_replicator(rs)
            if old is not None:
                old.retire(rs)
        elif old is not None:
            with self._lock:
                self.sets.pop(key, None)
            part.set_replicator(None)
            old.retire(None)
        return learned

    def _set_role(self, part: Partition, doc: PartitionDoc) -> bool:
        """This node's role in ``part`` is ``doc``'s now (the partition's lock held). True: a
        follower table's replica new here, to be recorded as learned (kept at its next open;
        behind, it is caught up from the primary's log, or learns anew)."""
        key = (part.table, part.pidx)
        before = self.roles.get(key)
        self.roles[key] = (doc.ballot, doc.owner, doc.secondaries)
        if self.node_id in doc.secondaries and (before is None or self.node_id not in before[2]):
            # new here: learned for this (rereplicate.py), or fenced as the primary of a
            # move: a replica now, whole through its decree, taking its primary's log from
            # there (a secondary already is left as it is: a move to it learns it anew)
            if part.state == LEARNING:
                part.serve_learned()
                rec = self.cluster.followers.record(part.table)
                return rec is not None and rec.follower_of is not None
            if part.state == MOVING:
                part.unfence()
        return False

    def forget(self, table: str) -> None:
        """A dropped table."""
        with self._lock:
            keys = [k for k in self.sets if k[0] == table]
            sets = [self.sets.pop(k) for k in keys]
        for rs in sets:
            rs.retire(None)
        for k in [k for k in self.roles if k[0] == table]:
            self.roles.pop(k, None)
            self.promised.pop(k, None)

    def _attach(self, node: str, url: str, rs: ReplicaSet) -> None:
        """``rs`` sent to ``node`` at ``url`` by its link (made if there is none); under the lock,
        so that :meth:`reap` never stops a link between its lookup and its attach."""
        with self._lock:
            link = self.links.get((node, url))
            if link is None:
                link = Link(
                    node,
                    url,
                    self.node_id,
                    self.url,
                    self.peers,
                    self._stale,
                    self.resync_all,
                    pegasus_of=lambda: self.pegasus.get(node, ""),
                )
                self.links[(node, url)] = link
            link.attach(rs)

    def reap(self) -> None:
        """Stop the links no partition sends over any more: a secondary gone from every
        configuration, or one now at another address (a link is made per node and URL). Each
        holds two threads and a connection, which would otherwise stay for the process's life."""
        with self._lock:
            idle = [k for k, link in self.links.items() if link.idle()]
            gone = [self.links.pop(k) for k in idle]
        for link in gone:
            link.stop()

    def _stale(self, rs: ReplicaSet, ballot: int) -> bool:
        """A secondary refused ``rs``'s ballot, knowing ``ballot``. Below it, the secondary is
        behind (a table it has not made yet, a sync under way: it catches up by itself, and the
        link asks again); otherwise this node reads every table again. True: it is behind."""
        if ballot < rs.ballot:
            return True
        log.info(
            "node %s: a secondary of %s.%d knows ballot %d, past %d: reading the configuration",
            self.node_id,
            rs.part.table,
            rs.part.pidx,
            ballot,
            rs.ballot,
        )
        self.resync_all()
        return False

    # -- a secondary's side --------------------------------------------------------------------

    def promise(self, part: Partition, ballot: int) -> int:
        """A failover's first step on this replica: refuse every primary of a ballot below
        ``ballot`` from now on; returns the last decree held, durable."""
        key = (part.table, part.pidx)
        with part.lock:
            promised, known = self.promised.get(key, 0), self.roles.get(key, (0, "", ()))[0]
            if ballot < promised or ballot <= known:  # the same ballot again: a failover retried
                raise CoordinationError(
                    "",
                    f"{part.table}.{part.pidx}: ballot {ballot} is stale here (this replica knows "
                    f"{max(promised, known)})",
                )
            self.promised[key] = ballot
            part.set_replicator(None)
        part.sync_wal()
        return part.last_committed

    def _accepts(self, part: Partition, primary: str, ballot: int) -> int:
        """0 when ``primary`` at ``ballot`` is this replica's primary (the lock held), else the
        ballot this replica knows, which is newer."""
        key = (part.table, part.pidx)
        known = self.roles.get(key, (0, "", ()))
        promised = self.promised.get(key, 0)
        if ballot < promised or ballot < known[0]:
            return max(promised, known[0])
        if ballot == known[0] and known[1] == primary and self.node_id in known[2]:
            return 0
        if ballot > known[0]:
            # a ballot this node has not read yet: the znode says whether it is ours
            try:
                raw, _ = self.zk.get(partition_path(part.table, part.pidx))
                doc = PartitionDoc.decode(raw, partition_path(part.table, part.pidx))
            except Exception:  # noqa: BLE001 - not sure: refused, the primary tries again
                return max(promised, known[0], 1)
            if doc.ballot == ballot and doc.owner == primary and self.node_id in doc.secondaries:
                if self._set_role(part, doc):
                    self.cluster.followers.mark_learned(part.table, [part.pidx])
                self.want_sync()
                return 0
            return max(promised, known[0], doc.ballot)
        return max(promised, known[0])

    def _adopted_marks(self, request: pb.ReplicateRequest, items: list[int]) -> None:
        """Durable here now: source positions for partitions of a table adopted by a
        duplication without checkpoint. Its primary marked each partition learned once it
        logged its start (the follower's reset_source, acknowledged only once every replica
        held it); a secondary marks it too, or made primary by a failover it would refuse
        the duplication's shipping ("not learned") for good."""
        by_table: dict[str, list[int]] = {}
        for i in items:
            item = request.items[i]
            rec = self.cluster.followers.record(item.table)
            fo = None if rec is None else rec.follower_of
            if fo is not None and fo.adopted and not fo.rerouted and not fo.learned[item.pidx]:
                by_table.setdefault(item.table, []).append(item.pidx)
        for table, pidxs in by_table.items():
            try:
                self.cluster.followers.mark_learned(table, pidxs)
            except (PegasusFastError, OSError) as exc:  # the next one tries again
                log.warning("node %s: %s %s not marked learned: %s", self.node_id, table, pidxs, exc)

    def _replica_here(self, part: Partition) -> bool:
        """Whether this node keeps a replica of ``part`` by the configuration it adopted."""
        role = self.roles.get((part.table, part.pidx))
        return role is not None and (role[1] == self.node_id or self.node_id in role[2])

    def receive(self, request: pb.ReplicateRequest) -> pb.ReplicateReply:
        """A primary's items: each logged here if its ballot is this replica's, all of them made
        durable at once, then acknowledged with the decree each partition holds durably.

        The items' partitions are locked together (in one order, so two primaries' calls
        cannot deadlock) from their checks until RocksDB has what they logged. Through the
        shared log, RocksDB takes it while the disk syncs the record: no one sees a partition
        whose log is ahead of its RocksDB, and the apply costs the acknowledgement nothing."""
        acks: list[pb.ReplicaAck | None] = [None] * len(request.items)
        parts: list[Partition | None] = [None] * len(request.items)
        for i, item in enumerate(request.items):
            try:
                parts[i] = self.cluster.table(item.table).partitions[item.pidx]
            except (PegasusFastError, IndexError):
                acks[i] = pb.ReplicaAck(status=STALE)
        unopened: list[Partition] = []
        logged: list[tuple[int, Partition, int, int, int, bytes]] = []
        #: the items that logged a SOURCE_DECREE op (a follower's source position)
        marked: list[int] = []
        # config.shared_log=False: every partition log syncs on its own, a secondary's too
        slog = getattr(self.cluster, "shared_log", None) if self.cluster.config.shared_log else None
        durability: SharedDurability | None = None
        rows: list[tuple[Partition, int, int, int, bytes]] = []
        with ExitStack() as held:
            locked = sorted({id(p): p for p in parts if p is not None}.values(), key=_lock_order)
            for part in locked:
                held.enter_context(part.lock)
            try:
                for i, part in enumerate(parts):
                    if part is not None:
                        self._log_item(request, i, part, acks, logged, marked, unopened, slog is not None)
                rows = [(p, last, end, start, block) for _, p, last, end, start, block in logged if end >= 0]
                if slog is not None and rows:
                    durability = SharedDurability(slog, rows, started=True)
            finally:
                # whatever was logged reaches RocksDB before the locks go, an error or not
                unforeseen: BaseException | None = None
                for part in locked:
                    try:
                        part.apply_held()
                    except (PegasusFastError, OSError) as exc:
                        log.warning("node %s: replica of %s.%d: %s", self.node_id, part.table, part.pidx, exc)
                        for i, p in enumerate(parts):
                            if p is part:
                                acks[i] = pb.ReplicaAck(status=FAILED)
                    except BaseException as exc:  # the others still get theirs; raised below
                        unforeseen = unforeseen or exc
                if unforeseen is not None:
                    if durability is not None:
                        durability.wait()  # the shared log takes other records again
                    raise unforeseen
        if durability is not None:
            errors = durability.wait()
        elif rows:
            errors = wait_durable_all([r[:3] for r in rows])
        else:
            errors = []
        fresh = [x for x in logged if x[3] >= 0]
        failed = {x[0] for x, e in zip(fresh, errors, strict=True) if e is not None}
        for i, part, _, end, _, _ in logged:
            if i in failed or acks[i] is not None:
                acks[i] = pb.ReplicaAck(status=FAILED)
                continue
            try:
                if part.durable_decree < part.last_committed:
                    part.sync_wal()  # what is here may be another call's, not yet synced
            except (PegasusFastError, OSError):
                acks[i] = pb.ReplicaAck(status=FAILED)
                continue
            status = GAP if end == -2 else OK
            acks[i] = pb.ReplicaAck(status=status, decree=part.last_committed)
        if unopened:
            # not a partition whose replica here moved away meanwhile: its copy was dropped
            self.cluster.open_later(unopened, SECONDARY_OPEN_DELAY, self._replica_here)
        self._adopted_marks(request, [i for i in marked if acks[i] is not None and acks[i].status == OK])
        return pb.ReplicateReply(acks=[a if a is not None else pb.ReplicaAck(status=FAILED) for a in acks])

    def _log_item(
        self,
        request: pb.ReplicateRequest,
        i: int,
        part: Partition,
        acks: list[pb.ReplicaAck | None],
        logged: list[tuple[int, Partition, int, int, int, bytes]],
        marked: list[int],
        unopened: list[Partition],
        hold: bool,
    ) -> None:
        """Check and log item ``i`` (its partition's lock held): its ack if refused, else a row of
        ``logged``. ``hold``: its RocksDB batch waits for ``apply_held``."""
        item = request.items[i]
        try:
            newer = self._accepts(part, request.primary, item.ballot)
            if newer:
                acks[i] = pb.ReplicaAck(status=STALE, ballot=newer, decree=part.last_committed)
                return
            if item.first == 0 or not item.blocks:
                logged.append((i, part, part.last_committed, -1, -1, b""))
                return
            try:
                # a secondary serves nothing: its RocksDB (5-10 ms to make) opens a
                # moment later, not in the primary's write
                marks = part.source_marks
                last, end, block = part.log_replica(item.blocks, defer_apply=True, hold=hold)
                if part.source_marks != marks:
                    marked.append(i)
                if not part.is_open and part.logged_records:
                    unopened.append(part)
            except WalGapError:
                logged.append((i, part, part.last_committed, -2, -1, b""))
                return
            if end is None:
                logged.append((i, part, last, -1, -1, b""))
            else:
                logged.append((i, part, last, end, end - len(block), block))
        except (PegasusFastError, OSError) as exc:
            # damaged blocks, a failed partition, a full disk: nothing logged, the primary
            # hears FAILED and asks again (its writes wait, none is acknowledged)
            log.warning("node %s: replica of %s.%d: %s", self.node_id, item.table, item.pidx, exc)
            acks[i] = pb.ReplicaAck(status=FAILED)


def _lock_order(part: Partition) -> tuple[str, int]:
    return (part.table, part.pidx)


__all__ = ["Replication"]
