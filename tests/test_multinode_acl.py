"""A multi-node cluster served with ``--zk-auth-file`` (issue #20): its znodes carry a digest ACL.

No ZooKeeper client without the cluster's credentials can read or rewrite its
configuration (``/nodes/<id>`` would send clients and their token elsewhere);
its own clients connect with the same file (argument, $PEGASUS_FAST_ZK_AUTH_FILE,
or the CLI's ``--zk-auth-file``), others get a typed error. One node, in a
child process, against the session's ZooKeeper.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pegasus_fast as pf
import pytest
from conftest import PYTHON, child_env
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import make_digest_acl
from multinode import WAIT, Nodes
from pegasus_fast.cli.exits import EXIT_ERROR
from pegasus_fast.coord.auth import AUTH_FILE_ENV
from served import Fleet
from servedcheck import TABLE

pytestmark = [pytest.mark.usefixtures("default_backend")]


def credentials(path: Path, line: str, mode: int = 0o600) -> str:
    path.write_text(line + "\n")
    path.chmod(mode)
    return str(path)


def test_a_cluster_with_zk_credentials_is_closed_to_other_zookeeper_clients(
    fleet: Fleet, zk_chroot: str, tmp_path: Path, default_backend_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = credentials(tmp_path / "zk-auth", "pf:s3cret")
    nodes = Nodes(fleet, zk_chroot, zk_auth_file=auth)
    nodes.start("n1")
    with nodes.client() as c:
        t = c.create_table(TABLE, 2)
        t.set(b"k", b"s", b"v")
        # every znode the node made is the identity's alone
        assert c._zk.get_acls("/nodes/n1")[0] == [make_digest_acl("pf", "s3cret", all=True)]
        assert c._zk.get_acls(f"/apps/{TABLE}/0")[0] == [make_digest_acl("pf", "s3cret", all=True)]
    # a ZooKeeper client without them can neither read nor rewrite the configuration
    hosts, chroot = zk_chroot.split("/", 1)
    raw = KazooClient(hosts=hosts, timeout=10.0)
    raw.start(timeout=WAIT)
    try:
        for op in (
            lambda: raw.get(f"/{chroot}/nodes/n1"),
            lambda: raw.set(f"/{chroot}/nodes/n1", b'{"node_id": "n1", "url": "pegasus://127.0.0.1:1"}'),
            lambda: raw.delete(f"/{chroot}/nodes/n1"),
            lambda: raw.set(f"/{chroot}/apps/{TABLE}/0", b"{}"),
            lambda: raw.get_children(f"/{chroot}/nodes"),
        ):
            with pytest.raises(NoAuthError):
                op()
    finally:
        raw.stop()
        raw.close()
    # a client without credentials, or with other ones: a typed error
    with pytest.raises(pf.CoordinationAuthError) as e:
        pf.connect(nodes.url)
    assert isinstance(e.value, pf.CoordinationError) and e.value.zk == zk_chroot
    with pytest.raises(pf.CoordinationAuthError):
        pf.connect(nodes.url, zk_auth_file=credentials(tmp_path / "wrong", "pf:wrong"))
    # a credentials file others may read is refused
    with pytest.raises(pf.InvalidArgumentError):
        pf.connect(nodes.url, zk_auth_file=credentials(tmp_path / "open", "pf:s3cret", 0o640))
    # the environment's credentials
    monkeypatch.setenv(AUTH_FILE_ENV, auth)
    with pf.connect(nodes.url) as c:
        assert c.table(TABLE).get(b"k", b"s") == b"v"
    monkeypatch.delenv(AUTH_FILE_ENV)

    def cli(*argv: str) -> subprocess.CompletedProcess[bytes]:
        env = child_env(default_backend_name)
        env.pop(AUTH_FILE_ENV, None)
        return subprocess.run(
            [PYTHON, "-m", "pegasus_fast", "--connect", nodes.url, *argv],
            env=env,
            capture_output=True,
            timeout=WAIT,
        )

    r = cli("--zk-auth-file", auth, "get", TABLE, "k", "s")
    assert r.returncode == 0 and r.stdout.strip() == b"v", r.stderr
    r = cli("get", TABLE, "k", "s")
    assert r.returncode == EXIT_ERROR and r.stderr.startswith(b"pegasus-fast: CoordinationAuthError: "), (
        r.stderr
    )
    # a node given a credentials file others may read does not start
    other = fleet.add("n2")
    other.cluster_name = nodes.name
    other.args = ("--zk", zk_chroot, "--zk-auth-file", credentials(tmp_path / "open2", "pf:s3cret", 0o644))
    other.launch()
    assert other.proc is not None and other.proc.wait(WAIT) == 2
    assert not (other.logs / f"ready.{other.starts}").exists()
