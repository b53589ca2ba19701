"""A linearizability checker for single-key registers (read, write, compare-and-set), the
history it checks, and clients that make one (issue #22 §3).

:class:`History` records each operation's call and end (``time.monotonic_ns``) and whether
it is ``ok``, ``fail`` (certainly not applied: dropped) or ``unknown`` (a timeout, a lost
connection, a dead node: it may take effect at any moment after its call, so it ends at
+infinity with any result; an unknown read says nothing and is dropped).

:func:`check` checks each key on its own (registers compose: P-compositionality). The search
is Wing & Gong's, with Lowe's just-in-time linearization over a doubly linked list of call and
return events and a cache of the (linearized set, state) pairs already explored, as in
Porcupine. Every key starts absent (None). Two operations are ordered only when one ends
strictly before the other is called.

One exact reduction keeps unknown operations from multiplying the search: an unknown write
(or compare-and-set) whose value nobody observes (no ok read returns it, no compare-and-set
expects it) can only matter by making a failing compare-and-set fail; it can always be moved
to just before such a one (it has no end), so it is linearized only there, or never.

The client driver (:func:`run_register_clients`) and the adapter over a pegasus_fast table
(:class:`TableRegister`) are in register_clients.py.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import Enum

#: the state after an unobserved unknown write: equal to no value anyone reads or expects
_GARBAGE = object()


class Kind(str, Enum):
    READ = "read"
    WRITE = "write"
    CAS = "cas"


class Status(str, Enum):
    OK = "ok"
    #: certainly not applied (refused before anything was sent, or refused by the store)
    FAIL = "fail"
    #: may or may not have been applied, at any moment after the call
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Op:
    """One operation. ``value``: what a write or a cas sets; ``expected``: what a cas
    expects (None: absent); ``result``: what a read returned (None: absent) or whether a cas
    set; ``complete_ns`` is None while it runs and for an unknown operation."""

    id: int
    client: int
    key: bytes
    kind: Kind
    invoke_ns: int
    complete_ns: int | None = None
    status: Status | None = None
    value: bytes | None = None
    expected: bytes | None = None
    result: bytes | bool | None = None

    def __str__(self) -> str:
        end = "?" if self.complete_ns is None else self.complete_ns
        if self.kind is Kind.READ:
            what = f"read -> {self.result!r}"
        elif self.kind is Kind.WRITE:
            what = f"write {self.value!r}"
        else:
            what = f"cas {self.expected!r} -> {self.value!r}: {self.result!r}"
        return (
            f"#{self.id} c{self.client} {what} [{self.invoke_ns}, {end}] {self.status and self.status.value}"
        )


class History:
    """A thread-safe record of operations: :meth:`invoke` then one of :meth:`ok`,
    :meth:`fail`, :meth:`unknown`; or :meth:`add` for an operation already over."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ops: list[Op] = []

    def invoke(
        self, client: int, key: bytes, kind: Kind, value: bytes | None = None, expected: bytes | None = None
    ) -> int:
        """Record a call now; returns the operation's id."""
        with self._lock:
            op_id = len(self._ops)
            self._ops.append(
                Op(op_id, client, key, kind, time.monotonic_ns(), value=value, expected=expected)
            )
        return op_id

    def _end(self, op_id: int, status: Status, result: bytes | bool | None, now: int | None) -> None:
        with self._lock:
            op = self._ops[op_id]
            if op.status is not None:
                raise ValueError(f"operation {op_id} already ended")
            self._ops[op_id] = Op(
                op.id, op.client, op.key, op.kind, op.invoke_ns, now, status, op.value, op.expected, result
            )

    def ok(self, op_id: int, result: bytes | bool | None = None) -> None:
        """The call returned ``result`` (a read's value, a cas's success; None for a write)."""
        self._end(op_id, Status.OK, result, time.monotonic_ns())

    def fail(self, op_id: int) -> None:
        """The call certainly did not take effect."""
        self._end(op_id, Status.FAIL, None, time.monotonic_ns())

    def unknown(self, op_id: int) -> None:
        """The call may have taken effect, or may still take effect, at any later moment."""
        self._end(op_id, Status.UNKNOWN, None, None)

    def add(
        self,
        client: int,
        key: bytes,
        kind: Kind,
        invoke_ns: int,
        complete_ns: int | None,
        result: bytes | bool | None = None,
        *,
        value: bytes | None = None,
        expected: bytes | None = None,
        status: Status = Status.OK,
    ) -> Op:
        """Record a whole operation with its own times (an unknown one ends at None)."""
        if status is Status.UNKNOWN:
            complete_ns, result = None, None
        elif complete_ns is None or complete_ns < invoke_ns:
            raise ValueError("an ended operation needs complete_ns >= invoke_ns")
        with self._lock:
            op = Op(
                len(self._ops), client, key, kind, invoke_ns, complete_ns, status, value, expected, result
            )
            self._ops.append(op)
        return op

    def ops(self) -> list[Op]:
        """A copy of the operations so far (one still running has status None)."""
        with self._lock:
            return list(self._ops)

    def __len__(self) -> int:
        with self._lock:
            return len(self._ops)


