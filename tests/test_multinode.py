"""One cluster over several nodes (issue #11): ZooKeeper and ``serve --zk`` processes on 127.0.0.1.

Every test that kills, moves, balances or fences starts its own nodes
(tests/multinode.py) in a fresh ZooKeeper chroot and stops them at teardown;
the tests that only create their own table and read it share one set
(``shared_three``). A writer records what was acknowledged
(servedcheck.Model); after a kill, a move or a balance every acknowledged
write must be there, read through the ``zk://`` client. Servers and ZooKeeper:
the backend does not matter, so these run once (conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pegasus_fast as pf
import pytest
from conftest import DEFAULT_BACKEND, PYTHON, child_env, load_backend
from dupharness import SOURCE_DECREE_OP
from multinode import WAIT, Nodes, owners, spread_of
from pegasus_fast import _backend
from pegasus_fast.cli.exits import EXIT_UNAVAILABLE
from pegasus_fast.net import pegasus_fast_pb2 as pb
from pegasus_fast.net.peer import Peer
from served import Fleet
from servedcheck import TABLE, Model, Writer, remote_table
from zkserver import ZooKeeperServer

pytestmark = [
    pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning"),
    pytest.mark.usefixtures("default_backend"),
]

#: the lease and the session the tests that sit them out give their nodes (the defaults: 10 s, 6 s)
SHORT_FENCE_LEASE = 3.0
SHORT_SESSION = 3.0


@pytest.fixture
def start_three(fleet: Fleet, zk_chroot: str) -> Iterator[Callable[..., tuple[Nodes, pf.RoutedCluster]]]:
    """``start_three(*serve_args)``: nodes n1..n3 in this test's chroot, and a client of them."""
    clients: list[pf.RoutedCluster] = []

    def _start(*serve_args: str) -> tuple[Nodes, pf.RoutedCluster]:
        nodes = Nodes(fleet, zk_chroot, *serve_args)
        nodes.start("n1", "n2", "n3")
        clients.append(nodes.client())
        return nodes, clients[-1]

    try:
        yield _start
    finally:
        for client in clients:
            client.close()


@pytest.fixture
def three(start_three: Callable[..., tuple[Nodes, pf.RoutedCluster]]) -> tuple[Nodes, pf.RoutedCluster]:
    return start_three()


@pytest.fixture(scope="module")
def shared_three(
    tmp_path_factory: pytest.TempPathFactory, zk_module_chroot: str
) -> Iterator[tuple[Nodes, pf.RoutedCluster]]:
    """Three nodes for the tests that neither kill, move, balance nor fence: each makes its own
    table and reads it."""
    load_backend(DEFAULT_BACKEND)
    f = Fleet(tmp_path_factory.mktemp("shared-three"), DEFAULT_BACKEND)
    try:
        nodes = Nodes(f, zk_module_chroot)
        nodes.start("n1", "n2", "n3")
        with nodes.client() as client:
            yield nodes, client
    finally:
        f.close()


def scan_of(table: pf.RoutedTable) -> dict[tuple[bytes, bytes], bytes]:
    out = {}
    for hk, sk, v in table.scan():
        assert (hk, sk) not in out, f"{hk!r}/{sk!r} scanned twice"
        out[(hk, sk)] = v
    return out


def keys_of_partition(table: pf.RoutedTable, pidx: int, n: int, prefix: str = "p") -> list[bytes]:
    out, i = [], 0
    while len(out) < n:
        hk = f"{prefix}{i}".encode()
        if table.partition_index(hk, b"s") == pidx:
            out.append(hk)
        i += 1
    return out


