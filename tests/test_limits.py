"""Resource bounds (issue #20): tables, partitions (against the fd limit), env bytes, streams
per client. Past one is a typed ResourceExhaustedError, here and over the wire; a cluster over
a bound still opens, serves what it can and says why."""

from __future__ import annotations

import os
import resource
import subprocess
import time
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
from conftest import PYTHON, child_env
from multinode import Nodes
from pegasus_fast.net import wire
from pegasus_fast.net.pegasus import codes, handler
from pegasus_fast.storage.open_slots import FD_RESERVE, FDS_PER_OPEN_PARTITION
from pegasus_fast.storage.state import PartitionState
from served import Fleet


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_an_open_partition_holds_fewer_fds_than_it_is_counted_for(open_cluster_once, tmp_path: Path) -> None:
    c = open_cluster_once(tmp_path / "c")
    before = _fds()
    t = c.create_table("t", partition_count=16)
    assert _fds() == before  # a new partition opens nothing until its first write
    for k in range(400):
        t.set(f"k{k}", "s", "v")
    t.checkpoint()  # SST files, as a table that has run a while holds
    c.close()
    c = pf.Cluster.open(tmp_path / "c")
    try:
        per_partition = (_fds() - before) / 16
        print(f"fds held by an open, idle partition after a flush: {per_partition:.1f}")
        assert 0 < per_partition <= FDS_PER_OPEN_PARTITION
    finally:
        c.close()


def test_tables_and_partitions_past_their_bound(open_cluster_once, tmp_path: Path) -> None:
    c = open_cluster_once(tmp_path / "c", config=pf.Config(max_tables=2, max_partitions=10))
    c.create_table("a", partition_count=4)
    with pytest.raises(pf.ResourceExhaustedError) as e:
        c.create_table("b", partition_count=7)
    assert (e.value.resource, e.value.limit, e.value.requested) == ("max_partitions", 10, 11)
    assert not c.has_table("b")
    c.create_table("b", partition_count=6)
    with pytest.raises(pf.ResourceExhaustedError) as e:
        c.create_table("c", partition_count=1)
    assert (e.value.resource, e.value.limit, e.value.requested) == ("max_tables", 2, 3)
    c.drop_table("a")
    c.create_table("c", partition_count=4)
    assert c.info().warnings == ()


def test_env_bytes_past_their_bound(open_cluster_once, tmp_path: Path) -> None:
    c = open_cluster_once(tmp_path / "c", config=pf.Config(max_env_bytes_per_table=100))
    c.create_table("ok", partition_count=1, envs={"k" * 50: "v" * 50})
    with pytest.raises(pf.ResourceExhaustedError) as e:
        c.create_table("big", partition_count=1, envs={"k" * 50: "v" * 51})
    assert (e.value.resource, e.value.limit, e.value.requested) == ("max_env_bytes_per_table", 100, 101)
    assert not c.has_table("big")
    with pytest.raises(pf.ResourceExhaustedError):
        c.create_table("wide", partition_count=1, envs={"éé": "x" * 97})  # 99 characters, 101 bytes


def test_default_env_cap_refuses_megabytes(open_cluster_once, tmp_path: Path) -> None:
    c = open_cluster_once(tmp_path / "c")
    with pytest.raises(pf.ResourceExhaustedError) as e:
        c.create_table("t", partition_count=1, envs={"e": "x" * (1 << 20)})
    assert e.value.resource == "max_env_bytes_per_table"


