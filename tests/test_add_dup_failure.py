"""A failed ``add_dup`` leaves nothing behind, and its error names the flag that fixes it
(issue #20 §3): the README's own example (--connect with PEGASUS_FAST_TOKEN exported, no
--remote-token-file), a remote table in the way, a remote that never answers; and a follower table
half-made by a failed duplication is taken over by the next one of the same source table."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
from conftest import DEFAULT_BACKEND, PYTHON, child_env
from multinode import Nodes
from pegasus_fast.cli.dup_verbs import TIMEOUT_FIX
from pegasus_fast.duplication.ports import SourceId
from pegasus_fast.engine.local_follower import LocalFollower
from pegasus_fast.errors import fix_of
from served import Fleet

TOKEN = "s3cret-for-both"


def _cli(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = child_env(DEFAULT_BACKEND)
    env.pop("PEGASUS_FAST_TOKEN", None)
    if token is not None:
        env["PEGASUS_FAST_TOKEN"] = token
    return subprocess.run(
        [PYTHON, "-m", "pegasus_fast", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _dups(url: str, table: str) -> list[pf.DupStatus]:
    """The statuses of the table's duplications that are not removed."""
    with pf.connect(url, token=TOKEN, timeout=10) as rc:
        return [s for s in (d.status for d in rc.duplications(table)) if s != pf.DupStatus.REMOVED]


def _two_served(fleet: Fleet, tmp_path: Path) -> tuple[str, str, Path]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    src, dst = fleet.add("src"), fleet.add("dst")
    for s in (src, dst):
        s.launch("--token-file", str(token_file))
    return src.wait_ready(), dst.wait_ready(), token_file