def test_placement_is_even_and_10k_records_read_back(shared_three: tuple[Nodes, pf.RoutedCluster]) -> None:
    nodes, c = shared_three
    others = [i.name for i in c.list_tables()]  # the other tests' on these nodes
    assert TABLE not in others
    t = c.create_table(TABLE, 8)
    counts = spread_of(t, ["n1", "n2", "n3"])
    assert sorted(counts.values()) == [2, 3, 3], counts
    want: dict[tuple[bytes, bytes], bytes] = {}
    for i in range(2000):
        key = (b"k%d" % i, b"s")
        t.set(key[0], key[1], b"v%d" % i)
        want[key] = b"v%d" % i
    for i in range(80):
        hk = b"h%d" % i
        kvs = {b"s%d" % j: b"%d.%d" % (i, j) for j in range(100)}
        t.multi_set(hk, kvs)
        want.update({(hk, sk): v for sk, v in kvs.items()})
    assert len(want) == 10_000
    for (hk, sk), v in list(want.items())[:2000]:
        assert t.get(hk, sk) == v
    for i in range(80):
        hk = b"h%d" % i
        assert t.multi_get(hk) == {sk: v for (h, sk), v in want.items() if h == hk}
    assert scan_of(t) == want
    assert t.count() == 10_000
    # every partition was served by its owner alone: another node refuses it
    cfg = t._config()
    pidx = t.partition_index(b"k1", b"s")
    other = next(n for n in ("n1", "n2", "n3") if n != cfg.partitions[pidx].owner)
    with pf.connect(nodes[other].url) as direct:
        with pytest.raises(pf.NotOwnerError) as e:
            direct.table(TABLE).get(b"k1", b"s")
        assert (e.value.table, e.value.pidx, e.value.node) == (TABLE, pidx, other)
        with pytest.raises(pf.NotOwnerError):
            direct.table(TABLE).set(b"k1", b"s", b"stale")
    assert t.get(b"k1", b"s") == b"v1"
    # every node made the table, and a second create is refused
    with pytest.raises(pf.TableExistsError):
        c.create_table(TABLE, 4)
    assert sorted(i.name for i in c.list_tables()) == sorted([*others, TABLE])


def test_kill9_node_makes_only_its_partitions_unavailable(three: tuple[Nodes, pf.RoutedCluster]) -> None:
    nodes, c = three
    t = c.create_table(TABLE, 8, replica_count=1)  # one copy: its node's death is felt (test_replicas.py)
    want = {}
    for i in range(400):
        t.set(b"k%d" % i, b"s", b"v%d" % i)
        want[(b"k%d" % i, b"s")] = b"v%d" % i
    own = owners(t)
    nodes["n2"].kill9()
    down = {p for p, o in enumerate(own) if o == "n2"}
    seen_down = set()
    for (hk, sk), v in want.items():
        pidx = t.partition_index(hk, sk)
        if pidx in down:
            with pytest.raises(pf.NodeUnavailableError) as e:
                t.get(hk, sk)
            assert (e.value.table, e.value.pidx, e.value.node) == (TABLE, pidx, "n2")
            assert isinstance(e.value, pf.PartitionUnavailableError)
            with pytest.raises(pf.NodeUnavailableError):
                t.set(hk, sk, b"x")
            seen_down.add(pidx)
        else:
            assert t.get(hk, sk) == v
            t.set(hk, sk, v + b"!")
            want[(hk, sk)] = v + b"!"
    assert seen_down == down
    with pytest.raises(pf.NodeUnavailableError):
        t.count()
    # back with its disk: it serves its partitions again, with everything it held
    nodes["n2"].start()
    deadline = time.monotonic() + WAIT
    while True:
        try:
            got = scan_of(c.table(TABLE))
            break
        except pf.PartitionUnavailableError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert got == want
    assert owners(t) == own


