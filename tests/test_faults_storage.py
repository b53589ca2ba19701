"""A standing fault walk over the storage layer (RocksDB's FaultInjectionTestFS, db_stress style).

Each action runs once under an empty ``fileio.faults()`` plan to count the
file operations it makes; then, for every one of those calls and every way
it can fail (EIO, ENOSPC, and for writes a short write that stores part of
the buffer), the action runs again from a fresh copy of the same cluster
with that one fault. A write follows without faults, then the cluster is
closed (a crash: RocksDB's memtables dropped, as ``kill -9`` drops them, or a
clean close) and reopened without faults, and checked against a model:

- everything acknowledged is there, byte for byte;
- an action that failed is wholly there or wholly absent, never half;
- the error it raised is typed (``OSError`` for I/O, else a pegasus_fast error).
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pegasus_fast as pf
import pytest
from pegasus_fast import fileio
from pegasus_fast.fileio import Fault
from pegasus_fast.storage import checkpoint as ckpt

Model = dict[tuple[bytes, bytes], bytes]
#: quiet background work: only the action under test makes file calls
QUIET = {"gc_interval_ms": 3_600_000, "checkpoint_interval_seconds": 3600.0}
BIG = b"v" * (190 << 10)


@dataclass
class Scenario:
    name: str
    config: dict[str, Any]
    prepare: Callable[[pf.Table], None]
    action: Callable[[pf.Cluster], None]
    #: the records the action writes (all there once it is acknowledged; all or none if not)
    effect: Model
    check: Callable[[pf.Cluster], None] = lambda cluster: None


@dataclass
class Tally:
    points: int = 0
    survived: int = 0
    lost: int = 0
    failures: list[str] = field(default_factory=list)


def contents(table: pf.Table) -> Model:
    return {(hk, sk): v for hk, sk, v in table.scan()}


def _prepare_small(table: pf.Table) -> None:
    for i in range(3):
        table.set(b"base%d" % i, b"s", b"v%d" % i)


def _prepare_full_wal(table: pf.Table) -> None:
    # 5 x 190 KiB in a 1 MiB log file: the next big value rotates it
    for i in range(5):
        table.set(b"big%d" % i, b"s", BIG)


MULTI = {b"a": b"1", b"b": b"2", b"c": b"3"}


def _set(cluster: pf.Cluster) -> None:
    cluster.table("t").set(b"new", b"s", b"value")


def _multi_set(cluster: pf.Cluster) -> None:
    cluster.table("t").multi_set(b"multi", MULTI)


def _rotate(cluster: pf.Cluster) -> None:
    table = cluster.table("t")
    files = len(table.partitions[0].wal.files)
    table.set(b"rotating", b"s", BIG)
    assert len(table.partitions[0].wal.files) == files + 1  # it did rotate


def _checkpoint(cluster: pf.Cluster) -> None:
    cluster.table("t").checkpoint()


def _next_checkpoint_is_whole(cluster: pf.Cluster) -> None:
    # whatever a failed checkpoint left behind, the next one succeeds and verifies
    (info,) = cluster.table("t").checkpoint()
    assert ckpt.verify(info.path) == list(info.manifest)


def _create_table(cluster: pf.Cluster) -> None:
    cluster.create_table("u", partition_count=2)


def _new_table_is_usable(cluster: pf.Cluster) -> None:
    # a crash while a table was made never reads as lost data: it is there and usable, or not there
    if cluster.has_table("u"):
        u = cluster.table("u")
        u.set(b"k", b"", b"v")
        assert u.get(b"k", b"") == b"v"


SET = {(b"new", b"s"): b"value"}
SCENARIOS = [
    Scenario("set-always", {"wal_sync": "always"}, _prepare_small, _set, SET),
    Scenario("set-group", {"wal_sync": "group"}, _prepare_small, _set, SET),
    Scenario("set-none", {"wal_sync": "none"}, _prepare_small, _set, SET),
    Scenario(
        "multi_set",
        {"wal_sync": "group"},
        _prepare_small,
        _multi_set,
        {(b"multi", k): v for k, v in MULTI.items()},
    ),
    Scenario(
        "rotation",
        {"wal_sync": "always", "log_private_file_size_mb": 1},
        _prepare_full_wal,
        _rotate,
        {(b"rotating", b"s"): BIG},
    ),
    Scenario("checkpoint", {"wal_sync": "group"}, _prepare_small, _checkpoint, {}, _next_checkpoint_is_whole),
    Scenario("create_table", {"wal_sync": "group"}, _prepare_small, _create_table, {}, _new_table_is_usable),
]


def _kinds(op: str) -> list[Fault]:
    kinds = [Fault(op, 0, errno.EIO), Fault(op, 0, errno.ENOSPC)]
    if op == "write":
        kinds.append(Fault(op, 0, errno.ENOSPC, short=7))
    return kinds


def _typed(exc: BaseException) -> bool:
    return isinstance(exc, (OSError, pf.PegasusFastError))


def _run(template: Path, root: Path, sc: Scenario, plan: list[Fault], crash: bool, tally: Tally) -> None:
    config = pf.Config(**QUIET, **sc.config)
    shutil.copytree(template, root)
    c = pf.Cluster.open(root, config=config)
    t = c.table("t")
    expected = contents(t)
    failed = False
    with fileio.faults(plan) as active:
        try:
            sc.action(c)
        except Exception as exc:  # noqa: BLE001 - every failure is judged below
            assert _typed(exc), f"{sc.name} {plan}: untyped {type(exc).__name__}: {exc}"
            assert active.fired, f"{sc.name}: failed without a fault: {exc!r}"
            failed = True
        else:
            expected.update(sc.effect)
    # a write after the failure is refused (typed) or durable like any other
    try:
        t.set(b"after", b"s", b"x")
        expected[(b"after", b"s")] = b"x"
    except Exception as exc:  # noqa: BLE001
        assert _typed(exc), f"{sc.name} {plan}: untyped {type(exc).__name__}: {exc}"
    if crash:
        for p in t.partitions:
            p.close(flush=False)  # RocksDB's memtable is lost, as in a kill -9
    c.close()
    try:
        c = pf.Cluster.open(root, config=config)
    except Exception as exc:
        exc.add_note(f"reopening after {sc.name} with {plan}, crash={crash}")
        raise
    try:
        t = c.table("t")
        got = contents(t)
        lost = [k for k, v in expected.items() if got.get(k) != v]
        tally.lost += len(lost)
        assert not lost, (sc.name, plan, crash, lost)
        extra = {k: v for k, v in got.items() if k not in expected}
        # an action that failed may have happened, but only whole
        allowed = [{}, {k: v for k, v in sc.effect.items() if k not in expected}] if failed else [{}]
        assert extra in allowed, (sc.name, plan, crash, sorted(extra))
        sc.check(c)
        tally.survived += 1
    finally:
        c.close()


@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda sc: sc.name)
def test_fault_walk(backend: ModuleType, tmp_path: Path, sc: Scenario) -> None:
    template = tmp_path / "template"
    with pf.Cluster.open(template, config=pf.Config(**QUIET, **sc.config)) as c:
        sc.prepare(c.create_table("t", partition_count=1))
    # count the calls the action makes
    tally = Tally()
    config = pf.Config(**QUIET, **sc.config)
    shutil.copytree(template, tmp_path / "count")
    with pf.Cluster.open(tmp_path / "count", config=config) as c:
        with fileio.faults() as counted:
            sc.action(c)
    calls = dict(counted.calls)
    assert calls, sc.name
    run = 0
    for op, n in sorted(calls.items()):
        for nth in range(1, n + 1):
            for kind in _kinds(op):
                fault = Fault(op, nth, kind.errno, short=kind.short)
                tally.points += 1
                for crash in (True, False):
                    run += 1
                    _run(template, tmp_path / f"run{run}", sc, [fault], crash, tally)
                    shutil.rmtree(tmp_path / f"run{run}")
    print(
        f"\nfault walk {sc.name} [{backend.__name__}]: calls {calls}, "
        f"{tally.points} fault points, {tally.survived} crashes/closes survived and checked, "
        f"{tally.lost} acknowledged writes lost"
    )
    assert tally.lost == 0
    assert tally.survived == 2 * tally.points
    assert os.listdir(tmp_path)  # the walk ran in here
