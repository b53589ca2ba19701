"""Issue #20 (Secrets): a served source shows a remote the token configured for it
(``serve --remote-token-file URL=FILE``) when a duplication was added without a remote_token;
never its own token, nor its environment's, nor one configured for another remote.

The source is a ``pegasus-fast serve`` child (tests/served.py); the remotes are clusters served
in this process on 127.0.0.1, each taking only its own token."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pegasus_fast as pf
import pytest
from conftest import DEFAULT_BACKEND
from dupharness import wait_until
from served import Fleet

pytestmark = pytest.mark.usefixtures("default_backend")

OWN, ENV, R1, R2 = "own-token", "env-token", "remote-one", "remote-two"
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


def _remote(open_cluster_once: Callable[..., pf.Cluster], path: Path, cid: int) -> pf.Cluster:
    return open_cluster_once(path, name=path.name, config=pf.Config(cluster_id=cid))


def test_a_duplication_shows_the_token_configured_for_its_remote(
    fleet: Fleet, open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    one = _remote(open_cluster_once, tmp_path / "one", 2)
    two = _remote(open_cluster_once, tmp_path / "two", 3)
    own = _remote(open_cluster_once, tmp_path / "own", 4)
    with (
        pf.serve(one, token=R1) as s1,
        pf.serve(two, token=R2) as s2,
        pf.serve(own, token=OWN) as s_own,
    ):
        src = fleet.add("src", extra_env={"PEGASUS_FAST_TOKEN": ENV})
        src.start(
            "--token-file", _token_file(tmp_path / "own.token", OWN),
            "--remote-token-file", f"{s1.url}={_token_file(tmp_path / 'r1', R1)}",
            "--remote-token-file", f"{s2.url}={_token_file(tmp_path / 'r2', R2)}",
        )  # fmt: skip
        with pf.connect(src.url, OWN) as rc:
            t = rc.create_table("t", 2)
            for i in range(10):
                t.set(b"h%d" % i, b"s", b"v")
            # each remote is shown its own configured token: both take the duplication
            for s, c in ((s1, one), (s2, two)):
                d = rc.add_duplication("t", s.url)  # no remote_token
                d.wait_for(pf.DupStatus.LOG, timeout=WAIT)
                wait_until(lambda d=d: all(p.pending_mutations == 0 for p in d.progress()), WAIT, "caught up")
                assert c.table("t").count() == 10
            # a remote with none configured is shown no token: not the server's own (which it
            # would take), not the environment's
            d = rc.add_duplication("t", s_own.url)
            # refused for its token: stuck on it (not failed: an update_dup would let it go on)
            wait_until(
                lambda: d.status == pf.DupStatus.LOG or d.stuck_reason is not None,
                WAIT,
                "stuck or duplicating",
            )
            assert d.stuck_reason == "authentication failed" and d.status != pf.DupStatus.LOG
            assert "t" not in [x.name for x in own.list_tables()]
            # a remote_token given with the duplication wins over the configured one
            rc.create_table("u", 1).set(b"h", b"s", b"v")
            bad = rc.add_duplication("u", s2.url, remote_token=R1)
            wait_until(lambda: bad.status == pf.DupStatus.LOG or bad.stuck_reason is not None, WAIT, "stuck")
            assert bad.stuck_reason == "authentication failed" and bad.status != pf.DupStatus.LOG
            assert "u" not in [x.name for x in two.list_tables()]


def test_serve_refuses_a_bad_remote_token_file(fleet: Fleet, tmp_path: Path) -> None:
    own = _token_file(tmp_path / "own.token", OWN)
    for i, item in enumerate(
        [
            f"pegasus://127.0.0.1:1={_token_file(tmp_path / 'loose', R1, 0o644)}",  # open to others
            f"pegasus://127.0.0.1:1={_token_file(tmp_path / 'same', OWN)}",  # the server's own
            _token_file(tmp_path / "nourl", R1),  # no URL=
            f"file:///etc={_token_file(tmp_path / 'file', R1)}",  # not a remote URL
        ]
    ):
        s = fleet.add(f"c{i}")
        with pytest.raises(AssertionError):  # it exits instead of serving
            s.start("--token-file", own, "--remote-token-file", item)
        assert s.proc is not None and s.proc.returncode != 0
