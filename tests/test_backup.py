"""``backup TABLE DIR`` / ``restore DIR TABLE`` (issue #20 §3): a verified checkpoint set with its
manifest, restored into another cluster as a new table with the same partitions and records; a
damaged backup refused with the file named, and nothing created. Both backends: the files are
hashed and copied by each one's CheckpointReceiver."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
from blake3 import blake3
from conftest import DEFAULT_BACKEND, PYTHON, child_env
from pegasus_fast import fileio
from pegasus_fast.cli.exits import EXIT_ERROR, EXIT_USAGE
from pegasus_fast.duplication.ports import SourceId
from pegasus_fast.engine.backup import RESTORE_STAGING, backup_table, restore_table
from pegasus_fast.engine.local_follower import LocalFollower
from pegasus_fast.errors import fix_of
from pegasus_fast.storage import backup_set
from served import Fleet

Opener = Callable[..., pf.Cluster]


def _records(t: pf.Table) -> list[tuple[bytes, bytes, bytes]]:
    return sorted(t.scan())


def _fill(t: pf.Table, n: int = 300) -> None:
    for i in range(n):
        t.set(b"h%d" % i, b"s", b"v%d" % i, ttl_seconds=3600 if i % 3 == 0 else None)
    t.multi_set(b"multi", {b"a": b"1", b"b": b"2"})
    t.delete(b"h7", b"s")


def _backup(
    open_cluster: Opener, tmp_path: Path, n: int = 300
) -> tuple[Path, list[tuple[bytes, bytes, bytes]]]:
    with open_cluster(tmp_path / "src") as c:
        t = c.create_table("t", partition_count=4, envs={"replica.note": "x"})
        _fill(t, n)
        backup_table(c, "t", str(tmp_path / "bk"))
        return tmp_path / "bk", _records(t)


def test_a_backup_restores_as_a_new_table_in_another_cluster(open_cluster: Opener, tmp_path: Path) -> None:
    with open_cluster(tmp_path / "src") as c:
        t = c.create_table("t", partition_count=4, envs={"replica.note": "x"})
        _fill(t)
        m = backup_table(c, "t", str(tmp_path / "bk"))
        want = _records(t)
        decrees = [p.last_committed for p in t.partitions]
        t.set(b"after", b"s", b"not in the backup")
    assert m.partition_count == 4 and [p.decree for p in m.partitions] == decrees
    assert backup_set.verify(str(tmp_path / "bk")) == m
    with open_cluster(tmp_path / "dst") as d:
        d.create_table("other", partition_count=2).set(b"k", b"s", b"v")
        r = restore_table(d, str(tmp_path / "bk"), "t2")
        assert r.partition_count == 4 and _records(r) == want
        assert d.table_info("t2").envs == {"replica.note": "x"}
        assert [p.last_committed for p in r.partitions] == decrees
        assert 3000 < r.ttl(b"h0", b"s") <= 3600 and r.ttl(b"h1", b"s") == -1  # no TTL
        assert r.get(b"h7", b"s") is None
        r.set(b"new", b"s", b"v")  # decrees go on from the backup's
        assert [p.last_committed for p in r.partitions] != decrees
    with open_cluster(tmp_path / "dst") as d:
        assert _records(d.table("t2")) == sorted([*want, (b"new", b"s", b"v")])
        assert d.table("other").get(b"k", b"s") == b"v"


def test_a_backup_taken_while_writes_go_on_holds_each_partition_up_to_its_decree(
    open_cluster: Opener, tmp_path: Path
) -> None:
    with open_cluster(tmp_path / "src") as c:
        t = c.create_table("t", partition_count=4)
        written: list[tuple[bytes, int]] = []  # (hash key, decree) in write order
        stop = threading.Event()

        def writer() -> None:
            i = 0
            while not stop.is_set():
                hk = b"w%d" % i
                written.append((hk, t.set(hk, b"s", b"%d" % i)))
                i += 1

        th = threading.Thread(target=writer)
        th.start()
        try:
            deadline = time.monotonic() + 30
            while len(written) < 200:
                assert time.monotonic() < deadline, "the writer did not get going"
                time.sleep(0.01)
            m = backup_table(c, "t", str(tmp_path / "bk"))
        finally:
            stop.set()
            th.join()
        part_of = {hk: t.partition_index(hk) for hk, _ in written}
    decree_of = {p.pidx: p.decree for p in m.partitions}
    with open_cluster(tmp_path / "dst") as d:
        got = {hk for hk, _, _ in restore_table(d, str(tmp_path / "bk"), "t").scan()}
    # each partition holds exactly the writes up to its checkpoint's decree, no more, no less
    want = {hk for hk, decree in written if decree <= decree_of[part_of[hk]]}
    assert got == want and len(want) >= 200


def test_an_empty_table_backs_up_and_restores(open_cluster: Opener, tmp_path: Path) -> None:
    with open_cluster(tmp_path / "src") as c:
        c.create_table("e", partition_count=3)
        backup_table(c, "e", str(tmp_path / "bk"))
    with open_cluster(tmp_path / "dst") as d:
        r = restore_table(d, str(tmp_path / "bk"), "e")
        assert r.partition_count == 3 and r.count() == 0


def _first_file(bk: Path) -> tuple[str, Path]:
    m = backup_set.read_manifest(str(bk))
    part = next(p for p in m.partitions if any(size > 0 for _, size, _ in p.files))
    name = next(n for n, size, _ in part.files if size > 0 and n.endswith(".sst"))
    return f"{part.pidx}/{name}", bk / str(part.pidx) / name


def _edit_manifest(bk: Path, edit: Callable[[dict], None]) -> None:  # type: ignore[type-arg]
    doc = json.loads((bk / backup_set.MANIFEST).read_text())
    edit(doc)
    (bk / backup_set.MANIFEST).write_text(json.dumps(doc))


def _missing(bk: Path) -> tuple[str | None, str]:
    rel, path = _first_file(bk)
    path.unlink()
    return rel, "missing"


def _changed_byte(bk: Path) -> tuple[str | None, str]:
    rel, path = _first_file(bk)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return rel, "hash"


def _truncated(bk: Path) -> tuple[str | None, str]:
    rel, path = _first_file(bk)
    os.truncate(path, path.stat().st_size - 1)
    return rel, "size"


def _extra(bk: Path) -> tuple[str | None, str]:
    (bk / "0" / "000999.sst").write_bytes(b"x")
    return "0/000999.sst", "extra"


def _dotdot(bk: Path) -> tuple[str | None, str]:
    # a file outside the backup, listed with its true size and hash: still refused by name
    outside = bk.parent / "outside.sst"
    outside.write_bytes(b"secret")
    digest = blake3(b"secret").hexdigest()

    def edit(doc: dict) -> None:  # type: ignore[type-arg]
        doc["partitions"][0]["files"].append(["../../outside.sst", 6, digest])

    _edit_manifest(bk, edit)
    return "0/../../outside.sst", "unsafe_path"


def _no_manifest(bk: Path) -> tuple[str | None, str]:
    (bk / backup_set.MANIFEST).unlink()
    return backup_set.MANIFEST, "missing"


def _garbage_manifest(bk: Path) -> tuple[str | None, str]:
    (bk / backup_set.MANIFEST).write_text('{"format": 1, "table": "t", "partition_count": ')
    return backup_set.MANIFEST, "bad_manifest"


def _partition_gone(bk: Path) -> tuple[str | None, str]:
    _edit_manifest(bk, lambda doc: doc["partitions"].pop())
    return backup_set.MANIFEST, "bad_manifest"


def _symlink(bk: Path) -> tuple[str | None, str]:
    rel, path = _first_file(bk)
    target = bk.parent / "elsewhere"
    target.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(target)
    return rel, "unsafe_path"


DAMAGE = {
    "missing file": _missing,
    "changed byte": _changed_byte,
    "truncated file": _truncated,
    "extra file": _extra,
    "manifest with ../": _dotdot,
    "no manifest": _no_manifest,
    "manifest cut short": _garbage_manifest,
    "a partition left out": _partition_gone,
    "a symlink for a file": _symlink,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_backup_is_refused_naming_the_file_and_nothing_is_created(
    open_cluster: Opener, tmp_path: Path, damage: str
) -> None:
    bk, _ = _backup(open_cluster, tmp_path, n=50)
    file, reason = DAMAGE[damage](bk)
    with open_cluster(tmp_path / "dst") as d:
        before = sorted(os.listdir(tmp_path / "dst"))
        tables_before = (
            sorted(os.listdir(tmp_path / "dst" / "tables")) if (tmp_path / "dst" / "tables").exists() else []
        )
        with pytest.raises(pf.BackupError) as info:
            restore_table(d, str(bk), "t2")
        assert info.value.file == file and info.value.reason == reason
        assert info.value.path == str(bk)
        assert not d.has_table("t2") and d.list_tables() == []
        assert sorted(os.listdir(tmp_path / "dst")) == before
        if tables_before or (tmp_path / "dst" / "tables").exists():
            assert sorted(os.listdir(tmp_path / "dst" / "tables")) == tables_before
    with open_cluster(tmp_path / "dst") as d:
        assert d.list_tables() == []


def test_a_restore_that_fails_part_way_leaves_no_table(open_cluster: Opener, tmp_path: Path) -> None:
    bk, want = _backup(open_cluster, tmp_path, n=50)
    with open_cluster(tmp_path / "dst") as d:
        plan = [fileio.Fault("mkdir", 2, errno.ENOSPC, path_part=RESTORE_STAGING)]
        with fileio.faults(plan) as f:
            with pytest.raises(OSError) as info:
                restore_table(d, str(bk), "t2")
        assert f.fired and info.value.errno == errno.ENOSPC
        assert not d.has_table("t2")
        # the disk has room again: the same backup restores
        assert _records(restore_table(d, str(bk), "t2")) == want


def test_a_restore_never_replaces_a_table(open_cluster: Opener, tmp_path: Path) -> None:
    bk, _ = _backup(open_cluster, tmp_path, n=20)
    with open_cluster(tmp_path / "dst") as d:
        d.create_table("t2", partition_count=2).set(b"k", b"s", b"mine")
        with pytest.raises(pf.TableExistsError):
            restore_table(d, str(bk), "t2")
        assert d.table("t2").partition_count == 2 and _records(d.table("t2")) == [(b"k", b"s", b"mine")]


def test_a_backup_goes_into_a_new_or_empty_directory_only(open_cluster: Opener, tmp_path: Path) -> None:
    (tmp_path / "bk").mkdir()
    (tmp_path / "bk" / "keep").write_text("mine")
    with open_cluster(tmp_path / "src") as c:
        c.create_table("t", partition_count=2).set(b"k", b"s", b"v")
        with pytest.raises(pf.BackupError) as info:
            backup_table(c, "t", str(tmp_path / "bk"))
        assert info.value.reason == "not_empty" and info.value.file is None
        assert os.listdir(tmp_path / "bk") == ["keep"]
        with pytest.raises(pf.TableNotFoundError):
            backup_table(c, "missing", str(tmp_path / "bk2"))
        assert not (tmp_path / "bk2").exists()


def test_a_follower_table_still_learning_is_not_backed_up(open_cluster: Opener, tmp_path: Path) -> None:
    with open_cluster(tmp_path / "b") as b:
        LocalFollower(b).ensure_table("t", 2, SourceId("a", "uid-of-a", "t", 1), True)
        with pytest.raises(pf.PartitionUnavailableError) as info:
            backup_table(b, "t", str(tmp_path / "bk"))
        assert info.value.table == "t" and info.value.state == "learning"
        assert not (tmp_path / "bk").exists()


def test_a_backup_cut_short_leaves_nothing(open_cluster: Opener, tmp_path: Path) -> None:
    with open_cluster(tmp_path / "src") as c:
        t = c.create_table("t", partition_count=2)
        _fill(t, 40)
        with fileio.faults([fileio.Fault("fsync", 1, errno.EIO, path_part=str(tmp_path / "bk"))]) as f:
            with pytest.raises(OSError):
                backup_table(c, "t", str(tmp_path / "bk"))
        assert f.fired and not (tmp_path / "bk").exists()
        backup_table(c, "t", str(tmp_path / "bk"))
    backup_set.verify(str(tmp_path / "bk"))


# -- the command line -------------------------------------------------------------------------


def _cli(backend_name: str, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = child_env(backend_name)
    env.pop("PEGASUS_FAST_TOKEN", None)
    if token is not None:
        env["PEGASUS_FAST_TOKEN"] = token
    return subprocess.run(
        [PYTHON, "-m", "pegasus_fast", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cli_backs_up_and_restores(
    default_backend: ModuleType, default_backend_name: str, tmp_path: Path
) -> None:
    src, dst, bk = str(tmp_path / "src"), str(tmp_path / "dst"), str(tmp_path / "bk")
    assert _cli(default_backend_name, "--cluster", src, "create", "t", "-p", "3").returncode == 0
    assert _cli(default_backend_name, "--cluster", src, "multi_set", "t", "h", "a=1", "b=2").returncode == 0
    r = _cli(default_backend_name, "--cluster", src, "backup", "t", bk)
    assert r.returncode == 0, r.stderr
    r = _cli(default_backend_name, "restore", bk, "t2", "--cluster", dst)
    assert r.returncode == 0, r.stderr
    r = _cli(default_backend_name, "--cluster", dst, "multi_get", "t2", "h")
    assert r.returncode == 0 and "a" in r.stdout.split() and "2" in r.stdout.split()
    with open(os.path.join(bk, "1", sorted(os.listdir(os.path.join(bk, "1")))[0]), "ab") as f:
        f.write(b"!")
    r = _cli(default_backend_name, "--cluster", dst, "restore", bk, "t3")
    assert r.returncode == EXIT_ERROR and r.stderr.startswith("pegasus-fast: BackupError: ")
    assert f"{os.sep}1/" not in r.stderr and " 1/" in r.stderr  # names the file, relative to the backup
    r = _cli(default_backend_name, "--cluster", dst, "ls")
    assert "t3" not in r.stdout.split()


# -- a served cluster -------------------------------------------------------------------------


def _token_file(path: Path, token: str) -> Path:
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


def test_a_served_backup_restores_into_another_server(fleet: Fleet, tmp_path: Path) -> None:
    root = tmp_path / "backups"
    admin = _token_file(tmp_path / "admin", "admin-t")
    client = _token_file(tmp_path / "client", "client-t")
    roles = ("--admin-token-file", str(admin), "--client-token-file", str(client))
    a, b = fleet.add("a"), fleet.add("b")
    a.launch("--backup-dir", str(root), *roles)
    b.launch("--backup-dir", str(root), *roles)
    a_url, b_url = a.wait_ready(), b.wait_ready()
    with pf.connect(a_url, token="admin-t", timeout=10) as rc:
        rc.create_table("t", partition_count=4)
    with pf.connect(a_url, token="client-t", timeout=10) as rc:
        _fill(rc.table("t"), 100)
        want = _records(rc.table("t"))
        with pytest.raises(pf.PermissionDeniedError):  # tables and backups are an admin's
            rc.backup_table("t", "nightly")
    r = _cli(DEFAULT_BACKEND, "--connect", a_url, "backup", "t", "nightly", token="admin-t")
    assert r.returncode == 0, r.stderr
    assert backup_set.verify(str(root / "nightly")).partition_count == 4
    r = _cli(DEFAULT_BACKEND, "--connect", b_url, "restore", "nightly", "t2", token="admin-t")
    assert r.returncode == 0, r.stderr
    with pf.connect(b_url, token="client-t", timeout=10) as rc:
        assert _records(rc.table("t2")) == want
    # a name is one plain directory name under --backup-dir: a path is refused, nothing written
    for name in ("../outside", "/tmp/x", ".hidden", ""):
        r = _cli(DEFAULT_BACKEND, "--connect", a_url, "backup", "t", name, token="admin-t")
        assert r.returncode == EXIT_USAGE and r.stderr.startswith("pegasus-fast: InvalidArgumentError: ")
    assert sorted(os.listdir(root)) == ["nightly"] and not (tmp_path / "outside").exists()
    # a damaged backup is refused over the wire as the same typed error, naming the file
    rel, path = _first_file(root / "nightly")
    os.truncate(path, 1)
    with pf.connect(b_url, token="admin-t", timeout=10) as rc:
        with pytest.raises(pf.BackupError) as info:
            rc.restore_table("nightly", "t3")
        assert info.value.file == rel and info.value.reason == "size"
        assert not rc.has_table("t3")


def test_a_server_without_backup_dir_refuses_naming_the_flag(fleet: Fleet, tmp_path: Path) -> None:
    a = fleet.add("a")
    url = a.start()
    with pf.connect(url, timeout=10) as rc:
        rc.create_table("t", partition_count=1)
        with pytest.raises(pf.InvalidArgumentError) as info:
            rc.backup_table("t", "x")
        assert "--backup-dir" in info.value.fix
    r = _cli(DEFAULT_BACKEND, "--connect", url, "backup", "t", "x")
    assert r.returncode == EXIT_USAGE and "--backup-dir" in fix_of(r.stderr.strip())
