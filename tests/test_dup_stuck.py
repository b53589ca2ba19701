"""Issue #21 §4: a duplication that cannot progress for a reason no retry of its own takes away
does not pretend to be healthy. ``progress()`` and ``stuck_reason`` name the reason, the metric
``dup_stuck{table,dupid,reason}`` is 1 while it holds and absent after, and ``wait_for`` times
out with a DuplicationStuckError carrying it.

The real scenario: a served follower restarted with a new token file. The duplication shows
``authentication failed``; ``update(remote_token=new)`` makes it resume where it was, and the
follower then holds every write, none skipped. The tokens never reach a log.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pegasus_fast as pf
import pytest
from dupharness import wait_until
from multinode import Nodes
from pegasus_fast.cli.exits import EXIT_USAGE
from pegasus_fast.duplication.status import STUCK_AUTH, STUCK_PERMISSION, STUCK_RELEARN, STUCK_TABLE_DROPPED
from served import Fleet
from servedcheck import scan_of
from test_dup_update import run_cli

pytestmark = [
    pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning"),
    pytest.mark.usefixtures("default_backend"),
]

WAIT = 60.0
TABLE = "t"
OLD = "old-follower-token-0001"
NEW = "new-follower-token-0002"


def token_file(path: Path, token: str) -> str:
    path.write_text(token + "\n")
    path.chmod(0o600)
    return str(path)


def stuck_metric(c: pf.Cluster, dupid: int) -> dict[str, float]:
    """reason -> value of every dup_stuck sample of this duplication."""
    out = {}
    for name, value in c.metrics().items():
        if name.startswith("dup_stuck{") and f'dupid="{dupid}"' in name:
            reason = name.split('reason="', 1)[1].split('"', 1)[0]
            out[reason] = value
    return out


def write(t: pf.Table, model: dict[tuple[bytes, bytes], bytes], lo: int, hi: int) -> None:
    for i in range(lo, hi):
        hk, v = b"k%04d" % i, b"v%d" % i
        t.set(hk, b"s", v)
        model[(hk, b"s")] = v


def follower_decrees(url: str, token: str) -> int:
    with pf.connect(url, token=token) as rc:
        return sum(p.last_committed_decree for p in rc.table(TABLE).partition_stats())


def caught_up(d: pf.Duplication) -> bool:
    return all(p.pending_mutations == 0 and p.stuck_reason is None for p in d.progress())


@pytest.mark.parametrize("port", [(), ("--pegasus-listen", "127.0.0.1:0")], ids=["grpc", "pegasus-port"])
def test_rotated_token_is_stuck_then_update_resumes_with_every_write(
    fleet: Fleet,
    tmp_path: Path,
    open_cluster_once: Callable[..., pf.Cluster],
    caplog: pytest.LogCaptureFixture,
    port: tuple[str, ...],
) -> None:
    """With a Pegasus port the applies go there (its token in each request), and the
    restarted follower's port is another: the source learns it when it reconnects."""
    caplog.set_level(logging.DEBUG)
    dst = fleet.add("target")
    dst.start("--token-file", token_file(tmp_path / "old.token", OLD), *port)
    src = open_cluster_once(tmp_path / "source", name="source")
    t = src.create_table(TABLE, 4)
    model: dict[tuple[bytes, bytes], bytes] = {}
    write(t, model, 0, 40)
    d = src.add_duplication(TABLE, dst.url, remote_token=OLD)
    d.wait_for(pf.DupStatus.LOG, WAIT)
    wait_until(lambda: caught_up(d), WAIT, "the first writes to ship")
    assert d.stuck_reason is None and stuck_metric(src, d.dupid) == {}
    held_before = follower_decrees(dst.url, OLD)
    source_before = sum(p.last_committed for p in t.partitions)

    # the follower is restarted with a new token: writes made meanwhile wait in the source's WAL
    assert dst.stop() == 0, dst.stderr()
    write(t, model, 40, 100)
    dst.start("--token-file", token_file(tmp_path / "new.token", NEW), *port)
    wait_until(lambda: d.stuck_reason == STUCK_AUTH, WAIT, lambda: f"stuck: {d.progress()}")
    rows = d.progress()
    assert [p.stuck_reason for p in rows] == [STUCK_AUTH] * 4
    assert sum(p.pending_mutations for p in rows) == 60
    assert d.status == pf.DupStatus.LOG and d.error is None  # stuck, not failed, not removed
    assert stuck_metric(src, d.dupid) == {STUCK_AUTH: 1.0}
    with pytest.raises(pf.DuplicationStuckError) as ei:
        d.wait_for(pf.DupStatus.PAUSE, 0.5)  # a status it cannot reach while stuck
    assert ei.value.reason == STUCK_AUTH and ei.value.dupid == d.dupid
    assert isinstance(ei.value, TimeoutError)
    write(t, model, 100, 120)

    d.update(remote_token=NEW)
    wait_until(lambda: caught_up(d), WAIT, lambda: f"catching up after update: {d.progress()}")
    assert d.stuck_reason is None and stuck_metric(src, d.dupid) == {}
    assert scan_of(dst.url, TABLE, token=NEW) == model  # every write, none skipped
    # resumed where it was: the follower applied each source decree after once (no re-learn)
    shipped = sum(p.last_committed for p in t.partitions) - source_before
    assert follower_decrees(dst.url, NEW) - held_before == shipped == 80

    # the token is kept as other tokens are: in the journal, 0600; the source goes on after a restart
    journal = Path(src.path) / "meta" / "journal"
    assert stat.S_IMODE(os.stat(journal).st_mode) == 0o600
    src.close()
    src = open_cluster_once(tmp_path / "source", name="source")
    t = src.table(TABLE)
    write(t, model, 120, 130)
    d = src.duplication(d.dupid)
    wait_until(lambda: caught_up(d), WAIT, lambda: f"after the source reopened: {d.progress()}")
    assert scan_of(dst.url, TABLE, token=NEW) == model
    assert OLD not in caplog.text and NEW not in caplog.text
    assert OLD not in dst.stderr() and NEW not in dst.stderr()