def test_move_partition_under_writes_loses_nothing(three: tuple[Nodes, pf.RoutedCluster]) -> None:
    nodes, c = three
    # one copy, so the old owner drops its own (a replicated move: test_replicas.py)
    t = c.create_table(TABLE, 8, replica_count=1)
    model = Model()
    writer = Writer(remote_table(nodes.url), model, 1, seed=11).start()
    # a second writer hammers the partition that moves, about 1,000 writes/s
    pidx = 5
    hot = keys_of_partition(t, pidx, 50)
    acked: dict[bytes, bytes] = {}
    errors: list[BaseException] = []
    stop = threading.Event()

    def hammer() -> None:
        with pf.connect(nodes.url) as rc:
            ht = rc.table(TABLE)
            i = 0
            while not stop.is_set():
                hk = hot[i % len(hot)]
                v = b"%d" % i
                try:
                    ht.set(hk, b"s", v)
                    acked[hk] = v
                except pf.PegasusFastError as exc:
                    errors.append(exc)
                i += 1
                time.sleep(0.001)

    th = threading.Thread(target=hammer, daemon=True)
    th.start()
    try:
        writer.wait_acked(100)
        src = owners(t)[pidx]
        dst = next(n for n in ("n1", "n2", "n3") if n != src)
        decree = c.move_partition(TABLE, pidx, dst)
        assert decree > 0
        assert owners(t)[pidx] == dst
        writer.wait_acked(100)
    finally:
        stop.set()
        th.join(WAIT)
        writer.stop()
    assert errors == [], errors[:3]
    assert writer.errors == [], writer.errors[:3]
    got = scan_of(t)
    model.check(got)
    for hk, v in acked.items():
        assert got[(hk, b"s")] == v
    # the old owner refuses the partition now; the new one has its decrees
    with pf.connect(nodes[src].url) as direct:
        with pytest.raises(pf.NotOwnerError):
            direct.table(TABLE).set(hot[0], b"s", b"stale")
    stats = {s.pidx: s for s in t.partition_stats()}
    assert stats[pidx].last_committed_decree >= decree
    # the old owner's copy is dropped (its disk reclaimed) once it sees the switch ...
    (old_dir,) = (nodes[src].dir / "tables").glob(f"*.{pidx}")
    deadline = time.monotonic() + WAIT
    while (old_dir / "rdb").exists() or list(old_dir.glob("checkpoint.*")):
        assert time.monotonic() < deadline, sorted(p.name for p in old_dir.iterdir())
        time.sleep(0.1)
    # ... and the partition moves back to it whole
    before = scan_of(t)
    c.move_partition(TABLE, pidx, src)
    assert owners(t)[pidx] == src
    assert scan_of(t) == before
    c.move_partition(TABLE, pidx, dst)
    # a move to where it is already is nothing; to no live node, a typed error
    assert c.move_partition(TABLE, pidx, dst) == decree or owners(t)[pidx] == dst
    with pytest.raises(pf.InvalidArgumentError):
        c.move_partition(TABLE, pidx, "nobody")
    with pytest.raises(pf.InvalidArgumentError):
        c.move_partition(TABLE, 99, dst)
    with pytest.raises(pf.TableNotFoundError):
        c.move_partition("nope", 0, dst)


def test_a_fourth_node_receives_partitions_on_balance(three: tuple[Nodes, pf.RoutedCluster]) -> None:
    nodes, c = three
    t = c.create_table(TABLE, 8, replica_count=1)  # replicas balanced: test_replicas.py
    want = {}
    for i in range(300):
        t.set(b"k%d" % i, b"s", b"v%d" % i)
        want[(b"k%d" % i, b"s")] = b"v%d" % i
    nodes.start("n4")
    nodes.wait_live(c, {"n1", "n2", "n3", "n4"})
    assert spread_of(t, ["n4"]) == {"n4": 0}
    moves = c.balance()
    assert len(moves) == 2 and all(m[2] == "n4" for m in moves), moves
    assert sorted(spread_of(t, ["n1", "n2", "n3", "n4"]).values()) == [2, 2, 2, 2]
    assert scan_of(t) == want
    assert c.balance() == []
    # a table made now spreads over the four
    t2 = c.create_table("t2", 4, replica_count=1)
    assert sorted(spread_of(t2, ["n1", "n2", "n3", "n4"]).values()) == [1, 1, 1, 1]


def test_the_leader_killed_another_one_takes_over(
    start_three: Callable[..., tuple[Nodes, pf.RoutedCluster]],
) -> None:
    # the next leader waits out the killed one's session: a short one, not the default 6 s
    nodes, c = start_three("--config", f"zk_session_timeout_seconds={SHORT_SESSION}")
    c.create_table(TABLE, 4)
    leader = c._r.leader().url
    victim = next(n for n, s in nodes.nodes.items() if s.url == leader)
    nodes[victim].kill9()
    deadline = time.monotonic() + WAIT
    while True:
        try:
            t2 = c.create_table("t2", 4)
            break
        except (pf.NotLeaderError, pf.RemoteUnavailableError, pf.CoordinationError):
            assert time.monotonic() < deadline, "no new leader"
            time.sleep(0.2)
    assert victim not in set(owners(t2))
    assert c._r.leader().url != leader


