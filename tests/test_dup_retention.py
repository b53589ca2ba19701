"""WAL kept only for a duplication is capped (issue #9; Pegasus #2015: a long outage filled the disks).

The remote is "down" by closing the follower cluster (embedded duplication waits
for it to open again, as test_duplication_retries.py does). Past the cap, by bytes
or by age (the clock is injected, never slept on), the source frees the WAL, the
duplication says so in progress() and in metrics, keeps saying so across a
restart, and re-learns the partition from a fresh checkpoint when the remote
returns; the follower refuses the partition while it re-learns.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pegasus_fast as pf
import pytest
from dupharness import DupPair, caught_up, check_converged, wait_until
from pegasus_fast import fileio
from pegasus_fast.duplication import retention
from pegasus_fast.duplication.driver import RELEASED_REASON
from pegasus_fast.duplication.record import CkptState, DupRecord, PartitionCheckpoint
from pegasus_fast.duplication.status import DupStatus
from pegasus_fast.engine.local_follower import LocalFollower

TABLE = "t"
WAIT = 30.0
MIB = 1 << 20
VALUE = b"x" * (64 << 10)


def _source_config(**kw: Any) -> pf.Config:
    base: dict[str, Any] = dict(
        log_private_file_size_mb=1,  # WAL files rotate every MiB: a few MiB of writes make several
        small_partition_max_bytes=4096,
        dup_max_retained_wal_bytes=1 << 40,
        dup_max_retained_wal_seconds=1e9,
        gc_interval_ms=3_600_000,  # the tests run GC themselves
        checkpoint_interval_seconds=3600.0,
    )
    base.update(kw)
    return pf.Config(**base)


@pytest.fixture
def root(backend: ModuleType, tmp_path: Path) -> Path:
    return tmp_path


def _pair(root: Path, **kw: Any) -> DupPair:
    p = DupPair(root, _source_config(**kw), pf.Config())
    p.open_follower()
    p.open_source()
    return p


@pytest.fixture
def closing() -> Iterator[list[DupPair]]:
    pairs: list[DupPair] = []
    yield pairs
    for p in pairs:
        p.close()


def _write(table: pf.Table, n: int, tag: str) -> None:
    for i in range(n):
        table.set(f"h{i % 7}", f"{tag}{i:04d}", VALUE)


def _gc(cluster: pf.Cluster) -> None:
    """What maintenance does for a full WAL file: flush (so GC may free it), then GC."""
    for p in cluster.table(TABLE).partitions:
        p.flush()
        p.gc()


def _wal_files(cluster: pf.Cluster, pidx: int = 0) -> list[str]:
    return sorted(os.listdir(cluster.table(TABLE).partitions[pidx].wal.path))


def _metric(cluster: pf.Cluster, name: str, dupid: int, pidx: int = 0) -> float:
    return cluster.metrics().get(f'{name}{{dupid="{dupid}",pidx="{pidx}",table="{TABLE}"}}', 0.0)


def _start(pair: DupPair, partitions: int = 1) -> tuple[pf.Table, pf.Duplication]:
    assert pair.source is not None
    t = pair.source.create_table(TABLE, partition_count=partitions)
    _write(t, 3, "a")
    dup = pair.add_duplication(TABLE)
    dup.wait_for(DupStatus.LOG, timeout=WAIT)
    wait_until(lambda: caught_up(pair, TABLE), WAIT, lambda: f"catch-up: {dup.progress()}")
    return t, dup


def _released(dup: pf.Duplication, pidx: int = 0) -> bool:
    return dup.progress()[pidx].checkpoint_state == CkptState.RELEASED.value


def _converge(pair: DupPair, dup: pf.Duplication) -> None:
    wait_until(
        lambda: dup.status == DupStatus.LOG and caught_up(pair, TABLE),
        WAIT,
        lambda: f"catch-up: {dup.status} {dup.progress()}",
    )
    assert dup.error is None
    check_converged(pair, TABLE)
    assert pair.source is not None and pair.follower is not None
    assert list(pair.source.table(TABLE).scan()) == list(pair.follower.table(TABLE).scan())


@pytest.mark.parametrize("policy", ["adaptive", "legacy"])
def test_past_the_byte_cap_the_wal_is_freed_and_the_partition_relearns(
    root: Path, closing: list[DupPair], policy: str
) -> None:
    # legacy: the re-learn must not take the older checkpoint the first APP left behind
    pair = _pair(
        root,
        dup_max_retained_wal_bytes=MIB + MIB // 2,
        checkpoint_policy=policy,
        legacy_forced_checkpoint_delay_seconds=0.0,
    )
    closing.append(pair)
    t, dup = _start(pair)
    src = pair.source
    assert src is not None
    pair.close_follower()  # the remote goes down
    _write(t, 60, "b")  # ~4 MiB: past the cap
    t.delete("h0", "a0000")
    _gc(src)
    wait_until(lambda: _released(dup), WAIT, lambda: f"release: {dup.progress()}")
    held = len(_wal_files(src))
    _gc(src)  # the release is durable: GC frees that WAL now
    assert len(_wal_files(src)) < held
    assert src.table(TABLE).partitions[0].wal.total_bytes() <= 2 * MIB
    prog = dup.progress()[0]
    assert prog.reason.startswith(RELEASED_REASON)
    assert dup.status == DupStatus.LOG  # nothing else changes while the remote is down
    assert _metric(src, "dup_relearn_required", dup.dupid) == 1
    assert _metric(src, "dup_wal_released_total", dup.dupid) == 1
    assert _metric(src, "dup_retained_wal_bytes", dup.dupid) == 0
    _write(t, 5, "c")  # more writes after the gap

    pair.open_follower()  # the remote returns: a fresh checkpoint, then shipping again
    _converge(pair, dup)
    assert "DS_APP" in [s for s, _ in dup.timeline[3:]]  # LOG -> APP -> LOG
    assert not _released(dup)
    assert _metric(src, "dup_relearn_required", dup.dupid) == 0
    assert _metric(src, "dup_wal_released_total", dup.dupid) == 1
    _write(t, 3, "d")  # and it ships from the fresh checkpoint on
    _converge(pair, dup)


def test_past_the_age_cap_the_wal_is_freed(
    root: Path, closing: list[DupPair], monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = _pair(root, dup_max_retained_wal_seconds=3600.0)
    closing.append(pair)
    t, dup = _start(pair)
    src = pair.source
    assert src is not None
    pair.close_follower()
    _write(t, 40, "b")  # ~2.5 MiB: far under the byte cap
    _gc(src)
    held = _wal_files(src)
    assert len(held) >= 3
    time.sleep(0.05)  # let a wake (there is none to come) reach the driver
    assert not _released(dup)  # young: kept
    later = time.time() + 7200.0
    monkeypatch.setattr(retention, "clock", lambda: later)
    _gc(src)
    wait_until(lambda: _released(dup), WAIT, lambda: f"release: {dup.progress()}")
    _gc(src)
    assert len(_wal_files(src)) < len(held)
    assert _metric(src, "dup_wal_released_total", dup.dupid) == 1
    pair.open_follower()
    _converge(pair, dup)


def test_under_the_cap_nothing_changes(root: Path, closing: list[DupPair]) -> None:
    pair = _pair(root, dup_max_retained_wal_bytes=64 * MIB)
    closing.append(pair)
    t, dup = _start(pair)
    src = pair.source
    assert src is not None
    pair.close_follower()
    _write(t, 60, "b")
    _gc(src)
    held = _wal_files(src)
    assert len(held) >= 4
    _gc(src)
    assert _wal_files(src) == held  # every file the follower has not confirmed stays
    assert not _released(dup)
    assert _metric(src, "dup_retained_wal_bytes", dup.dupid) > 2 * MIB
    assert _metric(src, "dup_wal_released_total", dup.dupid) == 0
    pair.open_follower()
    _converge(pair, dup)
    assert [s for s, _ in dup.timeline].count("DS_APP") == 1  # shipped, never re-learned


def test_released_state_survives_a_source_restart(root: Path, closing: list[DupPair]) -> None:
    pair = _pair(root, dup_max_retained_wal_bytes=MIB)
    closing.append(pair)
    t, dup = _start(pair, partitions=2)
    src = pair.source
    assert src is not None
    pair.close_follower()
    _write(t, 120, "b")
    _gc(src)
    wait_until(lambda: _released(dup, 0) and _released(dup, 1), WAIT, lambda: f"{dup.progress()}")
    dupid = dup.dupid
    src = pair.restart_source()
    dup = src.duplication(dupid)
    assert _released(dup, 0) and _released(dup, 1)
    assert dup.progress()[1].reason.startswith(RELEASED_REASON)
    assert _metric(src, "dup_relearn_required", dupid, 1) == 1
    t = src.table(TABLE)
    held = len(_wal_files(src))
    _gc(src)  # reopened, the released partitions still pin nothing
    assert len(_wal_files(src)) < held
    _write(t, 4, "c")
    pair.open_follower()
    _converge(pair, dup)
    assert [s for s, _ in dup.timeline][-2:] == ["DS_APP", "DS_LOG"]


def test_the_follower_refuses_a_partition_while_it_relearns(
    root: Path, closing: list[DupPair], monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = _pair(root, dup_max_retained_wal_bytes=MIB, small_partition_max_bytes=1 << 30)
    closing.append(pair)
    t, dup = _start(pair, partitions=2)
    src = pair.source
    assert src is not None
    # partition 1 gets no more writes and stays learned; partition 0 goes past the cap
    keys0 = [k for k in (f"k{i}" for i in range(50)) if t.partition_of(k).pidx == 0][:1]
    pair.close_follower()
    for i in range(60):
        t.set(keys0[0], f"s{i:03d}", VALUE)
    _gc(src)
    wait_until(lambda: _released(dup, 0), WAIT, lambda: f"{dup.progress()}")
    assert not _released(dup, 1)

    learning = threading.Event()
    go_on = threading.Event()
    real = LocalFollower.learn_snapshot

    def held_snapshot(self: LocalFollower, *args: Any) -> None:
        learning.set()
        assert go_on.wait(WAIT)
        real(self, *args)

    monkeypatch.setattr(LocalFollower, "learn_snapshot", held_snapshot)
    f = pair.open_follower()
    wait_until(learning.is_set, WAIT, "the re-learn to start")
    ft = f.table(TABLE)
    with pytest.raises(pf.PartitionUnavailableError) as err:
        ft.get(keys0[0], "a")
    assert err.value.args  # typed; the partition is refused, not served with its gap
    with pytest.raises(pf.PartitionUnavailableError):
        list(ft.partitions[0].iter_records())
    assert ft.partitions[1].state == "serving"
    go_on.set()
    _converge(pair, dup)


def test_restart_learning_is_durable_and_idempotent(root: Path, closing: list[DupPair]) -> None:
    """The port call the source makes before re-learning: refused at once, and after a restart."""
    pair = _pair(root)
    closing.append(pair)
    _t, dup = _start(pair, partitions=2)
    assert pair.follower is not None
    dup.pause()
    port = LocalFollower(pair.follower)
    port.restart_learning(TABLE, [1])
    port.restart_learning(TABLE, [1])
    assert port.partition_status(TABLE, 1) == (False, 0)
    with pytest.raises(pf.PartitionUnavailableError):
        pair.follower.table(TABLE).partitions[1].get(b"x")
    f = pair.restart_follower()
    assert [p.state for p in f.table(TABLE).partitions] == ["serving", "learning"]
    assert LocalFollower(f).partition_status(TABLE, 1) == (False, 0)


def test_a_duplication_without_checkpoint_stops_typed_when_released(
    root: Path, closing: list[DupPair]
) -> None:
    pair = _pair(root, dup_max_retained_wal_bytes=MIB)
    closing.append(pair)
    assert pair.source is not None
    t = pair.source.create_table(TABLE, partition_count=1)
    dup = pair.add_duplication(TABLE, with_checkpoint=False)
    dup.wait_for(DupStatus.LOG, timeout=WAIT)
    pair.close_follower()
    _write(t, 60, "b")
    _gc(pair.source)
    wait_until(lambda: _released(dup), WAIT, lambda: f"{dup.progress()}")
    # it says so, and not that it re-learns (issue #21 §4)
    assert dup.stuck_reason == "retention cap passed, cannot re-learn without checkpoint"
    pair.open_follower()
    with pytest.raises(pf.DuplicationError):
        dup.wait_for(DupStatus.PAUSE, timeout=WAIT)
    assert isinstance(dup.error, pf.DuplicationWalReleasedError)
    assert dup.error.pidxs == [0]
    assert dup.error.dupid == dup.dupid


def test_released_state_round_trips_and_old_records_read() -> None:
    c = PartitionCheckpoint(kind="small", decree=7, state=CkptState.RELEASED, confirmed=5)
    assert PartitionCheckpoint.from_json(c.to_json()) == c
    assert c.describe() == "released"
    rec = DupRecord(
        table="t",
        remote="/r",
        remote_name="r",
        remote_table="t",
        fail_mode="slow",
        with_checkpoint=True,
        create_time=1.0,
        status=DupStatus.LOG,
        timeline=(),
        partitions=(c, PartitionCheckpoint(state=CkptState.LEARNED)),
    )
    assert DupRecord.from_json(rec.to_json()) == rec
    old = {"kind": "small", "decree": 7, "state": "learned", "confirmed": 5}  # no newer fields
    assert PartitionCheckpoint.from_json(old).state is CkptState.LEARNED


def test_config_knobs_are_checked() -> None:
    for name in ("dup_max_retained_wal_bytes", "dup_max_retained_wal_seconds"):
        with pytest.raises(pf.InvalidArgumentError):
            pf.Config(**{name: 0})
    with pytest.raises(pf.InvalidTypeError):
        pf.Config(dup_max_retained_wal_bytes=1.5)  # type: ignore[arg-type]
    assert pf.Config().dup_max_retained_wal_bytes == 10 << 30
    assert pf.Config().dup_max_retained_wal_seconds == 86400.0


def test_a_source_restart_mid_relearn_learns_a_fresh_checkpoint_again(
    root: Path, closing: list[DupPair], monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = _pair(root, dup_max_retained_wal_bytes=MIB, small_partition_max_bytes=1 << 30)
    closing.append(pair)
    t, dup = _start(pair)
    src = pair.source
    assert src is not None
    pair.close_follower()
    _write(t, 60, "b")
    _gc(src)
    wait_until(lambda: _released(dup), WAIT, lambda: f"{dup.progress()}")
    learning = threading.Event()
    go_on = threading.Event()

    def cut_snapshot(self: LocalFollower, *args: Any) -> None:
        learning.set()
        assert go_on.wait(WAIT)
        raise pf.RemoteUnavailableError(self.cluster.path, "cut mid-learn")

    with monkeypatch.context() as m:
        m.setattr(LocalFollower, "learn_snapshot", cut_snapshot)
        pair.open_follower()
        wait_until(learning.is_set, WAIT, "the re-learn to start")
        assert dup.status == DupStatus.APP
        closer = threading.Thread(target=pair.close_source)
        closer.start()
        go_on.set()
        closer.join()
    f = pair.restart_follower()
    assert f.table(TABLE).partitions[0].state == "learning"  # durable: never serves the gap
    with pytest.raises(pf.PartitionUnavailableError):
        f.table(TABLE).get("h0", "a0000")
    src = pair.open_source()
    dup = src.duplication(dup.dupid)
    _write(src.table(TABLE), 3, "c")
    _converge(pair, dup)


def test_the_cap_applies_to_a_paused_duplication_and_resume_relearns(
    root: Path, closing: list[DupPair]
) -> None:
    pair = _pair(root, dup_max_retained_wal_bytes=MIB)
    closing.append(pair)
    t, dup = _start(pair)
    src = pair.source
    assert src is not None
    dup.pause()  # the remote stays up; a forgotten pause must not fill the disk either
    _write(t, 60, "b")
    _gc(src)
    wait_until(lambda: _released(dup), WAIT, lambda: f"{dup.progress()}")
    assert dup.status == DupStatus.PAUSE
    held = len(_wal_files(src))
    _gc(src)
    assert len(_wal_files(src)) < held
    assert pair.follower is not None
    assert pair.follower.table(TABLE).partitions[0].state == "serving"  # the stale prefix, no gap
    dup.resume()
    _converge(pair, dup)
    assert _metric(src, "dup_wal_released_total", dup.dupid) == 1


def test_a_failed_duplication_does_not_pin_the_wal_past_the_cap(root: Path, closing: list[DupPair]) -> None:
    pair = DupPair(
        root, _source_config(dup_max_retained_wal_bytes=MIB, cluster_id=9), pf.Config(cluster_id=9)
    )
    closing.append(pair)
    src = pair.open_source()
    t = src.create_table(TABLE, partition_count=1)
    dup = src.add_duplication(TABLE, str(pair.follower_dir))  # by path: checked once it opens
    pair.open_follower()
    with pytest.raises(pf.DuplicationError):
        dup.wait_for(DupStatus.LOG, timeout=WAIT)  # same cluster id: stopped for good
    assert dup.error is not None
    _write(t, 60, "b")
    held = len(_wal_files(src))
    _gc(src)  # no driver thread: GC records the release itself, then frees
    assert _released(dup)
    assert len(_wal_files(src)) < held
    assert _metric(src, "dup_wal_released_total", dup.dupid) == 1


def test_a_release_that_cannot_be_recorded_frees_nothing(root: Path, closing: list[DupPair]) -> None:
    pair = _pair(root, dup_max_retained_wal_bytes=MIB)
    closing.append(pair)
    t, dup = _start(pair)
    src = pair.source
    assert src is not None
    pair.close_follower()
    _write(t, 60, "b")
    journal = os.sep + "meta" + os.sep
    held = _wal_files(src)
    with fileio.faults([fileio.Fault("fdatasync", 1, path_part=journal)]) as plan:
        _gc(src)
        wait_until(lambda: bool(plan.fired), WAIT, "the release's journal write")
        _gc(src)
        assert _wal_files(src) == held  # not durable, so not freed
    wait_until(lambda: _released(dup), WAIT, lambda: f"release: {dup.progress()}")  # asked again
    _gc(src)
    assert len(_wal_files(src)) < len(held)
    pair.open_follower()
    _converge(pair, dup)
