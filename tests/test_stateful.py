"""Random sequences of table and record operations, with close and reopen, against a dict model.

Hypothesis drives a ``RuleBasedStateMachine`` over a real cluster on each
backend; after every step the keys the model knows are read back, and after
every reopen every table is scanned in full. Runs are derandomized and use no
example database, so CI sees the same sequences every time.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from types import ModuleType
from typing import ClassVar

import pegasus_fast as pf
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

NAMES = ["t1", "t2", "t3"]
HASH_KEYS = [b"a", b"b", b"\x00\xff", "ü".encode()]
SORT_KEYS = [b"", b"s", b"t", b"\x00"]

names = st.sampled_from(NAMES)
hash_keys = st.sampled_from(HASH_KEYS)
#: an empty hash key routes by sort key; multi-record operations refuse it
any_hash_keys = st.sampled_from([b"", *HASH_KEYS])
sort_keys = st.sampled_from(SORT_KEYS)
values = st.binary(max_size=24)
Records = dict[tuple[bytes, bytes], bytes]
OPS = st.one_of(
    st.tuples(st.just("set"), any_hash_keys, sort_keys, values),
    st.tuples(st.just("delete"), any_hash_keys, sort_keys),
    st.tuples(st.just("multi_set"), hash_keys, st.dictionaries(sort_keys, values, min_size=1)),
    st.tuples(st.just("multi_delete"), hash_keys, st.lists(sort_keys, min_size=1, max_size=4)),
)


class ClusterMachine(RuleBasedStateMachine):
    """The cluster against ``model``: table name -> (partition count, records)."""

    examples: ClassVar[int] = 0
    steps: ClassVar[int] = 0
    writes: ClassVar[int] = 0
    reopens: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        ClusterMachine.examples += 1
        self.dir = tempfile.mkdtemp(prefix="pf-stateful-")
        self.cluster = pf.Cluster.open(self.dir)
        self.model: dict[str, tuple[int, Records]] = {}

    def teardown(self) -> None:
        self.cluster.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _pick(self, data: st.DataObject) -> tuple[str, pf.Table]:
        name = data.draw(st.sampled_from(sorted(self.model)), label="table")
        return name, self.cluster.table(name)

    # -- tables --------------------------------------------------------------

    @initialize(count=st.sampled_from([1, 3]))
    def first_table(self, count: int) -> None:
        self.create_table("t1", count)

    @rule(name=names, count=st.sampled_from([1, 2, 5]))
    def create_table(self, name: str, count: int) -> None:
        ClusterMachine.steps += 1
        if name in self.model:
            with pytest.raises(pf.TableExistsError):
                self.cluster.create_table(name, partition_count=count)
            return
        t = self.cluster.create_table(name, partition_count=count)
        assert list(t.scan()) == []  # a new table never shows an old one's data
        self.model[name] = (count, {})

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def drop_table(self, data: st.DataObject) -> None:
        ClusterMachine.steps += 1
        name, _t = self._pick(data)
        self.cluster.drop_table(name)
        del self.model[name]

    @precondition(lambda self: len(self.model) < len(NAMES))
    @rule(data=st.data())
    def missing_table(self, data: st.DataObject) -> None:
        ClusterMachine.steps += 1
        name = data.draw(st.sampled_from([n for n in NAMES if n not in self.model]))
        with pytest.raises(pf.TableNotFoundError):
            self.cluster.table(name)
        with pytest.raises(pf.TableNotFoundError):
            self.cluster.drop_table(name)

    @rule()
    def reopen(self) -> None:
        ClusterMachine.steps += 1
        ClusterMachine.reopens += 1
        self.cluster.close()
        self.cluster = pf.Cluster.open(self.dir)
        assert sorted(i.name for i in self.cluster.list_tables()) == sorted(self.model)
        for name, (count, records) in self.model.items():
            t = self.cluster.table(name)
            assert t.partition_count == count
            assert {(hk, sk): v for hk, sk, v in t.scan()} == records

    # -- records -------------------------------------------------------------

    @precondition(lambda self: self.model)
    @rule(data=st.data(), ops=st.lists(OPS, min_size=1, max_size=6))
    def write(self, data: st.DataObject, ops: list[tuple]) -> None:
        """A few record operations on one table (several per step, so records dominate)."""
        name, t = self._pick(data)
        records = self.model[name][1]
        for op in ops:
            ClusterMachine.steps += 1
            ClusterMachine.writes += 1
            kind, hk = op[0], op[1]
            if kind == "set":
                t.set(hk, op[2], op[3])
                records[(hk, op[2])] = op[3]
            elif kind == "delete":
                t.delete(hk, op[2])
                records.pop((hk, op[2]), None)
            elif kind == "multi_set":
                t.multi_set(hk, op[2])
                records.update({(hk, sk): v for sk, v in op[2].items()})
            else:
                t.multi_delete(hk, op[2])
                for sk in op[2]:
                    records.pop((hk, sk), None)

    # -- reads after every step -------------------------------------------------

    @invariant()
    def reads_match(self) -> None:
        for name, (_count, records) in self.model.items():
            t = self.cluster.table(name)
            for hk in HASH_KEYS:
                want = {sk: v for (h, sk), v in records.items() if h == hk}
                assert t.multi_get(hk) == want
                assert t.multi_get(hk, SORT_KEYS) == want
                for sk in SORT_KEYS:
                    assert t.get(hk, sk) == records.get((hk, sk))
            for sk in SORT_KEYS:
                assert t.get(b"", sk) == records.get((b"", sk))


@pytest.fixture
def machine_counts() -> Iterator[None]:
    ClusterMachine.examples = ClusterMachine.steps = ClusterMachine.reopens = ClusterMachine.writes = 0
    yield
    print(
        f"\nstateful: {ClusterMachine.examples} examples, {ClusterMachine.steps} operations "
        f"({ClusterMachine.writes} record writes), {ClusterMachine.reopens} reopens"
    )


def test_random_operations_match_a_dict_model(backend: ModuleType, machine_counts: None) -> None:
    run_state_machine_as_test(
        ClusterMachine,
        settings=settings(
            max_examples=100,
            stateful_step_count=50,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    assert ClusterMachine.examples >= 100