def test_bad_addresses_and_crafted_configuration(shared_three: tuple[Nodes, pf.RoutedCluster]) -> None:
    nodes, c = shared_three
    zk_chroot = nodes.spec
    table = "crafted"  # not the other shared test's TABLE
    with pytest.raises(pf.InvalidArgumentError):
        pf.connect("zk://127.0.0.1:1")  # no chroot
    with pytest.raises(pf.InvalidArgumentError):
        pf.connect("zk://nohost/x")
    with pytest.raises(pf.CoordinationError):
        pf.connect(f"zk://{zk_chroot}-none")
    with pytest.raises(pf.TableNotFoundError):
        c.table("missing")
    with pytest.raises(pf.InvalidArgumentError):
        c.create_table("bad/name", 4)
    with pytest.raises(pf.InvalidArgumentError):
        c.create_table("t0", 0)
    t = c.create_table(table, 4)
    t.set(b"a", b"b", b"c")
    # a partition's znode that is not a configuration fails that partition alone: it is
    # unavailable, and the table's other partitions keep serving, on every node and the leader
    zk = c._zk
    keys = {p: keys_of_partition(t, p, 1, "c")[0] for p in range(4)}
    raw, _ = zk.get(f"/apps/{table}/0")
    zk.set(f"/apps/{table}/0", b"\xff not json")
    try:
        # the leader places a table with it there, and every node syncs with it (the /config bump)
        c.create_table(f"{table}2", 1)
        c.drop_table(f"{table}2")
        ct = c.table(table)
        with pytest.raises(pf.PartitionUnavailableError) as e:
            ct.get(keys[0], b"s")
        assert (e.value.table, e.value.pidx) == (table, 0)
        assert not isinstance(e.value, pf.NodeUnavailableError)
        with pytest.raises(pf.PartitionUnavailableError):
            ct.set(keys[0], b"s", b"x")
        with pytest.raises(pf.PartitionUnavailableError) as e:
            ct.count()
        assert e.value.pidx == 0
        for p in (1, 2, 3):
            ct.set(keys[p], b"s", b"v%d" % p)
            assert ct.get(keys[p], b"s") == b"v%d" % p
    finally:
        zk.set(f"/apps/{table}/0", raw)
    # mended, the partition serves again once its owner syncs (the next /config bump)
    c.create_table(f"{table}2", 1)
    c.drop_table(f"{table}2")
    assert c.table(table).get(b"a", b"b") == b"c"
    assert all(s.running for s in nodes.nodes.values())


def test_a_node_that_loses_zookeeper_refuses_writes_until_it_is_back(
    zookeeper_factory: Callable[[], ZooKeeperServer], fleet: Fleet
) -> None:
    zk = zookeeper_factory()
    chroot = f"{zk.hosts}/fence"
    nodes = Nodes(fleet, chroot)
    nodes.start("n1", "n2")
    with nodes.client() as c:
        # one copy: nothing fails over (a replicated primary cut off: test_replicas_faults.py)
        c.create_table(TABLE, 4, replica_count=1)
        c.table(TABLE).set(b"before", b"s", b"1")
    direct = {n: pf.connect(nodes[n].url, timeout=5.0) for n in ("n1", "n2")}
    try:
        cfg_owner = {p: o for p, o in enumerate(owners_direct(chroot))}
        key_of = {}
        i = 0
        while len(key_of) < 4:
            hk = b"f%d" % i
            key_of.setdefault(direct["n1"].table(TABLE).partition_index(hk, b"s"), hk)
            i += 1
        zk.kill()
        # each node refuses writes to its own partitions once it sees the connection gone
        for pidx, hk in key_of.items():
            t = direct[cfg_owner[pidx]].table(TABLE)
            deadline = time.monotonic() + WAIT
            while True:
                try:
                    t.set(hk, b"s", b"during")
                except pf.PartitionUnavailableError as e:
                    assert (e.table, e.pidx) == (TABLE, pidx)
                    break
                assert time.monotonic() < deadline, "a node kept taking writes without ZooKeeper"
                time.sleep(0.05)
            # reads of what it owns go on (a write before it noticed may be there)
            assert t.get(hk, b"s") in (None, b"during")
        # a peer's Node.Sync is refused at once, typed: it does not wait on kazoo (holding a
        # worker) until the session is back, nor is it logged as an unforeseen error
        peer = Peer(nodes["n1"].url, timeout=10.0)
        try:
            began = time.monotonic()
            with pytest.raises(pf.CoordinationError):
                peer(peer.node, "Sync", pb.Empty(), timeout=10.0)
            assert time.monotonic() - began < 5.0
        finally:
            peer.close()
        assert "serving a call failed" not in nodes["n1"].stderr(50000)
        zk.restart()
        for pidx, hk in key_of.items():
            t = direct[cfg_owner[pidx]].table(TABLE)
            deadline = time.monotonic() + WAIT
            while True:
                try:
                    t.set(hk, b"s", b"after")
                    break
                except pf.PartitionUnavailableError:
                    assert time.monotonic() < deadline, "a node did not take writes again"
                    time.sleep(0.1)
        with nodes.client() as c:
            t = c.table(TABLE)
            assert t.get(b"before", b"s") == b"1"
            assert all(t.get(hk, b"s") == b"after" for hk in key_of.values())
    finally:
        for d in direct.values():
            d.close()


