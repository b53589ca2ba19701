"""A replicated partition's primary side for one ballot (:class:`ReplicaSet`): the mutations
logged here kept for the secondaries, what each acknowledged, and the writers waiting for it
(the partition's Replicator, storage/writes.py). replication.py makes one per ballot; links.py
sends what it holds."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Protocol

from ..errors import PartitionUnavailableError
from ..net import pegasus_fast_pb2 as pb
from ..storage.log_read import log_batches
from ..storage.partition import Partition

#: mutations a primary keeps in memory per partition for its secondaries (older: from the WAL)
BUFFER_BYTES = 16 << 20
#: the most one request carries for one partition
SEND_BYTES = 4 << 20

OK, STALE, GAP, FAILED = pb.ReplicaAck.OK, pb.ReplicaAck.STALE, pb.ReplicaAck.GAP, pb.ReplicaAck.FAILED


class Sender(Protocol):
    """What a set needs of the links that send it (links.py's Link)."""

    def wake(self) -> None: ...

    def detach(self, rs: ReplicaSet) -> None: ...


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
        self.links: list[Sender] = []
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
        # (its links were woken by send, before this node's own fsync: woken again here, after
        # it, they would look for something to send once more, most often in vain)
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


__all__ = ["BUFFER_BYTES", "FAILED", "GAP", "OK", "SEND_BYTES", "STALE", "ReplicaSet", "Sender"]
