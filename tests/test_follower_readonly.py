"""Followers are read-only unless told otherwise (issue #21 §3): a master-slave follower table
refuses every client write with FollowerTableError (embedded, over gRPC, over the Pegasus port),
its duplication's applies still land, ``duplication.follower_writable=true`` opts out,
master-master tables take writes, and ls -d / app show each table's role."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pegasus_fast as pf
import pytest
from conftest import DEFAULT_BACKEND, PYTHON, child_env
from dupharness import wait_until
from served import Fleet, start_all

WAIT = 20.0

pytestmark = pytest.mark.usefixtures("default_backend")


def _writes(t: Any) -> dict[str, Callable[[], object]]:
    """Every client write of the data API, each on its own key."""
    return {
        "set": lambda: t.set("h1", "s", "v"),
        "delete": lambda: t.delete("h2", "s"),
        "multi_set": lambda: t.multi_set("h3", {"a": "1", "b": "2"}),
        "multi_delete": lambda: t.multi_delete("h4", ["a"]),
        "incr": lambda: t.incr("h5", "n", 1),
        "check_and_set": lambda: t.check_and_set("h6", "c", pf.CheckType.NO_CHECK, b"", "s", "v"),
        "check_and_mutate": lambda: t.check_and_mutate(
            "h7", "c", pf.CheckType.NO_CHECK, b"", [pf.Mutation.set("s", "v")]
        ),
    }


def assert_refuses_writes(t: Any, table: str, source: str) -> None:
    for name, write in _writes(t).items():
        with pytest.raises(pf.FollowerTableError) as info:
            write()
        assert (info.value.table, info.value.source) == (table, source), name


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[pf.Cluster, pf.Cluster]]:
    a = pf.Cluster.open(tmp_path / "a", name="a", config=pf.Config(cluster_id=1))
    b = pf.Cluster.open(tmp_path / "b", name="b", config=pf.Config(cluster_id=2))
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_a_follower_refuses_client_writes_and_takes_the_sources(two: tuple[pf.Cluster, pf.Cluster]) -> None:
    a, b = two
    ta = a.create_table("t", partition_count=4)
    ta.set("k", "s", "before")
    dup = a.add_duplication("t", b)
    dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    tb = b.table("t")
    assert_refuses_writes(tb, "t", f"a.t#{dup.dupid}")
    assert tb.get("k", "s") == b"before"  # reads go on
    ta.set("k", "s", "after")
    wait_until(lambda: tb.get("k", "s") == b"after", WAIT, "the source's write on the follower")
    assert tb.get("h1", "s") is None  # nothing refused was written
    role = b.table_role("t")
    assert (role.kind, role.follows, role.writable, role.source_of) == (
        "follower",
        f"a.t#{dup.dupid}",
        False,
        (),
    )
    src = a.table_role("t")
    assert (src.kind, src.source_of, src.writable) == ("source", (dup.dupid,), True)
    assert a.table_info("t").role == src and b.list_tables()[0].role == role


def test_the_env_opts_out_and_survives_a_restart(tmp_path: Path) -> None:
    cfg_a, cfg_b = pf.Config(cluster_id=1), pf.Config(cluster_id=2)
    a = pf.Cluster.open(tmp_path / "a", name="a", config=cfg_a)
    b = pf.Cluster.open(tmp_path / "b", name="b", config=cfg_b)
    try:
        a.create_table("t", partition_count=2)
        dup = a.add_duplication("t", b)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        b.set_table_envs("t", {"duplication.follower_writable": "true"})
        assert b.table_role("t").writable
        for write in _writes(b.table("t")).values():
            write()
        b.set_table_envs("t", {}, delete=("duplication.follower_writable",))
        with pytest.raises(pf.FollowerTableError):
            b.table("t").set("x", "s", "v")
    finally:
        a.close()
        b.close()
    # read-only is the follower record itself: a restart of the follower comes back refusing
    b = pf.Cluster.open(tmp_path / "b", name="b", config=cfg_b)
    try:
        with pytest.raises(pf.FollowerTableError):
            b.table("t").set("x", "s", "v")
        assert b.table_role("t").kind == "follower"
    finally:
        b.close()


def test_an_adopted_table_with_the_env_at_creation_stays_writable(two: tuple[pf.Cluster, pf.Cluster]) -> None:
    a, b = two
    a.create_table("t", partition_count=2)
    b.create_table("t", partition_count=2, envs={"duplication.follower_writable": "true"})
    b.create_table("u", partition_count=2)
    a.create_table("u", partition_count=2)
    a.add_duplication("t", b, with_checkpoint=False).wait_for(pf.DupStatus.LOG, timeout=WAIT)
    a.add_duplication("u", b, with_checkpoint=False).wait_for(pf.DupStatus.LOG, timeout=WAIT)
    b.table("t").set("mine", "s", "ok")
    with pytest.raises(pf.FollowerTableError):
        b.table("u").set("mine", "s", "no")


def test_master_master_tables_take_writes_on_both_sides(two: tuple[pf.Cluster, pf.Cluster]) -> None:
    a, b = two
    ta = a.create_table("t", partition_count=4)
    tb = b.create_table("t", partition_count=4)
    ab = a.add_duplication("t", b, with_checkpoint=False)
    ab.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    with pytest.raises(pf.FollowerTableError):
        tb.set("k", "s", "b")
    ba = b.add_duplication("t", a, with_checkpoint=False)
    ba.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    ta.set("from_a", "s", "a")
    tb.set("from_b", "s", "b")
    wait_until(lambda: tb.get("from_a", "s") == b"a" and ta.get("from_b", "s") == b"b", WAIT, "both ways")
    assert a.table_role("t").kind == b.table_role("t").kind == "master-master"
    # b stops duplicating back: it is a plain follower again
    ba.remove()
    with pytest.raises(pf.FollowerTableError):
        tb.set("k", "s", "b")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = child_env(DEFAULT_BACKEND)
    return subprocess.run(
        [PYTHON, "-m", "pegasus_fast", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_served_follower_refuses_over_grpc_and_the_pegasus_port(
    tmp_path: Path, default_backend: ModuleType
) -> None:
    fleet = Fleet(tmp_path, DEFAULT_BACKEND)
    try:
        # the names give distinct cluster ids (38, 123, 8)
        src = fleet.add("east")
        grpc_only = fleet.add("west")
        with_port = fleet.add("north")
        with_port.args = ("--pegasus-listen", "127.0.0.1:0")
        start_all(src, grpc_only, with_port)
        with pf.connect(src.url) as c:
            c.create_table("t", partition_count=4).set("k", "s", "v")
            for f in (grpc_only, with_port):
                c.add_duplication("t", f.url).wait_for(pf.DupStatus.LOG, timeout=WAIT)
            dupids = sorted(d.dupid for d in c.duplications("t"))
            assert c.table_role("t").source_of == tuple(dupids)
        for f, dupid in ((grpc_only, dupids[0]), (with_port, dupids[1])):
            with pf.connect(f.url) as fc:
                t = fc.table("t")
                wait_until(lambda t=t: t.get("k", "s") == b"v", WAIT, "the source's record")
                assert_refuses_writes(t, "t", f"east.t#{dupid}")
                done = cli("--connect", f.url, "set_app_envs", "t", "duplication.follower_writable=true")
                assert done.returncode == 0, done.stderr
                t.set("mine", "s", "ok")
                assert fc.table_role("t").writable
        done = cli("--connect", with_port.url, "del_app_envs", "t", "duplication.follower_writable")
        assert done.returncode == 0, done.stderr
        done = cli("--connect", with_port.url, "ls", "-d")
        assert done.returncode == 0, done.stderr
        assert f"follower of east.t#{dupids[1]} read-only" in done.stdout
        done = cli("--connect", src.url, "app", "t")
        assert done.returncode == 0, done.stderr
        assert "role: source dups " + ",".join(map(str, dupids)) in done.stdout
    finally:
        fleet.close()


def test_a_multi_node_follower_refuses_routed_writes(tmp_path: Path, zk_chroot: str) -> None:
    from multinode import Nodes
    from pegasus_fast.engine.cluster import default_cluster_id

    fleet = Fleet(tmp_path, DEFAULT_BACKEND)
    try:
        nodes = Nodes(fleet, f"{zk_chroot}-follower")
        nodes.start("f1", "f2")
        source_id = 2 if default_cluster_id(nodes.name) == 1 else 1
        a = pf.Cluster.open(tmp_path / "a", name="a", config=pf.Config(cluster_id=source_id))
        try:
            ta = a.create_table("t", partition_count=4)
            ta.set("k", "s", "v")
            dup = a.add_duplication("t", nodes.url)
            dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
            with nodes.client() as fc:
                t = fc.table("t")

                def arrived() -> bool:
                    try:
                        return t.get("k", "s") == b"v"
                    except pf.PartitionUnavailableError:
                        return False

                wait_until(arrived, WAIT, "the source's record on the nodes")
                assert_refuses_writes(t, "t", f"a.t#{dup.dupid}")
                ta.set("k", "s", "after")
                wait_until(lambda: t.get("k", "s") == b"after", WAIT, "the source's next write")
        finally:
            a.close()
    finally:
        fleet.close()