def owners_direct(chroot: str) -> list[str]:
    with pf.connect(f"zk://{chroot}") as c:
        return owners(c.table(TABLE))


def test_the_cli_over_a_multi_node_cluster(
    three: tuple[Nodes, pf.RoutedCluster], default_backend_name: str
) -> None:
    nodes, c = three

    def cli(*argv: str) -> str:
        r = subprocess.run(
            [PYTHON, "-m", "pegasus_fast", "--connect", nodes.url, *argv],
            env=child_env(default_backend_name),
            capture_output=True,
            timeout=WAIT,
        )
        assert r.returncode == 0, r.stderr.decode()
        return r.stdout.decode()

    assert "created" in cli("create", TABLE, "-p", "6").lower() or c.has_table(TABLE)
    assert sorted(spread_of(c.table(TABLE), ["n1", "n2", "n3"]).values()) == [2, 2, 2]
    cli("set", TABLE, "hk", "sk", "v1")
    assert cli("get", TABLE, "hk", "sk").strip() == "v1"
    assert cli("count", TABLE).strip() == "1"
    out = cli("nodes")
    assert all(n in out for n in ("n1", "n2", "n3"))
    pidx = c.table(TABLE).partition_index(b"hk", b"sk")
    dst = next(n for n in ("n1", "n2", "n3") if n != owners(c.table(TABLE))[pidx])
    assert f"to {dst}" in cli("move", TABLE, str(pidx), dst)
    assert owners(c.table(TABLE))[pidx] == dst
    assert cli("get", TABLE, "hk", "sk").strip() == "v1"
    assert "1 moves" in cli("balance")
    assert sorted(spread_of(c.table(TABLE), ["n1", "n2", "n3"]).values()) == [2, 2, 2]
    # a verb of a multi-node cluster against a single one is refused in one line
    r = subprocess.run(
        [PYTHON, "-m", "pegasus_fast", "--connect", nodes["n1"].url, "balance"],
        env=child_env(default_backend_name),
        capture_output=True,
        timeout=WAIT,
    )
    assert r.returncode != 0 and b"zk://" in r.stderr


