"""The ZooKeeper the multi-node tests stand on (tests/zkserver.py, the fixtures in conftest.py)
is a real server: sessions, ephemeral nodes, data that outlives a restart and a crash."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kazoo.client import KazooClient, KazooState
from zkserver import ZooKeeperServer, ZooKeeperStartError, zk_available

#: generous: these wait for a real server on a shared machine, and only a broken one takes long
WAIT = 30.0


@contextmanager
def client(hosts: str) -> Iterator[KazooClient]:
    # a session outlives a restart of its server only within its timeout: a long one, on a busy machine
    zk = KazooClient(hosts=hosts, timeout=30.0)
    zk.start(timeout=WAIT)
    try:
        yield zk
    finally:
        zk.stop()
        zk.close()


def wait_deleted(zk: KazooClient, path: str) -> None:
    """Until ``path`` is gone, by a watch (no polling, no wall-clock assert)."""
    gone = threading.Event()

    def watch(event: object) -> None:
        gone.set()

    if zk.exists(path, watch=watch) is None:
        return
    assert gone.wait(WAIT), f"{path} still exists"
    assert zk.exists(path) is None


def test_ephemeral_in_a_chroot_is_read_back_and_goes_with_its_session(zk_chroot: str) -> None:
    hosts, chroot = zk_chroot.split("/", 1)
    with client(zk_chroot) as owner, client(zk_chroot) as other, client(hosts) as root:
        owner.create("/node-1", b"pegasus://127.0.0.1:34801", ephemeral=True)
        data, stat = other.get("/node-1")
        assert data == b"pegasus://127.0.0.1:34801"
        assert stat.ephemeralOwner == owner.client_id[0]
        # the chroot is a real path of the server, not a prefix kept by the client
        assert root.get(f"/{chroot}/node-1")[0] == data
        owner.stop()  # closes the session: the server deletes its ephemerals
        wait_deleted(other, "/node-1")


def test_each_test_gets_its_own_empty_chroot(zk_chroot: str, zookeeper: ZooKeeperServer) -> None:
    assert zk_chroot.startswith(f"{zookeeper.hosts}/t")
    with client(zk_chroot) as zk:
        assert zk.get_children("/") == []


def test_restart_keeps_persistent_data_and_live_sessions(
    zookeeper_factory: Callable[[], ZooKeeperServer],
) -> None:
    server = zookeeper_factory()
    hosts = server.hosts
    with client(hosts) as zk:
        zk.create("/tables/t/0", b"owner=node-1 ballot=3", makepath=True)
        zk.create("/nodes/node-1", b"up", ephemeral=True, makepath=True)
    with client(hosts) as zk:
        held = zk.create("/nodes/node-2", b"up", ephemeral=True)
        assert server.stop() is not None
        assert not server.running
        assert server.restart() == hosts  # the same port: clients find it where they left it
        # the held session survives the restart (it is within its timeout) and so does its node
        assert zk.exists(held) is not None
    with client(hosts) as zk:
        assert zk.get("/tables/t/0")[0] == b"owner=node-1 ballot=3"
        assert zk.exists("/nodes/node-1") is None  # its session closed before the restart


def test_kill_and_restart(zookeeper_factory: Callable[[], ZooKeeperServer]) -> None:
    server = zookeeper_factory()
    lost = threading.Event()
    back = threading.Event()

    def listen(state: str) -> None:
        if state == KazooState.SUSPENDED:
            lost.set()
        elif state == KazooState.CONNECTED:
            back.set()

    with client(server.hosts) as zk:
        zk.create("/meta/leader", b"node-1", makepath=True)
        zk.add_listener(listen)
        assert server.kill() == -signal.SIGKILL
        assert not server.running
        assert lost.wait(WAIT)  # its clients see the crash
        server.restart()
        assert back.wait(WAIT)  # and reconnect to the restarted server by themselves
        assert zk.get("/meta/leader")[0] == b"node-1"  # acknowledged before the crash: kept


def test_a_server_that_cannot_start_raises_with_its_log(tmp_path: Path, zookeeper: ZooKeeperServer) -> None:
    # a second server on the session server's port cannot bind it: the start fails and says why
    server = ZooKeeperServer(tmp_path)
    server.port = zookeeper.port
    try:
        with pytest.raises(ZooKeeperStartError) as info:
            server.start()
        assert info.value.returncode is not None
        assert info.value.log_tail  # the reason, whatever the JVM's words for it
        assert not server.running
    finally:
        server.stop()


def test_a_missing_jar_or_java_is_reported_not_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEGASUS_FAST_ZOOKEEPER_JAR", str(tmp_path / "no-such-zookeeper.jar"))
    ok, reason = zk_available()
    assert not ok and reason  # the reason is printed by the skip
    with pytest.raises(FileNotFoundError):
        ZooKeeperServer(tmp_path).start()
    monkeypatch.delenv("PEGASUS_FAST_ZOOKEEPER_JAR")
    monkeypatch.setenv("PATH", str(tmp_path))  # no java on it
    ok, _ = zk_available()
    assert not ok
