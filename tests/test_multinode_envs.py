"""A multi-node table's envs (issue #21 §3 on zk://): ``set_table_envs`` through the meta leader,
compare-and-set in the table's znode, applied by every live node before it returns; a follower
table opted out with ``duplication.follower_writable=true`` takes client writes (routed and on the
Pegasus port), closes again when the env is deleted, and a moved partition keeps the behaviour;
bad envs are typed errors that change nothing. ZooKeeper and the nodes are real processes; the
backend does not matter, these run once."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pegasus_fast as pf
import pytest
from conftest import DEFAULT_BACKEND, PYTHON, child_env
from dupharness import wait_until
from multinode import Nodes, owners
from pegasus_fast.client.native import PyClientCore
from pegasus_fast.coord.zk import read_nodes
from pegasus_fast.engine.cluster import default_cluster_id
from pegasus_fast.errors import InvalidArgumentError, InvalidTypeError, ResourceExhaustedError
from pegasus_fast.net.pegasus import codes
from pegasus_fast.records import encode_key
from served import Fleet

pytestmark = pytest.mark.usefixtures("default_backend")

WAIT = 30.0
TABLE = "t"
PARTITIONS = 4
OPEN = "duplication.follower_writable"


@pytest.fixture
def follower(
    fleet: Fleet, zk_chroot: str, tmp_path: Path
) -> Iterator[tuple[Nodes, pf.Cluster, pf.Duplication, pf.RoutedCluster]]:
    """Nodes f1 and f2 (each with a Pegasus port) following the embedded cluster ``a``'s table."""
    nodes = Nodes(fleet, f"{zk_chroot}-follower", "--pegasus-listen", "127.0.0.1:0")
    nodes.start("f1", "f2")
    source_id = 2 if default_cluster_id(nodes.name) == 1 else 1
    a = pf.Cluster.open(tmp_path / "a", name="a", config=pf.Config(cluster_id=source_id))
    try:
        ta = a.create_table(TABLE, partition_count=PARTITIONS)
        for p in range(PARTITIONS):
            ta.set(key_in(ta, p), "s", "from the source")
        dup = a.add_duplication(TABLE, nodes.url)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        with nodes.client() as fc:
            t = fc.table(TABLE)
            wait_until(lambda: _arrived(t, ta), WAIT, "the source's records on the nodes")
            yield nodes, a, dup, fc
    finally:
        a.close()


def key_in(t: pf.Table | pf.RoutedTable, pidx: int) -> str:
    """A hash key of partition ``pidx``."""
    return next(f"h{i}" for i in range(10_000) if t.partition_index(f"h{i}") == pidx)


def _arrived(t: pf.RoutedTable, ta: pf.Table) -> bool:
    try:
        return all(t.get(key_in(ta, p), "s") == b"from the source" for p in range(PARTITIONS))
    except pf.PartitionUnavailableError:
        return False


def writes_refused(t: pf.RoutedTable, source: str) -> None:
    for p in range(PARTITIONS):
        with pytest.raises(pf.FollowerTableError) as info:
            t.set(key_in(t, p), "mine", "client write")
        assert (info.value.table, info.value.source) == (TABLE, source)


def writes_taken(t: pf.RoutedTable, tag: str) -> None:
    for p in range(PARTITIONS):
        t.set(key_in(t, p), "mine", tag)
        assert t.get(key_in(t, p), "mine") == tag.encode()


def each_node_envs(nodes: Nodes) -> dict[str, tuple[dict[str, str], bool]]:
    """Each node's own view of the table (pegasus:// to the node): its envs and writability."""
    out = {}
    for node_id, served in nodes.nodes.items():
        with pf.connect(served.url) as c:
            info = c.table_info(TABLE)
            assert info.role is not None
            out[node_id] = (dict(info.envs), info.role.writable)
    return out


