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

import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from kazoo.client import KazooClient

from ..coord.layout import PartitionDoc, partition_path
from ..engine.cluster import Cluster
from ..errors import (
    CoordinationError,
    PartitionUnavailableError,
    PegasusFastError,
    RemoteUnavailableError,
    WalGapError,
)
from ..logs import Outage, get
from ..net import pegasus_fast_pb2 as pb
from ..net.peer import Peers
from ..storage.log_read import log_batches
from ..storage.partition import LEARNING, MOVING, Partition
from ..storage.writes import wait_durable_all, wait_durable_shared

log = get(__name__)

#: mutations a primary keeps in memory per partition for its secondaries (older: from the WAL)
BUFFER_BYTES = 16 << 20
#: the most one Replicate call carries for one partition
SEND_BYTES = 4 << 20
#: one Replicate call's deadline (seconds)
CALL_TIMEOUT = 10.0
#: a secondary's Learn from its primary (a checkpoint copy): its deadline (seconds)
LEARN_TIMEOUT = 3600.0

OK, STALE, GAP, FAILED = pb.ReplicaAck.OK, pb.ReplicaAck.STALE, pb.ReplicaAck.GAP, pb.ReplicaAck.FAILED


class ReplicaSet:
    """One partition's secondaries of one ballot, on its primary (the partition's replicator)."""

    def __init__(self, part: Partition, ballot: int, secondaries: tuple[str, ...], timeout: float) -> None:
        self.part = part
        self.ballot = ballot
        self.secondaries = secondaries
        self.timeout = timeout
        self.cond = threading.Condition()
        #: the last decree each secondary holds durably; -1: not known yet (asked first)
        self.acked: dict[str, int] = {n: -1 for n in secondaries}
        #: (first decree, last decree, WAL block) logged here and not yet on every secondary
        self._buf: deque[tuple[int, int, bytes]] = deque()
        self._buf_bytes = 0
        self.links: list[Link] = []
        #: the decrees writers wait for now (notified once the lowest is on every secondary)
        self._waits: list[int] = []
        #: each secondary's URL when the set was made (None: not live then)
        self.urls: dict[str, str | None] = {}
        #: replaced by another ballot's set (waiters go on there), or the primary role is gone
        self.retired = False
        self.successor: ReplicaSet | None = None

    # -- the partition's side (storage/writes.py's Replicator) --------------------------------

    def logged(self, first: int, last: int, block: bytes) -> None:
        with self.cond:
            self._buf.append((first, last, block))
            self._buf_bytes += len(block)
            while self._buf_bytes > BUFFER_BYTES and len(self._buf) > 1:
                self._buf_bytes -= len(self._buf.popleft()[2])

    def send(self) -> None:
        for link in self.links:
            link.wake()

    def commit(self, decree: int) -> None:
        self.send()  # (sent already, unless the writer skipped send: no harm)
        deadline = time.monotonic() + self.timeout
        rs = self
        while True:
            with rs.cond:
                while rs.successor is None and not rs.retired:
                    if min(rs.acked.values()) >= decree:
                        return
                    left = deadline - time.monotonic()
                    if left <= 0:
                        behind = sorted(n for n in rs.secondaries if rs.acked[n] < decree)
                        raise PartitionUnavailableError(
                            self.part.table,
                            self.part.pidx,
                            f"secondaries {behind} did not acknowledge decree {decree} "
                            f"within {self.timeout:g} s (the write may yet be kept)",
                        )
                    rs._waits.append(decree)
                    try:
                        rs.cond.wait(left)
                    finally:
                        rs._waits.remove(decree)
                nxt = rs.successor
            if nxt is None:
                raise PartitionUnavailableError(
                    self.part.table, self.part.pidx, "no longer the primary (the write may yet be kept)"
                )
            rs = nxt

    # -- the links' side -------------------------------------------------------------------

    def retire(self, successor: ReplicaSet | None) -> None:
        with self.cond:
            self.retired = True
            self.successor = successor
            self.cond.notify_all()
        for link in self.links:
            link.detach(self)

    def pending(self, node: str) -> bool:
        with self.cond:
            return not self.retired and self.acked[node] < self.part.last_committed

    def item_for(self, node: str) -> pb.ReplicaItem | None:
        """What ``node`` should get next: a probe while its decree is unknown, then the
        mutations past it (from memory, or from the WAL when memory no longer reaches back)."""
        with self.cond:
            if self.retired:
                return None
            acked = self.acked[node]
            pieces = [x for x in self._buf if x[1] > acked] if acked >= 0 else []
        ref = {"table": self.part.table, "pidx": self.part.pidx, "ballot": self.ballot}
        if acked < 0:
            return pb.ReplicaItem(first=0, **ref)
        last = self.part.last_committed
        if acked >= last:
            return None
        if pieces and pieces[0][0] <= acked + 1:
            out, size = [], 0
            for _, _, block in pieces:
                if out and size + len(block) > SEND_BYTES:
                    break
                out.append(block)
                size += len(block)
            return pb.ReplicaItem(first=pieces[0][0], blocks=b"".join(out), **ref)
        through = pieces[0][0] - 1 if pieces else last
        for blocks, _ in log_batches(self.part, acked, through, SEND_BYTES):
            return pb.ReplicaItem(first=acked + 1, blocks=blocks, **ref)
        return None

    def forget(self, node: str) -> None:
        """``node``'s decree is not known any more (it learned anew): ask it first."""
        with self.cond:
            self.acked[node] = -1

    def on_ack(self, node: str, ack: pb.ReplicaAck) -> bool | None:
        """A secondary's answer; False when it says this ballot is stale, None when it holds
        decrees this primary does not (this node lost the tail of its log, unsynced, in a
        crash within its session: the secondary's copy has forked and is learned anew)."""
        if ack.status == STALE:
            return False
        if ack.status in (OK, GAP) and ack.decree > self.part.last_committed:
            return None
        if ack.status in (OK, GAP):
            with self.cond:
                self.acked[node] = ack.decree
                low = min(self.acked.values())
                while self._buf and self._buf[0][1] <= low:
                    self._buf_bytes -= len(self._buf.popleft()[2])
                # wake the writers only once one of them has all it waits for
                if self._waits and low >= min(self._waits):
                    self.cond.notify_all()
        return True