@dataclass
class KeyFailure:
    """A key whose operations admit no linearization. ``prefix``: the longest sequence of
    its ok operations that could be linearized (ids, in order); ``blocked``: the operation
    that could not be placed after the longest prefix (none could be placed before it ends);
    ``states``: the register's value after that prefix; ``concurrent``: the operations not
    in the prefix called before ``blocked`` ended (the candidates that all failed)."""

    key: bytes
    prefix: list[int]
    blocked: Op
    states: list[bytes | None]
    concurrent: list[Op]

    def explain(self, ops_by_id: dict[int, Op] | None = None, last: int = 5) -> str:
        lines = [f"key {self.key!r}: {len(self.prefix)} ops linearizable, then stuck at {self.blocked}"]
        lines.append(f"  register after the prefix: {self.states!r}")
        if ops_by_id is not None and self.prefix:
            lines.append(f"  last ops of the prefix (of {len(self.prefix)}):")
            lines += [f"    {ops_by_id[i]}" for i in self.prefix[-last:]]
        lines.append("  unplaced ops called before it ended:")
        lines += [f"    {op}" for op in self.concurrent[:10]]
        return "\n".join(lines)


@dataclass
class Result:
    """What :func:`check` found: ``linearizable`` only when every key was decided and none
    failed; ``anomalies``: the number of keys that fail; ``undecided``: keys whose search ran
    out of its step budget."""

    linearizable: bool
    anomalies: int
    keys: int
    ops: int
    failures: list[KeyFailure] = field(default_factory=list)
    undecided: list[bytes] = field(default_factory=list)
    seconds: float = 0.0

    def explain(self, history: History | list[Op] | None = None) -> str:
        ops = history.ops() if isinstance(history, History) else history
        by_id = {op.id: op for op in ops} if ops is not None else None
        head = (
            f"{self.keys} keys, {self.ops} ops: {self.anomalies} anomalies, {len(self.undecided)} undecided"
        )
        return "\n".join([head, *(f.explain(by_id) for f in self.failures)])


def check(history: History | list[Op], max_steps: int | None = 5_000_000) -> Result:
    """Check every key of ``history`` on its own; ``max_steps`` bounds each key's search
    (None: no bound), past which the key is undecided rather than guessed."""
    start = time.perf_counter()
    ops = history.ops() if isinstance(history, History) else list(history)
    by_key: dict[bytes, list[Op]] = {}
    for op in ops:
        if op.status is None:
            raise ValueError(f"operation {op.id} has not ended")
        by_key.setdefault(op.key, []).append(op)
    result = Result(True, 0, len(by_key), len(ops))
    for key in sorted(by_key):
        outcome = check_key(by_key[key], max_steps)
        if outcome is None:
            result.undecided.append(key)
        elif isinstance(outcome, KeyFailure):
            result.failures.append(outcome)
    result.anomalies = len(result.failures)
    result.linearizable = not result.failures and not result.undecided
    result.seconds = time.perf_counter() - start
    return result


