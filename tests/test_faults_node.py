"""create_table and drop_table are all or nothing, whichever file operation fails."""

from __future__ import annotations

import errno
import shutil
from collections.abc import Callable
from pathlib import Path

import pegasus_fast as pf
import pytest
from pegasus_fast import fileio
from pegasus_fast.fileio import Fault

OpenCluster = Callable[..., pf.Cluster]


def names(c: pf.Cluster) -> list[str]:
    return [i.name for i in c.list_tables()]


def table_dirs(path: Path) -> list[str]:
    tables = path / "tables"
    return sorted(p.name for p in tables.iterdir()) if tables.is_dir() else []


def test_create_table_that_cannot_make_its_directories_leaves_no_table(
    open_cluster_once: OpenCluster, cluster_dir: Path
) -> None:
    c = open_cluster_once(cluster_dir)
    journal = cluster_dir / "meta" / "journal"
    before = journal.read_bytes()
    (cluster_dir / "tables").write_bytes(b"")  # a file where the directory must go
    with pytest.raises(OSError):
        c.create_table("t", partition_count=2)
    assert names(c) == [] and not c.has_table("t")
    assert journal.read_bytes() == before  # nothing was persisted
    (cluster_dir / "tables").unlink()
    t = c.create_table("t", partition_count=2)  # the retry takes the same app id
    assert t.app_id == 1
    c.close()
    c = open_cluster_once(cluster_dir)
    assert [(i.name, i.app_id) for i in c.list_tables()] == [("t", 1)]


@pytest.mark.parametrize(
    "fault",
    [
        Fault("mkdir", 1, errno.ENOSPC),
        Fault("mkdir", 3, errno.EACCES),
        Fault("write", 1, errno.ENOSPC, short=4),
        Fault("fdatasync", 1, errno.EIO),
    ],
    ids=["first-dir", "third-dir", "record-short", "record-sync"],
)
def test_failed_create_table_removes_what_it_made(
    open_cluster_once: OpenCluster, cluster_dir: Path, fault: Fault
) -> None:
    c = open_cluster_once(cluster_dir)
    c.create_table("a", partition_count=1)
    with fileio.faults([fault]) as plan, pytest.raises(OSError):
        c.create_table("t", partition_count=3)
    assert plan.fired == [fault]
    assert names(c) == ["a"]
    assert table_dirs(cluster_dir) == ["1.0"]
    t = c.create_table("t", partition_count=3)
    assert t.app_id == 2  # no id was spent on the failure
    t.set("h", "s", "v")
    c.close()
    c = open_cluster_once(cluster_dir)
    assert names(c) == ["a", "t"]
    assert c.table("t").get("h", "s") == b"v"


@pytest.mark.parametrize(
    "fault",
    [Fault("write", 1, errno.ENOSPC, short=9), Fault("fdatasync", 1, errno.EIO)],
    ids=["short", "sync"],
)
def test_failed_drop_table_keeps_the_whole_table(
    open_cluster_once: OpenCluster, cluster_dir: Path, fault: Fault
) -> None:
    c = open_cluster_once(cluster_dir)
    t = c.create_table("t", partition_count=2)
    for i in range(20):
        t.set(f"h{i}", "s", f"v{i}")
    with fileio.faults([fault]) as plan, pytest.raises(OSError):
        c.drop_table("t")
    assert plan.fired == [fault]
    assert names(c) == ["t"]
    t = c.table("t")
    assert t.count() == 20
    t.set("after", "s", "v")  # still open and usable
    c.close()
    c = open_cluster_once(cluster_dir)
    assert c.table("t").count() == 21
    c.drop_table("t")
    assert names(c) == [] and table_dirs(cluster_dir) == []


def test_a_drop_cut_short_never_brings_the_table_back(
    open_cluster_once: OpenCluster, cluster_dir: Path
) -> None:
    """The record goes first: files a crash (or a failed removal) leaves stay dropped."""
    c = open_cluster_once(cluster_dir)
    t = c.create_table("t", partition_count=2)
    for i in range(20):
        t.set(f"h{i}", "s", f"v{i}")
    t.partitions[0].flush()
    c.close()
    kept = cluster_dir.parent / "kept"
    shutil.copytree(cluster_dir / "tables" / "1.0", kept)
    c = open_cluster_once(cluster_dir)
    c.drop_table("t")
    c.close()
    shutil.copytree(kept, cluster_dir / "tables" / "1.0")  # as if the removal stopped half-way
    c = open_cluster_once(cluster_dir)
    assert names(c) == []
    t = c.create_table("t", partition_count=2)
    assert t.app_id == 2 and t.count() == 0


