"""The register linearizability checker (tests/linearizability.py) and its client driver
(tests/register_clients.py): hand-written histories, simulated linearizable registers (and
mutations of them that no register could produce), and the driver on a real embedded table
and on an adapter that serves stale reads."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from pathlib import Path

import pegasus_fast as pf
import pytest
from linearizability import History, KeyFailure, Kind, Op, Status, check, check_key
from pegasus_fast.errors import InvalidArgumentError, NodeUnavailableError, NotOwnerError
from register_clients import TableRegister, classify_pegasus_error, run_register_clients

K = b"k"
W, R, C = Kind.WRITE, Kind.READ, Kind.CAS
UNKNOWN = Status.UNKNOWN


def hist(*ops: tuple) -> History:
    """``(client, kind, invoke, complete, result, value, expected[, status])`` on key K."""
    h = History()
    for client, kind, t0, t1, result, value, expected, *status in ops:
        h.add(
            client,
            K,
            kind,
            t0,
            t1,
            result,
            value=value,
            expected=expected,
            status=status[0] if status else Status.OK,
        )
    return h


def w(c: int, t0: int, t1: int | None, v: bytes, status: Status = Status.OK) -> tuple:
    return (c, W, t0, t1, None, v, None, status)


def r(c: int, t0: int, t1: int, got: bytes | None) -> tuple:
    return (c, R, t0, t1, got, None, None)


def cas(
    c: int,
    t0: int,
    t1: int | None,
    exp: bytes | None,
    new: bytes,
    ok: bool | None,
    status: Status = Status.OK,
) -> tuple:
    return (c, C, t0, t1, ok, new, exp, status)


def assert_linearizable(h: History) -> None:
    res = check(h)
    assert res.linearizable, res.explain(h)
    assert res.anomalies == 0


def assert_anomaly(h: History) -> KeyFailure:
    res = check(h)
    assert not res.linearizable
    assert res.anomalies == 1 and not res.undecided
    return res.failures[0]


# -- hand-written histories ------------------------------------------------------------------


def test_empty_and_initially_absent() -> None:
    assert check(History()).linearizable
    assert_linearizable(hist(r(0, 0, 1, None)))
    assert_anomaly(hist(r(0, 0, 1, b"x")))


def test_stale_read_after_a_completed_write() -> None:
    f = assert_anomaly(hist(w(0, 0, 1, b"a"), r(1, 2, 3, None)))
    assert f.key == K and f.blocked.kind is R and f.blocked.result is None
    assert f.states == [b"a"] and f.prefix == [0] and f.concurrent == []


def test_concurrent_read_may_see_old_or_new() -> None:
    assert_linearizable(hist(w(0, 0, 10, b"a"), r(1, 1, 2, None), r(1, 3, 4, b"a"), r(2, 5, 6, b"a")))
    # but not new then old: once a read saw a, a later read cannot see absent
    assert_anomaly(hist(w(0, 0, 10, b"a"), r(1, 1, 2, b"a"), r(2, 3, 4, None)))


def test_lost_write() -> None:
    assert_anomaly(hist(w(0, 0, 1, b"b"), w(1, 2, 3, b"a"), r(2, 4, 5, b"b")))
    assert_linearizable(hist(w(0, 0, 1, b"b"), w(1, 2, 5, b"a"), r(2, 3, 4, b"b")))


def test_touching_intervals_overlap() -> None:
    # ordered only when one ends strictly before the other begins
    assert_linearizable(hist(w(0, 0, 2, b"a"), r(1, 2, 3, None)))


def test_cas_double_success() -> None:
    base = (w(0, 0, 1, b"a"),)
    assert_anomaly(hist(*base, cas(1, 2, 3, b"a", b"b", True), cas(2, 4, 5, b"a", b"c", True)))
    # concurrent does not help: only one of two cas expecting a can see a
    assert_anomaly(hist(*base, cas(1, 2, 5, b"a", b"b", True), cas(2, 2, 5, b"a", b"c", True)))
    assert_linearizable(
        hist(*base, cas(1, 2, 5, b"a", b"b", True), cas(2, 2, 5, b"a", b"c", False), r(0, 6, 7, b"b"))
    )


def test_cas_absent_and_failed_cas() -> None:
    assert_linearizable(
        hist(cas(0, 0, 1, None, b"a", True), r(1, 2, 3, b"a"), cas(1, 4, 5, None, b"b", False))
    )
    assert_anomaly(hist(cas(0, 0, 1, None, b"a", False), r(1, 2, 3, None)))
    assert_anomaly(hist(w(0, 0, 1, b"a"), cas(1, 2, 3, b"a", b"b", False), r(1, 4, 5, b"a")))


def test_unknown_write_that_later_appears() -> None:
    assert_linearizable(
        hist(w(0, 0, None, b"a", UNKNOWN), r(1, 10, 11, None), r(1, 20, 21, b"a"), r(2, 30, 31, b"a"))
    )
    # it cannot take effect before it was called
    assert_anomaly(hist(r(1, 0, 1, b"a"), w(0, 5, None, b"a", UNKNOWN)))
    # and once seen it stays (no other write)
    assert_anomaly(hist(w(0, 0, None, b"a", UNKNOWN), r(1, 10, 11, b"a"), r(1, 20, 21, None)))


def test_unknown_write_that_never_appears() -> None:
    assert_linearizable(hist(w(0, 0, None, b"a", UNKNOWN), r(1, 10, 11, None), r(1, 20, 21, None)))
    many = [w(c, c, None, f"u{c}".encode(), UNKNOWN) for c in range(40)]
    assert_linearizable(hist(*many, w(99, 50, 51, b"x"), r(98, 60, 61, b"x"), r(98, 70, 71, b"x")))


def test_unknown_unobserved_write_explains_a_failed_cas() -> None:
    # the cas expected x, which was there, and failed: only the unknown write g can explain it
    h = [w(0, 0, 1, b"x"), w(1, 2, None, b"g", UNKNOWN), cas(2, 3, 4, b"x", b"y", False)]
    assert_linearizable(hist(*h))
    assert_anomaly(hist(h[0], h[2]))
    # not when g was called after the cas ended
    assert_anomaly(hist(h[0], w(1, 5, None, b"g", UNKNOWN), h[2]))
    # nor when g must have come before a read of x that follows the cas
    assert_anomaly(hist(*h, r(3, 5, 6, b"x")))
    # an unknown cas from x does too, one from elsewhere does not
    assert_linearizable(hist(h[0], cas(1, 2, None, b"x", b"g", None, UNKNOWN), h[2]))
    assert_anomaly(hist(h[0], cas(1, 2, None, b"z", b"g", None, UNKNOWN), h[2]))


def test_failed_operation_never_took_effect() -> None:
    h = hist(w(0, 0, 1, b"a", Status.FAIL), r(1, 2, 3, None))
    assert_linearizable(h)
    assert_anomaly(hist(w(0, 0, 1, b"a", Status.FAIL), r(1, 2, 3, b"a")))


def test_keys_are_independent_and_counted() -> None:
    h = History()
    for key in (b"k1", b"k2", b"k3"):
        h.add(0, key, W, 0, 1, value=b"a")
    h.add(1, b"k1", R, 2, 3, None)  # stale
    h.add(1, b"k2", R, 2, 3, b"a")
    h.add(1, b"k3", R, 2, 3, b"b")  # never written
    res = check(h)
    assert (res.linearizable, res.anomalies, res.keys, res.ops) == (False, 2, 3, 6)
    assert [f.key for f in res.failures] == [b"k1", b"k3"]
    assert "k1" in res.explain(h)


def test_recorder_times_and_misuse() -> None:
    h = History()
    a = h.invoke(0, K, W, value=b"a")
    h.ok(a)
    b = h.invoke(1, K, R)
    h.ok(b, b"a")
    c = h.invoke(1, K, C, value=b"b", expected=b"a")
    h.unknown(c)
    ops = h.ops()
    assert ops[0].complete_ns is not None and ops[0].complete_ns <= ops[1].invoke_ns
    assert ops[2].status is UNKNOWN and ops[2].complete_ns is None
    with pytest.raises(ValueError):
        h.ok(a)
    h.invoke(2, K, R)
    with pytest.raises(ValueError):
        check(h)  # an operation still running


# -- simulated registers ----------------------------------------------------------------------


def simulate(seed: int, n: int, clients: int = 4, keys: int = 1, unknown: float = 0.0) -> list[Op]:
    """A true linearizable register: each op takes effect at a random moment of its interval
    (an unknown one maybe never); results follow from the order of those moments."""
    rng = random.Random(seed)
    clock = [0] * clients
    pending = []
    for i in range(n):
        c = rng.randrange(clients)
        t0 = clock[c] + rng.randrange(0, 20)
        t1 = t0 + rng.randrange(1, 60)
        clock[c] = t1
        kind = rng.choice((R, W, C))
        status = UNKNOWN if kind is not R and rng.random() < unknown else Status.OK
        applied = status is Status.OK or rng.random() < 0.5
        point = rng.uniform(t0, t1 + (200 if status is UNKNOWN else 0))
        pending.append((point, i, c, rng.randrange(keys), kind, t0, t1, status, applied))
    pending.sort()
    state: dict[int, bytes | None] = {}
    written: dict[int, list[bytes | None]] = {}
    ops = []
    for _point, i, c, key, kind, t0, t1, status, applied in pending:
        cur = state.get(key)
        value = expected = result = None
        if kind is W:
            value = f"v{i}".encode()
            if applied:
                state[key] = value
        elif kind is C:
            value = f"v{i}".encode()
            seen = written.setdefault(key, [None])
            expected = cur if rng.random() < 0.6 else rng.choice(seen)
            result = cur == expected
            if result and applied:
                state[key] = value
        else:
            result = cur
        if state.get(key) != cur:
            written.setdefault(key, [None]).append(state[key])
        if status is UNKNOWN:
            t1, result = None, None
        ops.append(Op(i, c, f"k{key}".encode(), kind, t0, t1, status, value, expected, result))
    ops.sort(key=lambda op: op.id)
    return ops


@pytest.mark.parametrize("unknown", [0.0, 0.05])
def test_simulated_linearizable_registers_pass(unknown: float) -> None:
    for seed in range(60):
        ops = simulate(seed, 300, clients=rng_clients(seed), keys=1 + seed % 3, unknown=unknown)
        res = check(ops)
        assert res.linearizable, (seed, res.explain(ops))


def rng_clients(seed: int) -> int:
    return 2 + seed % 5


def replace(op: Op, **kw: object) -> Op:
    fields = dict(op.__dict__)
    fields.update(kw)
    return Op(**fields)  # type: ignore[arg-type]


def test_read_of_a_value_never_written_is_caught() -> None:
    for seed in range(40):
        ops = simulate(seed, 200)
        reads = [op for op in ops if op.kind is R]
        target = random.Random(seed).choice(reads)
        ops[target.id] = replace(target, result=b"never-written")
        assert check(ops).anomalies == 1, seed


def test_read_of_an_overwritten_value_is_caught() -> None:
    caught = 0
    for seed in range(200):
        ops = simulate(seed, 200)
        writes = sorted((op for op in ops if op.kind is W), key=lambda op: op.invoke_ns)
        # w1 ended before w2 began, w2 ended before the read began: the read cannot see w1
        found = None
        for w1 in writes:
            for w2 in writes:
                if w1.complete_ns < w2.invoke_ns:  # type: ignore[operator]
                    later = [op for op in ops if op.kind is R and op.invoke_ns > w2.complete_ns]  # type: ignore[operator]
                    if later:
                        found = (w1, later[0])
                        break
            if found:
                break
        if found is None:
            continue
        w1, read = found
        ops[read.id] = replace(read, result=w1.value)
        assert check(ops).anomalies == 1, seed
        caught += 1
    assert caught > 150


def test_random_mutations_mostly_caught() -> None:
    """Any one result changed at random: most changes are impossible (not all: a concurrent
    read may well have seen another value)."""
    caught = total = 0
    for seed in range(100):
        ops = simulate(seed, 150)
        rng = random.Random(seed)
        target = rng.choice([op for op in ops if op.kind is not W])
        if target.kind is R:
            values = [op.value for op in ops if op.value is not None and op.value != target.result]
            mutated = replace(
                target, result=rng.choice([*values, None]) if target.result is not None else values[0]
            )
        else:
            mutated = replace(target, result=not target.result)
        ops[target.id] = mutated
        total += 1
        caught += check(ops).anomalies
    assert caught >= 0.7 * total, (caught, total)


def test_speed_of_a_2000_op_history() -> None:
    ops = simulate(7, 2000, clients=4)
    t = time.perf_counter()
    res = check(ops)
    elapsed = time.perf_counter() - t
    assert res.linearizable
    assert elapsed < 2.0, elapsed  # typically well under a second; a loaded machine has slack
    bad = simulate(7, 2000, clients=4)
    read = next(op for op in reversed(bad) if op.kind is R)
    bad[read.id] = replace(read, result=b"never-written")
    t = time.perf_counter()
    assert check(bad).anomalies == 1
    assert time.perf_counter() - t < 10.0


def test_step_budget_makes_a_key_undecided() -> None:
    ops = simulate(3, 500, clients=4)
    res = check(ops, max_steps=10)
    assert not res.linearizable and res.anomalies == 0 and res.undecided == [b"k0"]
    assert check_key(ops, max_steps=None) is True


# -- the driver --------------------------------------------------------------------------------


def test_classify_pegasus_errors() -> None:
    assert classify_pegasus_error(InvalidArgumentError("bad")) is Status.FAIL
    assert classify_pegasus_error(NotOwnerError("t", 0, "n1")) is UNKNOWN
    assert classify_pegasus_error(NodeUnavailableError("t", 0, "n1", "u")) is UNKNOWN
    assert classify_pegasus_error(TimeoutError()) is UNKNOWN
    assert classify_pegasus_error(ConnectionResetError()) is UNKNOWN
    assert classify_pegasus_error(KeyError("bug")) is None


class StaleReads(TableRegister):
    """Broken on purpose: reads come from this client's copy, refreshed every 10th read."""

    def __init__(self, table: object) -> None:
        super().__init__(table)
        self.copy: dict[bytes, bytes | None] = {}
        self.reads = 0

    def read(self, key: bytes) -> bytes | None:
        self.reads += 1
        if self.reads % 10 == 0 or key not in self.copy:
            self.copy[key] = super().read(key)
        return self.copy[key]