def test_the_cli_with_a_node_down_shows_what_is_unavailable(
    start_three: Callable[..., tuple[Nodes, pf.RoutedCluster]], default_backend_name: str
) -> None:
    """A move to the partition's own node moves nothing; with n2 killed, app and count show the
    partitions they can and list the unavailable ones (exit 3), nodes shows n2 dead with its
    partitions, balance reports what it cannot place (exit 3)."""
    nodes, c = start_three("--config", f"zk_session_timeout_seconds={SHORT_SESSION}")

    def cli(*argv: str) -> subprocess.CompletedProcess:
        r = subprocess.run(
            [PYTHON, "-m", "pegasus_fast", *argv, "--connect", nodes.url],  # the option after the verb
            env=child_env(default_backend_name),
            capture_output=True,
            timeout=WAIT,
        )
        assert b"Traceback" not in r.stderr, r.stderr.decode()
        return r

    t = c.create_table(TABLE, 6, replica_count=1)  # one copy: n2's partitions go with it
    for i in range(60):
        t.set(b"k%d" % i, b"s", b"v")
    own = owners(t)
    r = cli("move", TABLE, "0", own[0])
    assert r.returncode == 0 and "already on" in r.stdout.decode() and "decree" not in r.stdout.decode()
    assert owners(t) == own
    down = sorted(p for p, o in enumerate(own) if o == "n2")
    assert down
    nodes["n2"].kill9()
    nodes.wait_live(c, {"n1", "n3"})

    r = cli("app", TABLE)
    assert r.returncode == EXIT_UNAVAILABLE, r.stderr.decode()
    rows = {
        int(line.split()[0]): line.split()[1] for line in r.stdout.decode().splitlines() if line[:1].isdigit()
    }
    assert sorted(rows) == list(range(6))
    assert sorted(p for p, state in rows.items() if state == "unavailable") == down
    assert sorted(int(line.split()[2].rstrip(":")) for line in r.stderr.decode().splitlines()) == down

    r = cli("count", TABLE)
    assert r.returncode == EXIT_UNAVAILABLE, r.stderr.decode()
    want = sum(1 for i in range(60) if own[t.partition_index(b"k%d" % i, b"s")] != "n2")
    out = r.stdout.decode().split()
    assert int(out[0]) == want and "partial" in r.stdout.decode()
    assert sorted(int(line.split()[2].rstrip(":")) for line in r.stderr.decode().splitlines()) == down

    r = cli("nodes")
    assert r.returncode == 0, r.stderr.decode()
    dead = next(line.split() for line in r.stdout.decode().splitlines() if line.startswith("n2"))
    # node, state, url, primaries, secondaries, then the partitions it owns (and "-": no replicas)
    owned = [tok for tok in dead[5:] if tok.startswith(f"{TABLE}.")]
    assert (
        dead[1] == "dead"
        and dead[3] == str(len(down))
        and sorted(owned) == sorted(f"{TABLE}.{p}" for p in down)
    )

    r = cli("balance")
    assert r.returncode == EXIT_UNAVAILABLE, r.stderr.decode()
    stuck = [line for line in r.stderr.decode().splitlines() if line.startswith("cannot place")]
    assert sorted(line.split()[2].rstrip(":") for line in stuck) == sorted(f"{TABLE}.{p}" for p in down)


def test_duplicate_three_nodes_to_one_moving_a_partition_midway(
    three: tuple[Nodes, pf.RoutedCluster], fleet: Fleet
) -> None:
    nodes, c = three
    follower = fleet.add("follower")
    follower.start()
    t = c.create_table(TABLE, 8)
    for i in range(500):
        t.set(b"pre%d" % i, b"s", b"v%d" % i)
    model = Model()
    writer = Writer(remote_table(nodes.url), model, 1, seed=7).start()
    try:
        writer.wait_acked(50)
        d = c.add_duplication(TABLE, follower.url)
        d.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        assert [p.pidx for p in d.progress()] == list(range(8))
        writer.wait_acked(100)
        # a partition moves while the writer writes and the duplication ships
        pidx = 2
        src = owners(t)[pidx]
        dst = next(n for n in ("n1", "n2", "n3") if n != src)
        c.move_partition(TABLE, pidx, dst)
        assert owners(t)[pidx] == dst
        writer.wait_acked(100)
    finally:
        writer.stop()
    assert writer.errors == [], writer.errors[:3]
    source = scan_of(t)
    model.check(source)
    with pf.connect(follower.url) as fc:
        ft = fc.table(TABLE)
        deadline = time.monotonic() + WAIT
        while True:
            got = {(hk, sk): v for hk, sk, v in ft.scan()}
            if got == source:
                break
            assert time.monotonic() < deadline, (len(got), len(source))
            time.sleep(0.1)
        stats = {s.pidx: s for s in t.partition_stats()}
    rows = {p.pidx: p for p in d.progress()}
    deadline = time.monotonic() + WAIT
    while any(rows[i].confirmed_decree != stats[i].last_committed_decree for i in range(8)):
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)
        rows = {p.pidx: p for p in d.progress()}
    # the confirmed decrees are in ZooKeeper, written by each partition's owner
    deadline = time.monotonic() + WAIT
    while True:
        zk_rows = {}
        for i in range(8):
            raw = c._zk.exists(f"/dups/{d.dupid}/{i}") and c._zk.get(f"/dups/{d.dupid}/{i}")[0]
            zk_rows[i] = json.loads(raw) if raw else None
        if all(
            r is not None and r["confirmed"] == stats[i].last_committed_decree for i, r in zk_rows.items()
        ):
            break
        assert time.monotonic() < deadline, zk_rows
        time.sleep(0.2)
    assert zk_rows[pidx]["node"] == dst
    d.remove()
    assert d.status == pf.DupStatus.REMOVED
    # across the move, the follower's log recorded each source decree once, in order, up to
    # the source's last (read offline, from its directory)
    follower.stop()
    with pf.Cluster.open(follower.dir) as fc:
        for p in fc.table(TABLE).partitions:
            mutations, _ = _backend.impl.scan_log_dir(p.wal.path, 0)
            seq = [op[1] for m in mutations for op in m[3] if op[0] == SOURCE_DECREE_OP]
            assert seq == sorted(set(seq)), f"partition {p.pidx} applied a source decree twice"
            assert p.source_decree == stats[p.pidx].last_committed_decree


