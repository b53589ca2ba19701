"""What the real-process duplication tests share: writers that record what was acknowledged, a
table of incompressible values, and the checks run once both sides have converged."""

from __future__ import annotations

import random
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pegasus_fast as pf
from dupharness import DupPair, check_converged, wait_until
from pegasus_fast.errors import PegasusFastError

TABLE = "t"
WAIT = 60.0
Key = tuple[bytes, bytes]


# -- what the writers write, and what the test knows was acknowledged ----------------------------


@dataclass
class Model:
    """Acknowledged writes: key -> value (None: deleted). A write that failed may or may not have
    happened: its keys are ``uncertain`` from then on, and only the two sides' equality covers them."""

    values: dict[Key, bytes | None] = field(default_factory=dict)
    uncertain: set[Key] = field(default_factory=set)
    acked: int = 0
    failed: int = 0

    def check(self, scan: dict[Key, bytes]) -> None:
        for key, value in self.values.items():
            if key in self.uncertain:
                continue
            assert scan.get(key) == value, (
                f"acknowledged write of {key!r} lost: {scan.get(key)!r} != {value!r}"
            )


class Writer:
    """A thread writing sets, multi_sets, deletes and multi_deletes to one table until stopped.

    Values say who wrote them and when (writer id, sequence number), so a mutation applied
    twice or out of order on the follower cannot hide behind an equal value.
    """

    def __init__(self, table: Callable[[], Any], model: Model, wid: int, seed: int) -> None:
        self._open = table
        self.model = model
        self.wid = wid
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"writer-{wid}", daemon=True)
        self.errors: list[BaseException] = []
        self.seq = 0

    def start(self) -> Writer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "the writer did not stop"

    def wait_acked(self, more: int, timeout: float = WAIT) -> None:
        want = self.model.acked + more
        wait_until(lambda: self.model.acked >= want, timeout, lambda: f"{more} more acknowledged writes")

    def _value(self) -> bytes:
        self.seq += 1
        return b"w%d:%d:" % (self.wid, self.seq) + b"x" * self._rng.randrange(0, 200)

    def _one(self, table: Any) -> None:
        rng, m = self._rng, self.model
        live = [k for k, v in m.values.items() if v is not None and k not in m.uncertain and k[0][:1] == b"w"]
        r = rng.random()
        if r < 0.55 or not live:
            key = (b"w%d.%d" % (self.wid, rng.randrange(1 << 30)), b"s")
            value = self._value()
            self._write([key], lambda: table.set(key[0], key[1], value), {key: value})
        elif r < 0.75:
            hk = b"w%d.m%d" % (self.wid, rng.randrange(1 << 30))
            kvs = {b"s%d" % i: self._value() for i in range(rng.randrange(1, 5))}
            self._write(
                [(hk, sk) for sk in kvs],
                lambda: table.multi_set(hk, kvs),
                {(hk, sk): v for sk, v in kvs.items()},
            )
        elif r < 0.85:
            key = rng.choice(live)
            value = self._value()
            self._write([key], lambda: table.set(key[0], key[1], value), {key: value})
        elif r < 0.95:
            key = rng.choice(live)
            self._write([key], lambda: table.delete(key[0], key[1]), {key: None})
        else:
            hk = rng.choice(live)[0]
            sks = [sk for (h, sk) in live if h == hk]
            self._write(
                [(hk, sk) for sk in sks], lambda: table.multi_delete(hk, sks), {(hk, sk): None for sk in sks}
            )

    def _write(self, keys: list[Key], do: Callable[[], object], effect: dict[Key, bytes | None]) -> None:
        try:
            do()
        except (PegasusFastError, OSError) as exc:
            # not acknowledged: it may or may not have happened
            self.model.uncertain.update(keys)
            self.model.failed += 1
            self.errors.append(exc)
            self._stop.wait(0.02)
            return
        self.model.values.update(effect)
        self.model.acked += 1

    def _run(self) -> None:
        table, close = self._open()
        try:
            while not self._stop.is_set():
                self._one(table)
                self._stop.wait(0.002)
        finally:
            close()


def remote_table(url: str) -> Callable[[], tuple[Any, Callable[[], None]]]:
    def open_() -> tuple[Any, Callable[[], None]]:
        rc = pf.connect(url, timeout=5.0)
        return rc.table(TABLE), rc.close

    return open_


def write_table(
    cluster: pf.Cluster, table: str, sizes: list[int], value_bytes: int, seed: int
) -> dict[Key, bytes]:
    """A table of ``len(sizes)`` partitions, each holding at least that many bytes of
    incompressible values (0: none)."""
    t = cluster.create_table(table, len(sizes))
    rng = random.Random(seed)
    held = [0] * len(sizes)
    out: dict[Key, bytes] = {}
    i = 0
    while any(h < want for h, want in zip(held, sizes)):
        hk = b"big%d" % i
        i += 1
        p = t.partition_index(hk)
        if held[p] >= sizes[p]:
            continue
        value = rng.randbytes(value_bytes)
        t.set(hk, b"s", value)
        out[(hk, b"s")] = value
        held[p] += value_bytes
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- checks ------------------------------------------------------------------------------------


def scan_of(url: str, table: str = TABLE, token: str | None = None) -> dict[Key, bytes]:
    with pf.connect(url, token=token, timeout=30.0) as rc:
        return {(hk, sk): v for hk, sk, v in rc.table(table).scan()}


def wait_caught_up(d: Any, what: str) -> None:
    """DS_LOG, and nothing pending on any partition."""
    d.wait_for(pf.DupStatus.LOG, WAIT)
    wait_until(
        lambda: all(p.pending_mutations == 0 for p in d.progress()),
        WAIT,
        lambda: (
            f"{what}: pending mutations to reach 0: {[(p.pending_mutations, p.reason) for p in d.progress()]}"
        ),
    )


def copying(d: Any) -> list[tuple[int, int]]:
    """(copied, total) of each partition whose checkpoint is being copied."""
    out = []
    for p in d.progress():
        m = re.fullmatch(r"copying (\d+)/(\d+) bytes", p.checkpoint_state)
        if m:
            out.append((int(m.group(1)), int(m.group(2))))
    return out


def check_offline(root: Path, table: str, model: Model) -> list[tuple[str, float]]:
    """With both processes stopped: open both directories here, check that they hold the same raw
    records (values, TTLs, timetags), that every source decree was applied once, and that every
    acknowledged write is there; returns the duplication's persisted timeline."""
    pair = DupPair(root)
    try:
        src = pair.open_source()
        pair.open_follower()
        check_converged(pair, table)
        model.check({(hk, sk): v for hk, sk, v in src.table(table).scan()})
        (dup,) = src.duplications()
        return list(dup.timeline)
    finally:
        pair.close()