def drive(tmp_path: Path, open_cluster_once: Callable[..., pf.Cluster], make: Callable, seed: int) -> tuple:
    cluster = open_cluster_once(tmp_path / "c", name="c", config=pf.Config(wal_sync="none"))
    table = cluster.create_table("t", partition_count=4)
    history = History()
    keys = [b"a", b"b", b"c"]
    stats = run_register_clients(
        lambda i: make(table), keys, clients=4, seconds=1.0, seed=seed, history=history
    )
    return history, stats


def test_driver_on_an_embedded_table_is_linearizable(
    tmp_path: Path, open_cluster_once: Callable[..., pf.Cluster]
) -> None:
    history, stats = drive(tmp_path, open_cluster_once, TableRegister, seed=1)
    ops = history.ops()
    assert len(ops) >= 300 and stats.total() == len(ops)
    assert stats.total(Status.OK) == len(ops) and not stats.errors
    assert {op.kind for op in ops} == {R, W, C}
    assert any(op.kind is C and op.result is True for op in ops)
    assert any(op.kind is C and op.result is False for op in ops)
    res = check(history)
    assert res.linearizable, res.explain(history)
    assert res.keys == 3


def test_driver_on_stale_reads_finds_anomalies(
    tmp_path: Path, open_cluster_once: Callable[..., pf.Cluster]
) -> None:
    history, _ = drive(tmp_path, open_cluster_once, StaleReads, seed=2)
    res = check(history)
    assert not res.linearizable and res.anomalies >= 1 and not res.undecided
    assert res.failures[0].blocked.status is Status.OK


