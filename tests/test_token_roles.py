"""Issue #20: tokens with roles, a duplication that shows only its own token, remotes over the
wire, Info's path, token files and the journal open to others (Medium 4, Low 2, Low 4).

Every server here is a real one on 127.0.0.1: ``pf.serve`` in this process, or a
``pegasus-fast serve`` child (tests/served.py) where the process environment matters."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pegasus_fast as pf
import pytest
from conftest import DEFAULT_BACKEND, PYTHON, child_env
from dupharness import wait_until
from pegasus_fast.errors import AuthenticationError, InvalidArgumentError, PermissionDeniedError
from pegasus_fast.net import pegasus_fast_pb2 as pb
from pegasus_fast.net import pegasus_fast_pb2_grpc as rpc
from pegasus_fast.net.follower import RemoteConnector
from pegasus_fast.net.wire import auth_metadata, call
from served import Fleet

pytestmark = pytest.mark.usefixtures("default_backend")

ALL, CLIENT, ADMIN, REPL = "all-secret", "client-secret", "admin-secret", "repl-secret"
WAIT = 30.0


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(tmp_path, DEFAULT_BACKEND)
    try:
        yield f
    finally:
        f.close()


def _token_file(path: Path, token: str, mode: int = 0o600) -> str:
    path.write_text(token + "\n")
    os.chmod(path, mode)
    return str(path)


def test_each_token_calls_only_its_role(open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path) -> None:
    c = open_cluster_once(tmp_path / "c", name="c", config=pf.Config(cluster_id=2))
    c.create_table("t", 2)
    with pf.serve(c, token=ALL, client_token=CLIENT, admin_token=ADMIN, replication_token=REPL) as s:
        with pf.connect(s.url, CLIENT) as rc:
            t = rc.table("t")
            t.set(b"h", b"s", b"v")
            assert t.get(b"h", b"s") == b"v"
            with pytest.raises(PermissionDeniedError):
                rc.create_table("u", 1)
            with pytest.raises(PermissionDeniedError):
                rc.add_duplication("t", "pegasus://127.0.0.1:1")
        with pf.connect(s.url, ADMIN) as rc:
            rc.create_table("u", 1)
            assert [d.dupid for d in rc.duplications()] == []
            with pytest.raises(PermissionDeniedError):
                rc.table("t").get(b"h", b"s")
        with pf.connect(s.url, REPL) as rc:
            with pytest.raises(PermissionDeniedError):
                rc.table("t").set(b"h", b"s", b"w")
        with pf.connect(s.url, ALL) as rc:
            rc.table("t").set(b"h", b"s", b"w")
            rc.create_table("w", 1)
        with pf.connect(s.url, "nobody") as rc, pytest.raises(AuthenticationError) as no:
            rc.table("t").get(b"h", b"s")
        assert not isinstance(no.value, PermissionDeniedError)
        conn = RemoteConnector()
        try:
            with pytest.raises(PermissionDeniedError):
                conn.connect(s.url, CLIENT).identity()
            with pytest.raises(PermissionDeniedError):
                conn.connect(s.url, ADMIN).identity()
            assert conn.connect(s.url, REPL).identity()[0] == 2
        finally:
            conn.close()


def test_a_source_duplicates_with_the_replication_token(
    open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    src = open_cluster_once(tmp_path / "src", name="src", config=pf.Config(cluster_id=1))
    dst = open_cluster_once(tmp_path / "dst", name="dst", config=pf.Config(cluster_id=2))
    t = src.create_table("t", 2)
    for i in range(10):
        t.set(b"h%d" % i, b"s", b"v")
    with pf.serve(dst, token=ALL, client_token=CLIENT, replication_token=REPL) as s:
        d = src.add_duplication("t", s.url, remote_token=REPL)
        d.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        wait_until(lambda: all(p.pending_mutations == 0 for p in d.progress()), WAIT, "caught up")
        with pf.connect(s.url, CLIENT) as rc:
            assert rc.table("t").count() == 10


def test_role_tokens_must_differ(open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path) -> None:
    c = open_cluster_once(tmp_path / "c", name="c")
    with pytest.raises(InvalidArgumentError):
        pf.serve(c, token=ALL, client_token=ALL)


def test_over_the_wire_a_remote_is_a_url_and_info_hides_the_path(
    open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    c = open_cluster_once(tmp_path / "c", name="c", config=pf.Config(cluster_id=2))
    other = open_cluster_once(tmp_path / "other", name="other", config=pf.Config(cluster_id=3))
    c.create_table("t", 1)
    with pf.serve(c, token=ALL) as s, pf.connect(s.url, ALL) as rc:
        # as a caller that skips the client's own checks sends it
        channel = grpc.insecure_channel(s.address.target)
        try:
            add = rpc.ClientStub(channel).AddDuplication
            for remote in (other.path, "file:///etc/passwd", "/etc"):
                with pytest.raises(InvalidArgumentError):
                    call(
                        s.url,
                        add,
                        pb.AddDuplicationRequest(table="t", remote=remote, fail_mode="slow"),
                        metadata=auth_metadata(ALL),
                        timeout=WAIT,
                    )
        finally:
            channel.close()
        assert c.duplications() == []
        assert rc.info().path == ""
        assert rc.info().name == "c"


def test_serve_refuses_a_token_file_open_to_others(fleet: Fleet, tmp_path: Path) -> None:
    for flag in ("--token-file", "--client-token-file", "--admin-token-file", "--replication-token-file"):
        loose = _token_file(tmp_path / f"loose{flag}", ALL, 0o644)
        s = fleet.add(f"c{flag.strip('-').split('-')[0]}")
        with pytest.raises(AssertionError):  # it exits instead of serving
            s.start(flag, loose)
        assert s.proc is not None and s.proc.returncode != 0
    # the same file owner-only serves
    ok = _token_file(tmp_path / "ok.token", ALL)
    s = fleet.add("ok")
    s.start("--token-file", ok)
    with pf.connect(s.url, ALL) as rc:
        rc.create_table("t", 1)


def test_a_served_source_shows_a_remote_only_the_token_given(
    fleet: Fleet, open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    # the source serves with token A, its environment holds B, which the spy remote takes
    a, b = "token-a", "token-b"
    spy = open_cluster_once(tmp_path / "spy", name="spy", config=pf.Config(cluster_id=3))
    src = fleet.add("src", extra_env={"PEGASUS_FAST_TOKEN": b})
    src.start("--token-file", _token_file(tmp_path / "a", a))
    with pf.serve(spy, token=b) as spy_server, pf.connect(src.url, a) as rc:
        rc.create_table("t", 1).set(b"h", b"s", b"v")
        d = rc.add_duplication("t", spy_server.url)  # no remote_token
        wait_until(
            lambda: d.status == pf.DupStatus.LOG or d.stuck_reason is not None, WAIT, "stuck or duplicating"
        )
        assert d.stuck_reason == "authentication failed"  # refused by the spy: B was never shown
        assert "t" not in [t.name for t in spy.list_tables()]
    journal = src.dir / "meta" / "journal"
    if not journal.exists():
        journal = next(src.dir.rglob("journal"))
    assert stat.S_IMODE(journal.stat().st_mode) & (stat.S_IRWXG | stat.S_IRWXO) == 0


def test_cli_add_dup_refuses_a_remote_token_file_open_to_others(tmp_path: Path) -> None:
    loose = _token_file(tmp_path / "loose", ALL, 0o640)
    env = child_env(DEFAULT_BACKEND)
    r = subprocess.run(
        [PYTHON, "-m", "pegasus_fast", "--cluster", str(tmp_path / "c"), "create", "t", "--partitions", "1"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    r = subprocess.run(
        [
            PYTHON,
            "-m",
            "pegasus_fast",
            "--cluster",
            str(tmp_path / "c"),
            "add_dup",
            "t",
            "pegasus://127.0.0.1:1",
            "--remote-token-file",
            loose,
            "--timeout",
            "1",
        ],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert r.returncode != 0