class _Stream:
    """One ``Node.ReplicateStream`` call kept open to a secondary node: a request sent, its reply
    awaited (one in flight). Any failure ends it; the link opens another for its next request."""

    def __init__(self, peer: Any) -> None:
        self._q: queue.SimpleQueue[pb.ReplicateRequest | None] = queue.SimpleQueue()
        self._call = peer.node.ReplicateStream(self._requests(), metadata=peer.md)
        self._replies = iter(self._call)
        #: when the request awaiting its reply was sent (None: none awaited)
        self.sent_at: float | None = None

    def _requests(self) -> Iterator[pb.ReplicateRequest]:
        while True:
            request = self._q.get()
            if request is None:
                return
            yield request

    def call(self, request: pb.ReplicateRequest) -> pb.ReplicateReply:
        self.sent_at = time.monotonic()
        self._q.put(request)
        try:
            return next(self._replies)
        except StopIteration:
            raise RemoteUnavailableError("", "the replication stream ended") from None
        finally:
            self.sent_at = None

    def close(self) -> None:
        self._q.put(None)
        self._call.cancel()


class Link:
    """This primary's calls to one secondary node, for every partition they share: one thread,
    one call in flight carrying every partition that has something to send."""

    def __init__(
        self,
        node: str,
        url: str,
        primary: str,
        primary_url: Any,
        peers: Peers,
        on_stale: Any,
        on_unreachable: Any,
    ) -> None:
        """``primary_url()``: this node's URL (a secondary too far behind learns from it);
        ``on_unreachable()``: a call failed (the node reads the configuration again)."""
        self.on_unreachable = on_unreachable
        self.node = node
        self.url = url
        self.primary = primary
        self.primary_url = primary_url
        #: the partitions this secondary is learning anew from here (their log is not enough)
        self._learning: set[ReplicaSet] = set()
        self.peers = peers
        self.on_stale = on_stale
        self.sets: set[ReplicaSet] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._outage = Outage(
            log, f"replication from {primary} to {node}", down="failing", up="working again"
        )
        self._stream: _Stream | None = None
        self._thread = threading.Thread(target=self._run, name=f"replicate-{primary}-{node}", daemon=True)
        self._thread.start()
        self._watch = threading.Thread(target=self._watchdog, name=f"replicate-watch-{node}", daemon=True)
        self._watch.start()

    def _watchdog(self) -> None:
        """A reply later than CALL_TIMEOUT (a secondary that hangs) ends the stream: the link's
        thread sees the call fail, and opens another for its next request."""
        while not self._stop.wait(1.0):
            s = self._stream
            at = None if s is None else s.sent_at
            if s is not None and at is not None and time.monotonic() - at > CALL_TIMEOUT:
                s.close()

    def attach(self, rs: ReplicaSet) -> None:
        with self._lock:
            self.sets.add(rs)
        rs.links.append(self)
        self._wake.set()

    def detach(self, rs: ReplicaSet) -> None:
        with self._lock:
            self.sets.discard(rs)

    def wake(self) -> None:
        if not self._wake.is_set():  # (a batch wakes it once per partition: one set is enough)
            self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        s = self._stream
        if s is not None:
            s.close()

    def _send(self, request: pb.ReplicateRequest) -> pb.ReplicateReply:
        if self._stream is None:
            self._stream = _Stream(self.peers.get(self.url))
        try:
            return self._stream.call(request)
        except BaseException:
            self._stream.close()
            self._stream = None
            raise

    def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            if self._stop.is_set():
                return
            with self._lock:
                sets = list(self.sets)
            items, owners = [], []
            for rs in sets:
                if rs in self._learning:
                    continue
                try:
                    item = rs.item_for(self.node)
                except WalGapError:
                    # what it lacks is no longer in this node's log (a checkpoint installed
                    # here, the log collected): it learns the partition anew, as a new one does
                    self._learning.add(rs)
                    threading.Thread(target=self._relearn, args=(rs,), daemon=True).start()
                    continue
                except (PegasusFastError, OSError) as exc:
                    log.warning("%s.%d for %s: %s", rs.part.table, rs.part.pidx, self.node, exc)
                    continue
                if item is not None:
                    items.append(item)
                    owners.append(rs)
            if not items:
                continue
            try:
                reply = self._send(pb.ReplicateRequest(primary=self.primary, items=items))
            except Exception as exc:  # noqa: BLE001 - tried again; the failover removes a dead node
                self._outage.failed(f"{type(exc).__name__}: {exc}")
                self.on_unreachable()  # it may be at another address now: the node reads again
                backoff = min(1.0, max(0.02, backoff * 2))
                self._stop.wait(backoff)
                self._wake.set()
                continue
            self._outage.ok()
            backoff = 0.0
            for rs, ack in zip(owners, reply.acks, strict=False):
                took = rs.on_ack(self.node, ack)
                if took is False:
                    self.on_stale(rs, ack.ballot)
                elif took is None and rs not in self._learning:
                    log.error(
                        "%s.%d: secondary %s holds decree %d, past this primary's %d: it learns anew",
                        rs.part.table,
                        rs.part.pidx,
                        self.node,
                        ack.decree,
                        rs.part.last_committed,
                    )
                    self._learning.add(rs)
                    threading.Thread(target=self._relearn, args=(rs,), daemon=True).start()
            if any(rs.pending(self.node) for rs in owners):
                self._wake.set()

    def _relearn(self, rs: ReplicaSet) -> None:
        part = rs.part
        try:
            log.warning(
                "%s.%d: secondary %s is behind this node's log; it learns the partition anew",
                part.table,
                part.pidx,
                self.node,
            )
            peer = self.peers.get(self.url)
            pace = int(part.config.replica_learn_mb_per_sec * (1 << 20))
            req = pb.LearnPartitionRequest(
                table=part.table, pidx=part.pidx, source_url=self.primary_url(), max_bytes_per_sec=pace
            )
            decree = peer(peer.node, "Learn", req, timeout=LEARN_TIMEOUT).decree
            log.info(
                "%s.%d: secondary %s learned through decree %d", part.table, part.pidx, self.node, decree
            )
        except Exception as exc:  # noqa: BLE001 - asked again after a pause
            log.warning("%s.%d: secondary %s could not learn: %s", part.table, part.pidx, self.node, exc)
            self._stop.wait(1.0)
        finally:
            rs.forget(self.node)
            self._learning.discard(rs)
            self._wake.set()