def test_driver_records_errors_by_class(tmp_path: Path, open_cluster_once: Callable[..., pf.Cluster]) -> None:
    """A refused argument is a fail, anything else the store raises unknown; a bug stops the run."""

    class Refusing(TableRegister):
        def write(self, key: bytes, value: bytes) -> None:
            raise InvalidArgumentError("refused")

        def cas(self, key: bytes, expected: bytes | None, new: bytes) -> bool:
            raise NodeUnavailableError("t", 0, "n1", "u")

    history, stats = drive(tmp_path, open_cluster_once, Refusing, seed=3)
    by_kind = {(op.kind, op.status) for op in history.ops()}
    assert by_kind == {(R, Status.OK), (W, Status.FAIL), (C, UNKNOWN)}
    assert set(stats.errors) == {"InvalidArgumentError", "NodeUnavailableError"}
    assert check(history).linearizable

    class Buggy(TableRegister):
        def read(self, key: bytes) -> bytes | None:
            raise KeyError(key)

    with pytest.raises(KeyError):
        run_register_clients(
            lambda i: Buggy(None),
            [b"a"],
            clients=2,
            seconds=5.0,
            seed=0,
            history=History(),
            weights=(1, 0, 0),
        )


def brute_force(ops: list[Op]) -> bool:
    """Linearizable by trying every order of every choice of the unknown ops (tiny histories)."""
    live = [op for op in ops if op.status is Status.OK or (op.status is UNKNOWN and op.kind is not R)]
    sure = [op for op in live if op.status is Status.OK]
    maybe = [op for op in live if op.status is UNKNOWN]
    for mask in range(1 << len(maybe)):
        chosen = sure + [op for j, op in enumerate(maybe) if mask >> j & 1]
        for order in itertools.permutations(chosen):
            if all(
                b.complete_ns is None or b.complete_ns >= a.invoke_ns
                for x, a in enumerate(order)
                for b in order[x + 1 :]
            ) and _replays(order):
                return True
    return False