def check_key(key_ops: list[Op], max_steps: int | None = None) -> bool | KeyFailure | None:
    """True when the operations of one key are linearizable, a :class:`KeyFailure` when
    not, None when the search passed ``max_steps``."""
    if not key_ops:
        return True
    key = key_ops[0].key
    # what anyone observes: an unknown write of a value nobody observes goes to the pool
    observed: set[bytes | None] = set()
    for op in key_ops:
        if op.status is Status.OK and op.kind is Kind.READ:
            observed.add(op.result)  # type: ignore[arg-type]
        if op.kind is Kind.CAS and op.status is not Status.FAIL:
            observed.add(op.expected)
    listed: list[Op] = []
    pool: list[Op] = []
    for op in key_ops:
        if op.status is None or (op.status is Status.OK and op.complete_ns is None):
            raise ValueError(f"operation {op.id} has not ended")
        if op.status is Status.FAIL or (op.status is Status.UNKNOWN and op.kind is Kind.READ):
            continue
        if op.status is Status.UNKNOWN and op.value not in observed:
            pool.append(op)
        else:
            listed.append(op)
    listed.sort(key=lambda op: op.invoke_ns)
    pool.sort(key=lambda op: op.invoke_ns)
    return _search(key, listed, pool, max_steps)


def _search(key: bytes, listed: list[Op], pool: list[Op], max_steps: int | None) -> bool | KeyFailure | None:
    n = len(listed)
    # events: (time, 0 call / 1 return, op index); at equal times a call comes first (overlap)
    events = [(op.invoke_ns, 0, i) for i, op in enumerate(listed)]
    events += [(op.complete_ns, 1, i) for i, op in enumerate(listed) if op.complete_ns is not None]
    events.sort()
    size = len(events) + 1  # node 0 is the head
    nxt = list(range(1, size + 1))
    nxt[-1] = -1
    prv = list(range(-1, size - 1))
    op_of = [-1] * size
    match = [-1] * size  # a call node's return node (0: an unknown op, which has none)
    ret_node = {}
    for node, (_, is_ret, i) in enumerate(events, 1):
        op_of[node] = i
        if is_ret:
            ret_node[i] = node
    for node, (_, is_ret, i) in enumerate(events, 1):
        if not is_ret:
            match[node] = ret_node.get(i, 0)
    # per op: 0 read, 1 write, 2 cas that set, 3 cas that did not; +4 when unknown
    code = []
    for op in listed:
        c = 0 if op.kind is Kind.READ else 1 if op.kind is Kind.WRITE else 2 if op.result is not False else 3
        code.append(c + 4 if op.status is Status.UNKNOWN else c)
    value = [op.value for op in listed]
    expected = [op.expected for op in listed]
    result = [op.result for op in listed]
    # the linearized set in three small ints, so that a long history does not make every step
    # cost its length: the ok ops in call order as ``base`` (all of the first ``base`` are
    # linearized) and ``rel`` (bit b: op base + b), and ``unk`` (the unknown ops in the list,
    # then the pool's)
    bit = [0] * n
    n_ok = n_unknown = 0
    for i, op in enumerate(listed):  # listed is in call order
        if op.status is Status.OK:
            bit[i], n_ok = n_ok, n_ok + 1
        else:
            bit[i], n_unknown = 1 << n_unknown, n_unknown + 1
    pool_bits = [1 << (n_unknown + j) for j in range(len(pool))]

    remaining = sum(1 for op in listed if op.status is Status.OK)
    state: object = None
    base = rel = unk = 0
    cache: set[tuple[int, int, int, object]] = set()
    # (call node, state, base, rel, unk before, forced): a forced step is an ok read or failed cas
    # that fits the state: it changes nothing, so any linearization from here can be reordered
    # to take it first, and there is no other choice to try at that point
    stack: list[tuple[int, object, int, int, int, bool]] = []
    # the deepest stack met at a return: its ops (kept up to date from ``low``, the lowest
    # depth since, so that a deeper one costs only what changed), the return and the state
    best_ops: list[int] = []
    best: tuple[int, int, object] = (-1, 0, None)
    low = 0
    steps = 0
    entry = nxt[0]
    while remaining:
        steps += 1
        if max_steps is not None and steps > max_steps:
            return None
        m = match[entry] if entry > 0 else -1
        if m >= 0:  # a call: try to linearize it now
            i = op_of[entry]
            c = code[i]
            if c < 4:
                new_base, new_rel, new_unk = base, rel | (1 << (bit[i] - base)), unk
                if new_rel & 1:  # the ops linearized from base on: move base past them
                    t = (new_rel ^ (new_rel + 1)).bit_length() - 1
                    new_rel >>= t
                    new_base += t
            else:
                new_base, new_rel, new_unk = base, rel, unk | bit[i]
            forced = False
            if c == 0:
                ok = forced = state == result[i]
                new = state
            elif c == 1 or c == 5:
                ok, new = True, value[i]
            elif c == 2:
                ok, new = state == expected[i], value[i]
            elif c == 3:
                ok = forced = state != expected[i]
                new = state
                if not ok and pool:  # an unobserved unknown write just before it would do
                    g = _pool_pick(pool, pool_bits, unk, state, _first_return_time(entry, nxt, match, events))
                    if g >= 0:
                        ok, new, new_unk = True, _GARBAGE, new_unk | pool_bits[g]
            elif c == 6:
                ok, new = True, value[i] if state == expected[i] else state
            else:  # an unknown read was dropped; an unknown cas that did not set is not a thing
                ok, new = True, state
            if ok and (new_base, new_rel, new_unk, new) not in cache:
                cache.add((new_base, new_rel, new_unk, new))
                stack.append((entry, state, base, rel, unk, forced))
                state, base, rel, unk = new, new_base, new_rel, new_unk
                if m:
                    remaining -= 1
                    nr, pr = nxt[m], prv[m]
                    nxt[pr] = nr
                    if nr >= 0:
                        prv[nr] = pr
                nr, pr = nxt[entry], prv[entry]
                nxt[pr] = nr
                if nr >= 0:
                    prv[nr] = pr
                entry = nxt[0]
            elif forced:  # explored already from here, and nothing else needs trying here
                entry = -1
            else:
                entry = nxt[entry]
        else:  # a return: nothing more fits before it ends (or -1: forced); undo the last step
            if entry > 0 and len(stack) > best[0]:
                best_ops[low:] = [op_of[frame[0]] for frame in stack[low:]]
                best = (len(stack), entry, state)
                low = len(stack)
            if not stack:
                return _failure(key, listed, best_ops, best[1], best[2], events)
            entry, state, base, rel, unk, forced = stack.pop()
            low = min(low, len(stack))
            m = match[entry]
            # relink in the reverse order of the unlink
            nxt[prv[entry]] = entry
            if nxt[entry] >= 0:
                prv[nxt[entry]] = entry
            if m:
                remaining += 1
                nxt[prv[m]] = m
                if nxt[m] >= 0:
                    prv[nxt[m]] = m
            entry = -1 if forced else nxt[entry]
    return True


