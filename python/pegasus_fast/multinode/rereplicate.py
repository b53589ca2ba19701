"""A replicated partition below its ``replica_count`` gets a new secondary (the meta leader's).

Once a partition has had fewer live replicas than its table's ``replica_count`` for
``Config.replica_grace_seconds`` (a node that restarts within it comes back as it was), the
leader picks the live node holding the fewest replicas among those without one of it, and:

1. the node learns the partition from its primary while writes go on (``Node.Learn``: the
   adaptive learning a move uses, transfer.py: a checkpoint copy, then the log after it);
2. the leader adds it to the secondaries by a compare-and-set of the partition's znode,
   ballot + 1; the primary's new replica set asks it for its decree and sends the log from
   there (replication.py), and from then on every write waits for it too.

One partition at a time, on a thread of its own, so the failover's scans never wait for a copy.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from kazoo.exceptions import BadVersionError, NoNodeError

from ..coord.layout import PartitionDoc, partition_path
from ..coord.zk import read_nodes, read_table, read_tables
from ..logs import event, get
from ..net import pegasus_fast_pb2 as pb

log = get(__name__)

#: a Learn's deadline (seconds): a large partition's checkpoint copy
LEARN_TIMEOUT = 3600.0


class Rereplicator:
    def __init__(self, placement: Any) -> None:
        self.placement = placement
        self.member = placement.member
        self.zk = self.member.zk
        #: (table, pidx) -> when it was first seen below its replica_count
        self._under: dict[tuple[str, int], float] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"rereplicate-{self.member.node_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def note(self, under: set[tuple[str, int]]) -> None:
        """The partitions below their replica_count now, as a scan saw them."""
        now = time.monotonic()
        for key in list(self._under):
            if key not in under:
                del self._under[key]
        for key in under:
            self._under.setdefault(key, now)
        if self.due():
            self._wake.set()

    def due(self) -> list[tuple[str, int]]:
        grace = self.member.cluster.config.replica_grace_seconds
        now = time.monotonic()
        return sorted(k for k, since in self._under.items() if now - since >= grace)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            if self._stop.is_set():
                return
            for table, pidx in self.due():
                if self._stop.is_set() or not self.member.is_leader:
                    break
                try:
                    self.add_replica(table, pidx)
                except Exception as exc:  # noqa: BLE001 - the next round tries again
                    log.warning("re-replication of %s.%d failed: %s", table, pidx, exc)
                    self._stop.wait(1.0)

    def add_replica(self, table: str, pidx: int) -> str | None:
        """One new secondary for ``table.pidx`` if it is below its replica_count; its node id."""
        tc = read_table(self.zk, table)
        pc = tc.partitions[pidx]
        nodes = read_nodes(self.zk)
        if pc.problem or pc.owner not in nodes:
            return None  # no primary to learn from: the failover acts first
        live = [n for n in pc.replicas if n in nodes]
        if len(live) >= tc.app.replica_count:
            self._under.pop((table, pidx), None)
            return None
        load: dict[str, int] = {}
        for other in read_tables(self.zk).values():
            for p in other.partitions:
                for n in p.replicas:
                    load[n] = load.get(n, 0) + 1
        free = [n for n in nodes if n not in pc.replicas]
        if not free:
            return None  # as many replicas as live nodes: it waits for one more
        target = min(free, key=lambda n: (load.get(n, 0), n))
        if self.learn_and_add(table, pidx, target) is None:
            return None
        self._under.pop((table, pidx), None)
        return target

    def learn_and_add(self, table: str, pidx: int, target: str, replacing: str | None = None) -> int | None:
        """``target`` learns ``table.pidx`` from its primary while writes go on, then is made
        one of its secondaries by a compare-and-set (ballot + 1), in place of the secondary
        ``replacing`` if given (a move of a secondary: that node drops its copy once it reads
        the change). The decree learned, or None when the configuration changed meanwhile
        (the caller reads it again)."""
        m = self.member
        nodes = read_nodes(self.zk)
        pc = read_table(self.zk, table).partitions[pidx]
        if pc.owner not in nodes or target not in nodes:
            return None
        src, dst = m.peers.get(nodes[pc.owner].url), m.peers.get(nodes[target].url)
        started = time.monotonic()
        fields = {"table": table, "pidx": pidx, "node": target, "primary": pc.owner}
        log.info(
            "%s.%d: %s learns a replica from %s%s",
            table,
            pidx,
            target,
            pc.owner,
            "" if replacing is None else f" (in place of {replacing})",
            extra=event(step="learn", replacing=replacing or "", **fields),
        )
        pace = int(m.cluster.config.replica_learn_mb_per_sec * (1 << 20))
        learned = dst(
            dst.node,
            "Learn",
            pb.LearnPartitionRequest(table=table, pidx=pidx, source_url=src.url, max_bytes_per_sec=pace),
            timeout=LEARN_TIMEOUT,
        ).decree
        # the configuration read again: it may have changed during the copy
        pc = read_table(self.zk, table).partitions[pidx]
        if pc.owner not in nodes or target in pc.replicas:
            return None
        if replacing is not None and replacing not in pc.secondaries:
            return None
        kept = [s for s in pc.secondaries if s in nodes and s != replacing]
        doc = PartitionDoc(pc.owner, pc.ballot + 1, pc.decree, (*kept, target))
        try:
            self.zk.set(partition_path(table, pidx), doc.encode(), version=pc.version)
        except (BadVersionError, NoNodeError):
            return None  # changed meanwhile: the next round reads it again
        involved = {pc.owner, target} | ({replacing} if replacing in nodes else set())
        self.placement.changed(None, involved, tables=[table])
        log.warning(
            "%s.%d: %s is a secondary%s (learned through decree %d in %.2f s), ballot %d",
            table,
            pidx,
            target,
            " again" if replacing is None else f" in place of {replacing}",
            learned,
            time.monotonic() - started,
            doc.ballot,
            extra=event(
                step="added",
                decree=learned,
                ballot=doc.ballot,
                seconds=round(time.monotonic() - started, 3),
                replacing=replacing or "",
                **fields,
            ),
        )
        return learned


__all__ = ["Rereplicator"]