def pegasus_put(nodes: Nodes, t: pf.RoutedTable, pidx: int, value: bytes) -> int:
    """A put on the Pegasus port of the partition's owner, by hand: its storage error code."""
    addr = read_nodes(t._r.routes.zk)[owners(t)[pidx]].pegasus  # noqa: SLF001 - the test's ZooKeeper
    host, port = addr.rsplit(":", 1)
    core = PyClientCore(host, int(port), timeout=10)
    try:
        err, reply = core.call(codes.OP_PUT, t.app_id, pidx, (encode_key(b"raw", b"s"), value, 0))
    finally:
        core.close()
    assert err == codes.ERR_OK
    return int(reply[0])


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "pegasus_fast", *args],
        env=child_env(DEFAULT_BACKEND),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_opt_out_opens_a_multi_node_follower_on_every_node_and_closes_again(
    follower: tuple[Nodes, pf.Cluster, pf.Duplication, pf.RoutedCluster],
) -> None:
    nodes, a, dup, fc = follower
    source = f"a.{TABLE}#{dup.dupid}"
    t = fc.table(TABLE)
    role = fc.table_role(TABLE)
    assert (role.kind, role.follows, role.writable) == ("follower", source, False)
    writes_refused(t, source)
    raw_pidx = t.partition_index(b"raw", b"s")
    assert pegasus_put(nodes, t, raw_pidx, b"refused") == codes.K_NOT_SUPPORTED

    info = fc.set_table_envs(TABLE, {OPEN: "true", "note": "standby"})
    assert info.envs == {OPEN: "true", "note": "standby"}
    assert info.role is not None and info.role.writable
    # applied on every node by the time the call returns: no wait here
    assert each_node_envs(nodes) == {n: ({OPEN: "true", "note": "standby"}, True) for n in ("f1", "f2")}
    assert fc.table_info(TABLE).envs == {OPEN: "true", "note": "standby"}
    writes_taken(t, "opened")
    assert pegasus_put(nodes, t, raw_pidx, b"taken") == 0
    assert t.get(b"raw", b"s") == b"taken"
    # the duplication's applies still land
    a.table(TABLE).set(key_in(t, 0), "s", "after")
    wait_until(lambda: t.get(key_in(t, 0), "s") == b"after", WAIT, "the source's next write")

    # a partition moved to the other node keeps the opt-out
    moved = 1
    to = "f2" if owners(t)[moved] == "f1" else "f1"
    fc.move_partition(TABLE, moved, to)
    assert owners(t)[moved] == to
    t.set(key_in(t, moved), "mine", "after the move")
    assert t.get(key_in(t, moved), "mine") == b"after the move"

    info = fc.set_table_envs(TABLE, {}, delete=(OPEN,))
    assert info.envs == {"note": "standby"}
    assert info.role is not None and not info.role.writable
    assert each_node_envs(nodes) == {n: ({"note": "standby"}, False) for n in ("f1", "f2")}
    writes_refused(t, source)
    assert pegasus_put(nodes, t, raw_pidx, b"refused again") == codes.K_NOT_SUPPORTED
    assert t.get(b"raw", b"s") == b"taken"

    # and a partition moved while it is closed stays closed
    moved = 2
    to = "f2" if owners(t)[moved] == "f1" else "f1"
    fc.move_partition(TABLE, moved, to)
    assert owners(t)[moved] == to
    writes_refused(t, source)
    a.table(TABLE).set(key_in(t, moved), "s", "still shipped")
    wait_until(lambda: t.get(key_in(t, moved), "s") == b"still shipped", WAIT, "the source's write")


def test_bad_envs_are_typed_errors_and_change_nothing(
    follower: tuple[Nodes, pf.Cluster, pf.Duplication, pf.RoutedCluster],
) -> None:
    nodes, _a, _dup, fc = follower
    fc.set_table_envs(TABLE, {"kept": "1"})
    before = each_node_envs(nodes)
    limit = pf.Config().max_env_bytes_per_table
    with pytest.raises(ResourceExhaustedError) as info:
        fc.set_table_envs(TABLE, {OPEN: "true", "big": "x" * limit})
    assert info.value.resource == "max_env_bytes_per_table"
    with pytest.raises(InvalidArgumentError):
        fc.set_table_envs(TABLE, {"": "v"})
    with pytest.raises(InvalidTypeError):
        fc.set_table_envs(TABLE, {OPEN: True})  # type: ignore[dict-item]
    with pytest.raises(InvalidTypeError):
        fc.set_table_envs(TABLE, {}, delete="kept")  # type: ignore[arg-type]
    with pytest.raises(pf.TableNotFoundError):
        fc.set_table_envs("nope", {OPEN: "true"})
    assert fc.table_info(TABLE).envs == {"kept": "1"}
    assert each_node_envs(nodes) == before
    writes_refused(fc.table(TABLE), f"a.{TABLE}#{_dup.dupid}")


def test_concurrent_changes_merge_and_a_node_down_applies_them_when_it_starts(
    follower: tuple[Nodes, pf.Cluster, pf.Duplication, pf.RoutedCluster],
) -> None:
    """Each change is a compare-and-set of the znode: changes made at once all land. A node that
    is down when they are made applies them as it starts, before it serves."""
    nodes, _a, _dup, fc = follower
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            fc.set_table_envs(TABLE, {f"k{i}": str(i)})
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert errors == []
    want = {f"k{i}": str(i) for i in range(6)}
    assert fc.table_info(TABLE).envs == want

    # a node's own Client.SetTableEnvs (pegasus:// to it) goes through the leader too (the
    # other node forwards it there), and the reply is the node's view, already applied
    for node_id in ("f1", "f2"):
        with pf.connect(nodes[node_id].url) as c:
            want[f"via_{node_id}"] = "1"
            assert c.set_table_envs(TABLE, {f"via_{node_id}": "1"}).envs == want
    assert fc.table_info(TABLE).envs == want

    nodes["f2"].stop()
    nodes.wait_live(fc, {"f1"})
    fc.set_table_envs(TABLE, {OPEN: "true"})
    nodes["f2"].restart()
    with pf.connect(nodes["f2"].url) as c2:
        info = c2.table_info(TABLE)
        assert info.envs == {**want, OPEN: "true"}
        assert info.role is not None and info.role.writable


