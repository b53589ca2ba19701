"""dup.verify over the wire (issue #21 §1): a served source and a served follower (the follower's
digest over its Follower service), a multi-node source (each partition's owner compares it), and
``pegasus-fast verify_dup``'s exit codes. Servers: the backend does not matter, these run once."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import grpc
import pegasus_fast as pf
import pytest
from conftest import DEFAULT_BACKEND, PYTHON, child_env
from dupharness import wait_until
from multinode import Nodes
from pegasus_fast.cli.exits import EXIT_NOT_FOUND, EXIT_OK
from pegasus_fast.duplication.verify_report import RecordState
from pegasus_fast.errors import PermissionDeniedError
from pegasus_fast.net import pegasus_fast_pb2 as pb
from pegasus_fast.net import pegasus_fast_pb2_grpc as rpc
from pegasus_fast.net.follower import RemoteConnector
from pegasus_fast.net.wire import auth_metadata, call
from served import Fleet, Served

WAIT = 30.0
TABLE = "t"
ALL, CLIENT, ADMIN, REPL = "all-secret", "client-secret", "admin-secret", "repl-secret"


class Writer:
    """Writes to a table at about ``rate`` a second from its own thread until the block ends."""

    def __init__(self, table: pf.RemoteTable | pf.RoutedTable, rate: float) -> None:
        self.table, self.rate, self.count = table, rate, 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            try:
                self.table.set(f"w{self.count % 5000}", "s", str(self.count))
            except BaseException as exc:  # noqa: BLE001 - asserted at the end of the block
                self.errors.append(exc)
                return
            self.count += 1
            ahead = self.count / self.rate - (time.monotonic() - start)
            if ahead > 0:
                self._stop.wait(ahead)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        assert not self.errors, self.errors


def cli(src_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "pegasus_fast", "--connect", src_url, *args],
        env=child_env(DEFAULT_BACKEND),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_served_to_served_under_writes_and_the_cli(fleet: Fleet) -> None:
    src, dst = fleet.add("source"), fleet.add("target")
    src.launch()
    dst.launch()
    src.wait_ready()
    dst.wait_ready()
    with pf.connect(src.url) as sc, pf.connect(dst.url) as dc:
        t = sc.create_table(TABLE, 8)
        for i in range(200):
            t.multi_set(f"h{i}", {"a": f"{i}", "b": f"{i}"})
        d = sc.add_duplication(TABLE, dst.url)
        d.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        with Writer(t, 1000) as w:
            wait_until(lambda: w.count > 200, WAIT, "writes going")
            before = w.count
            reports = []
            while len(reports) < 3 or w.count - before < 1000:
                reports.append(d.verify(timeout=WAIT))
        for r in reports:
            assert r.equal and r.quiet, [p for p in r.partitions if not p.equal]
            assert [p.pidx for p in r.partitions] == list(range(8))
        assert sum(p.records for p in reports[-1].partitions) >= 400
        r = cli(src.url, "verify_dup", TABLE, str(d.dupid))
        assert r.returncode == EXIT_OK, r.stdout + r.stderr

        dc.set_table_envs(TABLE, {"duplication.follower_writable": "true"})  # to make it drift
        dc.table(TABLE).set("h42", "b", "changed on the follower")
        r = d.verify(timeout=WAIT)
        (bad,) = [p for p in r.partitions if not p.equal]
        diff = bad.first_difference
        assert diff is not None and (diff.hash_key, diff.sort_key) == (b"h42", b"b")
        assert diff.source == RecordState(b"42", 0)
        assert diff.follower == RecordState(b"changed on the follower", 0)
        r = cli(src.url, "verify_dup", TABLE, str(d.dupid))
        assert r.returncode == EXIT_NOT_FOUND, r.stdout + r.stderr
        assert "h42/b" in r.stdout and "changed on the follower" in r.stdout
        dc.table(TABLE).set("h42", "b", "42")
        assert d.verify(timeout=WAIT).equal


def test_multi_node_source_each_owner_compares_its_partitions(
    fleet: Fleet, zk_chroot: str, default_backend: ModuleType
) -> None:
    nodes = Nodes(fleet, zk_chroot)
    nodes.start("n1", "n2")
    dst: Served = fleet.add("target")
    dst.start()
    with nodes.client() as c, pf.connect(dst.url) as dc:
        t = c.create_table(TABLE, 4)
        for i in range(100):
            t.set(f"h{i}", "s", f"{i}")
        d = c.add_duplication(TABLE, dst.url)
        d.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        with Writer(t, 300):
            r = d.verify(timeout=WAIT)
        assert r.equal, r
        assert [p.pidx for p in r.partitions] == list(range(4))
        dc.set_table_envs(TABLE, {"duplication.follower_writable": "true"})  # to make it drift
        dc.table(TABLE).delete("h7", "s")
        r = d.verify(timeout=WAIT)
        (bad,) = [p for p in r.partitions if not p.equal]
        diff = bad.first_difference
        assert diff is not None and (diff.hash_key, diff.source, diff.follower) == (
            b"h7",
            RecordState(b"7", 0),
            None,
        )


def test_into_a_multi_node_follower_each_view_on_its_owner(
    fleet: Fleet, zk_chroot: str, default_backend: ModuleType
) -> None:
    """A follower over several nodes (zk://): each partition's view is taken and read on the
    node that owns it."""
    followers = Nodes(fleet, f"{zk_chroot}-follower")
    followers.start("f1", "f2")
    src = fleet.add("source")
    src.start()
    with pf.connect(src.url) as sc, followers.client() as fc:
        t = sc.create_table(TABLE, 4)
        for i in range(100):
            t.set(f"h{i}", "s", f"{i}")
        d = sc.add_duplication(TABLE, followers.url)
        d.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        with Writer(t, 300):
            r = d.verify(timeout=WAIT)
        assert r.equal, r
        assert [p.pidx for p in r.partitions] == list(range(4))
        assert sum(p.follower_records for p in r.partitions) == sum(p.records for p in r.partitions) >= 100
        # A multi-node follower is read-only until its env opens it to client writes (through
        # the follower cluster's meta leader); then it drifts, and verify names the drift.
        with pytest.raises(pf.FollowerTableError):
            fc.table(TABLE).set("h70", "extra", "only on the follower")
        fc.set_table_envs(TABLE, {"duplication.follower_writable": "true"})
        fc.table(TABLE).set("h70", "extra", "only on the follower")
        r = d.verify(timeout=WAIT)
        assert not r.equal
        bad = [p for p in r.partitions if not p.equal]
        assert [p.pidx for p in bad] == [t.partition_index("h70")]
        diff = bad[0].first_difference
        assert diff is not None
        assert (diff.hash_key, diff.sort_key, diff.source, diff.follower) == (
            b"h70",
            b"extra",
            None,
            RecordState(b"only on the follower", 0),
        )


def test_roles_the_follower_half_is_replication_the_request_admin(
    open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    """A follower served with role tokens answers verification to the replication token the
    duplication holds; a served source answers VerifyDuplication to an admin, not to a client."""
    src = open_cluster_once(tmp_path / "src", name="src", config=pf.Config(cluster_id=1))
    dst = open_cluster_once(tmp_path / "dst", name="dst", config=pf.Config(cluster_id=2))
    t = src.create_table(TABLE, 2)
    for i in range(20):
        t.set(f"h{i}", "s", "v")
    with pf.serve(dst, token=ALL, client_token=CLIENT, replication_token=REPL) as fs:
        d = src.add_duplication(TABLE, fs.url, remote_token=REPL)
        d.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        assert d.verify(timeout=WAIT).equal
        conn = RemoteConnector()
        try:
            with pytest.raises(PermissionDeniedError):
                conn.connect(fs.url, CLIENT).verify_view(TABLE, 0, -1, 1.0)
        finally:
            conn.close()
        with pf.serve(src, admin_token=ADMIN, client_token=CLIENT) as ss:
            with pf.connect(ss.url, ADMIN) as rc:
                assert rc.duplication(d.dupid).verify(timeout=WAIT).equal
            channel = grpc.insecure_channel(ss.address.target)
            try:
                with pytest.raises(PermissionDeniedError):
                    call(
                        ss.url,
                        rpc.ClientStub(channel).VerifyDuplication,
                        pb.VerifyRequest(dupid=d.dupid),
                        metadata=auth_metadata(CLIENT),
                        timeout=WAIT,
                    )
            finally:
                channel.close()
