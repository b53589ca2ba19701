"""Partitions ship concurrently, each in its own order (duplication/lanes.py, issue #21 §5)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
from dupharness import wait_until
from pegasus_fast.duplication.lanes import ShipLanes
from pegasus_fast.errors import DuplicationGapError
from served import Fleet


class Work:
    """Batches queued per partition; ``ship`` takes one, checking that no partition is shipped
    by two workers at once and that each partition's batches go in the order queued."""

    def __init__(self, pidxs: list[int]) -> None:
        self.lock = threading.Lock()
        self.queued: dict[int, list[int]] = {p: [] for p in pidxs}
        self.shipped: dict[int, list[int]] = {p: [] for p in pidxs}
        self.inside: dict[int, int] = dict.fromkeys(pidxs, 0)
        self.overlaps = 0
        self.gates: dict[int, threading.Event] = {}

    def add(self, pidx: int, n: int) -> None:
        with self.lock:
            start = len(self.shipped[pidx]) + len(self.queued[pidx])
            self.queued[pidx].extend(range(start, start + n))

    def ship(self, pidx: int) -> bool:
        with self.lock:
            self.inside[pidx] += 1
            if self.inside[pidx] > 1:
                self.overlaps += 1
        try:
            gate = self.gates.get(pidx)
            if gate is not None:
                gate.wait(10)
            with self.lock:
                if not self.queued[pidx]:
                    return False
                self.shipped[pidx].append(self.queued[pidx].pop(0))
                return True
        finally:
            with self.lock:
                self.inside[pidx] -= 1

    def done(self) -> bool:
        with self.lock:
            return not any(self.queued.values())


def test_a_blocked_partition_holds_back_no_other_and_each_keeps_its_order() -> None:
    pidxs = list(range(6))
    work = Work(pidxs)
    work.gates[0] = threading.Event()
    for p in pidxs:
        work.add(p, 20)
    lanes = ShipLanes("t", pidxs, work.ship, lambda: None, workers=3)
    try:
        # partition 0 is stuck in its call; the other five ship everything meanwhile
        wait_until(lambda: all(not work.queued[p] for p in pidxs[1:]), 10, "the other partitions to ship")
        assert work.shipped[0] == []
        for p in pidxs[1:]:
            work.add(p, 5)
            lanes.wake(p)
        wait_until(lambda: all(not work.queued[p] for p in pidxs[1:]), 10, "the woken partitions to ship")
        work.gates[0].set()
        wait_until(work.done, 10, "partition 0 to ship once released")
    finally:
        assert lanes.close() is None
    assert work.overlaps == 0
    assert {p: work.shipped[p] for p in pidxs} == {0: list(range(20))} | {
        p: list(range(25)) for p in pidxs[1:]
    }


def test_a_wake_during_a_call_that_found_nothing_is_not_lost() -> None:
    """A write lands after the lane looked and before its call returned: it ships anyway."""
    entered, release = threading.Event(), threading.Event()
    queued: list[int] = []
    shipped: list[int] = []
    calls: list[int] = []

    def ship(pidx: int) -> bool:
        calls.append(pidx)
        if len(calls) == 1:
            entered.set()
            release.wait(10)
            return False  # it looked before the batch was queued
        if queued:
            shipped.append(queued.pop(0))
            return True
        return False

    lanes = ShipLanes("t", [0], ship, lambda: None, workers=1)
    try:
        assert entered.wait(10)
        queued.append(7)
        lanes.wake(0)
        release.set()
        wait_until(lambda: shipped == [7], 10, "the batch queued during the call")
    finally:
        assert lanes.close() is None


def test_a_failure_stops_every_lane_and_close_returns_it() -> None:
    failure = DuplicationGapError(5, 7)
    told = threading.Event()
    calls: list[int] = []

    def ship(pidx: int) -> bool:
        calls.append(pidx)
        if pidx == 2:
            raise failure
        return True  # always more to ship: only the failure stops the others

    lanes = ShipLanes("t", [0, 1, 2, 3], ship, told.set, workers=2)
    assert told.wait(10)
    assert lanes.close() is failure
    n = len(calls)
    lanes.wake_all()  # closed, its workers joined: nothing runs again
    assert len(calls) == n and not any(
        t.is_alive() for t in threading.enumerate() if t.name.startswith("t-ship")
    )


def test_a_stalled_follower_partition_holds_back_no_other(open_cluster_once: object, tmp_path: Path) -> None:
    """One follower partition cannot take its batch (its lock held): the other partitions'
    writes reach the follower meanwhile, and the stalled one arrives once it can."""
    src = open_cluster_once(tmp_path / "src", name="src")  # type: ignore[operator]
    dst = open_cluster_once(tmp_path / "dst", name="dst")  # type: ignore[operator]
    t = src.create_table("t", partition_count=4)
    d = src.add_duplication("t", dst)
    d.wait_for(pf.DupStatus.LOG, timeout=30)
    f = dst.table("t")
    keys: dict[int, bytes] = {}
    i = 0
    while len(keys) < 4:
        keys.setdefault(t.partition_index(b"k%d" % i), b"k%d" % i)
        i += 1
    stalled = f.partitions[0]
    stalled.open_now()
    with stalled.lock:
        t.set(keys[0], b"s", b"v")  # first: a driver shipping in partition order would wait on it
        for p in (1, 2, 3):
            t.set(keys[p], b"s", b"v")
        wait_until(lambda: all(f.get(keys[p], b"s") == b"v" for p in (1, 2, 3)), 10, "partitions 1-3")
        assert f.get(keys[0], b"s") is None
    wait_until(lambda: f.get(keys[0], b"s") == b"v", 10, "partition 0 once it can take it")