@pytest.mark.parametrize("replicas", [1, 3])
def test_a_fence_whose_move_never_switched_is_lifted_by_its_lease(
    start_three: Callable[..., tuple[Nodes, pf.RoutedCluster]], replicas: int
) -> None:
    """A leader that dies between fencing the owner and the switch leaves no partition
    refusing writes for ever: the owner lifts the fence after its fence lease (a short one
    here, not the default 10 s), and soon after it, although nothing in ZooKeeper changed
    (the node's syncs read only what changed, and the fenced partition's table besides)."""
    nodes, c = start_three("--config", f"fence_lease_seconds={SHORT_FENCE_LEASE}")
    t = c.create_table(TABLE, 4, replica_count=replicas)
    pidx = t.partition_index(b"k", b"s")
    owner = owners(t)[pidx]
    t.set(b"k", b"s", b"before")
    peer = Peer(nodes[owner].url)
    try:
        decree = peer(peer.node, "Fence", pb.PartitionRef(table=TABLE, pidx=pidx)).decree
        fenced = time.monotonic()
        assert decree >= 1
        with pf.connect(nodes[owner].url) as direct:
            dt = direct.table(TABLE)
            with pytest.raises(pf.PartitionUnavailableError) as e:
                dt.set(b"k", b"s", b"during")
            assert e.value.state == "moving"
            assert dt.get(b"k", b"s") == b"before"  # reads go on
            while True:
                try:
                    dt.set(b"k", b"s", b"after")
                    break
                except pf.PartitionUnavailableError:
                    assert time.monotonic() - fenced < SHORT_FENCE_LEASE + WAIT
                    time.sleep(0.2)
            lifted = time.monotonic() - fenced
            assert SHORT_FENCE_LEASE <= lifted < SHORT_FENCE_LEASE + 5, lifted
    finally:
        peer.close()
    assert c.table(TABLE).get(b"k", b"s") == b"after"
    assert owners(t)[pidx] == owner