def test_the_cli_sets_and_deletes_envs_and_shows_roles_over_zk(
    follower: tuple[Nodes, pf.Cluster, pf.Duplication, pf.RoutedCluster],
) -> None:
    nodes, _a, dup, fc = follower
    source = f"a.{TABLE}#{dup.dupid}"
    done = cli("--connect", nodes.url, "ls", "-d")
    assert done.returncode == 0, done.stderr
    assert f"follower of {source} read-only" in done.stdout
    done = cli("--connect", nodes.url, "set_app_envs", TABLE, f"{OPEN}=true")
    assert done.returncode == 0, done.stderr
    assert f"follower of {source} writable" in done.stdout
    fc.table(TABLE).set("mine", "s", "ok")
    done = cli("--connect", nodes.url, "app", TABLE)
    assert done.returncode == 0, done.stderr
    assert f"role: follower of {source} writable" in done.stdout
    done = cli("--connect", nodes.url, "del_app_envs", TABLE, OPEN)
    assert done.returncode == 0, done.stderr
    assert f"follower of {source} read-only" in done.stdout
    writes_refused(fc.table(TABLE), source)
    done = cli("--connect", nodes.url, "set_app_envs", TABLE, "=nokey")
    assert done.returncode != 0
    assert fc.table_info(TABLE).envs == {}


def test_a_live_node_that_cannot_apply_fails_the_call_and_applies_at_its_next_sync(
    fleet: Fleet, zk_chroot: str
) -> None:
    """A node frozen (SIGSTOP) while its ZooKeeper session lives: the leader asks it for
    APPLY_WAIT, then the call is a CoordinationError naming it, with the change recorded; once
    it runs again it applies the change at its next sync (RESYNC_INTERVAL)."""
    from pegasus_fast.coord.zk import read_leader
    from pegasus_fast.multinode.member import RESYNC_INTERVAL
    from pegasus_fast.multinode.table_envs import APPLY_WAIT

    nodes = Nodes(fleet, zk_chroot, "--config", "zk_session_timeout_seconds=120")
    nodes.start("n1", "n2")
    with nodes.client() as c:
        c.create_table(TABLE, PARTITIONS)
        leader = read_leader(c.table(TABLE)._r.routes.zk)  # noqa: SLF001 - the test's ZooKeeper
        assert leader is not None
        frozen = nodes["n2" if leader.node_id == "n1" else "n1"]
        proc = frozen.proc
        assert proc is not None
        proc.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(pf.CoordinationError) as info:
                c.set_table_envs(TABLE, {"k": "v"})
            assert time.monotonic() - started >= APPLY_WAIT
            assert frozen.name in info.value.reason
            assert c.table_info(TABLE).envs == {"k": "v"}
            with pf.connect(nodes[leader.node_id].url) as lc:
                assert lc.table_info(TABLE).envs == {"k": "v"}
        finally:
            proc.send_signal(signal.SIGCONT)
        # its /config watch fired while it was frozen; at the latest its next periodic sync
        with pf.connect(frozen.url) as fc:
            wait_until(lambda: fc.table_info(TABLE).envs == {"k": "v"}, RESYNC_INTERVAL + 5, "the change")


def test_a_zk_tables_role_from_its_znode_and_the_clusters_duplications() -> None:
    """What ``ls -d`` shows over zk:// (multinode/table_envs.py: ``table_role``), without nodes."""
    from pegasus_fast.coord.layout import AppDoc, DupDoc, TableConfig
    from pegasus_fast.multinode.table_envs import table_role

    def dup(table: str, remote_table: str, status: str = "active") -> DupDoc:
        return DupDoc(table, "pegasus://127.0.0.1:1", remote_table, True, "slow", 0.0, status)

    src = {"cluster": "a", "cluster_uid": "u1", "table": "t", "dupid": 3}
    plain = TableConfig("p", AppDoc(1, 4, 0.0), ())
    follower = TableConfig("f", AppDoc(2, 4, 0.0, {}, src), ())
    opened = TableConfig("f", AppDoc(2, 4, 0.0, {OPEN: "True "}, src), ())
    dups = {1: dup("p", "x"), 2: dup("p", "y", "removed"), 4: dup("f", "other"), 5: dup("f", "t", "removed")}
    role = table_role(plain, dups)
    assert (role.kind, role.source_of, role.writable) == ("source", (1,), True)
    assert table_role(plain, {}).kind == "plain"
    role = table_role(follower, dups)
    assert (role.kind, role.follows, role.source_of, role.writable) == ("follower", "a.t#3", (4,), False)
    assert table_role(opened, dups).writable
    # a duplication back to the table it follows: two masters, writable
    role = table_role(follower, {**dups, 6: dup("f", "t")})
    assert (role.kind, role.writable) == ("master-master", True)