def test_kill9_of_the_follower_under_a_steady_stream_loses_and_repeats_nothing(
    open_cluster_once: object, tmp_path: Path, fleet: Fleet
) -> None:
    """Eight partitions ship concurrently while writes go on; the served follower is killed
    and restarted: every write lands, each source mutation once, in order per partition."""
    dst = fleet.add("dst")
    dst.start()
    src = open_cluster_once(tmp_path / "src", name="src")  # type: ignore[operator]
    t = src.create_table("t", partition_count=8)
    d = src.add_duplication("t", dst.url)
    d.wait_for(pf.DupStatus.LOG, timeout=30)
    stop = threading.Event()
    written: list[int] = []

    def write() -> None:
        i = 0
        while not stop.is_set():
            t.set(b"k%d" % i, b"s", b"%d" % i)
            written.append(i)
            i += 1
            time.sleep(0.0005)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        wait_until(lambda: min(p.confirmed_decree for p in d.progress()) >= 20, 30, "shipping under way")
        dst.kill9()
        time.sleep(0.2)  # writes go on while the follower is down
        dst.start()
        n = len(written)
        wait_until(lambda: len(written) >= n + 200, 30, "writes after the restart")
    finally:
        stop.set()
        writer.join()
    want = [s.last_committed_decree for s in t.partition_stats()]
    wait_until(lambda: [p.confirmed_decree for p in d.progress()] == want, 60, lambda: str(d.progress()))
    with pf.connect(dst.url) as c:
        ft = c.table("t")
        # one follower mutation per source mutation: none applied twice, none missing
        assert [s.last_committed_decree for s in ft.partition_stats()] == want
        values = ft.batch_get([(b"k%d" % i, b"s") for i in written])
        assert values == [b"%d" % i for i in written]
    assert d.error is None and d.status == pf.DupStatus.LOG


def test_served_masters_catch_up_over_streams_and_go_quiet(
    tmp_path: Path, default_backend: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two served masters, each with a backlog holding its peer's writes that came back: the
    backlogs go over apply streams (each batch applied while the one before is made durable),
    the writes that came back count as seen, never applied twice, and both sides converge
    and go quiet."""
    from pegasus_fast.net.follower import RemoteFollower

    streams: list[int] = []
    real = RemoteFollower.apply_stream

    def counting(self: RemoteFollower, table: str, pidx: int, batches: object) -> object:
        streams.append(pidx)
        return real(self, table, pidx, batches)  # type: ignore[arg-type]

    monkeypatch.setattr(RemoteFollower, "apply_stream", counting)
    cfg = {"duplicate_log_batch_bytes": 512}
    a = pf.Cluster.open(tmp_path / "a", name="a", config=pf.Config(cluster_id=1, **cfg))
    b = pf.Cluster.open(tmp_path / "b", name="b", config=pf.Config(cluster_id=2, **cfg))
    try:
        with pf.serve(a) as sa, pf.serve(b) as sb:
            ta = a.create_table("t", partition_count=2)
            tb = b.create_table("t", partition_count=2)
            ab = a.add_duplication("t", sb.url, with_checkpoint=False)
            ba = b.add_duplication("t", sa.url, with_checkpoint=False)
            ab.wait_for(pf.DupStatus.LOG, timeout=30)
            ba.wait_for(pf.DupStatus.LOG, timeout=30)
            for i in range(150):  # shipped at once: each side's WAL gets the other's writes
                ta.set(b"a%d" % i, b"s", b"%d" % i)
                tb.set(b"b%d" % i, b"s", b"%d" % i)
            wait_until(lambda: tb.get(b"a149", b"s") == b"149" and ta.get(b"b149", b"s") == b"149", 30, "")
            ab.pause()
            ba.pause()
            for i in range(300):  # a backlog on both sides, the same keys: conflicts
                ta.set(b"k%d" % (i % 40), b"s", b"a%d" % i)
                tb.set(b"k%d" % (i % 40), b"s", b"b%d" % i)
            ab.resume()
            ba.resume()

            def converged() -> bool:
                pend = [p.pending_mutations for d in (ab, ba) for p in d.progress()]
                return not any(pend) and raw(ta) == raw(tb)

            wait_until(converged, 60, lambda: str((ab.progress(), ba.progress())))
            assert streams
            before = [p.last_committed for t in (ta, tb) for p in t.partitions]
            time.sleep(0.5)
            assert [p.last_committed for t in (ta, tb) for p in t.partitions] == before
            assert raw(ta) == raw(tb)
            assert ab.error is None and ba.error is None
    finally:
        a.close()
        b.close()


def raw(t: pf.Table) -> dict[bytes, bytes]:
    """Every stored record with its value header (expire_ts, timetag): equal means same winners."""
    return {k: v for p in t.partitions for k, v in p.raw_view()}