class Replication:
    """This node's part in its partitions' replication: the primaries' sets and links, the
    secondaries' checks (see the module's docstring)."""

    def __init__(
        self, zk: KazooClient, cluster: Cluster, node_id: str, peers: Peers, want_sync: Any, url: Any
    ) -> None:
        """``want_sync()``: have the node read its configuration soon; ``url()``: the node's URL."""
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

    def adopt(self, part: Partition, doc: PartitionDoc, urls: dict[str, str]) -> None:
        """``doc`` is ``part``'s configuration now (``urls``: the live nodes')."""
        key = (part.table, part.pidx)
        with part.lock:
            self._set_role(part, doc)
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
                return
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
                    self._link(n, url).attach(rs)
            part.set_replicator(rs)
            if old is not None:
                old.retire(rs)
        elif old is not None:
            with self._lock:
                self.sets.pop(key, None)
            part.set_replicator(None)
            old.retire(None)

    def _set_role(self, part: Partition, doc: PartitionDoc) -> None:
        """This node's role in ``part`` is ``doc``'s now (the partition's lock held)."""
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
                if rec is not None and rec.follower_of is not None:
                    # a follower table's replica: kept at its next open (behind, it is caught
                    # up from the primary's log, or learns anew)
                    self.cluster.followers.mark_learned(part.table, [part.pidx])
            elif part.state == MOVING:
                part.unfence()

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

    def _link(self, node: str, url: str) -> Link:
        with self._lock:
            link = self.links.get((node, url))
            if link is None:
                link = Link(node, url, self.node_id, self.url, self.peers, self._stale, self.want_sync)
                self.links[(node, url)] = link
            return link

    def _stale(self, rs: ReplicaSet, ballot: int) -> None:
        log.info(
            "node %s: a secondary of %s.%d knows ballot %d, past %d: reading the configuration",
            self.node_id,
            rs.part.table,
            rs.part.pidx,
            ballot,
            rs.ballot,
        )
        self.want_sync()

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
                self._set_role(part, doc)
                self.want_sync()
                return 0
            return max(promised, known[0], doc.ballot)
        return max(promised, known[0])

    def receive(self, request: pb.ReplicateRequest) -> pb.ReplicateReply:
        """A primary's items: each logged here if its ballot is this replica's, all of them made
        durable at once, then acknowledged with the decree each partition holds durably."""
        acks: list[pb.ReplicaAck | None] = [None] * len(request.items)
        logged: list[tuple[int, Partition, int, int, int, bytes]] = []
        for i, item in enumerate(request.items):
            try:
                part = self.cluster.table(item.table).partitions[item.pidx]
            except (PegasusFastError, IndexError):
                acks[i] = pb.ReplicaAck(status=STALE)
                continue
            try:
                with part.lock:
                    newer = self._accepts(part, request.primary, item.ballot)
                    if newer:
                        acks[i] = pb.ReplicaAck(status=STALE, ballot=newer, decree=part.last_committed)
                        continue
                    if item.first == 0 or not item.blocks:
                        acks[i] = None
                        logged.append((i, part, part.last_committed, -1, -1, b""))
                        continue
                    try:
                        last, end, block = part.log_replica(item.blocks)
                    except WalGapError:
                        logged.append((i, part, part.last_committed, -2, -1, b""))
                        continue
                if end is None:
                    logged.append((i, part, last, -1, -1, b""))
                else:
                    logged.append((i, part, last, end, end - len(block), block))
            except PegasusFastError as exc:
                log.warning("node %s: replica of %s.%d: %s", self.node_id, item.table, item.pidx, exc)
                acks[i] = pb.ReplicaAck(status=FAILED)
        fresh = [x for x in logged if x[3] >= 0]
        if fresh:
            slog = getattr(self.cluster, "shared_log", None)
            rows = [(p, last, end, start, block) for _, p, last, end, start, block in fresh]
            errors = (
                wait_durable_shared(slog, rows)
                if slog is not None
                else wait_durable_all([r[:3] for r in rows])
            )
            failed = {x[0] for x, e in zip(fresh, errors, strict=True) if e is not None}
        else:
            failed = set()
        for i, part, _, end, _, _ in logged:
            if i in failed:
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
        return pb.ReplicateReply(acks=[a if a is not None else pb.ReplicaAck(status=FAILED) for a in acks])


__all__ = ["Link", "ReplicaSet", "Replication"]
