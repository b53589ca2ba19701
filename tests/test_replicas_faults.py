"""Replicated partitions under faults (issue #22 §3): real ``serve --zk`` processes, SIGKILL and a
ZooKeeper connection cut, under a steady stream of writes, with a register history checked for
linearizability (tests/linearizability.py) the whole time.

Each test runs 3 nodes with a 2 s ZooKeeper session and a table of 3 replicas, and:
* a writer pool at ~1,000 writes/s records every acknowledged write (each must be there at the
  end) and the longest time writes were refused;
* register clients read, write and compare-and-set a few keys; their history must be
  linearizable: no read older than an acknowledged write, no forked value.
"""

from __future__ import annotations

import random
import shutil
import threading
import time

import pegasus_fast as pf
import pytest
from linearizability import History, check
from multinode import Nodes, wait_for
from netproxy import FaultyProxy
from register_clients import TableRegister, run_register_clients
from served import Fleet

pytestmark = [
    pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning"),
    pytest.mark.usefixtures("default_backend"),
]

SESSION = 2.0
SERVE_ARGS = (
    # replication goes over the nodes' Pegasus ports (multinode/links.py; gRPC without them)
    "--pegasus-listen",
    "127.0.0.1:0",
    "--config",
    f"zk_session_timeout_seconds={SESSION}",
    "--config",
    "replica_ack_timeout_seconds=6",
    "--config",
    "replica_grace_seconds=1",
)
#: the issue's bar: with a 2 s session, writes are refused for less than this after a kill
REFUSED_BAR = 3.0


class Load:
    """``threads`` writers at ``rate`` writes/s in all, each its own zk:// client."""

    def __init__(self, url: str, table: str, threads: int = 4, rate: float = 1000.0) -> None:
        self.url, self.table, self.threads, self.rate = url, table, threads, rate
        self.acked: dict[bytes, bytes] = {}
        self.count = 0
        self.failed = 0
        #: the longest time a writer went without an acknowledged write (seconds): refused or
        #: waiting, a write that is not acknowledged is unavailable
        self.refused_s = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> Load:
        for t in self._workers:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(30)

    def _run(self, i: int) -> None:
        interval = self.threads / self.rate
        with pf.connect(self.url) as c:
            t = c.table(self.table)
            n = 0
            last_ok = nxt = time.monotonic()
            while not self._stop.is_set():
                key, value = b"w%d-%d" % (i, n % 50), b"v%d" % n
                try:
                    t.set(key, b"s", value)
                    now = time.monotonic()
                    with self._lock:
                        self.acked[key] = value
                        self.count += 1
                        self.refused_s = max(self.refused_s, now - last_ok)
                    last_ok = now
                except pf.PegasusFastError:
                    with self._lock:
                        self.failed += 1
                        # an unknown outcome: this key's last value is either one
                        self.acked.pop(key, None)
                n += 1
                nxt = max(nxt + interval, time.monotonic() - 1.0)  # no burst to catch up after a stall
                self._stop.wait(max(0.0, nxt - time.monotonic()))


class Registers:
    """Register clients on a thread of their own, each with its own zk:// client."""

    def __init__(self, url: str, table: str, seed: int, clients: int = 4) -> None:
        self.history = History()
        self._stop = threading.Event()
        self._conns: list[pf.RoutedCluster] = []
        self.url, self.table, self.seed, self.clients = url, table, seed, clients
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _client(self, i: int) -> TableRegister:
        c = pf.connect(self.url)
        self._conns.append(c)
        return TableRegister(c.table(self.table))

    def _run(self) -> None:
        try:
            run_register_clients(
                self._client,
                [b"r0", b"r1", b"r2"],
                self.clients,
                3600,
                self.seed,
                self.history,
                stop=self._stop,
                rate=200.0,
            )
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def __enter__(self) -> Registers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
        for c in self._conns:
            c.close()

    def verify(self) -> None:
        assert self.error is None, self.error
        result = check(self.history)
        assert result.anomalies == 0 and result.linearizable, result.explain(self.history)
        assert len(self.history) > 100


def start_nodes(
    fleet: Fleet, zk_chroot: str, proxied: str | None = None, zk_port: int = 0, transport: str = "port"
) -> tuple[Nodes, FaultyProxy | None]:
    """``transport``: "port" (replication over the nodes' Pegasus ports) or "grpc"."""
    nodes = Nodes(fleet, zk_chroot, *SERVE_ARGS)
    proxy = None
    for n in ("n1", "n2", "n3"):
        s = nodes.add(n)
        if transport == "grpc":
            s.env["PEGASUS_FAST_REPLICATION"] = "grpc"
        if n == proxied:
            proxy = FaultyProxy(zk_port)
            chroot = zk_chroot.split("/", 1)[1]
            s.args = ("--zk", f"127.0.0.1:{proxy.port}/{chroot}", *s.args[2:])
    nodes.start("n1", "n2", "n3")
    return nodes, proxy


