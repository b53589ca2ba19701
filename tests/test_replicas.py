"""Replicated partitions (issue #22): ZooKeeper and ``serve --zk`` processes on 127.0.0.1.

A table made with ``replica_count`` keeps each partition on that many nodes: the primary
acknowledges a write once every replica of its ballot holds it durably (multinode/
replication.py), and the meta leader replaces a replica whose node died (failover.py). The
tests kill nodes with SIGKILL under a stream of writes and read back through the ``zk://``
client: every acknowledged write must be there.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pegasus_fast as pf
import pytest
from conftest import PYTHON, child_env
from multinode import WAIT, Nodes, wait_for
from served import Fleet

pytestmark = [
    pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning"),
    pytest.mark.usefixtures("default_backend"),
]

#: the session the nodes get: a dead node's replicas are replaced once it expires
SESSION = 2.0
SERVE_ARGS = (
    # replication goes over the nodes' Pegasus ports (multinode/links.py; gRPC without them)
    "--pegasus-listen",
    "127.0.0.1:0",
    "--config",
    f"zk_session_timeout_seconds={SESSION}",
    "--config",
    "replica_ack_timeout_seconds=8",
    "--config",
    "replica_grace_seconds=1",
)


@pytest.fixture
def start(fleet: Fleet, zk_chroot: str) -> Iterator[Callable[..., tuple[Nodes, pf.RoutedCluster]]]:
    clients: list[pf.RoutedCluster] = []

    def _start(*node_ids: str) -> tuple[Nodes, pf.RoutedCluster]:
        nodes = Nodes(fleet, zk_chroot, *SERVE_ARGS)
        nodes.start(*node_ids)
        clients.append(nodes.client())
        return nodes, clients[-1]

    try:
        yield _start
    finally:
        for c in clients:
            c.close()


class Writer:
    """Writes unique values to a few keys from one thread, recording each acknowledged one."""

    def __init__(self, table: pf.RoutedTable, keys: int = 16) -> None:
        self.table = table
        self.keys = keys
        self.acked: dict[bytes, bytes] = {}
        self.errors: list[BaseException] = []
        self.refused_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.count = 0

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        n = 0
        refused_since: float | None = None
        while not self._stop.is_set():
            key = b"k%d" % (n % self.keys)
            value = b"v%d" % n
            try:
                self.table.set(key, b"s", value)
                self.acked[key] = value
                self.count += 1
                if refused_since is not None:
                    self.refused_s = max(self.refused_s, time.monotonic() - refused_since)
                    refused_since = None
            except pf.PegasusFastError as exc:
                self.errors.append(exc)
                refused_since = refused_since or time.monotonic()
                time.sleep(0.01)
            n += 1
            time.sleep(0.001)


def check_all(table: pf.RoutedTable, acked: dict[bytes, bytes]) -> None:
    for key, value in acked.items():
        assert table.get(key, b"s") == value, key


def test_create_places_replicas_on_distinct_nodes(
    start: Callable[..., tuple[Nodes, pf.RoutedCluster]],
) -> None:
    _nodes, c = start("n1", "n2", "n3")
    t = c.create_table("r", partition_count=6, replica_count=3)
    reps = t.replicas()
    assert [r.pidx for r in reps] == list(range(6))
    for r in reps:
        assert len({r.primary, *r.secondaries}) == 3 and len(r.secondaries) == 2
        assert r.ballot == 1
    assert sorted({r.primary for r in reps}) == ["n1", "n2", "n3"]
    with pytest.raises(pf.InvalidArgumentError):
        c.create_table("r4", partition_count=2, replica_count=4)
    with pytest.raises(pf.InvalidArgumentError):
        c.create_table("r0", partition_count=2, replica_count=0)
    with pytest.raises(pf.InvalidTypeError):
        c.create_table("rs", partition_count=2, replica_count="3")  # type: ignore[arg-type]
    for i in range(50):
        t.set(b"h%d" % i, b"s", b"v%d" % i)
    for i in range(50):
        assert t.get(b"h%d" % i, b"s") == b"v%d" % i
    h = t.health()
    assert h.fully_healthy == 6 and h.unhealthy == 0


def test_kill_secondary_then_primary_loses_nothing(
    start: Callable[..., tuple[Nodes, pf.RoutedCluster]],
) -> None:
    nodes, c = start("n1", "n2", "n3")
    t = c.create_table("r", partition_count=4, replica_count=3)
    with Writer(t) as w:
        wait_for(lambda: w.count > 100, what="writes")
        reps = t.replicas()
        victim = reps[0].secondaries[0]
        nodes[victim].kill9()
        before = w.count
        wait_for(
            lambda: all(victim not in (r.primary, *r.secondaries) for r in t.replicas()),
            what="the dead secondary removed",
        )
        wait_for(lambda: w.count > before + 100, what="writes going on")
        primary = next(r.primary for r in t.replicas() if r.primary != victim)
        nodes[primary].kill9()
        before = w.count
        wait_for(lambda: all(r.primary not in (victim, primary) for r in t.replicas()), what="a new primary")
        wait_for(lambda: w.count > before + 100, what="writes going on after the failover")
    check_all(t, w.acked)
    assert w.refused_s < 6, w.refused_s


def live_replicas(t: pf.RoutedTable, live: set[str]) -> list[int]:
    return [sum(1 for n in (r.primary, *r.secondaries) if n in live) for r in t.replicas()]


def test_a_dead_node_is_replaced_and_the_new_replica_holds_everything(
    start: Callable[..., tuple[Nodes, pf.RoutedCluster]],
) -> None:
    nodes, c = start("n1", "n2", "n3")
    t = c.create_table("r", partition_count=4, replica_count=2)
    for i in range(300):
        t.set(b"a%d" % i, b"s", b"x%d" % i)
    with Writer(t) as w:
        wait_for(lambda: w.count > 50, what="writes")
        victim = t.replicas()[0].primary
        nodes[victim].kill9()
        live = {"n1", "n2", "n3"} - {victim}
        wait_for(lambda: live_replicas(t, live) == [2, 2, 2, 2], what="replica_count restored")
        before = w.count
        wait_for(lambda: w.count > before + 50, what="writes on the restored replicas")
    for r in t.replicas():
        assert victim not in (r.primary, *r.secondaries)
    # every partition is on both live nodes now: lose either, and nothing is missing
    other = next(iter(live - {t.replicas()[0].primary}))
    keep = (live - {other}).pop()
    nodes[other].kill9()
    wait_for(lambda: all(r.primary == keep for r in t.replicas()), what="all primaries on the last node")
    check_all(t, w.acked)
    for i in range(300):
        assert t.get(b"a%d" % i, b"s") == b"x%d" % i


def test_a_node_back_from_the_dead_rejoins_as_a_new_replica(
    start: Callable[..., tuple[Nodes, pf.RoutedCluster]],
) -> None:
    nodes, c = start("n1", "n2")
    t = c.create_table("r", partition_count=2, replica_count=2)
    for i in range(100):
        t.set(b"a%d" % i, b"s", b"x%d" % i)
    nodes["n2"].kill9()
    wait_for(lambda: all(r.secondaries == () and r.primary == "n1" for r in t.replicas()), what="n2 dropped")
    for i in range(100, 200):
        t.set(b"a%d" % i, b"s", b"x%d" % i)  # n2 misses these
    nodes["n2"].start()
    wait_for(lambda: all(r.secondaries == ("n2",) for r in t.replicas()), what="n2 a replica again")
    for i in range(200, 250):
        t.set(b"a%d" % i, b"s", b"x%d" % i)
    nodes["n1"].kill9()
    wait_for(lambda: all(r.primary == "n2" for r in t.replicas()), what="n2 primary")
    for i in range(250):
        assert t.get(b"a%d" % i, b"s") == b"x%d" % i


def test_a_duplication_without_checkpoint_into_a_replicated_table_ships_on_after_a_failover(
    fleet: Fleet, zk_chroot: str, tmp_path: Path
) -> None:
    """A duplication without checkpoint adopts a replicated table that exists already: each
    partition's primary is told where its source starts (a mutation every secondary holds),
    and so is every secondary; after its primary dies, the new primary takes the shipping on
    from there (it used to refuse it: "follower partition N is not learned", the duplication
    failed)."""
    followers = Nodes(fleet, zk_chroot, *SERVE_ARGS)
    followers.start("f1", "f2", "f3")
    src = pf.Cluster.open(tmp_path / "source", name="source")
    try:
        t = src.create_table("r", 4)
        with followers.client() as fc:
            ft = fc.create_table("r", 4, replica_count=3)
            d = src.add_duplication("r", followers.url, with_checkpoint=False)
            d.wait_for(pf.DupStatus.LOG, timeout=WAIT)
            for i in range(40):
                t.set(b"a%d" % i, b"s", b"x%d" % i)
            wait_for(lambda: all(ft.get(b"a%d" % i, b"s") == b"x%d" % i for i in range(40)), what="shipped")
            dead = ft.replicas()[0].primary
            followers[dead].kill9()
            wait_for(
                lambda: all(dead not in (r.primary, *r.secondaries) for r in ft.replicas()), what="failover"
            )
            for i in range(40):
                t.set(b"b%d" % i, b"s", b"y%d" % i)
            wait_for(
                lambda: all(ft.get(b"b%d" % i, b"s") == b"y%d" % i for i in range(40)),
                what="shipped after the failover",
            )
            assert d.status == pf.DupStatus.LOG
    finally:
        src.close()


@pytest.mark.parametrize("records", [0, 2, 3000])
def test_a_duplication_into_a_replicated_follower_reaches_every_replica(
    fleet: Fleet, zk_chroot: str, tmp_path: Path, records: int
) -> None:
    """The founding scenario, replicated: an embedded source table of 8 partitions with
    ``records`` records duplicated into 3 nodes keeping 3 replicas each (the follower table
    takes the follower cluster's default_replica_count). Every replica of every partition
    holds what was learned and what is shipped after: with two of the three nodes killed,
    the last one answers everything. 3,000 records of 2 KiB is past the small-partition
    bound: each primary copies a checkpoint, and its secondaries learn it from the primary."""
    followers = Nodes(fleet, zk_chroot, *SERVE_ARGS, "--config", "default_replica_count=3")
    followers.start("f1", "f2", "f3")
    src = pf.Cluster.open(tmp_path / "source", name="source")
    try:
        t = src.create_table("r", 8)
        for i in range(records):
            t.set(b"a%d" % i, b"s", b"x%04d" % i * 512)
        d = src.add_duplication("r", followers.url)
        d.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        for i in range(100):
            t.set(b"b%d" % i, b"s", b"y%d" % i)
        with followers.client() as fc:
            ft = fc.table("r")
            reps = ft.replicas()
            assert all(len(r.secondaries) == 2 for r in reps), reps
            wait_for(lambda: all(ft.get(b"b%d" % i, b"s") == b"y%d" % i for i in range(100)), what="shipped")
            wait_for(lambda: ft.health().fully_healthy == 8, what="every replica healthy")
            for n in ("f1", "f2"):
                followers[n].kill9()
                wait_for(
                    lambda n=n: all(n not in (r.primary, *r.secondaries) for r in ft.replicas()),
                    what=f"{n} dropped",
                )
            for i in range(records):
                assert ft.get(b"a%d" % i, b"s") == b"x%04d" % i * 512, i
            for i in range(100):
                assert ft.get(b"b%d" % i, b"s") == b"y%d" % i
    finally:
        src.close()


def test_the_cli_makes_and_shows_replicas(
    start: Callable[..., tuple[Nodes, pf.RoutedCluster]], default_backend_name: str
) -> None:
    nodes, c = start("n1", "n2", "n3")

    def cli(*argv: str, code: int = 0) -> str:
        r = subprocess.run(
            [PYTHON, "-m", "pegasus_fast", "--connect", nodes.url, *argv],
            env=child_env(default_backend_name),
            capture_output=True,
            timeout=WAIT,
        )
        assert r.returncode == code, r.stderr.decode()
        return r.stdout.decode()

    cli("create", "r", "-p", "3", "-r", "2")
    reps = c.table("r").replicas()
    assert all(len(r.secondaries) == 1 for r in reps)
    out = cli("app", "r")
    assert "primary" in out and "secondaries" in out and "ballot" in out
    for r in reps:
        row = next(line.split() for line in out.splitlines() if line.split()[:1] == [str(r.pidx)])
        assert row[-3:] == [r.primary, r.secondaries[0], str(r.ballot)]
    out = cli("nodes")
    held = {n: 0 for n in ("n1", "n2", "n3")}
    for r in reps:
        held[r.secondaries[0]] += 1
    for line in out.splitlines():
        cols = line.split()
        if cols and cols[0] in held:
            assert cols[1] == "live" and int(cols[4]) == held[cols[0]], line
    assert "fully_healthy 3" in cli("app", "r")
    cli("create", "bad", "-r", "4", code=2)
    # a secondary moved with --from: to the node without a replica of the partition
    r0 = c.table("r").replicas()[0]
    spare = next(n for n in ("n1", "n2", "n3") if n not in (r0.primary, *r0.secondaries))
    assert f"replica on {r0.secondaries[0]} to {spare}" in cli(
        "move", "r", "0", spare, "--from", r0.secondaries[0]
    )
    assert c.table("r").replicas()[0].secondaries == (spare,)
    cli("move", "r", "0", r0.primary, "--from", spare, code=2)  # it holds a replica already


def test_a_secondary_refuses_what_its_primary_and_ballot_did_not_send(
    start: Callable[..., tuple[Nodes, pf.RoutedCluster]],
) -> None:
    """Node.Replicate as a hostile or stale peer would call it: another primary, an old ballot,
    damaged blocks, a gap. Each is refused with its status and nothing is stored; a failover's
    promise of a ballot not past the current one is refused too."""
    from pegasus_fast import _backend
    from pegasus_fast.net import pegasus_fast_pb2 as pb
    from pegasus_fast.net.peer import Peer
    from pegasus_fast.records import Op

    nodes, c = start("n1", "n2", "n3")
    t = c.create_table("r", partition_count=1, replica_count=3)
    for i in range(5):
        t.set(b"k%d" % i, b"s", b"v%d" % i)
    (rep,) = t.replicas()
    sec = rep.secondaries[0]
    peer = Peer(nodes[sec].url)
    try:

        def replicate(primary: str, ballot: int, blocks: bytes, first: int = 1) -> pb.ReplicaAck:
            item = pb.ReplicaItem(table="r", pidx=0, ballot=ballot, blocks=blocks, first=first)
            reply = peer(peer.node, "Replicate", pb.ReplicateRequest(primary=primary, items=[item]))
            (ack,) = reply.acks
            return ack

        def block(decree: int) -> bytes:
            op = (int(Op.PUT), b"evil", b"s", b"x", 0)
            return _backend.impl.encode_block([(decree, time.time_ns() // 1000, 1, [op])])

        probe = replicate(rep.primary, rep.ballot, b"", first=0)
        assert probe.status == pb.ReplicaAck.OK and probe.decree == 5
        not_primary = next(n for n in ("n1", "n2", "n3") if n != rep.primary)
        assert replicate(not_primary, rep.ballot, block(6)).status == pb.ReplicaAck.STALE
        assert replicate("nobody", rep.ballot, block(6)).status == pb.ReplicaAck.STALE
        assert replicate(rep.primary, rep.ballot - 1, block(6)).status == pb.ReplicaAck.STALE
        newer = replicate(rep.primary, rep.ballot + 5, block(6))  # a ballot ZooKeeper never had
        assert newer.status == pb.ReplicaAck.STALE
        assert replicate(rep.primary, rep.ballot, b"\x07" * 40).status == pb.ReplicaAck.FAILED
        gap = replicate(rep.primary, rep.ballot, block(9))
        assert gap.status == pb.ReplicaAck.GAP and gap.decree == 5
        with pytest.raises(pf.CoordinationError):
            peer(peer.node, "ReplicaDecree", pb.ReplicaDecreeRequest(table="r", pidx=0, ballot=rep.ballot))
    finally:
        peer.close()
    t.set(b"k5", b"s", b"v5")  # the real primary's next decree reaches every secondary
    nodes[rep.primary].kill9()
    wait_for(lambda: t.replicas()[0].primary != rep.primary, what="a new primary")
    assert t.get(b"evil", b"s") is None
    for i in range(6):
        assert t.get(b"k%d" % i, b"s") == b"v%d" % i


def test_moving_a_replicated_primary_under_writes_loses_nothing(
    start: Callable[..., tuple[Nodes, pf.RoutedCluster]],
) -> None:
    """A planned switch of the primary role (a move to one of its secondaries) and a move to a
    node without a replica, with writes going on: the replicas stay replica_count, the old
    primary becomes a secondary in place of the new one, and every acknowledged write is
    there, on every replica (the last node standing answers everything)."""
    nodes, c = start("n1", "n2", "n3", "n4")
    t = c.create_table("r", partition_count=2, replica_count=3)
    with Writer(t) as w:
        wait_for(lambda: w.count > 50, what="writes")
        r0 = t.replicas()[0]
        to = r0.secondaries[0]
        c.move_partition("r", 0, to)
        after = t.replicas()[0]
        assert after.primary == to and sorted(after.secondaries) == sorted(
            {*r0.secondaries, r0.primary} - {to}
        )
        assert after.ballot > r0.ballot
        before = w.count
        wait_for(lambda: w.count > before + 50, what="writes after the switch")
        r1 = t.replicas()[1]
        spare = next(n for n in ("n1", "n2", "n3", "n4") if n not in (r1.primary, *r1.secondaries))
        c.move_partition("r", 1, spare)
        after1 = t.replicas()[1]
        assert after1.primary == spare and after1.secondaries == r1.secondaries
        before = w.count
        wait_for(lambda: w.count > before + 50, what="writes after the move")
    assert not [e for e in w.errors if not isinstance(e, pf.PartitionUnavailableError)], w.errors[:3]
    check_all(t, w.acked)
    # each partition's replicas hold everything: kill all but one of them, one by one
    for pidx in (0, 1):
        r = t.replicas()[pidx]
        keep = r.secondaries[-1]
        for n in (r.primary, *r.secondaries[:-1]):
            nodes[n].kill9()
            wait_for(
                lambda n=n, pidx=pidx: n not in (t.replicas()[pidx].primary, *t.replicas()[pidx].secondaries),
                what=f"{n} dropped",
            )
        assert t.replicas()[pidx].primary == keep
        for key, value in w.acked.items():
            if t.partition_index(key, b"s") == pidx:
                assert t.get(key, b"s") == value, key
        for n in ("n1", "n2", "n3", "n4"):
            if nodes[n].proc is not None and nodes[n].proc.poll() is not None:
                nodes[n].start()
        wait_for(lambda: len(c.nodes()) == 4, what="all four back")


def test_moving_a_secondary_under_writes_loses_nothing(
    start: Callable[..., tuple[Nodes, pf.RoutedCluster]],
) -> None:
    """A secondary moved to a node without a replica, writes going on: the new node learns
    the partition from the primary and takes the old one's place (ballot + 1), the old node
    drops its copy, and the new replica holds every acknowledged write (it alone answers them
    once the other two are killed). A move from a node that holds no replica, or to one that
    holds one, is refused and changes nothing."""
    nodes, c = start("n1", "n2", "n3", "n4")
    t = c.create_table("r", partition_count=1, replica_count=3)
    with Writer(t) as w:
        wait_for(lambda: w.count > 50, what="writes")
        r0 = t.replicas()[0]
        old = r0.secondaries[0]
        spare = next(n for n in ("n1", "n2", "n3", "n4") if n not in (r0.primary, *r0.secondaries))
        with pytest.raises(pf.InvalidArgumentError):
            c.move_partition("r", 0, old, from_node=spare)  # spare holds no replica
        with pytest.raises(pf.InvalidArgumentError):
            c.move_partition("r", 0, r0.secondaries[1], from_node=old)  # it holds one already
        assert t.replicas()[0] == r0
        c.move_partition("r", 0, spare, from_node=old)
        after = t.replicas()[0]
        assert after.primary == r0.primary and after.ballot > r0.ballot
        assert sorted(after.secondaries) == sorted({*r0.secondaries, spare} - {old})
        before = w.count
        wait_for(lambda: w.count > before + 50, what="writes after the move")
    assert not [e for e in w.errors if not isinstance(e, pf.PartitionUnavailableError)], w.errors[:3]
    # the old node let its copy go
    (old_dir,) = (nodes[old].dir / "tables").glob("*.0")
    wait_for(lambda: not (old_dir / "rdb").exists(), what=f"{old}'s copy dropped")
    for n in (after.primary, *[s for s in after.secondaries if s != spare]):
        nodes[n].kill9()
        wait_for(
            lambda n=n: n not in (t.replicas()[0].primary, *t.replicas()[0].secondaries), what=f"{n} dropped"
        )
    assert t.replicas()[0].primary == spare
    check_all(t, w.acked)


def test_balance_gives_a_new_node_its_share_of_replicas_under_writes(
    start: Callable[..., tuple[Nodes, pf.RoutedCluster]],
) -> None:
    """A fourth node joins three that hold every replica: balance gives it a share of the
    primaries and of the replicas (each node within one of the others), moving secondaries by
    learning and primaries by copy or by a switch of roles, writes going on; every replica
    count stays 3 on distinct nodes, and nothing acknowledged is lost."""
    nodes, c = start("n1", "n2", "n3")
    t = c.create_table("r", partition_count=4, replica_count=3)
    with Writer(t) as w:
        wait_for(lambda: w.count > 50, what="writes")
        nodes.start("n4")
        nodes.wait_live(c, {"n1", "n2", "n3", "n4"})
        moves = c.balance()
        assert any(m[2] == "n4" for m in moves), moves
        before = w.count
        wait_for(lambda: w.count > before + 50, what="writes after the balance")
    assert not [e for e in w.errors if not isinstance(e, pf.PartitionUnavailableError)], w.errors[:3]
    reps = t.replicas()
    held = {n: sum(1 for r in reps if n in (r.primary, *r.secondaries)) for n in ("n1", "n2", "n3", "n4")}
    primaries = {n: sum(1 for r in reps if r.primary == n) for n in held}
    assert max(held.values()) - min(held.values()) <= 1, held
    assert max(primaries.values()) - min(primaries.values()) <= 1, primaries
    assert all(len({r.primary, *r.secondaries}) == 3 for r in reps), reps
    assert c.balance() == []
    check_all(t, w.acked)


def test_a_secondary_back_at_another_address_before_its_session_expired(fleet: Fleet, zk_chroot: str) -> None:
    """n2, a secondary, is killed and restarted on another port within its (10 s) session: no
    failover happens, its znode names its new address, and the primary's writes reach it
    there (they would wait for the old address until they time out)."""
    args = ("--config", "zk_session_timeout_seconds=10", "--config", "replica_ack_timeout_seconds=30")
    nodes = Nodes(fleet, zk_chroot, *args)
    nodes.start("n1", "n2")
    with nodes.client() as c:
        t = c.create_table("r", partition_count=2, replica_count=2)
        for i in range(20):
            t.set(b"a%d" % i, b"s", b"x")
        ballots = [r.ballot for r in t.replicas()]
        old = nodes["n2"].port
        nodes["n2"].kill9()
        nodes["n2"].port = 0
        nodes["n2"].start()
        assert nodes["n2"].port != old
        started = time.monotonic()
        for i in range(20):
            t.set(b"b%d" % i, b"s", b"y")
        assert time.monotonic() - started < 15
        assert [r.ballot for r in t.replicas()] == ballots  # no failover: the same ballots
        nodes["n1"].kill9()
        wait_for(lambda: all(r.primary == "n2" for r in t.replicas()), timeout=60, what="n2 primary")
        for i in range(20):
            assert t.get(b"a%d" % i, b"s") == b"x" and t.get(b"b%d" % i, b"s") == b"y"


def test_a_replicated_source_ships_on_from_its_new_primary(
    start: Callable[..., tuple[Nodes, pf.RoutedCluster]], tmp_path: Path
) -> None:
    """A zk:// source table of 3 replicas duplicates to an embedded follower; its primaries are
    killed under writes. Each partition's new primary ships on from the follower's durable
    decree: the follower ends with exactly the source's records (nothing lost), and each source
    decree was applied once (the follower's decrees, one per shipped mutation, match)."""
    nodes, c = start("n1", "n2", "n3")
    t = c.create_table("r", partition_count=4, replica_count=3)
    dst = pf.Cluster.open(tmp_path / "follower", name="follower", config=pf.Config(cluster_id=9))
    try:
        server = pf.serve(dst, "127.0.0.1:0")
        try:
            d = c.add_duplication("r", server.url)
            d.wait_for(pf.DupStatus.LOG, timeout=WAIT)
            with Writer(t) as w:
                wait_for(lambda: w.count > 100, what="writes")
                victim = t.replicas()[0].primary
                nodes[victim].kill9()
                wait_for(lambda: all(r.primary != victim for r in t.replicas()), what="new primaries")
                before = w.count
                wait_for(lambda: w.count > before + 100, what="writes after the failover")
            ft = dst.table("r")
            want = {k: v for k, v in w.acked.items()}

            def shipped() -> bool:
                return all(ft.get(k, b"s") == v for k, v in want.items())

            wait_for(shipped, what="every acknowledged write on the follower")
            assert ft.count() == t.count()
            # nothing applied twice: each follower partition logged one mutation per source
            # decree (the table was empty when the duplication began), through the last
            src = {s.pidx: s.last_committed_decree for s in t.partition_stats()}
            wait_for(
                lambda: all(ft.partitions[p].source_decree == src[p] for p in src),
                what="shipped through the last",
            )
            for p, decree in src.items():
                assert ft.partitions[p].last_committed == decree, (p, ft.partitions[p].last_committed, decree)
        finally:
            server.stop()
    finally:
        dst.close()


def test_without_fsync_writes_still_reach_every_replica_before_they_are_acknowledged(
    fleet: Fleet, zk_chroot: str
) -> None:
    """wal_sync=none: a write waits for no fsync here, but still for its secondaries (its
    commit wakes no link itself: the write path sends first)."""
    nodes = Nodes(fleet, zk_chroot, *SERVE_ARGS, "--config", "wal_sync=none")
    nodes.start("n1", "n2", "n3")
    with nodes.client() as c:
        t = c.create_table("nosync", partition_count=2, replica_count=3)
        acked, took = {}, []
        for i in range(60):
            began = time.monotonic()
            t.set(b"k%d" % i, b"s", b"v%d" % i)
            took.append(time.monotonic() - began)
            acked[b"k%d" % i] = b"v%d" % i
        # each went out at once (a link left to find it by itself looks every 0.5 s)
        assert sorted(took)[len(took) // 2] < 0.1, sorted(took)
        primaries = {r.primary for r in t.replicas()}
        for n in primaries:
            nodes[n].kill9()
        wait_for(lambda: all(r.primary not in primaries for r in t.replicas()), what="new primaries")
        for k, v in acked.items():
            assert t.get(k, b"s") == v
