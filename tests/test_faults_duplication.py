"""A standing fault walk through every state of a duplication (FaultInjectionTestFS style).

For each phase, the phase runs once under an empty ``fileio.faults()`` plan to
list the file calls it makes on one side (the source's directory for
PREPARE, the follower's for APP and LOG). Then, for each listed call (every
one up to ``DENSE``, then a stride), the phase runs again from the same
starting point with that call failing (EIO, ENOSPC, or for a write a short
write) and *staying* failed, as a broken disk does, until the duplication has
reacted. The fault is then removed (and a cluster whose partition failed, or
whose metadata journal is fenced, is reopened, as it must be), and:

- the duplication reaches DS_LOG, with no error in ``slow`` mode;
- the follower holds exactly the source's records, raw (values, TTLs, timetags);
- no source decree was applied twice (the follower WAL's source decrees increase);
- the source holds everything acknowledged to the test (a dict model);
- every error seen on the way was typed (``OSError`` or a pegasus_fast error),
  and while it lasted ``progress()`` gave a reason;
- a follower partition still learning never served a read.

A variant closes and reopens both clusters right after the fault (a restart
mid-phase) before checking; in ``fast`` mode the fault stops the duplication
with a typed ``error``. A fault is named by (operation, path with its random
parts cut off, nth call on that path), so the same call fails whatever the
threads' interleaving.
"""

from __future__ import annotations

import errno
import logging
import re
import shutil
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
from dupharness import DupPair, caught_up, check_converged, wait_until
from pegasus_fast import fileio
from pegasus_fast.errors import PegasusFastError, Retry, retry_of
from pegasus_fast.fileio import Fault, Faults

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

TABLE = "t"
PARTITIONS = 4
#: every call up to this many is a fault point, then one in STRIDE
DENSE = 16
STRIDE = 12
WAIT = 20.0
#: how long a fault that fired may go without a visible reaction (a call nobody needs to retry)
REACT = 1.5
#: a memtable holding one record already counts 2 KiB; one with a thousand, 1 MiB
SMALL_MAX = 4096
QUIET = {"gc_interval_ms": 3_600_000, "checkpoint_interval_seconds": 3600.0}
Model = dict[tuple[bytes, bytes], bytes]


# -- the starting point: p0 empty, p1 small (snapshot), p2 and p3 large (checkpoints) ---------------


def _keys_in(table: pf.Table, pidx: int, prefix: str, n: int) -> list[bytes]:
    out: list[bytes] = []
    i = 0
    while len(out) < n:
        hk = f"{prefix}{i}".encode()
        if table.partition_index(hk) == pidx:
            out.append(hk)
        i += 1
    return out


def _load(table: pf.Table, model: Model) -> None:
    (small,) = _keys_in(table, 1, "s", 1)
    table.set(small, b"a", b"small")
    model[(small, b"a")] = b"small"
    for pidx in (2, 3):
        for hk in _keys_in(table, pidx, f"L{pidx}-", 10):
            vals = {f"{s:03d}".encode(): f"value-{s}".encode() * 2 for s in range(100)}
            table.multi_set(hk, vals)
            model.update({(hk, sk): v for sk, v in vals.items()})