def leader_of(nodes: Nodes, c: pf.RoutedCluster) -> str:
    url = c._r.leader().url
    return next(n for n, s in nodes.nodes.items() if s.url == url)


@pytest.mark.parametrize(
    ("victim", "transport"),
    [("secondary", "port"), ("primary", "port"), ("leader", "port"), ("primary", "grpc")],
)
def test_kill_under_load(fleet: Fleet, zk_chroot: str, victim: str, transport: str) -> None:
    nodes, _ = start_nodes(fleet, zk_chroot, transport=transport)
    with nodes.client() as c:
        t = c.create_table("r", partition_count=4, replica_count=3)
        reg_pidx = t.partition_index(b"r0", b"r")
        with Registers(nodes.url, "r", seed=random.randrange(1 << 30)) as regs, Load(nodes.url, "r") as load:
            wait_for(lambda: load.count > 1000, what="writes")
            rep = t.replicas()[reg_pidx]
            if victim == "secondary":
                dead = rep.secondaries[0]
            elif victim == "primary":
                dead = rep.primary
            else:
                dead = leader_of(nodes, c)
            nodes[dead].kill9()
            before = load.count
            wait_for(
                lambda: all(dead not in (r.primary, *r.secondaries) for r in t.replicas()), what="failover"
            )
            wait_for(lambda: load.count > before + 2000, what="writes after the failover")
            wait_for(
                lambda: all(len(r.secondaries) == 1 for r in t.replicas()),
                what="replicas on the two live nodes",
            )
        regs.verify()
        for key, value in load.acked.items():
            assert t.get(key, b"s") == value, key
        print(f"{victim}: {load.count} writes, {load.failed} refused, longest refusal {load.refused_s:.2f} s")
        assert load.refused_s < REFUSED_BAR, load.refused_s


def test_primary_cut_off_from_zookeeper_stops_before_a_new_one_starts(
    fleet: Fleet, zk_chroot: str, zookeeper: object
) -> None:
    """n1 keeps its clients but loses ZooKeeper: it must refuse reads and writes of its
    replicated partitions before the leader can make another replica primary."""
    nodes, proxy = start_nodes(fleet, zk_chroot, proxied="n1", zk_port=zookeeper.port)  # type: ignore[attr-defined]
    assert proxy is not None
    try:
        with nodes.client() as c:
            t = c.create_table("r", partition_count=4, replica_count=3)
            cut = [r.pidx for r in t.replicas() if r.primary == "n1"]
            assert cut
            with (
                Registers(nodes.url, "r", seed=random.randrange(1 << 30)) as regs,
                Load(nodes.url, "r") as load,
            ):
                wait_for(lambda: load.count > 1000, what="writes")
                proxy.blackhole()
                before = load.count
                wait_for(lambda: all(t.replicas()[p].primary != "n1" for p in cut), what="new primaries")
                wait_for(lambda: load.count > before + 2000, what="writes after the failover")
            regs.verify()
            for key, value in load.acked.items():
                assert t.get(key, b"s") == value, key
    finally:
        proxy.close()


def test_a_wiped_node_replaced_by_a_new_one_restores_every_replica(fleet: Fleet, zk_chroot: str) -> None:
    """n3's disk is lost while it is down; a new node n4 joins: each partition gets its third
    replica back on n4, learned from its primary under load, and holds every write: with n1
    and n2 killed after it, n4 alone answers everything."""
    nodes, _ = start_nodes(fleet, zk_chroot)
    with nodes.client() as c:
        t = c.create_table("r", partition_count=4, replica_count=3)
        for i in range(500):
            t.set(b"a%d" % i, b"s", b"x%d" % i * 20)
        with Registers(nodes.url, "r", seed=random.randrange(1 << 30)) as regs, Load(nodes.url, "r") as load:
            wait_for(lambda: load.count > 500, what="writes")
            nodes["n3"].kill9()
            shutil.rmtree(nodes["n3"].dir)
            wait_for(
                lambda: all("n3" not in (r.primary, *r.secondaries) for r in t.replicas()), what="n3 dropped"
            )
            nodes.start("n4")
            wait_for(
                lambda: all("n4" in r.secondaries or r.primary == "n4" for r in t.replicas()),
                what="n4 a replica of every partition",
            )
            before = load.count
            wait_for(lambda: load.count > before + 500, what="writes with n4")
            for n in ("n1", "n2"):
                nodes[n].kill9()
                wait_for(
                    lambda n=n: all(n not in (r.primary, *r.secondaries) for r in t.replicas()),
                    what=f"{n} dropped",
                )
            assert all(r.primary == "n4" and r.secondaries == () for r in t.replicas())
            before = load.count
            wait_for(lambda: load.count > before + 500, what="writes on n4 alone")
        regs.verify()
        for key, value in load.acked.items():
            assert t.get(key, b"s") == value, key
        for i in range(500):
            assert t.get(b"a%d" % i, b"s") == b"x%d" % i * 20
