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
    open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    c = open_cluster(cluster_dir)
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
    c = open_cluster(cluster_dir)
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
    open_cluster: OpenCluster, cluster_dir: Path, fault: Fault
) -> None:
    c = open_cluster(cluster_dir)
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
    c = open_cluster(cluster_dir)
    assert names(c) == ["a", "t"]
    assert c.table("t").get("h", "s") == b"v"


@pytest.mark.parametrize(
    "fault",
    [Fault("write", 1, errno.ENOSPC, short=9), Fault("fdatasync", 1, errno.EIO)],
    ids=["short", "sync"],
)
def test_failed_drop_table_keeps_the_whole_table(
    open_cluster: OpenCluster, cluster_dir: Path, fault: Fault
) -> None:
    c = open_cluster(cluster_dir)
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
    c = open_cluster(cluster_dir)
    assert c.table("t").count() == 21
    c.drop_table("t")
    assert names(c) == [] and table_dirs(cluster_dir) == []


def test_a_drop_cut_short_never_brings_the_table_back(open_cluster: OpenCluster, cluster_dir: Path) -> None:
    """The record goes first: files a crash (or a failed removal) leaves stay dropped."""
    c = open_cluster(cluster_dir)
    t = c.create_table("t", partition_count=2)
    for i in range(20):
        t.set(f"h{i}", "s", f"v{i}")
    t.partitions[0].flush()
    c.close()
    kept = cluster_dir.parent / "kept"
    shutil.copytree(cluster_dir / "tables" / "1.0", kept)
    c = open_cluster(cluster_dir)
    c.drop_table("t")
    c.close()
    shutil.copytree(kept, cluster_dir / "tables" / "1.0")  # as if the removal stopped half-way
    c = open_cluster(cluster_dir)
    assert names(c) == []
    t = c.create_table("t", partition_count=2)
    assert t.app_id == 2 and t.count() == 0