@dataclass
class Template:
    path: Path
    model: Model
    #: keys of each partition, for writes during the walk
    keys: list[list[bytes]]
    #: phase -> the calls it makes, counted once
    points: dict[str, list[Point]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def template(backend: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Template:
    path = tmp_path_factory.mktemp("dup-template") / "source"
    model: Model = {}
    with pf.Cluster.open(path, name="source", config=_source_config()) as c:
        t = c.create_table(TABLE, partition_count=PARTITIONS)
        _load(t, model)
        assert [p.data_bytes() > SMALL_MAX for p in t.partitions] == [False, False, True, True]
        keys = [_keys_in(t, i, f"w{i}-", 3) for i in range(PARTITIONS)]
    return Template(path, model, keys)


def _source_config() -> pf.Config:
    return pf.Config(small_partition_max_bytes=SMALL_MAX, **QUIET)


class Pairs:
    """Fresh pairs from the template, each under its own directory; all closed at teardown."""

    def __init__(self, root: Path, template: Template) -> None:
        self.root = root
        self.template = template
        self.made: list[DupPair] = []

    def new(self) -> DupPair:
        pair = DupPair(
            self.root / f"run{len(self.made)}",
            _source_config(),
            pf.Config(**QUIET),
            source_template=self.template.path,
        )
        self.made.append(pair)
        pair.open_follower()
        pair.open_source()
        return pair

    def close_all(self) -> None:
        for p in self.made:
            try:
                p.close()
            finally:
                shutil.rmtree(p.root, ignore_errors=True)


@pytest.fixture
def pairs(template: Template, tmp_path: Path) -> Iterator[Pairs]:
    ps = Pairs(tmp_path, template)
    try:
        yield ps
    finally:
        ps.close_all()


# -- fault plans ----------------------------------------------------------------------------------

_RANDOM = re.compile(r"(checkpoint\.tmp\.)\d+\.\d+")


def stable_part(path: str, side: str) -> str:
    """The path from the side's directory on, with a temporary directory's random suffix cut off
    (the rest of the path after it too: ``checkpoint.tmp.`` then names every file in it)."""
    at = path.find(side)
    rel = path[at:] if at >= 0 else path
    m = _RANDOM.search(rel)
    return rel[: m.start(1) + len(m.group(1))] if m else rel


@dataclass(frozen=True)
class Point:
    op: str
    part: str
    nth: int

    def fault(self, k: int) -> Fault:
        """The k-th point's way to fail: writes alternate short writes and ENOSPC, the rest EIO and ENOSPC."""
        if self.op == "write":
            if k % 2 == 0:
                return Fault("write", self.nth, errno.ENOSPC, short=7, path_part=self.part)
            return Fault("write", self.nth, errno.ENOSPC, path_part=self.part)
        return Fault(self.op, self.nth, errno.EIO if k % 2 == 0 else errno.ENOSPC, path_part=self.part)


def points_of(log: list[tuple[str, str]], side: str) -> list[Point]:
    seen: dict[tuple[str, str], int] = {}
    out = []
    for op, path in log:
        if side not in path:
            continue
        part = stable_part(path, side)
        seen[(op, part)] = seen.get((op, part), 0) + 1
        out.append(Point(op, part, seen[(op, part)]))
    return out


def sample(points: list[Point]) -> list[Point]:
    return points[:DENSE] + points[DENSE::STRIDE]


class Sticky(Faults):
    """A fault that, once it fires, fails every later call of its operation on its path: a disk
    that stays broken until the test repairs it (:meth:`repair`)."""

    def __init__(self, fault: Fault) -> None:
        super().__init__([fault])
        self.broken = False

    def _check(self, op: str, path: str) -> Fault | None:
        f = self.plan[0]
        if self.broken and op == f.op and f.path_part in path:
            self.log.append((op, path))
            return Fault(op, 0, f.errno or errno.EIO, path_part=f.path_part)
        hit = super()._check(op, path)
        if hit is not None:
            self.broken = True
        return hit

    def repair(self) -> None:
        self.broken = False
        self.plan = []


class ErrorLog(logging.Handler):
    """The exceptions the duplication driver logged while retrying (its warnings carry them)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        self.errors.extend(a for a in args if isinstance(a, BaseException))


@pytest.fixture
def driver_errors() -> Iterator[ErrorLog]:
    h = ErrorLog()
    logger = logging.getLogger("pegasus_fast.duplication.driver")
    logger.addHandler(h)
    try:
        yield h
    finally:
        logger.removeHandler(h)


def typed(exc: BaseException) -> bool:
    return isinstance(exc, (OSError, PegasusFastError))


# -- one run ----------------------------------------------------------------------------------------


@dataclass
class Tally:
    points: int = 0
    fired: int = 0
    reacted: int = 0
    restarts: int = 0
    add_failed: int = 0
    #: fast mode: stopped with a typed error
    stopped: int = 0
    #: faults the duplication never saw (a removal that may fail, for one)
    silent: list[Point] = field(default_factory=list)

    def line(self, phase: str) -> str:
        return (
            f"{phase}: {self.points} fault points, {self.fired} fired, {self.reacted} with a visible reaction, "
            f"{self.restarts} cluster reopens, {self.add_failed} add_duplication refused, "
            f"{self.stopped} stopped (fast mode)"
        )


@dataclass
class Phase:
    name: str
    #: which side's calls are walked: "source" or "follower"
    side: str
    #: before the plan is installed: returns the duplication (None: added under the plan)
    before: Callable[[DupPair, Model, Template], pf.Duplication | None]
    #: under the plan
    during: Callable[[DupPair, Model, Template, pf.Duplication | None], pf.Duplication]


def _add(pair: DupPair, fail_mode: str) -> pf.Duplication:
    return pair.add_duplication(TABLE, fail_mode=fail_mode)


def _writes(pair: DupPair, model: Model, tpl: Template, tag: str, n: int) -> None:
    """``n`` rounds of a set and a delete on every partition (keys repeat, so order matters)."""
    assert pair.source is not None
    t = pair.source.table(TABLE)
    for r in range(n):
        for keys in tpl.keys:
            hk = keys[r % len(keys)]
            v = f"{tag}-{r}".encode()
            t.set(hk, b"x", v)
            model[(hk, b"x")] = v
            victim = keys[(r + 1) % len(keys)]
            t.delete(victim, b"x")
            model.pop((victim, b"x"), None)


def _to_log(pair: DupPair, model: Model, tpl: Template) -> pf.Duplication:
    dup = _add(pair, "slow")
    dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    _writes(pair, model, tpl, "before", 2)
    wait_until(lambda: caught_up(pair, TABLE), WAIT, "catch-up before the LOG walk")
    dup.pause()
    _writes(pair, model, tpl, "backlog", 6)  # shipped once the plan is in place
    return dup


def _log_during(pair: DupPair, model: Model, tpl: Template, dup: pf.Duplication | None) -> pf.Duplication:
    assert dup is not None
    dup.resume()
    _writes(pair, model, tpl, "during", 4)  # writes go on while the backlog ships
    return dup


PHASES = {
    # source side of PREPARE (adaptive checkpoints) and every record save on the way to DS_LOG
    "prepare": Phase(
        "prepare", "source", lambda pair, m, tpl: None, lambda pair, m, tpl, d: _add(pair, FAIL_MODE)
    ),
    # follower side of APP: the table made learning, snapshot into the WAL, learn/ copies, install
    "app": Phase("app", "follower", lambda pair, m, tpl: None, lambda pair, m, tpl, d: _add(pair, FAIL_MODE)),
    # follower side of LOG: shipped batches applied while the source keeps writing
    "log": Phase("log", "follower", _to_log, _log_during),
}
FAIL_MODE = "slow"


def _side_part(pair: DupPair, side: str) -> str:
    return pair.source_part if side == "source" else pair.follower_part


def count_points(pairs: Pairs, phase: Phase) -> list[Point]:
    """The calls the phase makes on its side, from one run without faults (once per module)."""
    if phase.name not in pairs.template.points:
        pairs.template.points[phase.name] = _count(pairs, phase)
    return pairs.template.points[phase.name]


def _count(pairs: Pairs, phase: Phase) -> list[Point]:
    pair = pairs.new()
    model = dict(pairs.template.model)
    dup = phase.before(pair, model, pairs.template)
    with fileio.faults() as plan:
        dup = phase.during(pair, model, pairs.template, dup)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        wait_until(lambda: caught_up(pair, TABLE), WAIT, "catch-up of the counting run")
    check_converged(pair, TABLE, model)
    pair.close()
    return points_of(plan.log, _side_part(pair, phase.side))


def _learning_never_serves(pair: DupPair) -> None:
    if pair.follower is None or pair.follower.closed or not pair.follower_has_table(TABLE):
        return
    for pidx, state in enumerate(pair.follower_states(TABLE)):
        if state == "learning":
            with pytest.raises(pf.PartitionUnavailableError) as ei:
                pair.follower_get(TABLE, pidx, b"\x00\x01a")
            assert ei.value.pidx == pidx


def _reacted(dup: pf.Duplication | None) -> bool:
    return dup is not None and (dup.error is not None or any(p.reason for p in dup.progress()))


def run_point(
    pairs: Pairs,
    phase: Phase,
    point: Point,
    k: int,
    tally: Tally,
    errors: ErrorLog,
    restart: bool = False,
    fail_mode: str = "slow",
) -> None:
    pair = pairs.new()
    model = dict(pairs.template.model)
    dup = phase.before(pair, model, pairs.template)
    plan = Sticky(point.fault(k))
    add_error: BaseException | None = None
    tally.points += 1
    errors.errors.clear()
    with fileio.faults(plan):
        try:
            dup = phase.during(pair, model, pairs.template, dup)
        except pf.DuplicationError:
            raise
        except (OSError, PegasusFastError) as exc:
            # the fault hit add_duplication's own record: refused, typed, nothing added
            # (unless the journal is fenced: then the reopen decides whether it holds)
            tally.add_failed += 1
            add_error = exc
            assert pair.source is not None and not pair.source.duplications(TABLE)

        def settled() -> bool:
            if dup is None or (plan.fired and _reacted(dup)):
                return True
            return dup is not None and dup.status == pf.DupStatus.LOG and caught_up(pair, TABLE)

        try:
            wait_until(settled, REACT if plan.fired else WAIT, "a reaction")
        except AssertionError:
            if not plan.fired:
                raise
        _learning_never_serves(pair)
        if plan.fired:
            tally.fired += 1
            if dup is not None and not _reacted(dup):
                tally.silent.append(point)
            if _reacted(dup):
                tally.reacted += 1
                assert dup is not None
                if fail_mode == "slow":
                    assert dup.error is None
                    assert any(p.reason for p in dup.progress())
        if fail_mode == "fast" and plan.fired and dup is not None and dup.status != pf.DupStatus.LOG:
            wait_until(lambda: dup.error is not None, WAIT, "fast mode to stop")
        plan.repair()
    for exc in errors.errors:
        assert typed(exc), "untyped error: " + "".join(traceback.format_exception(exc))
    if fail_mode == "fast" and dup is not None and dup.error is not None:
        tally.stopped += 1
        assert typed(dup.error) and retry_of(dup.error) in (Retry.FAILURE, Retry.PERMANENT)
        _learning_never_serves(pair)
        pair.close()
        return
    if restart:
        tally.restarts += 2
        pair.restart_follower()
        pair.restart_source()
    else:
        for side in ("follower", "source"):
            if pair.needs_restart(pair.follower if side == "follower" else pair.source):
                tally.restarts += 1
                (pair.restart_follower if side == "follower" else pair.restart_source)()
    assert pair.source is not None
    found = pair.source.duplications(TABLE)
    if dup is None and found:
        assert isinstance(add_error, pf.MetaFencedError), (
            f"a refused add_duplication came back: {add_error!r}"
        )
    if not found:
        assert dup is None, "the duplication vanished"
        dup = _add(pair, fail_mode)
    else:
        (dup,) = found
    dup.wake()
    dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    assert dup.error is None
    _writes(pair, model, pairs.template, "after", 1)
    wait_until(lambda: caught_up(pair, TABLE), WAIT, lambda: f"catch-up after {point}: {dup.progress()}")
    check_converged(pair, TABLE, model)
    pair.close()


# -- the walks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["prepare", "app", "log"])
def test_fault_walk(phase: str, pairs: Pairs, driver_errors: ErrorLog) -> None:
    ph = PHASES[phase]
    every = count_points(pairs, ph)
    total = len(every)
    points = sample(every)
    tally = Tally()
    for k, point in enumerate(points):
        try:
            run_point(pairs, ph, point, k, tally, driver_errors)
        except BaseException as exc:
            exc.add_note(f"at fault point {k}: {point.fault(k)}")
            raise
    print("\n" + tally.line(phase) + f" of {total} calls; silent: {tally.silent}")
    assert tally.fired >= len(points) // 2, tally.line(phase)


@pytest.mark.parametrize("phase", ["prepare", "app", "log"])
def test_fault_walk_with_restart(phase: str, pairs: Pairs, driver_errors: ErrorLog) -> None:
    ph = PHASES[phase]
    points = count_points(pairs, ph)[::RESTART_STRIDE]
    tally = Tally()
    for k, point in enumerate(points):
        run_point(pairs, ph, point, k, tally, driver_errors, restart=True)
    print("\n" + tally.line(phase + " with restart"))


RESTART_STRIDE = 14


@pytest.mark.parametrize("phase", ["prepare", "app"])
def test_fault_walk_fast_mode(phase: str, pairs: Pairs, driver_errors: ErrorLog) -> None:
    ph = PHASES[phase]
    fast = Phase(ph.name, ph.side, ph.before, lambda pair, m, tpl, d: _add(pair, "fast"))
    points = count_points(pairs, ph)[::RESTART_STRIDE]
    tally = Tally()
    for k, point in enumerate(points):
        run_point(pairs, fast, point, k, tally, driver_errors, fail_mode="fast")
    print("\n" + tally.line(phase + " fast"))
    assert tally.stopped > 0, tally.line(phase + " fast")
