"""Issue #20, Medium 2 and 3: a holder of a follower's token cannot make a source believe it
confirmed what it never shipped, nor wipe an ordinary table through the Follower service.

Every test serves a real cluster (``pf.serve`` on 127.0.0.1) and talks to it over gRPC as
a duplication's source would (net/follower.py), or as an attacker holding the token."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pegasus_fast as pf
import pytest
from dupharness import wait_until
from pegasus_fast.duplication.apply import MAX_DECREE_STEP
from pegasus_fast.duplication.ports import SourceId
from pegasus_fast.errors import DuplicationError, FollowerDecreeError, InvalidArgumentError
from pegasus_fast.net.follower import RemoteConnector

pytestmark = pytest.mark.usefixtures("default_backend")

TOKEN = "follower-secret"
WAIT = 30.0


def _served(open_cluster_once: Callable[..., pf.Cluster], path: Path, name: str, cid: int) -> pf.Cluster:
    return open_cluster_once(path, name=name, config=pf.Config(cluster_id=cid))


def test_a_follower_refuses_an_advance_or_skip_out_of_reach(
    open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    src = _served(open_cluster_once, tmp_path / "src", "src", 1)
    dst = _served(open_cluster_once, tmp_path / "dst", "dst", 2)
    t = src.create_table("t", 1)
    for i in range(20):
        t.set(b"h%d" % i, b"s", b"v")
    with pf.serve(dst, token=TOKEN) as server:
        dup = src.add_duplication("t", server.url, remote_token=TOKEN)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        wait_until(lambda: dup.progress()[0].pending_mutations == 0, WAIT, "caught up")
        attacker = RemoteConnector()
        try:
            f = attacker.connect(server.url, TOKEN)
            with pytest.raises(InvalidArgumentError):
                f.advance("t", 0, 2**62)
            with pytest.raises(InvalidArgumentError):
                f.apply("t", 0, b"", 2**62)
            learned, held = f.partition_statuses("t", 1)[0]
            assert learned and held == 20
        finally:
            attacker.close()


def test_a_source_never_confirms_past_its_own_last_decree(
    open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    src = _served(open_cluster_once, tmp_path / "src", "src", 1)
    dst = _served(open_cluster_once, tmp_path / "dst", "dst", 2)
    t = src.create_table("t", 1)
    for i in range(20):
        t.set(b"h%d" % i, b"s", b"v")
    with pf.serve(dst, token=TOKEN) as server:
        dup = src.add_duplication("t", server.url, remote_token=TOKEN)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        wait_until(lambda: dup.progress()[0].pending_mutations == 0, WAIT, "caught up")
        attacker = RemoteConnector()
        try:
            # within the follower's sanity bound, still past anything the source wrote
            attacker.connect(server.url, TOKEN).advance("t", 0, MAX_DECREE_STEP)
        finally:
            attacker.close()
        for i in range(20, 60):
            t.set(b"h%d" % i, b"s", b"v")
        wait_until(lambda: dup.error is not None, WAIT, "the duplication failed")
        assert isinstance(dup.error, FollowerDecreeError)
        assert dup.error.claimed >= MAX_DECREE_STEP and dup.error.last <= 60
        assert all(p.confirmed_decree <= 60 for p in dup.progress())


def test_the_follower_service_never_writes_or_wipes_an_ordinary_table(
    open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    dst = _served(open_cluster_once, tmp_path / "dst", "dst", 2)
    plain = dst.create_table("plain", 1)
    for i in range(50):
        plain.set(b"h%d" % i, b"s", b"v")
    with pf.serve(dst, token=TOKEN) as server:
        attacker = RemoteConnector()
        try:
            f = attacker.connect(server.url, TOKEN)
            # before any EnsureTable: an ordinary table takes none of a duplication's calls
            with pytest.raises(DuplicationError):
                f.restart_learning("plain", [0])
            with pytest.raises(DuplicationError):
                f.apply("plain", 0, b"", 5)
            # adopting it as it is (master-master without checkpoint) stays possible...
            f.ensure_table("plain", 1, SourceId("made-up", "uid-x", "t", 7), False)
            # ...but it is never re-learned, so never wiped
            with pytest.raises(DuplicationError):
                f.restart_learning("plain", [0])
            f.learn_empty("plain", {0: 0})
            f.mark_learned("plain", [0])
        finally:
            attacker.close()
        assert plain.count() == 50