def test_wrong_token_from_the_start_times_out_naming_it(fleet: Fleet, tmp_path: Path) -> None:
    """A served source (the remote handle over gRPC): wait_for names the reason, query_dup and
    progress show it, and ``update_dup --remote-token-file`` from the CLI lets it go on."""
    src, dst = fleet.add("source"), fleet.add("target")
    src.launch()
    dst.launch("--token-file", token_file(tmp_path / "new.token", NEW))
    src.wait_ready()
    dst.wait_ready()
    with pf.connect(src.url, timeout=10.0) as rc:
        t = rc.create_table(TABLE, 2)
        model: dict[tuple[bytes, bytes], bytes] = {}
        write(t, model, 0, 30)
        d = rc.add_duplication(TABLE, dst.url, remote_token=OLD)
        with pytest.raises(pf.DuplicationStuckError) as ei:
            d.wait_for(pf.DupStatus.LOG, 3.0)
        assert ei.value.reason == STUCK_AUTH and ei.value.wanted == "DS_LOG"
        assert [p.stuck_reason for p in d.progress()] == [STUCK_AUTH] * 2
        assert d.stuck_reason == STUCK_AUTH
        assert d.error is None

        loose = tmp_path / "loose.token"
        loose.write_text(NEW + "\n")
        loose.chmod(0o644)  # open to others: refused, nothing sent
        run_cli(
            "--connect",
            src.url,
            "update_dup",
            TABLE,
            str(d.dupid),
            "--remote-token-file",
            str(loose),
            code=EXIT_USAGE,
        )
        assert d.stuck_reason == STUCK_AUTH
        out = run_cli(
            "--connect",
            src.url,
            "update_dup",
            TABLE,
            str(d.dupid),
            "--remote-token-file",
            token_file(tmp_path / "given.token", NEW),
        )
        assert NEW not in out
        d.wait_for(pf.DupStatus.LOG, WAIT)
        wait_until(lambda: caught_up(d), WAIT, lambda: f"catching up: {d.progress()}")
        assert d.stuck_reason is None
        assert scan_of(dst.url, TABLE, token=NEW) == model
    for server in (src, dst):  # the tokens reach no log
        assert OLD not in server.stderr() and NEW not in server.stderr()


