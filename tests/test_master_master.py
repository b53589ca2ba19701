"""Duplication without checkpoint into a table that already exists, and two clusters as masters
(Pegasus's original workflow): both directions at once converge, a write that arrived by
duplication is never shipped back, and the decrees stop moving once the writes stop."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pegasus_fast as pf
import pytest
from dupharness import wait_until

WAIT = 10.0


def raw(t: pf.Table) -> dict[bytes, bytes]:
    """Every stored record with its value header (expire_ts, timetag): equal means same winners."""
    return {k: v for p in t.partitions for k, v in p.raw_view()}


def decrees(*tables: pf.Table) -> list[int]:
    return [p.last_committed for t in tables for p in t.partitions]


@pytest.fixture
def two(tmp_path: Path, backend: Any) -> Iterator[tuple[pf.Cluster, pf.Cluster]]:
    a = pf.Cluster.open(tmp_path / "a", name="a", config=pf.Config(cluster_id=1))
    b = pf.Cluster.open(tmp_path / "b", name="b", config=pf.Config(cluster_id=2))
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def caught_up(dup: pf.Duplication) -> bool:
    return all(p.pending_mutations == 0 for p in dup.progress())


def test_without_checkpoint_into_an_existing_table(two: tuple[pf.Cluster, pf.Cluster]) -> None:
    a, b = two
    ta = a.create_table("t", partition_count=4)
    tb = b.create_table("t", partition_count=4)
    ta.set("before", "s", "only on a")
    tb.set("mine", "s", "b keeps it")
    dup = a.add_duplication("t", b, with_checkpoint=False)
    dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    assert tb.health().is_fully_healthy, "an adopted table keeps serving"
    ta.set("after", "s", "shipped")
    ta.delete("before", "s")
    wait_until(lambda: tb.get("after", "s") == b"shipped", WAIT, "the new write on b")
    assert tb.get("mine", "s") == b"b keeps it"
    assert tb.get("before", "s") is None  # never shipped: it predates the duplication
    # restart both sides: the duplication resumes where it stood
    dupid = dup.dupid
    a_path, b_path = a.path, b.path
    a.close()
    b.close()
    a, b = pf.Cluster.open(a_path), pf.Cluster.open(b_path)
    try:
        a.table("t").set("again", "s", "after restart")
        wait_until(lambda: b.table("t").get("again", "s") == b"after restart", WAIT, "a write after restart")
        assert a.duplication(dupid).status == pf.DupStatus.LOG
    finally:
        a.close()
        b.close()


def test_two_masters_converge_and_go_quiet(two: tuple[pf.Cluster, pf.Cluster]) -> None:
    a, b = two
    ta = a.create_table("t", partition_count=4)
    tb = b.create_table("t", partition_count=4)
    ab = a.add_duplication("t", b, with_checkpoint=False)
    ba = b.add_duplication("t", a, with_checkpoint=False)
    ab.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    ba.wait_for(pf.DupStatus.LOG, timeout=WAIT)

    keys = [f"k{i}" for i in range(40)]
    local_writes = {"a": 0, "b": 0}

    def writer(name: str, t: pf.Table, seed: int) -> None:
        rng = random.Random(seed)
        for i in range(300):
            k = rng.choice(keys)
            r = rng.random()
            if r < 0.15:
                t.delete(k, "s")
            elif r < 0.25:
                t.multi_set(k + "-m", {"x": f"{name}{i}", "y": f"{name}{i}"})
            else:
                t.set(k, "s", f"{name}{i}")  # the same keys on both sides: conflicts
            local_writes[name] += 1

    threads = [
        threading.Thread(target=writer, args=("a", ta, 1)),
        threading.Thread(target=writer, args=("b", tb, 2)),
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()

    wait_until(lambda: caught_up(ab) and caught_up(ba) and raw(ta) == raw(tb), WAIT, "both sides to converge")
    assert {k: v for k, v in raw(ta).items()} == raw(tb)
    # quiet: nothing moves any more (no write ping-pongs between the two)
    before = decrees(ta, tb)
    time.sleep(0.5)
    assert decrees(ta, tb) == before
    assert raw(ta) == raw(tb)
    # a write that arrived by duplication is never shipped back: each side shipped only its own
    shipped_ab = sum(v for k, v in a.metrics().items() if k.startswith("dup_shipped_mutations_total"))
    shipped_ba = sum(v for k, v in b.metrics().items() if k.startswith("dup_shipped_mutations_total"))
    # (plus, per partition, the one bookkeeping mutation that set where the peer's shipping starts)
    assert local_writes["a"] <= shipped_ab <= local_writes["a"] + ta.partition_count
    assert local_writes["b"] <= shipped_ba <= local_writes["b"] + tb.partition_count


def test_refusals_that_protect_a_table(two: tuple[pf.Cluster, pf.Cluster], tmp_path: Path) -> None:
    a, b = two
    ta = a.create_table("t", partition_count=4)
    ta.set("k", "s", "v")
    tb = b.create_table("t", partition_count=4)
    tb.set("theirs", "s", "keep")
    # a checkpoint would replace what the table holds
    dup = a.add_duplication("t", b, with_checkpoint=True, fail_mode="fast")
    with pytest.raises(pf.DuplicationError):
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    assert tb.get("theirs", "s") == b"keep" and tb.health().is_fully_healthy
    dup.remove()
    # another partition count: with a checkpoint, refused (files cannot be re-routed)
    b.create_table("t8", partition_count=8).set("theirs", "s", "keep")
    dup = a.add_duplication("t", b, remote_table="t8", with_checkpoint=True, fail_mode="fast")
    with pytest.raises(pf.DuplicationError):
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    dup.remove()
    # a table that another source's duplication owns
    with pf.Cluster.open(tmp_path / "c", name="c", config=pf.Config(cluster_id=3)) as c:
        tc = c.create_table("t", partition_count=4)
        tc.set("c", "s", "c")
        owner = a.add_duplication("t", b, with_checkpoint=False)
        owner.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        other = c.add_duplication("t", b, with_checkpoint=False, fail_mode="fast")
        with pytest.raises(pf.DuplicationError):
            other.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        ta.set("still", "s", "flows")
        wait_until(lambda: tb.get("still", "s") == b"flows", WAIT, "the owner's duplication to go on")
        assert tb.get("c", "s") is None


def logical(t: pf.Table) -> dict[tuple[bytes, bytes], bytes]:
    return {(hk, sk): v for hk, sk, v in t.scan()}


def test_another_partition_count_reroutes_each_key(two: tuple[pf.Cluster, pf.Cluster]) -> None:
    """Into a table of another partition count (no checkpoint), every key lands in the
    partition Pegasus's hash gives it there, as a Pegasus client would have sent it."""
    a, b = two
    ta = a.create_table("t", partition_count=4)
    tb = b.create_table("t", partition_count=8)
    tb.set("mine", "s", "kept")
    dup = a.add_duplication("t", b, with_checkpoint=False)
    dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    for i in range(200):
        ta.set(f"k{i}", "s", f"v{i}")
    ta.multi_set("multi", {"x": "1", "y": "2"})
    ta.multi_delete("multi", ["x"])
    for i in range(0, 200, 7):
        ta.delete(f"k{i}", "s")
    want = logical(ta) | {(b"mine", b"s"): b"kept"}
    wait_until(lambda: caught_up(dup) and logical(tb) == want, WAIT, "the re-routed follower to catch up")
    for p in tb.partitions:
        for hk, sk, _v in p.iter_records():
            assert tb.partition_index(hk, sk) == p.pidx
    # a restart of both sides resumes from each source partition's recorded progress
    a_path, b_path = a.path, b.path
    a.close()
    b.close()
    a2, b2 = pf.Cluster.open(a_path), pf.Cluster.open(b_path)
    try:
        a2.table("t").set("after", "s", "restart")
        wait_until(lambda: b2.table("t").get("after", "s") == b"restart", WAIT, "a write after the restart")
        wait_until(
            lambda: logical(b2.table("t")) == logical(a2.table("t")) | {(b"mine", b"s"): b"kept"},
            WAIT,
            "the same contents after restart",
        )
    finally:
        a2.close()
        b2.close()


def test_two_masters_of_different_partition_counts_converge(two: tuple[pf.Cluster, pf.Cluster]) -> None:
    a, b = two
    ta = a.create_table("t", partition_count=4)
    tb = b.create_table("t", partition_count=6)
    ab = a.add_duplication("t", b, with_checkpoint=False)
    ba = b.add_duplication("t", a, with_checkpoint=False)
    ab.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    ba.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    rng = random.Random(5)
    for i in range(300):
        t = ta if rng.random() < 0.5 else tb
        k = f"k{rng.randrange(30)}"
        if rng.random() < 0.2:
            t.delete(k, "s")
        else:
            t.set(k, "s", f"{i}")
    wait_until(
        lambda: caught_up(ab) and caught_up(ba) and logical(ta) == logical(tb), WAIT, "both sides to converge"
    )
    before = decrees(ta, tb)
    time.sleep(0.5)
    assert decrees(ta, tb) == before
    assert logical(ta) == logical(tb)