def test_over_the_bound_at_open_serves_what_it_can(open_cluster_once, tmp_path: Path) -> None:
    c = open_cluster_once(tmp_path / "c")
    for name in ("a", "b", "c"):
        t = c.create_table(name, partition_count=4)
        for k in range(40):
            t.set(f"k{k}", "s", name)
    c.close()
    c = pf.Cluster.open(tmp_path / "c", config=pf.Config(max_partitions=6))
    try:
        states = [p.state for n in ("a", "b", "c") for p in c.table(n).partitions]
        assert states.count(PartitionState.UNOPENED) == 6
        assert len(c.info().warnings) == 1
        assert c.table("a").get("k1", "s") == b"a"
        with pytest.raises(pf.ResourceExhaustedError) as e:
            c.table("c").get("k1", "s")
        assert (e.value.resource, e.value.limit) == ("open_partitions", 6)
        with pytest.raises(pf.ResourceExhaustedError):
            c.table("c").set("k1", "s", "new")
        with pytest.raises(pf.ResourceExhaustedError):
            c.create_table("d", partition_count=1)
        c.drop_table("a")  # its slots come back: the rest open on first use, with their data
        assert [c.table("c").get(f"k{k}", "s") for k in range(40)] == [b"c"] * 40
        c.table("c").set("k1", "s", "new")
        assert c.table("c").get("k1", "s") == b"new"
        # health reads states, it opens nothing: b's last two are still past the bound
        assert [s for _i, s in c.table("b").health().partitions] == ["serving"] * 2 + ["unopened"] * 2
    finally:
        c.close()
    with pf.Cluster.open(tmp_path / "c") as c:
        assert c.info().warnings == ()
        assert c.table("c").get("k1", "s") == b"new"
        assert c.table("b").get("k2", "s") == b"b"


def test_resource_exhausted_travels_as_itself(default_backend: ModuleType) -> None:
    exc = pf.ResourceExhaustedError("max_tables", 256, 257)
    assert wire.status_of(exc).name == "RESOURCE_EXHAUSTED"
    back = wire.decode_error(wire.encode_error(exc), "pegasus://127.0.0.1:1", "m")
    assert type(back) is pf.ResourceExhaustedError
    assert (back.resource, back.limit, back.requested) == ("max_tables", 256, 257)


def test_served_create_past_the_bound_is_typed(open_cluster_once, tmp_path: Path) -> None:
    c = open_cluster_once(tmp_path / "c", config=pf.Config(max_tables=1))
    with pf.serve(c) as srv:
        remote = pf.connect(srv.url)
        try:
            remote.create_table("a", partition_count=1)
            assert remote.info().warnings == ()
            with pytest.raises(pf.ResourceExhaustedError) as e:
                remote.create_table("b", partition_count=1)
            assert (e.value.resource, e.value.limit, e.value.requested) == ("max_tables", 1, 2)
        finally:
            remote.close()


# -- a real fd limit: ``serve`` of a cluster made under a higher one ---------------------------

#: the fd limit the served process gets: room for (LOW_FDS - 256) // 12 = 12 open partitions
LOW_FDS = FD_RESERVE + 12 * FDS_PER_OPEN_PARTITION + FDS_PER_OPEN_PARTITION // 2


def _lower_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_FDS, hard))


def test_serve_under_a_lowered_fd_limit_starts_and_says_why(
    default_backend_name: str, open_cluster_once, tmp_path: Path
) -> None:
    # made under this process's limit: 4 tables x 32 partitions, every one holding data, so
    # every one opens its RocksDB at the next open (~8 fds each: 1024+ fds, past LOW_FDS)
    c = open_cluster_once(tmp_path / "c")
    for i in range(4):
        t = c.create_table(f"t{i}", partition_count=32)
        for k in range(200):
            t.set(f"k{k}", "s", f"v{i}")
    c.close()
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [PYTHON, "-m", "pegasus_fast", "--cluster", str(tmp_path / "c"), "serve", "--listen",
         "127.0.0.1:0", "--ready-file", str(ready)],
        env=child_env(default_backend_name),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_lower_fd_limit,  # noqa: PLW1509 - only setrlimit, before exec
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None:
                raise AssertionError(
                    f"serve exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
                )
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.02)
        remote = pf.connect(ready.read_text().strip())
        try:
            assert remote.table("t0").get("k1", "s") == b"v0"  # the first partitions opened
            assert len(remote.info().warnings) == 1  # it says why it serves less than it holds
            health = remote.table("t3").health()
            assert health.fully_healthy == 0  # past the bound: not opened, and it says so
            assert {state for _pidx, state in health.partitions} == {"unopened"}
            with pytest.raises(pf.ResourceExhaustedError) as e:
                remote.table("t3").get("k1", "s")
            assert (e.value.resource, e.value.limit) == ("open_partitions", 12)
            with pytest.raises(pf.ResourceExhaustedError) as e:
                remote.create_table("new", partition_count=1)
            assert e.value.resource == "max_partitions"
        finally:
            remote.close()
        assert proc.poll() is None  # still serving after all of it
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(20)