def _replays(order: tuple[Op, ...]) -> bool:
    state = None
    for op in order:
        unknown = op.status is UNKNOWN
        if op.kind is R:
            if state != op.result:
                return False
        elif op.kind is W:
            state = op.value
        elif state == op.expected:
            if not unknown and op.result is not True:
                return False
            state = op.value
        elif not unknown and op.result is not False:
            return False
    return True


def random_tiny(rng: random.Random, n: int) -> list[Op]:
    """Random intervals, kinds, values and results (mostly not linearizable), some unknown."""
    vals = [None, b"a", b"b", b"c"]
    ops = []
    for i in range(n):
        kind = rng.choice((R, W, C))
        t0 = rng.randrange(0, 20)
        t1 = t0 + rng.randrange(0, 8)
        status = rng.choice((Status.OK, Status.OK, Status.OK, UNKNOWN, Status.FAIL))
        value = rng.choice(vals[1:]) if kind is not R else None
        expected = rng.choice(vals) if kind is C else None
        result = rng.choice(vals) if kind is R else rng.random() < 0.5 if kind is C else None
        if status is UNKNOWN:
            t1, result = None, None
        ops.append(Op(i, 0, K, kind, t0, t1, status, value, expected, result))
    return ops


def test_agrees_with_brute_force_on_tiny_histories() -> None:
    rng = random.Random(22)
    verdicts = {True: 0, False: 0}
    for _ in range(3000):
        ops = random_tiny(rng, rng.randrange(1, 7))
        want = brute_force(ops)
        assert (check_key(ops) is True) is want, "\n".join(map(str, ops))
        verdicts[want] += 1
    assert min(verdicts.values()) > 300  # both verdicts well exercised


def test_driver_keeps_to_its_rate(tmp_path: Path, open_cluster_once: Callable[..., pf.Cluster]) -> None:
    cluster = open_cluster_once(tmp_path / "c", name="c", config=pf.Config(wal_sync="none"))
    table = cluster.create_table("t", partition_count=2)
    history = History()
    t = time.monotonic()
    stats = run_register_clients(lambda i: TableRegister(table), [b"a"], 2, 0.5, 4, history, rate=100)
    assert time.monotonic() - t >= 0.5
    # each client calls every 20 ms from its start: at most 26 calls each in 0.5 s
    assert 10 <= stats.total() == len(history) <= 52
    assert check(history).linearizable
