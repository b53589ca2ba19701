"""Regression tests for what the duplication fault walk and the stateful model found.

Each failed before its fix (see the commit that added it):
- a pause saved while the driver persisted confirmed decrees was overwritten (a paused
  duplication came back shipping after a restart);
- a retried APP learned a partition while the failed try still copied into it (the
  follower ended with a source decree and none of the checkpoint's records);
- a follower partition failed by an earlier learning try, or a fenced follower journal,
  stopped a slow duplication for good instead of waiting for the follower's reopen.
"""

from __future__ import annotations

import dataclasses
import errno
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
from pegasus_fast.duplication.ports import SourceId
from pegasus_fast.engine.local_follower import LocalFollower
from pegasus_fast.fileio import Fault

TABLE = "t"
WAIT = 20.0


@pytest.fixture
def pair(default_backend: ModuleType, tmp_path: Path) -> Iterator[DupPair]:
    p = DupPair(tmp_path, pf.Config(small_partition_max_bytes=4096), pf.Config())
    p.open_follower()
    p.open_source()
    try:
        yield p
    finally:
        p.close()


def _fill(table: pf.Table, large: bool) -> None:
    for h in range(20 if large else 1):
        table.multi_set(f"h{h}", {f"{s:03d}": f"v{h}.{s}" for s in range(100 if large else 1)})


def _converge(pair: DupPair, dup: pf.Duplication) -> None:
    dup.wake()
    dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    wait_until(lambda: caught_up(pair, TABLE), WAIT, lambda: f"catch-up: {dup.progress()}")
    assert dup.error is None
    check_converged(pair, TABLE)


def test_pause_is_not_overwritten_by_a_confirmed_decree_save(pair: DupPair) -> None:
    assert pair.source is not None
    t = pair.source.create_table(TABLE, partition_count=1)
    dup = pair.add_duplication(TABLE)
    dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    saving = threading.Event()
    real_save = dup._env.save

    def slow_save(dupid: int, record: Any) -> None:
        if threading.current_thread().name.startswith("dup-") and not saving.is_set():
            saving.set()  # the driver persists confirmed decrees: the pause comes in meanwhile
            time.sleep(0.3)
        real_save(dupid, record)

    dup._env = dataclasses.replace(dup._env, save=slow_save)
    t.set("k", "s", "v")
    wait_until(saving.is_set, WAIT, "the driver to persist its confirmed decree")
    dup.pause()
    assert dup.status == pf.DupStatus.PAUSE
    src = pair.restart_source()
    assert src.duplication(dup.dupid).status == pf.DupStatus.PAUSE


def test_retried_app_waits_for_every_copy_of_the_failed_try(
    pair: DupPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert pair.source is not None
    t = pair.source.create_table(TABLE, partition_count=2)
    _fill(t, large=True)
    active: dict[int, int] = {}
    overlaps: list[int] = []
    lock = threading.Lock()
    real = LocalFollower.learn_checkpoint

    def watched(self: LocalFollower, table: str, pidx: int, *args: Any) -> None:
        with lock:
            active[pidx] = active.get(pidx, 0) + 1
            if active[pidx] > 1:
                overlaps.append(pidx)
        try:
            if pidx == 1:
                time.sleep(0.3)  # a long copy, still going when partition 0's try has failed
            real(self, table, pidx, *args)
        finally:
            with lock:
                active[pidx] -= 1

    monkeypatch.setattr(LocalFollower, "learn_checkpoint", watched)
    fault = Fault("mkdir", 1, errno.ENOSPC, path_part=f"{pair.follower_part}tables/1.0/learn")
    with fileio.faults([fault]) as plan:
        dup = pair.add_duplication(TABLE)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    assert plan.fired
    assert overlaps == [], "a partition learned twice at once"
    _converge(pair, dup)


def test_partition_failed_by_a_learning_try_waits_for_the_follower_reopen(pair: DupPair) -> None:
    assert pair.source is not None
    t = pair.source.create_table(TABLE, partition_count=1)
    _fill(t, large=False)  # small: a snapshot into the follower's WAL, which fails its fsync
    fault = Fault("fdatasync", 1, errno.EIO, path_part=f"{pair.follower_part}tables/1.0/wal/")
    with fileio.faults([fault]) as plan:
        dup = pair.add_duplication(TABLE)
        wait_until(lambda: bool(plan.fired), WAIT, "the fault")
    wait_until(lambda: pair.follower_states(TABLE) == ["failed"], WAIT, "the follower partition to fail")
    wait_until(lambda: any(p.reason for p in dup.progress()), WAIT, "a reason")
    assert dup.error is None  # waiting, not stopped
    pair.restart_follower()
    _converge(pair, dup)


def test_fenced_follower_journal_waits_for_the_follower_reopen(pair: DupPair) -> None:
    assert pair.source is not None
    t = pair.source.create_table(TABLE, partition_count=2)
    _fill(t, large=False)
    journal = f"{pair.follower_part}meta/journal"
    # the append's fdatasync fails, and so does the one after cutting it back: fenced
    plan = [
        Fault("fdatasync", 1, errno.EIO, path_part=journal),
        Fault("fdatasync", 2, errno.EIO, path_part=journal),
    ]
    with fileio.faults(plan) as faults:
        dup = pair.add_duplication(TABLE)
        wait_until(lambda: len(faults.fired) == 2, WAIT, "both faults")
    wait_until(lambda: any(p.reason for p in dup.progress()), WAIT, "a reason")
    time.sleep(0.2)  # the driver has retried at least once by now (backoff starts at 50 ms)
    assert dup.error is None  # waiting for the reopen, not stopped
    pair.restart_follower()
    _converge(pair, dup)


def test_a_follower_closed_under_a_call_is_unavailable_not_a_permanent_error(pair: DupPair) -> None:
    """Closing the follower while the driver calls it once stopped a slow duplication for good
    (ClosedError is PERMANENT); it must read as the remote being away (TRANSIENT)."""
    assert pair.follower is not None and pair.source is not None
    follower = LocalFollower(pair.follower)
    source = SourceId("source", pair.source.info().uid, TABLE, 1)
    pair.close_follower()
    calls = [
        lambda: follower.ensure_table(TABLE, 1, source, True),
        lambda: follower.mark_learned(TABLE, [0]),
        lambda: follower.partition_status(TABLE, 0),
    ]
    for call in calls:
        with pytest.raises(pf.RemoteUnavailableError):
            call()
