"""Cluster.close releases everything even when a step fails, then says what failed (CloseError)."""

from __future__ import annotations

import errno
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
from pegasus_fast import fileio
from pegasus_fast.duplication import driver
from pegasus_fast.engine.local_follower import open_cluster_at
from pegasus_fast.fileio import Fault

OpenCluster = Callable[..., pf.Cluster]
WAIT = 10.0


def fds_under(path: Path) -> list[str]:
    """Paths this process holds open below ``path`` (RocksDB files, WAL, journal, LOCK)."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(path.resolve()) + os.sep):
            held.append(target)
    return held


def contents(table: pf.Table) -> dict[tuple[bytes, bytes], bytes]:
    return {(hk, sk): v for hk, sk, v in table.scan()}


def assert_released(c: pf.Cluster, path: Path) -> None:
    assert c.closed
    assert open_cluster_at(str(path)) is None
    assert fds_under(path) == []


def test_a_partition_whose_flush_fails_does_not_keep_the_cluster_locked(
    open_cluster_once: OpenCluster, cluster_dir: Path
) -> None:
    c = open_cluster_once(cluster_dir)
    t = c.create_table("t", partition_count=4)
    u = c.create_table("u", partition_count=2)
    for i in range(40):
        t.set(f"h{i}", "s", f"v{i}")
        u.set(f"h{i}", "s", f"w{i}")
    want_t, want_u = contents(t), contents(u)
    victim = t.partition_of("h0")
    # RocksDB's flush at close cannot create its SST file: a real I/O error
    shutil.rmtree(os.path.join(victim.path, "rdb"))
    with pytest.raises(pf.CloseError) as err:
        c.close()
    assert [step for step, _ in err.value.failures] == [f"table t partition {victim.pidx}"]
    assert err.value.subject == str(cluster_dir.resolve())
    assert_released(c, cluster_dir)
    c.close()  # a second close is quiet
    c = open_cluster_once(cluster_dir)  # the same process opens it again
    assert contents(c.table("t")) == want_t  # the partition replays its WAL
    assert contents(c.table("u")) == want_u


def test_table_close_raises_close_error_after_closing_every_partition(
    open_cluster_once: OpenCluster, cluster_dir: Path
) -> None:
    c = open_cluster_once(cluster_dir)
    t = c.create_table("t", partition_count=3)
    for i in range(30):
        t.set(f"h{i}", "s", "v")
    broken = [t.partition_of("h0"), t.partition_of("h1")]
    for p in {p.pidx: p for p in broken}.values():
        shutil.rmtree(os.path.join(p.path, "rdb"))
    with pytest.raises(pf.CloseError) as err:
        t.close()
    assert sorted(step for step, _ in err.value.failures) == sorted(
        {f"table t partition {p.pidx}" for p in broken}
    )
    assert all(p.state == "closed" for p in t.partitions)
    with pytest.raises(pf.ClosedError):
        t.get("h0", "s")


# -- a fault walk over the file operations of close ---------------------------------------------


@pytest.fixture
def quiet_persistence(monkeypatch: pytest.MonkeyPatch) -> None:
    """Duplication progress is persisted only when forced (at stop), so close always writes it."""
    monkeypatch.setattr(driver, "CONFIRM_PERSIST_INTERVAL", 3600.0)


class Pair:
    """A source with a duplication in DS_LOG whose confirmed decrees are not yet persisted."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.src = pf.Cluster.open(root / "source", name="source")
        self.dst = pf.Cluster.open(root / "target", name="target")
        t = self.src.create_table("t", partition_count=2)
        dup = self.src.add_duplication("t", self.dst, with_checkpoint=False)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        for i in range(20):
            t.set(f"h{i}", "s", f"v{i}")
        self.want = contents(t)
        committed = [p.last_committed for p in t.partitions]
        _wait(lambda: [p.confirmed_decree for p in dup.progress()] == committed)

    def close(self) -> None:
        for c in (self.src, self.dst):
            try:
                c.close()
            except pf.CloseError:
                pass


def _wait(cond: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.fixture
def pairs(
    default_backend: ModuleType, tmp_path: Path, quiet_persistence: None
) -> Iterator[Callable[[], Pair]]:
    made: list[Pair] = []

    def make() -> Pair:
        p = Pair(tmp_path / f"run{len(made)}")
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def _faults_for(log: list[tuple[str, str]]) -> list[Fault]:
    """One fault for each call in ``log``: EIO, and for writes also a short write."""
    out: list[Fault] = []
    for i, (op, _path) in enumerate(log):
        nth = sum(1 for o, _ in log[: i + 1] if o == op)
        out.append(Fault(op, nth, errno.EIO))
        if op == "write":
            out.append(Fault(op, nth, errno.ENOSPC, short=3))
    return out


def test_every_failed_file_operation_during_close_still_releases_everything(
    pairs: Callable[[], Pair],
) -> None:
    first = pairs()
    with fileio.faults() as counted:
        first.src.close()
    # at least the journal append of the duplication's confirmed decrees; the
    # storage layer's calls join this walk as they move onto fileio
    assert {"write", "fdatasync"} <= set(counted.calls)
    for fault in _faults_for(counted.log):
        pair = pairs()
        with fileio.faults([fault]) as plan, pytest.raises(pf.CloseError) as err:
            pair.src.close()
        assert plan.fired == [fault]
        assert err.value.failures, fault
        assert all(isinstance(exc, (OSError, pf.PegasusFastError)) for _, exc in err.value.failures)
        assert_released(pair.src, pair.root / "source")
        src = pf.Cluster.open(pair.root / "source")  # the same process opens it again
        pair.src = src
        assert contents(src.table("t")) == pair.want
        assert [d.status for d in src.duplications("t")] == [pf.DupStatus.LOG]
