"""Issue #21 §4: a running duplication's token changes (``update(remote_token=...)``, the CLI's
``update_dup``), and re-adding a duplication without a checkpoint to a follower that missed
writes is refused (FollowerGapError: how many source decrees it lacks) unless ``accept_gap``.

The token rotation on a real served follower is in test_dup_stuck.py; here, the arguments, the
persistence of the new token, and the gap check: embedded and over the wire, API and CLI.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pegasus_fast as pf
import pytest
from conftest import DEFAULT_BACKEND, PYTHON, child_env
from dupharness import wait_until
from multinode import Nodes
from pegasus_fast.cli.exits import EXIT_ERROR, EXIT_OK
from served import Fleet
from servedcheck import scan_of

pytestmark = [
    pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning"),
    pytest.mark.usefixtures("default_backend"),
]

WAIT = 60.0
TABLE = "t"


def run_cli(*argv: str, code: int = EXIT_OK) -> str:
    """``pegasus-fast ARGV`` in a child process; its stdout (its exit code must be ``code``)."""
    r = subprocess.run(
        [PYTHON, "-m", "pegasus_fast", *argv],
        env=child_env(DEFAULT_BACKEND),
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    return r.stdout.decode() + r.stderr.decode()


def caught_up(d: object) -> bool:
    return all(p.pending_mutations == 0 for p in d.progress())  # type: ignore[attr-defined]


def journal_records(path: str) -> list[dict[str, object]]:
    lines = (Path(path) / "meta" / "journal").read_text().splitlines()
    return [json.loads(line.split(" ", 1)[1]) for line in lines if line.strip()]


# -- update ----------------------------------------------------------------------------------------


def test_update_checks_its_arguments_and_persists_the_token(
    open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    src = open_cluster_once(tmp_path / "src", name="src")
    dst = open_cluster_once(tmp_path / "dst", name="dst")
    src.create_table(TABLE, 2).set(b"a", b"s", b"1")
    d = src.add_duplication(TABLE, dst, remote_token="first-token")
    d.wait_for(pf.DupStatus.LOG, WAIT)
    for bad in (None, "", 5, b"bytes"):
        with pytest.raises(pf.InvalidTypeError):
            d.update(remote_token=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        d.update("positional-token")  # type: ignore[misc]
    d.update(remote_token="second-token")
    assert d.uses_token("second-token") and not d.uses_token("first-token")
    # persisted before it is used: the last record of the duplication in the journal has it
    records = [r for r in journal_records(src.path) if "duplications" in json.dumps(r)]
    assert "second-token" in json.dumps(records[-1])
    # an embedded remote takes no token: the duplication goes on shipping all the same
    src.table(TABLE).set(b"b", b"s", b"2")
    wait_until(lambda: caught_up(d), WAIT, lambda: f"{d.progress()}")
    assert dst.table(TABLE).get(b"b", b"s") == b"2"
    src.close()
    src = open_cluster_once(tmp_path / "src", name="src")
    d = src.duplication(d.dupid)
    assert d.uses_token("second-token")
    d.remove()
    with pytest.raises(pf.DuplicationError):
        d.update(remote_token="third-token")


# -- the gap a re-added duplication without checkpoint would leave -----------------------------------


def _followed_then_removed(src: pf.Cluster, dst: object, n: int) -> pf.Table:
    """A table duplicated with a checkpoint, caught up, then its duplication removed; ``n``
    writes follow that the follower never gets."""
    t = src.create_table(TABLE, 2)
    for i in range(10):
        t.set(b"a%d" % i, b"s", b"1")
    d = src.add_duplication(TABLE, dst)  # type: ignore[arg-type]
    d.wait_for(pf.DupStatus.LOG, WAIT)
    wait_until(lambda: caught_up(d), WAIT, lambda: f"{d.progress()}")
    d.remove()
    for i in range(n):
        t.set(b"gap%d" % i, b"s", b"2")
    return t


def test_readding_without_checkpoint_to_a_follower_that_missed_writes_is_refused(
    open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    src = open_cluster_once(tmp_path / "src", name="src")
    dst = open_cluster_once(tmp_path / "dst", name="dst")
    t = _followed_then_removed(src, dst, 12)
    per_partition = {}
    for i in range(12):
        p = t.partition_index(b"gap%d" % i)
        per_partition[p] = per_partition.get(p, 0) + 1
    before = list(dst.table(TABLE).scan())
    with pytest.raises(pf.FollowerGapError) as ei:
        src.add_duplication(TABLE, dst, with_checkpoint=False)
    assert ei.value.missing_decrees == 12
    assert sorted(map(tuple, ei.value.partitions)) == sorted(per_partition.items())
    assert ei.value.table == TABLE
    assert src.duplications(TABLE) == []  # refused: nothing left running
    assert list(dst.table(TABLE).scan()) == before  # and nothing changed on the follower

    # refused again (the first refusal left the evidence as it was), then accepted when asked
    with pytest.raises(pf.FollowerGapError) as again:
        src.add_duplication(TABLE, dst, with_checkpoint=False)
    assert again.value.missing_decrees == 12
    d = src.add_duplication(TABLE, dst, with_checkpoint=False, accept_gap=True)
    d.wait_for(pf.DupStatus.LOG, WAIT)
    t.set(b"after", b"s", b"3")
    wait_until(lambda: caught_up(d), WAIT, lambda: f"{d.progress()}")
    f = dst.table(TABLE)
    assert f.get(b"after", b"s") == b"3"
    assert f.get(b"gap0", b"s") is None  # the gap, accepted: those writes were never shipped


def test_readding_without_checkpoint_to_a_caught_up_follower_needs_no_accept_gap(
    open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    src = open_cluster_once(tmp_path / "src", name="src")
    dst = open_cluster_once(tmp_path / "dst", name="dst")
    t = _followed_then_removed(src, dst, 0)
    d = src.add_duplication(TABLE, dst, with_checkpoint=False)
    d.wait_for(pf.DupStatus.LOG, WAIT)
    t.set(b"after", b"s", b"3")
    wait_until(lambda: caught_up(d), WAIT, lambda: f"{d.progress()}")
    assert list(dst.table(TABLE).scan()) == list(t.scan())


def test_gap_refused_over_the_wire_and_from_the_cli(fleet: Fleet) -> None:
    src, dst = fleet.add("source"), fleet.add("target")
    src.launch()
    dst.launch()
    src.wait_ready()
    dst.wait_ready()
    with pf.connect(src.url, timeout=10.0) as rc:
        rc.create_table(TABLE, 2)
        t = rc.table(TABLE)
        t.set(b"a", b"s", b"1")
        d = rc.add_duplication(TABLE, dst.url)
        d.wait_for(pf.DupStatus.LOG, WAIT)
        wait_until(lambda: caught_up(d), WAIT, lambda: f"{d.progress()}")
        d.remove()
        for i in range(5):
            t.set(b"gap%d" % i, b"s", b"2")
        with pytest.raises(pf.FollowerGapError) as ei:
            rc.add_duplication(TABLE, dst.url, with_checkpoint=False)
        assert ei.value.missing_decrees == 5
        assert sum(n for _, n in ei.value.partitions) == 5
        assert rc.duplications(TABLE) == []

        out = run_cli("--connect", src.url, "add_dup", TABLE, dst.url, "--no-checkpoint", code=EXIT_ERROR)
        assert "FollowerGapError" in out
        run_cli("--connect", src.url, "add_dup", TABLE, dst.url, "--no-checkpoint", "--accept-gap")
        (d,) = rc.duplications(TABLE)
        t.set(b"after", b"s", b"3")
        wait_until(lambda: caught_up(d), WAIT, lambda: f"{d.progress()}")
        follower = scan_of(dst.url)
        assert follower[(b"after", b"s")] == b"3" and (b"gap0", b"s") not in follower
        listed = run_cli("--connect", src.url, "query_dup", TABLE)
        assert "stuck" in listed.splitlines()[0]


def test_gap_refused_for_a_multi_node_source(fleet: Fleet, zk_chroot: str) -> None:
    """Each node judges the partitions it owns; the client sums them, and nothing is left
    running. With accept_gap the re-added duplication ships from now on."""
    dst = fleet.add("target")
    dst.start()
    nodes = Nodes(fleet, zk_chroot)
    nodes.start("n1", "n2")
    with nodes.client() as c:
        t = c.create_table(TABLE, 4)
        for i in range(8):
            t.set(b"a%d" % i, b"s", b"1")
        d = c.add_duplication(TABLE, dst.url)
        d.wait_for(pf.DupStatus.LOG, WAIT)
        wait_until(lambda: caught_up(d), WAIT, lambda: f"{d.progress()}")
        d.remove()
        for i in range(6):
            t.set(b"gap%d" % i, b"s", b"2")
        with pytest.raises(pf.FollowerGapError) as ei:
            c.add_duplication(TABLE, dst.url, with_checkpoint=False)
        assert ei.value.missing_decrees == 6
        assert sum(n for _, n in ei.value.partitions) == 6
        wait_until(
            lambda: all(x.status == pf.DupStatus.REMOVED for x in c.duplications(TABLE)), WAIT, "removed"
        )
        d = c.add_duplication(TABLE, dst.url, with_checkpoint=False, accept_gap=True)
        d.wait_for(pf.DupStatus.LOG, WAIT)
        t.set(b"after", b"s", b"3")
        wait_until(lambda: caught_up(d), WAIT, lambda: f"{d.progress()}")
        follower = scan_of(dst.url)
        assert follower[(b"after", b"s")] == b"3" and (b"gap0", b"s") not in follower
