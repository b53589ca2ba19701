"""The metadata journal on a full disk, a failed sync, damage and loss: nothing acknowledged is lost."""

from __future__ import annotations

import errno
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pegasus_fast as pf
import pytest
from conftest import PYTHON, child_env
from pegasus_fast import _backend, fileio
from pegasus_fast.fileio import Fault

OpenCluster = Callable[..., pf.Cluster]


def names(c: pf.Cluster) -> list[str]:
    return [i.name for i in c.list_tables()]


# A real full disk, as the kernel gives it: RLIMIT_FSIZE makes a write past the
# limit store only the bytes below it (a short write), and the next one fail
# with EFBIG. The child fills the journal's last bytes, then lets space return.
FULL_DISK = """
import json, os, resource, signal, sys
import pegasus_fast as pf
path = sys.argv[1]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
out = {}
c = pf.Cluster.open(path)
c.create_table("a", partition_count=1)  # the journal is open for appends from here
journal = os.path.join(path, "meta", "journal")
size = os.path.getsize(journal)
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 40, hard))
try:
    c.create_table("b", partition_count=1)
    out["full"] = "acknowledged"
except OSError as exc:
    out["full"] = exc.errno
except pf.PegasusFastError as exc:
    out["full"] = type(exc).__name__
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
out["size_after_failure"] = os.path.getsize(journal) - size
out["tables_in_memory"] = [i.name for i in c.list_tables()]
c.create_table("c", partition_count=1)  # space came back
c.close()
try:
    c = pf.Cluster.open(path)
except pf.PegasusFastError as exc:
    out["reopen"] = type(exc).__name__
else:
    out["reopen"] = [i.name for i in c.list_tables()]
    if c.has_table("c"):
        t = c.table("c")
        t.set("h", "s", "v")
        out["c_works"] = t.get("h", "s") == b"v"
    c.close()
print(json.dumps(out))
"""