# -- a fault walk: every file operation of create_table and drop_table, failed in turn ----------

N_RECORDS = 12


def _fill(t: pf.Table, n: int = N_RECORDS) -> None:
    for i in range(n):
        t.set(f"h{i}", "s", f"{t.name}{i}")


def _contents(t: pf.Table) -> dict[tuple[bytes, bytes], bytes]:
    return {(hk, sk): v for hk, sk, v in t.scan()}


def _expected(name: str, n: int = N_RECORDS) -> dict[tuple[bytes, bytes], bytes]:
    return {(f"h{i}".encode(), b"s"): f"{name}{i}".encode() for i in range(n)}


def _setup_create(path: Path, reopen: bool) -> pf.Cluster:
    c = pf.Cluster.open(path)
    _fill(c.create_table("a", partition_count=2))
    if reopen:  # the first change after an open compacts the journal: another path
        c.close()
        c = pf.Cluster.open(path)
    return c


def _setup_drop(path: Path, reopen: bool) -> pf.Cluster:
    c = _setup_create(path, reopen=False)
    _fill(c.create_table("t", partition_count=3))
    if reopen:
        c.close()
        c = pf.Cluster.open(path)
    return c


SCENARIOS = {
    "create": (_setup_create, False, lambda c: c.create_table("t", partition_count=3)),
    "create-after-reopen": (_setup_create, True, lambda c: c.create_table("t", partition_count=3)),
    "drop": (_setup_drop, False, lambda c: c.drop_table("t")),
    "drop-after-reopen": (_setup_drop, True, lambda c: c.drop_table("t")),
}


def _walk_faults(log: list[tuple[str, str]]) -> list[Fault]:
    """For each call: EIO and ENOSPC; for a write also a short write of a few bytes."""
    faults: list[Fault] = []
    for i, (op, _path) in enumerate(log):
        nth = sum(1 for o, _ in log[: i + 1] if o == op)
        faults += [Fault(op, nth, errno.EIO), Fault(op, nth, errno.ENOSPC)]
        if op == "write":
            faults.append(Fault(op, nth, errno.ENOSPC, short=5))
    return faults


def _check_model(path: Path, scenario: str) -> str:
    """Reopen without faults: 't' fully exists and works, or is absent and can be made again."""
    dirs_before = set(table_dirs(path))
    c = pf.Cluster.open(path)
    try:
        assert _contents(c.table("a")) == _expected("a")  # the other table is never harmed
        if c.has_table("t"):
            t = c.table("t")
            assert t.partition_count == 3
            want = _expected("t") if scenario.startswith("drop") else {}
            assert _contents(t) == want  # whole, never half-empty
            t.set("new", "s", "v")
            assert t.get("new", "s") == b"v"
            return "exists"
        t = c.create_table("t", partition_count=3)
        assert not any(d.startswith(f"{t.app_id}.") for d in dirs_before)  # nothing adopted
        assert _contents(t) == {}
        t.set("new", "s", "v")
        assert t.get("new", "s") == b"v"
        return "absent"
    finally:
        c.close()


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_fault_walk_create_and_drop_table(default_backend: object, tmp_path: Path, scenario: str) -> None:
    setup, reopen, action = SCENARIOS[scenario]
    c = setup(tmp_path / "count", reopen)
    with fileio.faults() as counted:
        action(c)
    c.close()
    assert counted.log, "the action makes no file operation through fileio"
    outcomes: dict[str, int] = {}
    for run, fault in enumerate(_walk_faults(counted.log)):
        path = tmp_path / f"run{run}"
        c = setup(path, reopen)
        error: BaseException | None = None
        with fileio.faults([fault]) as plan:
            try:
                action(c)
            except Exception as exc:
                error = exc
        assert plan.fired == [fault], (fault, counted.log)
        if error is not None:
            assert isinstance(error, (OSError, pf.PegasusFastError)), (fault, error)
            if scenario.startswith("create"):
                assert not c.has_table("t")
            else:  # a drop that says it failed left the table open, whole and usable
                t = c.table("t")
                assert _contents(t) == _expected("t")
                t.set("h0", "s", "t0")
        c.close()
        state = _check_model(path, scenario)
        if error is None:  # a failure after the one durable step was absorbed
            assert state == ("exists" if scenario.startswith("create") else "absent"), fault
        key = f"{'error' if error else 'ok'}/{state}"
        outcomes[key] = outcomes.get(key, 0) + 1
    # every call failed at least once; the journal calls are always among them
    assert {"write", "fdatasync"} <= {op for op, _ in counted.log}
    print(f"{scenario}: {len(counted.log)} calls, outcomes {outcomes}")