def test_scans_per_client_past_their_bound(open_cluster_once, tmp_path: Path) -> None:
    c = open_cluster_once(tmp_path / "c", config=pf.Config(max_streams_per_client=2))
    t = c.create_table("t", partition_count=1)
    # 12 MB: more than gRPC's flow-control windows buffer, so a paused scan's server side waits
    for i in range(12):
        t.set("h", f"s{i:02}", b"x" * (1 << 20))
    with pf.serve(c) as srv:
        remote = pf.connect(srv.url)
        try:
            first, second = remote.table("t").scan(), remote.table("t").scan()
            next(first), next(second)  # two scans running, each paused after its first reply
            with pytest.raises(pf.ResourceExhaustedError) as e:
                next(remote.table("t").scan())
            assert (e.value.resource, e.value.limit, e.value.requested) == ("max_streams_per_client", 2, 3)
            assert sum(1 for _ in first) == 11  # a scan that finishes gives its stream back...
            second.close()  # ...and so does one the client stops reading
            deadline = time.monotonic() + 10
            while True:
                try:
                    third, fourth = remote.table("t").scan(), remote.table("t").scan()
                    assert sum(1 for _ in third) == 12 and sum(1 for _ in fourth) == 12
                    break
                except pf.ResourceExhaustedError:
                    assert time.monotonic() < deadline, "the closed scan's stream was never given back"
                    time.sleep(0.02)
        finally:
            remote.close()


def test_multinode_leader_refuses_past_the_cluster_bounds(
    default_backend_name: str, tmp_path: Path, zk_chroot: str
) -> None:
    fleet = Fleet(tmp_path, default_backend_name)
    try:
        nodes = Nodes(fleet, zk_chroot, "--config", "max_tables=2", "--config", "max_partitions=6")
        nodes.start("n1")
        with nodes.client() as client:
            client.create_table("a", 4)
            with pytest.raises(pf.ResourceExhaustedError) as e:
                client.create_table("b", 3)
            assert (e.value.resource, e.value.limit, e.value.requested) == ("max_partitions", 6, 7)
            client.create_table("b", 2)
            with pytest.raises(pf.ResourceExhaustedError) as e:
                client.create_table("c", 1)
            assert (e.value.resource, e.value.limit, e.value.requested) == ("max_tables", 2, 3)
            with pytest.raises(pf.ResourceExhaustedError) as e:
                client.create_table("d", 1, envs={"e": "x" * (1 << 17)})
            assert e.value.resource == "max_env_bytes_per_table"
            assert sorted(t.name for t in client.list_tables()) == ["a", "b"]
    finally:
        fleet.close()


def test_a_duplication_of_unopened_partitions_waits_then_ships(open_cluster_once, tmp_path: Path) -> None:
    dst = open_cluster_once(tmp_path / "f", name="f")
    src = pf.Cluster.open(tmp_path / "s", name="s")
    try:
        for name in ("a", "b"):
            t = src.create_table(name, partition_count=4)
            for k in range(40):
                t.set(f"k{k}", "s", name)
        dupid = src.add_duplication("b", dst).dupid
        src.duplication(dupid).wait_for(pf.DupStatus.LOG, timeout=30)
    finally:
        src.close()
    src = pf.Cluster.open(tmp_path / "s", name="s", config=pf.Config(max_partitions=4))
    try:
        assert {p.state for p in src.table("b").partitions} == {PartitionState.UNOPENED}
        assert src.duplication(dupid).status == pf.DupStatus.LOG  # resumed, waiting on them
        src.drop_table("a")
        src.table("b").set("new", "s", "x")
        deadline = time.monotonic() + 30
        while dst.table("b").get("new", "s") != b"x":
            assert time.monotonic() < deadline, "the duplication never shipped the opened partition's write"
            time.sleep(0.02)
        assert [dst.table("b").get(f"k{k}", "s") for k in range(40)] == [b"b"] * 40
    finally:
        src.close()


def test_the_pegasus_protocol_answers_try_again(default_backend: ModuleType) -> None:
    exc = pf.ResourceExhaustedError("open_partitions", 12, 13)
    assert handler.failure(exc) == (codes.ERR_OK, codes.K_TRY_AGAIN)