def test_the_readme_example_fails_naming_the_missing_token_and_leaves_nothing(
    fleet: Fleet, tmp_path: Path
) -> None:
    src, dst, token_file = _two_served(fleet, tmp_path)
    assert _cli("--connect", src, "create", "test1", "-p", "4", token=TOKEN).returncode == 0
    # PEGASUS_FAST_TOKEN lets the CLI call the source; it is not what the source shows dst
    r = _cli("--connect", src, "add_dup", "test1", dst, "--timeout", "20", "--no-progress", token=TOKEN)
    assert r.returncode == 4, r.stderr
    assert r.stderr.startswith("pegasus-fast: AddDuplicationFailedError: ")
    assert "--remote-token-file" in fix_of(r.stderr.strip())
    assert _dups(src, "test1") == []  # nothing left in DS_INIT
    # the fix it names works
    r = _cli(
        "--connect", src, "add_dup", "test1", dst, "--remote-token-file", str(token_file), "--timeout", "30",
        "--no-progress", token=TOKEN,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _dups(src, "test1") == [pf.DupStatus.LOG]


def test_a_remote_table_in_the_way_names_remote_table_and_no_checkpoint(fleet: Fleet, tmp_path: Path) -> None:
    src, dst, token_file = _two_served(fleet, tmp_path)
    with pf.connect(src, token=TOKEN, timeout=10) as a, pf.connect(dst, token=TOKEN, timeout=10) as b:
        a.create_table("t", partition_count=2).set(b"h", b"s", b"v")
        b.create_table("t", partition_count=2).set(b"mine", b"s", b"kept")
    common = ("--remote-token-file", str(token_file), "--timeout", "30", "--no-progress")
    r = _cli("--connect", src, "add_dup", "t", dst, *common, token=TOKEN)
    assert r.returncode == 4 and r.stderr.startswith("pegasus-fast: AddDuplicationFailedError: ")
    fix = fix_of(r.stderr.strip())
    assert "--remote-table" in fix and "--no-checkpoint" in fix
    assert _dups(src, "t") == []
    with pf.connect(dst, token=TOKEN, timeout=10) as b:
        assert b.table("t").get(b"mine", b"s") == b"kept"  # untouched
    r = _cli("--connect", src, "add_dup", "t", dst, "--remote-table", "t_copy", *common, token=TOKEN)
    assert r.returncode == 0, r.stderr
    with pf.connect(dst, token=TOKEN, timeout=10) as b:
        assert b.table("t_copy").get(b"h", b"s") == b"v"


def test_an_embedded_failure_leaves_nothing_and_its_fix_is_a_field(
    default_backend: ModuleType, tmp_path: Path
) -> None:
    with pf.Cluster.open(tmp_path / "a", name="a") as a, pf.Cluster.open(tmp_path / "b", name="b") as b:
        a.create_table("t", partition_count=2).set(b"h", b"s", b"v")
        b.create_table("t", partition_count=2)
    a_dir, b_dir = str(tmp_path / "a"), str(tmp_path / "b")
    r = _cli("--cluster", a_dir, "add_dup", "t", b_dir, "--timeout", "30", "--no-progress")
    assert r.returncode == 4 and r.stderr.startswith("pegasus-fast: AddDuplicationFailedError: ")
    assert "--remote-table" in fix_of(r.stderr.strip())
    with pf.Cluster.open(tmp_path / "a") as a, pf.Cluster.open(tmp_path / "b") as b:
        assert [x.status for x in a.duplications("t")] == []  # the CLI's was removed
        # through the API the failed duplication is the caller's to remove; its error's fix is a field
        d = a.add_duplication("t", b)
        with pytest.raises(pf.DuplicationError) as info:
            d.wait_for(pf.DupStatus.LOG, timeout=30)
        assert "--remote-table" in info.value.__cause__.fix  # type: ignore[union-attr]
        # while it is there, another add_dup says what is in the way and how to clear it
        with pytest.raises(pf.DuplicationError) as again:
            a.add_duplication("t", b)
        assert again.value.fix.startswith(f"remove_dup t {d.dupid}")
        d.remove()
        assert a.add_duplication("t", b, remote_table="t2").wait_for(pf.DupStatus.LOG, timeout=30) is None
        assert b.table("t2").get(b"h", b"s") == b"v"


def test_a_remote_that_never_answers_times_out_naming_timeout_and_leaves_nothing(
    fleet: Fleet, tmp_path: Path
) -> None:
    src, _dst, token_file = _two_served(fleet, tmp_path)
    assert _cli("--connect", src, "create", "t", "-p", "2", token=TOKEN).returncode == 0
    r = _cli(
        "--connect", src, "add_dup", "t", "pegasus://127.0.0.1:9", "--remote-token-file", str(token_file),
        "--timeout", "2", "--no-progress", token=TOKEN,
    )  # fmt: skip
    assert r.returncode == 4 and r.stderr.startswith("pegasus-fast: AddDuplicationFailedError: ")
    assert fix_of(r.stderr.strip()) == TIMEOUT_FIX
    assert _dups(src, "t") == []


def test_a_half_made_follower_table_is_taken_over_by_the_next_duplication_of_its_source(
    default_backend: ModuleType, tmp_path: Path
) -> None:
    with pf.Cluster.open(tmp_path / "a", name="a") as a, pf.Cluster.open(tmp_path / "b", name="b") as b:
        t = a.create_table("t", partition_count=2)
        for i in range(20):
            t.set(b"h%d" % i, b"s", b"v")
        # what a duplication that failed in DS_APP (and was removed) left on b: the table made,
        # nothing learned
        LocalFollower(b).ensure_table("t", 2, SourceId("a", a.info().uid, "t", 99), True)
        assert b.table("t").health().fully_healthy == 0
        d = a.add_duplication("t", b)
        d.wait_for(pf.DupStatus.LOG, timeout=30)
        assert b.table("t").count() == 20 and b.table("t").health().fully_healthy == 2
        # another source table's half-made follower is still refused, with its fix
        b2 = LocalFollower(b)
        b2.ensure_table("u", 2, SourceId("a", a.info().uid, "other", 98), True)
        a.create_table("u", partition_count=2)
        d2 = a.add_duplication("u", b)
        with pytest.raises(pf.DuplicationError) as info:
            d2.wait_for(pf.DupStatus.LOG, timeout=30)
        assert "--remote-table" in fix_of(info.value)
        d2.remove()


def test_a_multi_node_source_removes_its_failed_duplication_too(
    fleet: Fleet, tmp_path: Path, zk_chroot: str
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    dst = fleet.add("dst")
    dst.launch("--token-file", str(token_file))
    nodes = Nodes(fleet, zk_chroot)
    nodes.start("n1", "n2")
    dst_url = dst.wait_ready()
    with nodes.client() as c:
        c.create_table("t", partition_count=4)
    r = _cli("--connect", nodes.url, "add_dup", "t", dst_url, "--timeout", "20", "--no-progress")
    assert r.returncode == 4 and r.stderr.startswith("pegasus-fast: AddDuplicationFailedError: "), r.stderr
    assert "--remote-token-file" in fix_of(r.stderr.strip())
    with nodes.client() as c:
        assert [d.status for d in c.duplications("t") if d.status != pf.DupStatus.REMOVED] == []
    r = _cli(
        "--connect", nodes.url, "add_dup", "t", dst_url, "--remote-token-file", str(token_file),
        "--timeout", "30", "--no-progress",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
