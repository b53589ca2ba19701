"""Duplication between real processes (issue #9 §6): crashes, a faulty network, a remote that is down.

Every test starts its own ``pegasus-fast serve`` processes on 127.0.0.1
(tests/served.py) and stops them at teardown, whatever happened.

- ``kill -9`` of the follower, and separately of the source, in PREPARE, in
  APP (mid-copy of a RocksDB checkpoint: the source ships through a proxy
  that paces it, so the copy is in flight long enough to be hit) and in LOG
  while a writer keeps writing through ``pf.connect``. The killed side is
  started again on the same port; the duplication resumes (it is persisted
  in the source cluster), and then the source and follower scans are equal,
  every acknowledged write is there, the follower's WAL applied each source
  decree once, and the persisted timeline shows the kill landed in the state
  it meant to hit.
- A faulty network: the source duplicates through tests/netproxy.py, which
  cuts, stalls and slows connections at seeded points during APP and LOG
  while writes go on; once it heals: 0 lost and 0 duplicated mutations.
- A remote that is down: progress() says ``remote unavailable: ...``, the
  status stays, wait_for times out naming the remote, and it resumes when
  the remote is back on its port.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pegasus_fast as pf
import pytest
from conftest import PYTHON, child_env
from dupharness import SOURCE_DECREE_OP, DupPair, check_converged, wait_until
from netproxy import FaultyProxy
from pegasus_fast import _backend
from pegasus_fast.duplication import checkpoints as ckpt_policy
from pegasus_fast.duplication.ports import SourceId
from pegasus_fast.errors import PegasusFastError
from pegasus_fast.net import pegasus_fast_pb2 as pb
from pegasus_fast.net import pegasus_fast_pb2_grpc as rpc
from pegasus_fast.net.follower import RemoteConnector
from served import Fleet, Served, start_all

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

TABLE = "t"
PARTITIONS = 2
#: the served source runs with this knob (``serve --config``): a partition past it learns from a
#: RocksDB checkpoint copied file by file, in 1 MiB chunks
SOURCE_SMALL_MAX = 1 << 20
SOURCE_ARGS = ("--config", f"small_partition_max_bytes={SOURCE_SMALL_MAX}")
#: PREPARE under the adaptive policy lasts a few milliseconds, too short to be hit for sure; the
#: legacy policy (the pre-#2054 gating) waits this long for a forced checkpoint: a window to kill in
LEGACY_ARGS = (
    "--config",
    "checkpoint_policy=legacy",
    "--config",
    "legacy_forced_checkpoint_delay_seconds=1.0",
)
LARGE_PARTITION_BYTES = (2 << 20) + (512 << 10)
VALUE_BYTES = 64 << 10
#: bytes a second the proxy forwards while a copy must still be in flight when a side is killed
COPY_RATE = 2 << 20
#: a copy is "mid-way" once this much of the checkpoints went through (of about 5 MiB)
MID_COPY_BYTES = (2 << 20) + (512 << 10)
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


# -- the source's data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    path: Path
    records: dict[Key, bytes]


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


@pytest.fixture(scope="session")
def source_template(backend: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Template:
    """A source cluster directory, made once per backend and copied by each test."""
    path = tmp_path_factory.mktemp(f"source-template-{_backend.name}") / "source"
    with pf.Cluster.open(path, name="source") as c:
        records = write_table(c, TABLE, [LARGE_PARTITION_BYTES] * PARTITIONS, VALUE_BYTES, seed=1)
    return Template(path, records)


@pytest.fixture
def fleet(tmp_path: Path, backend: ModuleType) -> Iterator[Fleet]:
    f = Fleet(tmp_path, _backend.name)
    try:
        yield f
    finally:
        f.close()


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


# -- kill -9 of either side, in each state ---------------------------------------------------------

PHASE_STATUS = {"prepare": "DS_PREPARE", "app": "DS_APP", "log": "DS_LOG"}
NEXT_STATUS = {"prepare": "DS_APP", "app": "DS_LOG", "log": None}


def _landed_in(timeline: list[tuple[str, float]], phase: str, killed_at: float) -> None:
    """The persisted timeline shows the duplication had entered ``phase`` and not left it when the
    killed process was gone."""
    entered = [t for s, t in timeline if s == PHASE_STATUS[phase]]
    assert entered and entered[0] <= killed_at, (phase, timeline, killed_at)
    nxt = NEXT_STATUS[phase]
    if nxt is not None:
        left = [t for s, t in timeline if s == nxt]
        assert left and left[0] > killed_at, (
            f"the kill landed after {phase}: {timeline}, killed at {killed_at}"
        )


@pytest.mark.parametrize("phase", ["prepare", "app", "log"])
@pytest.mark.parametrize("side", ["source", "follower"])
def test_kill9_then_restart_converges(fleet: Fleet, source_template: Template, side: str, phase: str) -> None:
    src, dst = fleet.add("source"), fleet.add("target")
    shutil.copytree(source_template.path, src.dir)
    model = Model(values=dict(source_template.records))
    src.args = SOURCE_ARGS + (LEGACY_ARGS if phase == "prepare" else ())
    start_all(src, dst)
    victim: Served = src if side == "source" else dst
    # the source ships through a proxy: paced while a copy must be in flight when the kill lands
    with (
        FaultyProxy(dst.port, rate=COPY_RATE if phase == "app" else None) as proxy,
        pf.connect(src.url, timeout=10.0) as rc,
    ):
        d = rc.add_duplication(TABLE, proxy.url)
        # writes go on all along, except when the source is killed mid-copy: then it must find the
        # same checkpoint again for the copy to resume (new writes would make it checkpoint anew)
        writer = None
        if not (side == "source" and phase == "app"):
            writer = Writer(remote_table(src.url), model, wid=1, seed=len(side + phase)).start()
        total = 0
        if phase == "prepare":
            d.wait_for(pf.DupStatus.PREPARE, WAIT)
        elif phase == "app":
            # progress counts what the source handed to gRPC; the proxy, what really went
            wait_until(
                lambda: proxy.stats.up_bytes >= MID_COPY_BYTES and len(copying(d)) == PARTITIONS,
                WAIT,
                lambda: f"a copy mid-way: {[p.checkpoint_state for p in d.progress()]}",
            )
            total = sum(y for _, y in copying(d))
        else:
            d.wait_for(pf.DupStatus.LOG, WAIT)
            assert writer is not None
            writer.wait_acked(40)
        victim.kill9()
        killed_at = time.time()
        if writer is not None:
            # the source goes on taking writes while the follower is down; writes to a dead source fail
            if side == "follower":
                writer.wait_acked(20)
            else:
                wait_until(lambda: model.failed >= 3, WAIT, "writes to the killed source to fail")
        if side == "follower" and phase != "prepare":
            # the remote is down: the status stays where it was, and progress says why
            wait_until(
                lambda: all(p.reason.startswith("remote unavailable: ") for p in d.progress()),
                WAIT,
                lambda: f"progress to say the remote is down: {[p.reason for p in d.progress()]}",
            )
            assert d.status.value == PHASE_STATUS[phase]
        # what the dead side's connection still carried is through; count from here
        wait_until(lambda: proxy.open_connections() == 0, WAIT, "the killed connection to close")
        sent_before = proxy.stats.up_bytes
        proxy.rate = None
        victim.start()
        if writer is not None:
            writer.wait_acked(20)
            writer.stop()
        wait_caught_up(d, f"after kill -9 of the {side} in {phase}")
        if phase == "app":
            # the copy resumed after the bytes the follower held, it did not start again
            resent = proxy.stats.up_bytes - sent_before
            assert resent < total, (resent, total)
        assert scan_of(src.url) == scan_of(dst.url)
    assert src.stop() == 0, src.stderr()
    assert dst.stop() == 0, dst.stderr()
    timeline = check_offline(fleet.root, TABLE, model)
    _landed_in(timeline, phase, killed_at)


#: the proxy's pace when a copy must outlast a graceful stop by far (5 MiB would take ~40 s)
CRAWL_RATE = 128 << 10


@pytest.mark.parametrize("side", ["source", "follower"])
def test_sigterm_mid_copy_stops_and_resumes(fleet: Fleet, source_template: Template, side: str) -> None:
    """SIGTERM stops a served cluster whose checkpoint copy is in flight over a slow link, without
    waiting for the copy to end (Served.stop gives it far less time than the copy needs); once
    started again, the copy resumes and the two sides converge."""
    src, dst = fleet.add("source"), fleet.add("target")
    shutil.copytree(source_template.path, src.dir)
    model = Model(values=dict(source_template.records))
    src.args = SOURCE_ARGS
    start_all(src, dst)
    with FaultyProxy(dst.port, rate=CRAWL_RATE) as proxy, pf.connect(src.url, timeout=10.0) as rc:
        d = rc.add_duplication(TABLE, proxy.url)
        wait_until(
            lambda: proxy.stats.up_bytes >= 128 << 10 and len(copying(d)) == PARTITIONS,
            WAIT,
            lambda: f"a copy under way: {[p.checkpoint_state for p in d.progress()]}",
        )
        victim = src if side == "source" else dst
        assert victim.stop() == 0, victim.stderr()
        proxy.rate = None
        victim.start()
        wait_caught_up(d, f"after SIGTERM of the {side} mid-copy")
        assert scan_of(src.url) == scan_of(dst.url)
    assert src.stop() == 0, src.stderr()
    assert dst.stop() == 0, dst.stderr()
    check_offline(fleet.root, TABLE, model)


def test_remove_mid_copy_does_not_wait_for_the_copy(fleet: Fleet, source_template: Template) -> None:
    """Removing a duplication whose checkpoint copy crawls over a slow link gives up the copy: the
    call returns (well within the client's deadline, which is far shorter than the copy), the
    duplication is gone, and the source goes on serving."""
    src, dst = fleet.add("source"), fleet.add("target")
    shutil.copytree(source_template.path, src.dir)
    src.args = SOURCE_ARGS
    start_all(src, dst)
    with FaultyProxy(dst.port, rate=CRAWL_RATE) as proxy, pf.connect(src.url, timeout=20.0) as rc:
        d = rc.add_duplication(TABLE, proxy.url)
        wait_until(
            lambda: proxy.stats.up_bytes >= 128 << 10 and len(copying(d)) == PARTITIONS,
            WAIT,
            lambda: f"a copy under way: {[p.checkpoint_state for p in d.progress()]}",
        )
        d.remove()
        assert rc.duplications() == []
        rc.table(TABLE).set(b"after", b"s", b"v")
        assert rc.table(TABLE).get(b"after", b"s") == b"v"
    assert src.stop() == 0, src.stderr()


def test_remote_token_survives_a_source_restart(fleet: Fleet) -> None:
    """The token shown to a follower that wants one is kept with the duplication: a source
    killed and restarted (without that token in its environment) goes on shipping."""
    src, dst = fleet.add("source"), fleet.add("target")
    token_file = fleet.root / "follower.token"
    token_file.write_text("s3cret-follower-token\n")
    src.launch()
    dst.launch("--token-file", str(token_file))
    src.wait_ready()
    dst.wait_ready()
    model = Model()
    with pf.connect(src.url, timeout=10.0) as rc:
        rc.create_table(TABLE, PARTITIONS)
        d = rc.add_duplication(TABLE, dst.url, remote_token="s3cret-follower-token")
        writer = Writer(remote_table(src.url), model, wid=7, seed=7).start()
        try:
            d.wait_for(pf.DupStatus.LOG, WAIT)
            writer.wait_acked(20)
            src.kill9()
            wait_until(lambda: model.failed >= 3, WAIT, "writes to the killed source to fail")
            src.start()
            writer.wait_acked(20)
        finally:
            writer.stop()
        wait_caught_up(d, "after the source restarted")
        assert d.error is None
        assert scan_of(src.url) == scan_of(dst.url, token="s3cret-follower-token")
    assert src.stop() == 0, src.stderr()
    assert dst.stop() == 0, dst.stderr()
    check_offline(fleet.root, TABLE, model)


# -- a faulty network --------------------------------------------------------------------------

#: CI runs seeds 0..19; PEGASUS_FAST_NET_SEEDS=FIRST:END runs others (a longer soak)
SEEDS = range(*map(int, os.environ.get("PEGASUS_FAST_NET_SEEDS", "0:20").split(":")))
#: the embedded source's knob: a partition past it learns from a RocksDB checkpoint
NET_SMALL_MAX = 256 << 10
#: what a partition may hold: nothing (no checkpoint), a logical snapshot, a RocksDB checkpoint of a
#: few 1 MiB chunks; every run has one of the last kind
NET_SIZES = (0, 96 << 10, 1 << 20)
NET_VALUE_BYTES = 16 << 10
QUIET = {"gc_interval_ms": 3_600_000, "checkpoint_interval_seconds": 3600.0}


@pytest.fixture(scope="module")
def net_follower(backend: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One served follower for every seed of a backend (each seed duplicates its own table)."""
    f = Fleet(tmp_path_factory.mktemp(f"net-{_backend.name}"), _backend.name)
    try:
        served = f.add("target")
        # no periodic checkpoint or GC: the WAL read by applied_source_decrees stays whole
        served.start(*(a for k, v in QUIET.items() for a in ("--config", f"{k}={v}")))
        yield served
    finally:
        f.close()


def applied_source_decrees(follower: Served, table: str) -> list[list[int]]:
    """Per partition, the source decrees the follower's WAL recorded, in log order (the follower
    is quiet: every write it acknowledged is in its files)."""
    with pf.connect(follower.url, timeout=30.0) as rc:
        info = rc.table_info(table)
    out = []
    for pidx in range(info.partition_count):
        wal = follower.dir / "tables" / f"{info.app_id}.{pidx}" / "wal"
        mutations, _infos = _backend.impl.scan_log_dir(str(wal), 0)
        out.append([op[1] for m in mutations for op in m[3] if op[0] == SOURCE_DECREE_OP])
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_faulty_network_loses_nothing_and_applies_once(
    net_follower: Served, tmp_path: Path, seed: int
) -> None:
    table = f"net{seed}"
    config = pf.Config(small_partition_max_bytes=NET_SMALL_MAX, **QUIET)
    rng = random.Random(seed)
    sizes = [rng.choice(NET_SIZES) for _ in range(PARTITIONS)]
    sizes[seed % PARTITIONS] = NET_SIZES[-1]
    model = Model()
    with pf.Cluster.open(tmp_path / "source", name="source", config=config) as src:
        model.values.update(write_table(src, table, sizes, NET_VALUE_BYTES, seed))
        t = src.table(table)
        with FaultyProxy(net_follower.port, seed) as proxy:
            d = src.add_duplication(table, proxy.url)
            writer = Writer(lambda: (t, lambda: None), model, wid=seed, seed=seed).start()
            try:
                d.wait_for(pf.DupStatus.LOG, WAIT)  # APP under faults
                writer.wait_acked(150)  # LOG under faults, writes going on
            finally:
                writer.stop()
            proxy.heal()
            wait_caught_up(d, f"seed {seed}, faults {proxy.stats.faults}")
            assert not writer.errors, writer.errors  # the source is embedded: every write is acknowledged
            want = {(hk, sk): v for hk, sk, v in t.scan()}
            got = scan_of(net_follower.url, table)
            assert got.keys() == want.keys(), (
                f"lost: {sorted(want.keys() - got.keys())[:5]}, extra: {sorted(got.keys() - want.keys())[:5]}"
            )
            assert got == want
            model.check(want)
            committed = [p.last_committed for p in t.partitions]
            for pidx, seq in enumerate(applied_source_decrees(net_follower, table)):
                assert all(a < b for a, b in zip(seq, seq[1:])), (
                    f"partition {pidx} applied a source decree twice: {seq}; faults {proxy.stats.faults}"
                )
                assert seq and seq[-1] == committed[pidx]
            d.remove()


# -- a remote that is down ---------------------------------------------------------------------------


def test_remote_down_keeps_status_says_why_and_resumes(fleet: Fleet) -> None:
    src, dst = fleet.add("source"), fleet.add("target")
    dst.port = free_port()  # where the follower will serve, once it is started
    src.start()
    model = Model()
    with pf.connect(src.url, timeout=10.0) as rc:
        t = rc.create_table(TABLE, PARTITIONS)
        for i in range(20):
            t.set(b"k%d" % i, b"s", b"v%d" % i)
            model.values[(b"k%d" % i, b"s")] = b"v%d" % i
        d = rc.add_duplication(TABLE, dst.url)

        def all_unavailable() -> bool:
            return all(p.reason.startswith("remote unavailable: ") for p in d.progress())

        # down from the start: it waits in DS_INIT and says why
        wait_until(all_unavailable, WAIT, lambda: f"the reason: {[p.reason for p in d.progress()]}")
        assert d.status == pf.DupStatus.INIT
        with pytest.raises(TimeoutError) as exc:
            d.wait_for(pf.DupStatus.LOG, 0.5)
        assert dst.url in str(exc.value)
        assert d.status == pf.DupStatus.INIT
        dst.start()
        wait_caught_up(d, "once the follower served")
        assert all(p.reason == "" for p in d.progress())

        # down in DS_LOG, while the source takes writes: it stays in DS_LOG and says why
        dst.kill9()
        for i in range(20, 40):
            t.set(b"k%d" % i, b"s", b"v%d" % i)
            model.values[(b"k%d" % i, b"s")] = b"v%d" % i
        wait_until(all_unavailable, WAIT, lambda: f"the reason: {[p.reason for p in d.progress()]}")
        assert d.status == pf.DupStatus.LOG
        assert sum(p.pending_mutations for p in d.progress()) > 0
        with pytest.raises(TimeoutError) as exc:
            d.wait_for(pf.DupStatus.PAUSE, 0.5)
        assert dst.url in str(exc.value)
        assert d.status == pf.DupStatus.LOG
        dst.start()
        wait_caught_up(d, "once the follower served again")
        assert all(p.reason == "" for p in d.progress())
        assert scan_of(src.url) == scan_of(dst.url)
    assert src.stop() == 0, src.stderr()
    assert dst.stop() == 0, dst.stderr()
    check_offline(fleet.root, TABLE, model)


# -- a connection cut while the follower is still taking what it was sent ------------------------------


@pytest.mark.parametrize("kind", ["snapshot", "checkpoint"])
def test_cut_while_follower_learns_learns_once(net_follower: Served, tmp_path: Path, kind: str) -> None:
    """The source's call fails while the follower still decodes and writes what it received; the
    source calls again at once. The follower must not learn the same checkpoint twice side by side
    (a second snapshot written after shipping started would take newer values back)."""
    table = f"cut{kind}"
    small = 8 << 20 if kind == "snapshot" else 64 << 10
    config = pf.Config(small_partition_max_bytes=small, **QUIET)
    with pf.Cluster.open(tmp_path / "source", name="source", config=config) as src:
        records = write_table(src, table, [2 << 20] * PARTITIONS, NET_VALUE_BYTES, seed=3)
        t = src.table(table)
        size = sum(len(v) for v in records.values())
        with FaultyProxy(net_follower.port) as proxy:
            d = src.add_duplication(table, proxy.url)
            seen = [-1]

            def all_sent() -> bool:
                # every byte of the learning calls went through, and nothing more is coming
                now, seen[0] = proxy.stats.up_bytes, proxy.stats.up_bytes
                return now >= size and now == seen[0]

            wait_until(
                lambda: all_sent() and (time.sleep(0.02) or all_sent()), WAIT, "the learning calls sent"
            )
            assert d.status == pf.DupStatus.APP
            proxy.cut_all()
            d.wait_for(pf.DupStatus.LOG, WAIT)
            for i in range(20):
                t.set(b"after%d" % i, b"s", b"v%d" % i)
            wait_caught_up(d, f"after a cut while learning a {kind}")
            assert scan_of(net_follower.url, table) == {(hk, sk): v for hk, sk, v in t.scan()}
            committed = [p.last_committed for p in t.partitions]
            for pidx, seq in enumerate(applied_source_decrees(net_follower, table)):
                assert all(a < b for a, b in zip(seq, seq[1:])), f"partition {pidx} learned twice: {seq}"
                assert seq[-1] == committed[pidx]


# -- a checkpoint transfer cut short ------------------------------------------------------------------


def test_checkpoint_stream_cut_short_keeps_what_arrived(net_follower: Served, tmp_path: Path) -> None:
    """A source that dies mid-copy can look, to the follower's gRPC, like a stream that simply
    ended. The follower must keep the chunks that arrived (the copy resumes after them) rather
    than take the stream as complete, fail its verification and delete the partial file."""
    with pf.Cluster.open(tmp_path / "source", name="source") as src:
        write_table(src, "cutshort", [3 << 20], VALUE_BYTES, seed=5)
        info = src.table("cutshort").partitions[0].checkpoint()
    manifest = ckpt_policy.manifest_of(info.path)
    name, size, _ = max(manifest, key=lambda e: e[1])
    assert size > 2 * ckpt_policy.CHUNK_BYTES
    connector = RemoteConnector()
    try:
        follower = connector.connect(net_follower.url)
        follower.ensure_table("cutshort", 1, SourceId("source", "uid-cutshort", "cutshort", 1), True)
        assert follower.checkpoint_offsets("cutshort", 0, info.decree, manifest) == {}
        first = list(itertools.islice(ckpt_policy.read_chunks(info.path, manifest, {}), 2))
        header = pb.CheckpointRequest(
            table="cutshort",
            pidx=0,
            decree=info.decree,
            manifest=[pb.ManifestEntry(name=n, size=s, blake3=d) for n, s, d in manifest],
        )
        pieces = [pb.CheckpointPiece(header=header)] + [
            pb.CheckpointPiece(chunk=pb.Chunk(name=c.name, offset=c.offset, data=c.data, crc32c=c.crc32c))
            for c in first
        ]
        stub = rpc.FollowerStub(connector._channels[(net_follower.url, None)])
        # the stream ends after two chunks, as one whose sender died can
        with pytest.raises(grpc.RpcError):
            stub.LearnCheckpoint(iter(pieces), timeout=WAIT)
        held = sum(len(c.data) for c in first if c.name == name)
        assert follower.checkpoint_offsets("cutshort", 0, info.decree, manifest).get(name) == held
        # the copy resumes after what arrived, and completes
        offsets = follower.checkpoint_offsets("cutshort", 0, info.decree, manifest)
        rest = ckpt_policy.read_chunks(info.path, manifest, offsets)
        follower.learn_checkpoint("cutshort", 0, info.decree, manifest, rest)
        follower.mark_learned("cutshort", [0])
    finally:
        connector.close()
    with pf.Cluster.open(tmp_path / "source", name="source") as src:
        assert scan_of(net_follower.url, "cutshort") == {
            (hk, sk): v for hk, sk, v in src.table("cutshort").scan()
        }


# -- serve --config -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "knob", ["no_such_knob=1", "small_partition_max_bytes", "small_partition_max_bytes=x", "gc_interval_ms=1"]
)
def test_serve_refuses_a_bad_config_knob(tmp_path: Path, knob: str) -> None:
    """A knob that is not a Config field, has no value, is not of its type or out of its bounds:
    one error line and a non-zero exit, before anything is opened or served."""
    cluster = tmp_path / "bad"
    argv = [PYTHON, "-m", "pegasus_fast", "--cluster", str(cluster), "serve", "--listen", "127.0.0.1:0"]
    done = subprocess.run(
        [*argv, "--config", knob], env=child_env("python"), capture_output=True, timeout=WAIT
    )
    assert done.returncode == 2, done
    lines = done.stderr.decode("utf-8", "replace").splitlines()
    assert len(lines) == 1 and lines[0].startswith("pegasus-fast: error: "), lines
    assert not cluster.exists()