def test_dropped_follower_table_is_stuck_until_removed(
    open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    src = open_cluster_once(tmp_path / "src", name="src")
    dst = open_cluster_once(tmp_path / "dst", name="dst")
    t = src.create_table(TABLE, 2)
    t.set(b"a", b"s", b"1")
    d = src.add_duplication(TABLE, dst)
    d.wait_for(pf.DupStatus.LOG, WAIT)
    wait_until(lambda: caught_up(d), WAIT, "shipped")
    dst.drop_table(TABLE)
    t.set(b"b", b"s", b"2")
    wait_until(lambda: d.stuck_reason == STUCK_TABLE_DROPPED, WAIT, lambda: f"stuck: {d.progress()}")
    assert {p.stuck_reason for p in d.progress()} == {STUCK_TABLE_DROPPED}
    assert stuck_metric(src, d.dupid) == {STUCK_TABLE_DROPPED: 1.0}
    with pytest.raises(pf.DuplicationStuckError) as ei:
        d.wait_for(pf.DupStatus.PAUSE, 0.3)
    assert ei.value.reason == STUCK_TABLE_DROPPED
    d.remove()
    assert stuck_metric(src, d.dupid) == {}


def test_released_past_the_retention_cap_is_stuck_relearning(
    open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    """The follower is away while the source's WAL passes the cap: the released partitions say
    they re-learn (and the metric), until the follower is back and they have learned again."""
    cfg = pf.Config(
        log_private_file_size_mb=1,  # WAL files rotate every MiB
        small_partition_max_bytes=4096,
        dup_max_retained_wal_bytes=(1 << 20) + (1 << 19),
        gc_interval_ms=3_600_000,  # GC runs here, when the test says
    )
    src = open_cluster_once(tmp_path / "src", name="src", config=cfg)
    dst = open_cluster_once(tmp_path / "dst", name="dst")
    t = src.create_table(TABLE, 1)
    t.set(b"a", b"s", b"1")
    d = src.add_duplication(TABLE, dst)
    d.wait_for(pf.DupStatus.LOG, WAIT)
    wait_until(lambda: caught_up(d), WAIT, "shipped")
    dst.close()
    value = b"x" * (64 << 10)
    for i in range(64):  # 4 MiB: past the cap
        t.set(b"k%d" % i, b"s", value)
    p = t.partitions[0]
    wait_until(
        lambda: (p.flush(), p.gc(), d.stuck_reason)[2] == STUCK_RELEARN, WAIT, lambda: f"{d.progress()}"
    )
    assert [p.stuck_reason for p in d.progress()] == [STUCK_RELEARN]
    assert stuck_metric(src, d.dupid) == {STUCK_RELEARN: 1.0}
    dst = open_cluster_once(tmp_path / "dst", name="dst")
    wait_until(lambda: caught_up(d) and d.status == pf.DupStatus.LOG, WAIT, lambda: f"{d.progress()}")
    assert stuck_metric(src, d.dupid) == {}
    assert list(dst.table(TABLE).scan()) == list(t.scan())


def test_routed_duplication_stuck_then_updated_through_the_meta_leader(fleet: Fleet, zk_chroot: str) -> None:
    """A multi-node source: every node that owns a partition shows the rotated token as stuck;
    the new token goes to ZooKeeper through the meta leader and each node goes on with it."""
    dst = fleet.add("target")
    dst.start("--token-file", token_file(fleet.root / "old.token", OLD))
    nodes = Nodes(fleet, zk_chroot)
    nodes.start("n1", "n2")
    with nodes.client() as c:
        t = c.create_table(TABLE, 4)
        model: dict[tuple[bytes, bytes], bytes] = {}
        write(t, model, 0, 20)
        d = c.add_duplication(TABLE, dst.url, remote_token=OLD)
        d.wait_for(pf.DupStatus.LOG, WAIT)
        wait_until(lambda: caught_up(d), WAIT, lambda: f"shipped: {d.progress()}")
        assert dst.stop() == 0, dst.stderr()
        write(t, model, 20, 50)
        dst.start("--token-file", token_file(fleet.root / "new.token", NEW))
        wait_until(
            lambda: [p.stuck_reason for p in d.progress()] == [STUCK_AUTH] * 4,
            WAIT,
            lambda: f"stuck on every owner: {d.progress()}",
        )
        assert d.stuck_reason == STUCK_AUTH
        with pytest.raises(pf.DuplicationStuckError) as ei:
            d.wait_for(pf.DupStatus.PAUSE, 0.5)
        assert ei.value.reason == STUCK_AUTH
        d.update(remote_token=NEW)
        wait_until(lambda: caught_up(d), WAIT, lambda: f"after the update: {d.progress()}")
        assert d.stuck_reason is None
        assert scan_of(dst.url, TABLE, token=NEW) == model


def test_a_token_without_the_replication_role_is_stuck_on_permission(
    open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    """The follower knows the token but its role (client) does not call the follower's methods:
    stuck ``permission denied``; the replication token given by update lets it go on."""
    src = open_cluster_once(tmp_path / "src", name="src")
    dst = open_cluster_once(tmp_path / "dst", name="dst")
    t = src.create_table(TABLE, 2)
    model: dict[tuple[bytes, bytes], bytes] = {}
    write(t, model, 0, 10)
    with pf.serve(dst, token="all-0001", client_token="client-0001", replication_token="repl-0001") as s:
        d = src.add_duplication(TABLE, s.url, remote_token="client-0001")
        wait_until(lambda: d.stuck_reason == STUCK_PERMISSION, WAIT, lambda: f"{d.progress()}")
        assert stuck_metric(src, d.dupid) == {STUCK_PERMISSION: 1.0}
        assert d.status == pf.DupStatus.INIT and d.error is None
        d.update(remote_token="repl-0001")
        d.wait_for(pf.DupStatus.LOG, WAIT)
        wait_until(lambda: caught_up(d), WAIT, lambda: f"{d.progress()}")
        assert stuck_metric(src, d.dupid) == {}
        assert {(hk, sk): v for hk, sk, v in dst.table(TABLE).scan()} == model
