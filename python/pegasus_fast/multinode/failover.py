"""The meta leader's answer to a replica whose node died (its ZooKeeper session expired).

Every node runs :class:`Failover`; it acts only while its node leads. When a node's
ephemeral znode is gone, each replicated partition that named it changes configuration by a
compare-and-set on its znode's version, ballot + 1:

* a dead **secondary** is removed, and the primary's writes wait for the others only;
* a dead **primary** is replaced by the live secondary with the highest decree. First every
  live secondary promises the new ballot and tells its decree (``Node.ReplicaDecree``:
  replication.py), so none takes anything more from the old primary; one that does not
  answer is left out of the new configuration.

A partition with no live replica stays as it is, unavailable until one comes back, as a
partition of one replica always was. The leader looks at every change of ``/nodes`` (a
watch) and at least every :data:`SCAN_INTERVAL` seconds (a leader elected after the death
finds it so).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from kazoo.exceptions import BadVersionError, NoNodeError

from ..coord.layout import NODES, PartitionConfig, PartitionDoc, partition_path
from ..coord.zk import read_nodes, read_tables
from ..logs import Outage, event, get
from ..net import pegasus_fast_pb2 as pb
from .rereplicate import Rereplicator

log = get(__name__)

#: the leader looks for dead replicas at least this often (seconds), watch or not
SCAN_INTERVAL = 1.0
#: how often the thread looks whether its node leads now (seconds)
TICK = 0.05
#: how long the leader waits for a secondary to promise a new ballot (seconds)
PROMISE_TIMEOUT = 2.0


class Failover:
    def __init__(self, placement: Any) -> None:
        self.placement = placement
        self.member = placement.member
        self.zk = self.member.zk
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._outage = Outage(
            log, f"node {self.member.node_id}: replica failover", down="failing", up="working"
        )
        self._thread = threading.Thread(target=self._run, name=f"failover-{self.member.node_id}", daemon=True)
        self.rereplicator = Rereplicator(placement)

    def start(self) -> None:
        self.rereplicator.start()
        try:
            self.zk.ChildrenWatch(NODES, self._on_nodes)
        except Exception as exc:  # noqa: BLE001 - the periodic scan still runs
            log.warning("node %s: watching %s failed: %s", self.member.node_id, NODES, exc)
        self._thread.start()

    def stop(self) -> None:
        self.rereplicator.stop()
        self._stop.set()
        self._wake.set()

    def _on_nodes(self, children: list[str]) -> bool | None:
        self._wake.set()
        return False if self._stop.is_set() else None

    def _run(self) -> None:
        leading, scanned = False, 0.0
        while not self._stop.is_set():
            woken = self._wake.wait(TICK)
            self._wake.clear()
            if self._stop.is_set():
                return
            was, leading = leading, self.member.is_leader and self.zk.connected
            if not leading:
                continue
            # a node just elected looks at once: the death that made it leader may need it
            if not (woken or not was or time.monotonic() - scanned >= SCAN_INTERVAL):
                continue
            scanned = time.monotonic()
            try:
                self.scan()
                self._outage.ok()
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                self._outage.failed(f"{type(exc).__name__}: {exc}")
                self._stop.wait(0.2)
                self._wake.set()

    def scan(self) -> int:
        """Reconfigure every replicated partition with a dead replica; returns how many changed."""
        nodes = read_nodes(self.zk)
        changed: set[str] = set()
        under: set[tuple[str, int]] = set()
        for name, tc in read_tables(self.zk).items():
            for pc in tc.partitions:
                if pc.problem or not pc.owner:
                    continue
                if sum(1 for n in pc.replicas if n in nodes) < tc.app.replica_count:
                    under.add((name, pc.pidx))
                dead = [n for n in pc.replicas if n not in nodes]
                if not dead or (not pc.secondaries and tc.app.replica_count <= 1):
                    continue
                if self._reconfigure(name, pc, set(nodes), {n: d.url for n, d in nodes.items()}):
                    changed.add(name)
        if changed:
            self.placement.changed(nodes, tables=changed)
        self.rereplicator.note(under)
        return len(changed)

    def _reconfigure(self, table: str, pc: PartitionConfig, live: set[str], urls: dict[str, str]) -> bool:
        ballot = pc.ballot + 1
        if pc.owner in live:
            doc = PartitionDoc(pc.owner, ballot, pc.decree, tuple(s for s in pc.secondaries if s in live))
            why = "secondary lost"
        else:
            decrees: dict[str, int] = {}
            for s in pc.secondaries:
                if s not in live:
                    continue
                try:
                    decrees[s] = self._promise(urls[s], table, pc.pidx, ballot)
                except Exception as exc:  # noqa: BLE001 - left out: it may not hold every write
                    log.warning(
                        "%s.%d: secondary %s did not promise ballot %d: %s", table, pc.pidx, s, ballot, exc
                    )
            if not decrees:
                return False  # no live replica: unavailable until one comes back
            best = max(decrees, key=lambda s: (decrees[s], s))
            doc = PartitionDoc(best, ballot, decrees[best], tuple(s for s in decrees if s != best))
            why = "primary lost"
        try:
            self.zk.set(partition_path(table, pc.pidx), doc.encode(), version=pc.version)
        except (BadVersionError, NoNodeError):
            return False  # changed meanwhile: the next scan reads it again
        log.warning(
            "%s.%d: %s; primary %s, secondaries %s, ballot %d",
            table,
            pc.pidx,
            why,
            doc.owner,
            list(doc.secondaries),
            ballot,
            extra=event(
                table=table,
                pidx=pc.pidx,
                step="failover",
                primary=doc.owner,
                secondaries=list(doc.secondaries),
                ballot=ballot,
                reason=why,
            ),
        )
        return True

    def _promise(self, url: str, table: str, pidx: int, ballot: int) -> int:
        m = self.member
        if url == m.url:
            return m.replication.promise(m.cluster.table(table).partitions[pidx], ballot)
        peer = m.peers.get(url)
        req = pb.ReplicaDecreeRequest(table=table, pidx=pidx, ballot=ballot)
        return int(peer(peer.node, "ReplicaDecree", req, timeout=PROMISE_TIMEOUT).decree)


__all__ = ["Failover"]
