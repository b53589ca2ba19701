"""Random sequences of writes, pause/resume and restarts of either side of a duplication.

Hypothesis drives a ``RuleBasedStateMachine`` over a source and a follower
cluster (through tests/dupharness.py's ``DupPair``, so a served follower can
take the embedded one's place) on each backend. The model is a dict of what
the source holds; the key space is small, so keys are overwritten and deleted
again and again and any mutation applied out of order, twice or not at all
shows. Once quiet (resumed, both open, nothing pending) the follower must
hold exactly the source's records, raw (values, TTLs and timetags), and no
source decree may have been applied twice. Runs are derandomized and use no
example database, so CI sees the same sequences every time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import ClassVar

import pegasus_fast as pf
import pytest
from dupharness import DupPair, caught_up, check_converged, wait_until
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

TABLE = "t"
WAIT = 20.0
HASH_KEYS = [b"a", b"b", b"c", b"d"]
SORT_KEYS = [b"", b"s", b"t"]
Records = dict[tuple[bytes, bytes], bytes]

hash_keys = st.sampled_from(HASH_KEYS)
sort_keys = st.sampled_from(SORT_KEYS)
values = st.binary(max_size=12)
OPS = st.one_of(
    st.tuples(st.just("set"), hash_keys, sort_keys, values),
    st.tuples(st.just("delete"), hash_keys, sort_keys),
    st.tuples(st.just("multi_set"), hash_keys, st.dictionaries(sort_keys, values, min_size=1)),
    st.tuples(st.just("multi_delete"), hash_keys, st.lists(sort_keys, min_size=1, max_size=3)),
)


def _config() -> pf.Config:
    # a small threshold: partitions that took a few writes are copied as RocksDB checkpoints
    return pf.Config(small_partition_max_bytes=2048, gc_interval_ms=3_600_000)


class DupMachine(RuleBasedStateMachine):
    examples: ClassVar[int] = 0
    writes: ClassVar[int] = 0
    restarts: ClassVar[int] = 0
    pauses: ClassVar[int] = 0
    quiet_checks: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        DupMachine.examples += 1
        self.root = Path(tempfile.mkdtemp(prefix="pf-stateful-dup-"))
        self.pair = DupPair(self.root, _config(), _config())
        self.pair.open_follower()
        self.pair.open_source()
        assert self.pair.source is not None
        self.pair.source.create_table(TABLE, partition_count=3)
        self.model: Records = {}
        self.dupid = 0
        self.paused = False
        #: the steps taken, for the report of a failure
        self.trace: list[str] = []

    def _to_log(self, dup: pf.Duplication) -> None:
        try:
            dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        except TimeoutError as exc:
            exc.add_note("steps: " + "; ".join(self.trace))
            raise

    @property
    def source(self) -> pf.Cluster:
        assert self.pair.source is not None
        return self.pair.source

    @property
    def dup(self) -> pf.Duplication:
        return self.source.duplication(self.dupid)

    def _apply(self, ops: list[tuple]) -> None:
        t = self.source.table(TABLE)
        for op in ops:
            DupMachine.writes += 1
            kind, hk = op[0], op[1]
            if kind == "set":
                t.set(hk, op[2], op[3])
                self.model[(hk, op[2])] = op[3]
            elif kind == "delete":
                t.delete(hk, op[2])
                self.model.pop((hk, op[2]), None)
            elif kind == "multi_set":
                t.multi_set(hk, op[2])
                self.model.update({(hk, sk): v for sk, v in op[2].items()})
            else:
                t.multi_delete(hk, op[2])
                for sk in op[2]:
                    self.model.pop((hk, sk), None)

    @initialize(ops=st.lists(OPS, max_size=30))
    def start(self, ops: list[tuple]) -> None:
        """Records before the duplication is added: what the follower learns as a checkpoint."""
        self.trace.append("start")
        self._apply(ops)
        self.dupid = self.pair.add_duplication(TABLE).dupid

    @rule(ops=st.lists(OPS, min_size=1, max_size=8))
    def write(self, ops: list[tuple]) -> None:
        self.trace.append("write")
        self._apply(ops)

    @precondition(lambda self: not self.paused)
    @rule()
    def pause(self) -> None:
        self.trace.append("pause")
        dup = self.dup
        if dup.status != pf.DupStatus.LOG:
            # only a shipping duplication pauses; it gets there first
            self._open_follower()
            self._to_log(dup)
        dup.pause()
        self.paused = True
        DupMachine.pauses += 1

    @precondition(lambda self: self.paused)
    @rule()
    def resume(self) -> None:
        self.trace.append("resume")
        self.dup.resume()
        self.paused = False

    @rule()
    def restart_source(self) -> None:
        self.trace.append("restart_source")
        DupMachine.restarts += 1
        self.pair.restart_source()
        if self.paused:
            assert self.dup.status == pf.DupStatus.PAUSE  # persisted

    @precondition(lambda self: self.pair.follower is not None)
    @rule()
    def close_follower(self) -> None:
        self.trace.append("close_follower")
        DupMachine.restarts += 1
        self.pair.close_follower()

    @precondition(lambda self: self.pair.follower is None)
    @rule()
    def open_follower(self) -> None:
        self.trace.append("open_follower")
        self._open_follower()

    def _open_follower(self) -> None:
        if self.pair.follower is None:
            self.pair.open_follower()

    @rule()
    def wait_quiet(self) -> None:
        self.trace.append("wait_quiet")
        self._quiet()

    def _quiet(self) -> None:
        """Resumed, both open, nothing pending: the follower holds exactly the source's records."""
        DupMachine.quiet_checks += 1
        if self.paused:
            self.resume()
        self._open_follower()
        dup = self.dup
        self._to_log(dup)
        wait_until(
            lambda: caught_up(self.pair, TABLE) and all(p.pending_mutations == 0 for p in dup.progress()),
            WAIT,
            lambda: f"catch-up: {dup.progress()}",
        )
        assert dup.error is None
        check_converged(self.pair, TABLE, self.model)

    @invariant()
    def source_matches_model(self) -> None:
        if self.pair.source is not None:
            assert {(hk, sk): v for hk, sk, v in self.source.table(TABLE).scan()} == self.model

    def teardown(self) -> None:
        try:
            if self.dupid:
                self._quiet()
        finally:
            try:
                self.pair.close()
            finally:
                shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def machine_counts() -> Iterator[None]:
    for name in ("examples", "writes", "restarts", "pauses", "quiet_checks"):
        setattr(DupMachine, name, 0)
    yield
    print(
        f"\nstateful duplication: {DupMachine.examples} examples, {DupMachine.writes} record writes, "
        f"{DupMachine.restarts} restarts, {DupMachine.pauses} pauses, {DupMachine.quiet_checks} quiet checks"
    )


def test_duplication_matches_the_source_after_random_operations(
    backend: ModuleType, machine_counts: None
) -> None:
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(
        DupMachine,
        settings=settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=STEPS,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    assert DupMachine.examples >= MAX_EXAMPLES


#: PF_DUP_STATEFUL_EXAMPLES raises the count for a longer soak (CI keeps 25)
MAX_EXAMPLES = int(os.environ.get("PF_DUP_STATEFUL_EXAMPLES", "25"))
STEPS = 25