def test_duplicate_into_a_multi_node_cluster_moving_partitions_on_both_sides(
    three: tuple[Nodes, pf.RoutedCluster], fleet: Fleet, zk_chroot: str
) -> None:
    nodes, c = three
    followers = Nodes(fleet, f"{zk_chroot}-follower")
    followers.start("f1", "f2")
    t = c.create_table(TABLE, 8)
    for i in range(300):
        t.set(b"pre%d" % i, b"s", b"v%d" % i)
    model = Model()
    writer = Writer(remote_table(nodes.url), model, 1, seed=5).start()
    with followers.client() as fc:
        try:
            writer.wait_acked(50)
            d = c.add_duplication(TABLE, followers.url)
            d.wait_for(pf.DupStatus.LOG, timeout=WAIT)
            ft = fc.table(TABLE)
            assert sorted(spread_of(ft, ["f1", "f2"]).values()) == [4, 4]
            writer.wait_acked(100)
            # a follower partition moves between the follower's nodes, a source one between the source's
            fp = 6
            fsrc = owners(ft)[fp]
            fc.move_partition(TABLE, fp, "f2" if fsrc == "f1" else "f1")
            sp = 1
            ssrc = owners(t)[sp]
            c.move_partition(TABLE, sp, next(n for n in ("n1", "n2", "n3") if n != ssrc))
            writer.wait_acked(100)
        finally:
            writer.stop()
        assert writer.errors == [], writer.errors[:3]
        source = scan_of(t)
        model.check(source)
        deadline = time.monotonic() + WAIT
        while True:
            try:
                got = scan_of(fc.table(TABLE))
            except pf.PartitionUnavailableError:
                got = {}
            if got == source:
                break
            assert time.monotonic() < deadline, (len(got), len(source))
            time.sleep(0.1)
        assert all(s == "serving" for _, s in fc.table(TABLE).health().partitions)
        # the follower table is the duplication's: a second source table cannot take it over
        with pytest.raises(pf.DuplicationError):
            c.create_table("other", 8)
            c.add_duplication("other", followers.url, remote_table=TABLE).wait_for(
                pf.DupStatus.LOG, timeout=WAIT
            )


def test_a_long_duplication_into_a_multi_node_cluster_keeps_no_object_per_batch(
    fleet: Fleet, zk_chroot: str, tmp_path: Path
) -> None:
    """The routed follower keeps the followers of its calls in flight only (for cancel): one
    apply per write, many writes, and the number of them alive here stays bounded."""
    import gc

    from pegasus_fast.net.follower import RemoteFollower

    followers = Nodes(fleet, zk_chroot)
    followers.start("f1")
    src = pf.Cluster.open(tmp_path / "source", name="source")
    try:
        t = src.create_table(TABLE, 1)
        d = src.add_duplication(TABLE, followers.url)
        d.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        writes = 60
        for i in range(writes):
            decree = t.set(b"k%d" % i, b"s", b"v")
            deadline = time.monotonic() + WAIT
            # shipped before the next write: one batch, one apply, each
            while d.progress()[0].confirmed_decree < decree:
                assert time.monotonic() < deadline, d.progress()
                time.sleep(0.002)
        gc.collect()
        alive = sum(1 for o in gc.get_objects() if isinstance(o, RemoteFollower))
        assert alive < writes // 4, alive
    finally:
        src.close()
    with followers.client() as fc:
        assert fc.table(TABLE).count() == writes


def test_a_duplication_follows_a_follower_node_back_at_another_address(
    fleet: Fleet, zk_chroot: str, tmp_path: Path
) -> None:
    """The routed follower keeps the live nodes it read for a moment (routes.py, NODES_FRESH)
    instead of reading them from ZooKeeper for every shipped batch. The follower's only node
    is killed and comes back on another port within its session: the calls to the old
    address fail, the nodes are read again, and shipping goes on to the new one."""
    followers = Nodes(fleet, zk_chroot, "--config", "zk_session_timeout_seconds=10")
    followers.start("f1")
    src = pf.Cluster.open(tmp_path / "source", name="source")
    try:
        t = src.create_table(TABLE, 4)
        d = src.add_duplication(TABLE, followers.url)
        d.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        for i in range(20):
            t.set(b"a%d" % i, b"s", b"x")
        old = followers["f1"].port
        followers["f1"].kill9()
        followers["f1"].port = 0
        followers["f1"].start()
        assert followers["f1"].port != old
        for i in range(20):
            t.set(b"b%d" % i, b"s", b"y")
        with followers.client() as fc:
            ft = fc.table(TABLE)
            deadline = time.monotonic() + WAIT
            while not all(ft.get(b"b%d" % i, b"s") == b"y" for i in range(20)):
                assert time.monotonic() < deadline, d.progress()
                time.sleep(0.05)
            assert all(ft.get(b"a%d" % i, b"s") == b"x" for i in range(20))
        assert d.status == pf.DupStatus.LOG
    finally:
        src.close()