def test_short_write_on_a_full_disk_is_not_acknowledged(backend_name: str, cluster_dir: Path) -> None:
    done = subprocess.run(
        [PYTHON, "-c", FULL_DISK, str(cluster_dir)],
        env=child_env(backend_name),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["full"] == errno.EFBIG  # the failure is reported, never acknowledged
    assert out["size_after_failure"] == 0  # the partial line was cut off
    assert out["tables_in_memory"] == ["a"]
    assert out["reopen"] == ["a", "c"]
    assert out.get("c_works") is True


@pytest.mark.parametrize(
    "fault",
    [
        Fault("write", 1, errno.ENOSPC, short=7),
        Fault("write", 1, errno.ENOSPC, short=0),
        Fault("write", 1, errno.EIO),
        Fault("fdatasync", 1, errno.EIO),
    ],
    ids=["short", "nothing-written", "write-eio", "fdatasync-eio"],
)
def test_failed_append_is_cut_back_and_state_does_not_move(
    open_cluster: OpenCluster, cluster_dir: Path, fault: Fault
) -> None:
    c = open_cluster(cluster_dir)
    c.create_table("a", partition_count=1)
    journal = cluster_dir / "meta" / "journal"
    before = journal.read_bytes()
    # the journal's fd was opened before the plan, so its calls are matched by
    # count alone: creating a table writes and syncs nothing but the journal
    with fileio.faults([fault]) as plan, pytest.raises(OSError) as err:
        c.create_table("b", partition_count=1)
    assert plan.fired == [fault]
    assert err.value.errno == fault.errno
    assert journal.read_bytes() == before
    assert names(c) == ["a"]
    assert not c.has_table("b")
    c.create_table("b", partition_count=2)  # the same change, retried, appends cleanly
    c.close()
    c = open_cluster(cluster_dir)
    assert names(c) == ["a", "b"]
    assert c.table("b").partition_count == 2


@pytest.mark.parametrize("undo", ["truncate", "fdatasync"])
def test_an_append_that_cannot_be_cut_back_fences_the_store_until_reopen(
    open_cluster: OpenCluster, cluster_dir: Path, undo: str
) -> None:
    c = open_cluster(cluster_dir)
    c.create_table("a", partition_count=1)
    plan = [
        Fault("write", 1, errno.ENOSPC, short=5),
        # the cut back fails: its truncate, or the sync that makes it durable
        Fault(undo, 1, errno.EIO),
    ]
    with fileio.faults(plan), pytest.raises(pf.MetaFencedError) as err:
        c.create_table("b", partition_count=1)
    assert err.value.path == str(cluster_dir / "meta" / "journal")
    with pytest.raises(pf.MetaFencedError):
        c.create_table("b2", partition_count=1)
    with pytest.raises(pf.MetaFencedError):
        c.drop_table("a")
    assert names(c) == ["a"]
    c.table("a").set("h", "s", "v")  # data writes do not need the metadata
    c.close()
    c = open_cluster(cluster_dir)
    assert names(c) == ["a"]
    assert c.table("a").get("h", "s") == b"v"
    c.create_table("b", partition_count=1)
    c.close()
    assert names(open_cluster(cluster_dir)) == ["a", "b"]


@pytest.mark.parametrize(
    "fault",
    [
        Fault("write", 1, errno.ENOSPC, short=3, path_part="journal.tmp"),
        Fault("fdatasync", 1, errno.EIO, path_part="journal.tmp"),
        Fault("rename", 1, errno.EIO, path_part="journal"),
    ],
    ids=["short", "fdatasync", "rename"],
)
def test_failed_compaction_keeps_the_old_journal(
    open_cluster: OpenCluster, cluster_dir: Path, fault: Fault
) -> None:
    c = open_cluster(cluster_dir)
    c.create_table("a", partition_count=1)
    c.close()
    journal = cluster_dir / "meta" / "journal"
    before = journal.read_bytes()
    c = open_cluster(cluster_dir)  # its first change rewrites the journal
    with fileio.faults([fault]) as plan, pytest.raises(OSError):
        c.create_table("b", partition_count=1)
    assert plan.fired == [fault]
    assert journal.read_bytes() == before
    assert not (cluster_dir / "meta" / "journal.tmp").exists()
    assert names(c) == ["a"]
    c.create_table("b", partition_count=1)
    c.close()
    assert names(open_cluster(cluster_dir)) == ["a", "b"]


# -- loading: only an unterminated last line is forgiven ----------------------------------------


def _two_tables(open_cluster: OpenCluster, path: Path) -> bytes:
    c = open_cluster(path)
    c.create_table("a", partition_count=1)
    c.create_table("b", partition_count=2)
    c.table("b").set("h", "s", "b's data")
    c.close()
    return (path / "meta" / "journal").read_bytes()


def _last_line_offset(journal: bytes) -> int:
    return journal.rstrip(b"\n").rfind(b"\n") + 1


def test_a_complete_last_record_with_a_bad_crc_is_corruption(
    open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    good = _two_tables(open_cluster, cluster_dir)
    journal = cluster_dir / "meta" / "journal"
    last = _last_line_offset(good)
    damaged = bytearray(good)
    damaged[last + 12] ^= 0x01  # a bit flips inside the newline-terminated last record
    journal.write_bytes(bytes(damaged))
    with pytest.raises(pf.MetaCorruptionError) as err:
        pf.Cluster.open(cluster_dir)
    assert err.value.path == str(journal)
    assert err.value.offset == last
    assert journal.read_bytes() == bytes(damaged)  # nothing cut off


def test_a_record_with_a_good_crc_that_does_not_parse_is_corruption(
    open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    good = _two_tables(open_cluster, cluster_dir)
    journal = cluster_dir / "meta" / "journal"
    for body in (b"[1, 2]", b'{"tables": ', b"\xff\xfe"):
        line = b"%08x " % _backend.impl.crc32c(body) + body + b"\n"
        journal.write_bytes(good + line)
        with pytest.raises(pf.MetaCorruptionError) as err:
            pf.Cluster.open(cluster_dir)
        assert err.value.offset == len(good)


def test_an_unterminated_last_record_is_a_torn_tail(open_cluster: OpenCluster, cluster_dir: Path) -> None:
    good = _two_tables(open_cluster, cluster_dir)
    journal = cluster_dir / "meta" / "journal"
    journal.write_bytes(good[:-1])  # even a whole record, when its newline is missing
    c = open_cluster(cluster_dir)
    assert names(c) == ["a"]
    assert journal.read_bytes() == good[: _last_line_offset(good)]


@pytest.mark.parametrize("journal_content", [None, b"", b'0badc0de {"tab'])
def test_lost_journal_next_to_tables_is_corruption_not_a_new_cluster(
    open_cluster: OpenCluster, cluster_dir: Path, journal_content: bytes | None
) -> None:
    _two_tables(open_cluster, cluster_dir)
    journal = cluster_dir / "meta" / "journal"
    if journal_content is None:
        journal.unlink()
    else:
        journal.write_bytes(journal_content)
    with pytest.raises(pf.MetaCorruptionError) as err:
        pf.Cluster.open(cluster_dir)
    assert err.value.path == str(journal)
    assert journal.exists() == (journal_content is not None)  # no new cluster was written
    assert sorted(p.name for p in (cluster_dir / "tables").iterdir()) == ["1.0", "2.0", "2.1"]


def test_a_new_cluster_without_tables_still_opens(open_cluster: OpenCluster, cluster_dir: Path) -> None:
    (cluster_dir / "tables").mkdir(parents=True)  # empty: nothing was ever stored
    c = open_cluster(cluster_dir, name="fresh")
    assert c.name == "fresh" and names(c) == []


def test_new_table_never_adopts_leftover_directories(open_cluster: OpenCluster, cluster_dir: Path) -> None:
    """A create whose record was torn by a crash left tables/2.*: the next id skips them."""
    good = _two_tables(open_cluster, cluster_dir)
    (cluster_dir / "meta" / "journal").write_bytes(good[:-1])
    c = open_cluster(cluster_dir)
    assert names(c) == ["a"]
    t = c.create_table("c", partition_count=2)
    assert t.app_id == 3
    assert list(t.scan()) == []
    assert sorted(p.name for p in (cluster_dir / "tables").iterdir()) == ["1.0", "2.0", "2.1", "3.0", "3.1"]
    t.set("h", "s", "c's data")
    c.close()
    c = open_cluster(cluster_dir)
    assert list(c.table("c").scan()) == [(b"h", b"s", b"c's data")]
    assert c.create_table("d", partition_count=1).app_id == 4


def test_leftover_compaction_tmp_is_removed_at_open(open_cluster: OpenCluster, cluster_dir: Path) -> None:
    good = _two_tables(open_cluster, cluster_dir)
    tmp = cluster_dir / "meta" / "journal.tmp"
    tmp.write_bytes(b"0badc0de {half a compacti")
    c = open_cluster(cluster_dir)
    assert not tmp.exists()
    assert names(c) == ["a", "b"]
    assert (cluster_dir / "meta" / "journal").read_bytes() == good