def _first_return_time(
    entry: int, nxt: list[int], match: list[int], events: list[tuple[int, int, int]]
) -> float:
    """When the first operation not yet linearized ends: a pool op called later cannot go now."""
    while entry >= 0:
        if match[entry] < 0:
            return events[entry - 1][0]
        entry = nxt[entry]
    return float("inf")


def _pool_pick(pool: list[Op], bits: list[int], used: int, state: object, before: float) -> int:
    """An unused pool op called by ``before`` that would set the register now: a cas that
    expects ``state`` first (a write can do everything it can, so it is kept), else a write."""
    write = -1
    for j, op in enumerate(pool):
        if op.invoke_ns > before:
            break
        if used & bits[j]:
            continue
        if op.kind is Kind.CAS:
            if op.expected == state:
                return j
        elif write < 0:
            write = j
    return write


def _failure(
    key: bytes, listed: list[Op], prefix_idx: list[int], node: int, state: object, events: list
) -> KeyFailure:
    blocked = listed[events[node - 1][2]]
    placed = set(prefix_idx)
    concurrent = [
        op
        for i, op in enumerate(listed)
        if i not in placed and op is not blocked and op.invoke_ns <= (blocked.complete_ns or 0)
    ]
    shown = "(an unobserved value)" if state is _GARBAGE else state
    return KeyFailure(key, [listed[i].id for i in prefix_idx], blocked, [shown], concurrent)  # type: ignore[list-item]


__all__ = ["History", "Kind", "KeyFailure", "Op", "Result", "Status", "check", "check_key"]
