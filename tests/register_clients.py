"""Clients that make a register history for the linearizability checker (issue #22 §3):
:func:`run_register_clients` runs threads of random reads, writes and compare-and-sets
through a :class:`Register` adapter and records them in a :class:`linearizability.History`;
:class:`TableRegister` is the adapter over a pegasus_fast table (an embedded ``Table`` or a
multi-node ``RoutedTable``: the same data API).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from linearizability import History, Kind, Status
from pegasus_fast.data_api import CheckType
from pegasus_fast.errors import InvalidArgumentError, InvalidTypeError, PegasusFastError

#: the errors that say nothing was applied: the arguments are checked (by the client, or by
#: the server before it logs anything) and refused. Everything else a store raises may come
#: after the write was logged, or after a retry on another node (routed_table.py retries a
#: call whose node went away): unknown.
DEFINITE_ERRORS: tuple[type[BaseException], ...] = (InvalidArgumentError, InvalidTypeError)


def classify_pegasus_error(exc: BaseException) -> Status | None:
    """``fail`` for an error that guarantees nothing was applied, ``unknown`` for any other
    error of the store or the network, None for anything else (a bug: the driver raises it)."""
    if isinstance(exc, DEFINITE_ERRORS):
        return Status.FAIL
    if isinstance(exc, (PegasusFastError, OSError)) or type(exc).__module__.startswith("grpc"):
        return Status.UNKNOWN
    return None


class Register(Protocol):
    """One client's view of the registers (one per key)."""

    def read(self, key: bytes) -> bytes | None: ...

    def write(self, key: bytes, value: bytes) -> None: ...

    def cas(self, key: bytes, expected: bytes | None, new: bytes) -> bool: ...

    def classify(self, exc: BaseException) -> Status | None:
        """``fail``, ``unknown``, or None for an error that is a bug (raised again)."""
        ...


class TableRegister:
    """Registers in a table: key ``k`` is the record (hash key ``k``, sort key ``sort_key``);
    a cas is ``check_and_set`` of that record on itself (``VALUE_NOT_EXIST`` when it expects
    absent, ``VALUE_BYTES_EQUAL`` otherwise)."""

    def __init__(
        self,
        table: Any,
        classify: Callable[[BaseException], Status | None] = classify_pegasus_error,
        sort_key: bytes = b"r",
    ) -> None:
        self.table = table
        self.sort_key = sort_key
        self._classify = classify

    def read(self, key: bytes) -> bytes | None:
        value: bytes | None = self.table.get(key, self.sort_key)
        return value

    def write(self, key: bytes, value: bytes) -> None:
        self.table.set(key, self.sort_key, value)

    def cas(self, key: bytes, expected: bytes | None, new: bytes) -> bool:
        if expected is None:
            check, operand = CheckType.VALUE_NOT_EXIST, b""
        else:
            check, operand = CheckType.VALUE_BYTES_EQUAL, expected
        return bool(
            self.table.check_and_set(key, self.sort_key, check, operand, self.sort_key, new).set_succeed
        )

    def classify(self, exc: BaseException) -> Status | None:
        return self._classify(exc)


@dataclass
class DriverStats:
    """What the clients did: (kind, status) -> count, and error type name -> count."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def total(self, status: Status | None = None) -> int:
        return sum(n for (_, s), n in self.counts.items() if status is None or s == status.value)


def run_register_clients(
    make_client: Callable[[int], Register],
    keys: Sequence[bytes],
    clients: int,
    seconds: float,
    seed: int,
    history: History,
    *,
    stop: threading.Event | None = None,
    weights: tuple[float, float, float] = (0.4, 0.3, 0.3),
    rate: float | None = None,
) -> DriverStats:
    """Run ``clients`` threads for ``seconds`` (or until ``stop`` is set), each with its own
    ``make_client(i)`` (closed after, when it has ``close``), choosing at random among a
    read, a write of a unique value (``b"<client>-<n>"``) and a cas that expects the last
    value it read of the key (or, one time in four, a value recently written by anyone, or
    absent); ``weights``: read, write, cas; ``rate``: at most that many calls a second in all
    (None: as fast as they go). An error the adapter classifies as None stops every client
    and is raised here."""
    stop = stop or threading.Event()
    deadline = time.monotonic() + seconds
    stats = DriverStats()
    lock = threading.Lock()
    recent: dict[bytes, deque[bytes]] = {k: deque(maxlen=8) for k in keys}
    raised: list[BaseException] = []

    def client(i: int) -> None:
        rng = random.Random(seed * 1_000_003 + i)
        reg = make_client(i)
        last_read: dict[bytes, bytes | None] = {}
        n = 0
        interval = clients / rate if rate else 0.0
        next_call = time.monotonic()
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                if interval:
                    if stop.wait(max(0.0, next_call - time.monotonic())) or time.monotonic() >= deadline:
                        break
                    next_call += interval
                key = rng.choice(keys)
                kind = rng.choices((Kind.READ, Kind.WRITE, Kind.CAS), weights)[0]
                value = expected = None
                if kind is not Kind.READ:
                    value = f"{i}-{n}".encode()
                    n += 1
                if kind is Kind.CAS:
                    if key in last_read and rng.random() < 0.75:
                        expected = last_read[key]
                    else:
                        with lock:
                            choices: list[bytes | None] = [*recent[key], None]
                        expected = rng.choice(choices)
                op = history.invoke(i, key, kind, value, expected)
                try:
                    if kind is Kind.READ:
                        got: bytes | bool | None = reg.read(key)
                        last_read[key] = got  # type: ignore[assignment]
                    elif kind is Kind.WRITE:
                        reg.write(key, value)  # type: ignore[arg-type]
                        got = None
                    else:
                        got = reg.cas(key, expected, value)  # type: ignore[arg-type]
                except Exception as exc:
                    status = reg.classify(exc)
                    with lock:
                        stats.errors[type(exc).__name__] += 1
                    if status is Status.FAIL:
                        history.fail(op)
                    else:
                        history.unknown(op)
                    if status is None:
                        raise
                else:
                    history.ok(op, got)
                    status = Status.OK
                    if kind is not Kind.READ:
                        with lock:
                            recent[key].append(value)  # type: ignore[arg-type]
                with lock:
                    stats.counts[(kind.value, status.value)] += 1
        except BaseException as exc:
            with lock:
                raised.append(exc)
            stop.set()
        finally:
            close = getattr(reg, "close", None)
            if close is not None:
                close()

    threads = [
        threading.Thread(target=client, args=(i,), name=f"register-client-{i}") for i in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if raised:
        raise raised[0]
    return stats


__all__ = [
    "DEFINITE_ERRORS",
    "DriverStats",
    "Register",
    "TableRegister",
    "classify_pegasus_error",
    "run_register_clients",
]
