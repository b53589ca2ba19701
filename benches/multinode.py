"""One cluster over several nodes (issue #11): the three performance figures, measured in one run.

    python benches/multinode.py                 # ~1-2 min on 2 cores
    python benches/multinode.py --mb 20 --json out.json

It starts its own ZooKeeper (tests/zkserver.py) and three `pegasus-fast serve --zk`
processes on 127.0.0.1, each with its own temporary directory, and stops them all at
the end (also on Ctrl-C or an error). Figures:

  get through a `zk://` client against a direct `pegasus://` client to the owning node,
    the same keys, rounds interleaved (zk, direct, zk, direct, ...): ratio of the
    medians of the rounds' p50s (bar <= 1.1x);
  moving a partition of ~--mb MB (64 KB incompressible values) to another node while
    --writers threads (each its own `zk://` client) share one schedule of 1,000
    writes/s to that partition (one slow write delays only its own thread): the
    move's time, and against the bar of 100 ms three readings of "the longest window in
    which writes are refused": the first to the last "moving" refusal the client retried
    internally (the fence as clients see it), the longest gap between consecutive acks
    (no write acknowledged at all), and the slowest write issued during the move (issue
    to ack: what an application waits, re-routing after the switch included; its node
    calls and ZooKeeper re-reads are listed); then every acknowledged write is read
    back (OK/FAIL);
  cold `zk://` connect to the 3-node cluster with a table of 64 partitions: from
    `pf.connect(url)` to the first `get` answered, a fresh client each time, after one
    warm-up connect so imports are not counted (bar < 50 ms); connect alone reported.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import pegasus_fast as pf
from pegasus_fast.coord.layout import CONFIG, partition_path
from pegasus_fast.errors import PegasusFastError
from remote import pct, served

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from zkserver import ZooKeeperServer  # noqa: E402 - the tests' ZooKeeper, on their path

NODES = ("n1", "n2", "n3")


def keys_in(table: pf.RoutedTable, pidx: int, n: int, prefix: bytes) -> list[bytes]:
    """``n`` hash keys of partition ``pidx`` (a key's partition is its hash key's)."""
    out, i = [], 0
    while len(out) < n:
        hk = b"%s%d" % (prefix, i)
        if table.partition_index(hk, b"s") == pidx:
            out.append(hk)
        i += 1
    return out


# -- 1. get: zk:// against pegasus:// to the owner -------------------------------------------------


def bench_get(url: str, nodes: dict[str, str], gets: int, rounds: int) -> dict[str, float]:
    with pf.connect(url) as zc:
        # one copy of each partition: these figures are routing's and a move's (replicas:
        # benches/replicas.py)
        zt = zc.create_table("g", partition_count=8, replica_count=1)
        owner = zt.owners()[0]
        keys = keys_in(zt, 0, 100, b"g")
        for hk in keys:
            zt.set(hk, b"s", b"v" * 100)
        with pf.connect(nodes[owner]) as dc:
            dt = dc.table("g")
            for hk in keys * 3:  # warm both paths: channels, the partition's RocksDB
                assert zt.get(hk, b"s") == dt.get(hk, b"s") == b"v" * 100
            per_round = max(1, gets // rounds)
            zp50, dp50, zall, dall = [], [], [], []
            for _ in range(rounds):
                for t, p50s, every in ((zt, zp50, zall), (dt, dp50, dall)):
                    lat = []
                    for i in range(per_round):
                        hk = keys[i % len(keys)]
                        s = time.perf_counter()
                        t.get(hk, b"s")
                        lat.append(time.perf_counter() - s)
                    p50s.append(statistics.median(lat) * 1e6)
                    every.extend(lat)
    return {
        "get zk p50 us": statistics.median(zp50),
        "get direct p50 us": statistics.median(dp50),
        "get zk p99 us": pct(zall, 0.99) * 1e6,
        "get direct p99 us": pct(dall, 0.99) * 1e6,
        "get zk/direct": statistics.median(zp50) / statistics.median(dp50),
        "get rounds": rounds,
        "gets per client": per_round * rounds,
    }


# -- 2. a partition move under 1,000 writes/s --------------------------------------------------------


@dataclass
class Writes:
    """What the paced writers saw: per write (due, issued, acked, hash key, sort key, value, thread)."""

    acked: list[tuple[float, float, float, bytes, bytes, bytes, int]] = field(default_factory=list)
    failed: list[tuple[float, BaseException]] = field(default_factory=list)
    #: every call the routed client made to a node: (start, end, "ok" or the error type:state);
    #: the refusals among them are the ones it retried internally
    calls: list[tuple[float, float, str, int]] = field(default_factory=list)
    #: the schedule's start
    t0: float = 0.0

    @property
    def refusals(self) -> list[tuple[float, float, str, int]]:
        return [c for c in self.calls if "Error" in c[2]]

    def attempts(self, start: float, end: float, thread: int) -> str:
        """The node calls of one write, and the time spent outside them (routing, retry waits)."""
        mine = [c for c in self.calls if start <= c[0] and c[1] <= end and c[3] == thread]
        inside = sum(e - s for s, e, _, _ in mine)
        parts = [f"{what} {(e - s) * 1e3:.1f}" for s, e, what, _ in mine]
        return f"{', '.join(parts)}; outside calls {(end - start - inside) * 1e3:.1f} (ms)"


class _Watched:
    """A node's RemoteTable whose ``set`` calls are recorded, refusals too, before the routed
    client retries them."""

    def __init__(self, inner: Any, w: Writes) -> None:
        self._inner, self._w = inner, w

    def set(self, *a: Any) -> int:
        s, what = time.perf_counter(), "ok"
        try:
            return self._inner.set(*a)
        except PegasusFastError as exc:
            what = f"{type(exc).__name__}:{getattr(exc, 'state', '')}"
            raise
        finally:
            self._w.calls.append((s, time.perf_counter(), what, threading.get_ident()))


def paced_writer(
    url: str,
    hot: list[bytes],
    rate: int,
    k: int,
    n: int,
    start: threading.Barrier,
    stop: threading.Event,
    w: Writes,
) -> None:
    """Writer ``k`` of ``n``: writes ``k``, ``k + n``, ... of one schedule of ``rate`` writes/s, so
    that one slow write delays only its own thread's next ones."""
    with pf.connect(url) as rc:
        t = rc.table("m")
        remote, read = t._remote, rc._r.table
        t._remote = lambda u: _Watched(remote(u), w)  # type: ignore[method-assign,assignment,return-value]

        def timed_read(name: str, fresh: bool = False) -> Any:
            s = time.perf_counter()
            try:
                return read(name, fresh)
            finally:
                if fresh:  # a read of the table's configuration from ZooKeeper
                    w.calls.append((s, time.perf_counter(), "zk-read", threading.get_ident()))

        rc._r.table = timed_read  # type: ignore[method-assign]
        start.wait()
        interval, t0, i = 1.0 / rate, w.t0, k
        while not stop.is_set():
            due = t0 + i * interval
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            hk, sk, v = hot[i % len(hot)], b"w%d" % i, b"%d" % i
            issued = time.perf_counter()
            try:
                t.set(hk, sk, v)
                w.acked.append((due, issued, time.perf_counter(), hk, sk, v, threading.get_ident()))
            except PegasusFastError as exc:
                w.failed.append((issued, exc))
            i += n


def bench_move(url: str, mb: int, rate: int, writers: int) -> dict[str, Any]:
    with pf.connect(url) as c:
        t = c.create_table("m", partition_count=8, replica_count=1)
        pidx = 0
        src = t.owners()[pidx]
        dst = next(n for n in NODES if n != src)
        value_size, per_call = 64 << 10, 16
        fill_keys = keys_in(t, pidx, (mb << 20) // (value_size * per_call) + 1, b"f")
        for hk in fill_keys:
            t.multi_set(hk, {b"s%d" % j: os.urandom(value_size) for j in range(per_call)})
        filled = len(fill_keys) * per_call * value_size
        hot = keys_in(t, pidx, 50, b"hot")
        w, stop = Writes(), threading.Event()
        start = threading.Barrier(writers + 1)
        threads = [
            threading.Thread(
                target=paced_writer, args=(url, hot, rate, k, writers, start, stop, w), daemon=True
            )
            for k in range(writers)
        ]
        for th in threads:
            th.start()
        try:
            w.t0 = time.perf_counter() + 0.01
            start.wait(30)
            time.sleep(1.0)  # steady writers before the move
            move_start, wall_start = time.perf_counter(), time.time()
            c.move_partition("m", pidx, dst)
            move_end = time.perf_counter()
            time.sleep(1.0)
        finally:
            stop.set()
            for th in threads:
                th.join(30)
        assert t.owners()[pidx] == dst, "the move did not switch the owner"
        during = [a for a in w.acked if move_start <= a[1] <= move_end]
        before = [a[2] - a[1] for a in w.acked if a[2] < move_start]
        slowest = max(during, key=lambda a: a[2] - a[1], default=None)
        # the ack gaps that overlap the move: the first ack after its start against the one before
        acks = sorted(a[2] for a in w.acked)
        gaps = [(b - a, a) for a, b in zip(acks, acks[1:], strict=False) if b >= move_start and a <= move_end]
        gap, gap_at = max(gaps) if gaps else (float("nan"), move_start)
        rel = lambda x: (x - move_start) * 1e3  # noqa: E731 - ms from the move's start
        timeline = f"move 0 .. {rel(move_end):.0f}, longest gap from {rel(gap_at):.0f}"
        if slowest:
            timeline += f", slowest write {rel(slowest[1]):.0f} .. {rel(slowest[2]):.0f}"
        if w.refusals:
            timeline += f", refusals {rel(w.refusals[0][0]):.0f} .. {rel(w.refusals[-1][1]):.0f}"
        # the switch's compare-and-set and the leader's /config bump, by ZooKeeper's clock (ms)
        for what, path in (("owner CAS", partition_path("m", pidx)), ("/config bump", CONFIG)):
            mtime = c._zk.exists(path).mtime / 1e3
            timeline += f", {what} {(mtime - wall_start) * 1e3:.0f}"
        got = {hk: t.multi_get(hk) for hk in hot}
        lost = [a for a in w.acked if got[a[3]].get(a[4]) != a[5]]
        elapsed = w.acked[-1][2] - w.acked[0][1] if w.acked else 1.0
    return {
        "move partition MB": filled / (1 << 20),
        "move s": move_end - move_start,
        "move: longest ack gap ms": gap * 1e3,
        "move: timeline ms": timeline,
        "move: slowest write ms": max((a[2] - a[1] for a in during), default=float("nan")) * 1e3,
        "move: slowest write from its due time ms": max((a[2] - a[0] for a in during), default=0.0) * 1e3,
        "move: writes during the move": len(during),
        "move: writes/s during the move": len(during) / (move_end - move_start),
        "move: write p50 before the move ms": statistics.median(before) * 1e3,
        "move: write p50 during the move ms": statistics.median(a[2] - a[1] for a in during) * 1e3,
        "move: slowest write's node calls": w.attempts(slowest[1], slowest[2], slowest[6]) if slowest else "",
        "move: refusals retried": len(w.refusals),
        "move: refusal kinds": sorted({k for _, _, k, _ in w.refusals}),
        "move: refusal span ms": (w.refusals[-1][1] - w.refusals[0][0]) * 1e3 if w.refusals else 0.0,
        "move: writes failed": len(w.failed),
        "move: writes acked": len(w.acked),
        "move: achieved writes/s": len(w.acked) / elapsed,
        "move: acked writes read back": "OK" if not lost and not w.failed else f"FAIL ({len(lost)} lost)",
    }


# -- 3. cold connect ------------------------------------------------------------------------------------


def bench_connect(url: str, times: int) -> dict[str, float]:
    with pf.connect(url) as c:
        t = c.create_table("c", partition_count=64, replica_count=1)
        t.set(b"cold", b"s", b"v")
    connect, table, get, total = [], [], [], []
    for i in range(times + 1):  # the first is the warm-up: imports, and the JIT-less first calls
        s0 = time.perf_counter()
        rc = pf.connect(url)
        s1 = time.perf_counter()
        ct = rc.table("c")
        s2 = time.perf_counter()
        assert ct.get(b"cold", b"s") == b"v"
        s3 = time.perf_counter()
        rc.close()
        if i:
            connect.append(s1 - s0)
            table.append(s2 - s1)
            get.append(s3 - s2)
            total.append(s3 - s0)
    ms = lambda xs: statistics.median(xs) * 1e3  # noqa: E731
    return {
        "cold connect+get ms": ms(total),
        "cold connect ms": ms(connect),
        "cold table() ms": ms(table),
        "cold first get ms": ms(get),
        "cold connect+get max ms": max(total) * 1e3,
        "cold connects": times,
    }


# -- the run --------------------------------------------------------------------------------------------


#: ZooKeeper logs every fsync of its transaction log slower than this (its default: 1 s)
FSYNC_WARN_MS = 20


def start_cluster(stack: ExitStack, root: str, zk_fsync: bool) -> tuple[str, dict[str, str], ZooKeeperServer]:
    zk = ZooKeeperServer(os.path.join(root, "zk"))
    stack.callback(zk.stop)
    # system properties through the environment: zkserver.py's command line stays the tests'
    props = [f"-Dzookeeper.fsync.warningthresholdms={FSYNC_WARN_MS}"]
    if not zk_fsync:
        props.append("-Dzookeeper.forceSync=no")
    os.environ["JAVA_TOOL_OPTIONS"] = " ".join(props)
    quiet = logging.getLogger("kazoo")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # its "connection refused" while the server starts up
    try:
        spec = f"{zk.start()}/bench"
    finally:
        quiet.setLevel(level)
    nodes = {}
    for n in NODES:
        _proc, nodes[n] = stack.enter_context(served(os.path.join(root, n), "--zk", spec, "--node-id", n))
    return f"zk://{spec}", nodes, zk


def slow_fsyncs(zk: ZooKeeperServer) -> list[int]:
    """The ZooKeeper transaction log's fsyncs over :data:`FSYNC_WARN_MS`, in ms (its warnings)."""
    try:
        text = zk.log_path.read_text(errors="replace")
    except OSError:
        return []
    return [int(m) for m in re.findall(r"fsync-ing the write ahead log .*? took (\d+)ms", text)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=100, help="size of the partition that moves")
    ap.add_argument("--rate", type=int, default=1000, help="writes/s to the moving partition")
    ap.add_argument("--writers", type=int, default=4, help="threads sharing the paced schedule")
    ap.add_argument("--gets", type=int, default=5000, help="gets per client (zk:// and direct)")
    ap.add_argument("--rounds", type=int, default=50, help="interleaved rounds the gets are split into")
    ap.add_argument("--connects", type=int, default=20, help="cold connects (after one warm-up)")
    ap.add_argument(
        "--zk-no-fsync",
        action="store_true",
        help="ZooKeeper's forceSync=no: a proxy for its log on a disk of its own (off by default)",
    )
    ap.add_argument("--json", metavar="PATH", help="also write the figures here")
    args = ap.parse_args()
    print(
        f"pegasus_fast {pf.__version__}, backend {pf.backend()}, {os.cpu_count()} cores, load {os.getloadavg()}"
    )
    root = tempfile.mkdtemp(prefix="pf-multinode-bench-")
    figures: dict[str, Any] = {}
    try:
        with ExitStack() as stack:
            url, nodes, zk = start_cluster(stack, root, not args.zk_no_fsync)
            figures.update(bench_get(url, nodes, args.gets, args.rounds))
            synced = len(slow_fsyncs(zk))
            figures.update(bench_move(url, args.mb, args.rate, args.writers))
            during = slow_fsyncs(zk)[synced:]
            figures.update(bench_connect(url, args.connects))
            figures["zk fsync"] = not args.zk_no_fsync
            figures[f"move: ZooKeeper fsyncs > {FSYNC_WARN_MS} ms (fill + move), ms"] = during
            figures["load average 1/5/15 min at the end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    mb = f"{figures['move partition MB']:.0f} MB"
    rows = [
        ("get p50, zk:// / direct pegasus://", "<= 1.1x", figures["get zk/direct"], 1.1, "x"),
        (f"move {mb}: 'moving' refusals, first to last", "< 100 ms", figures["move: refusal span ms"], 100, " ms"),
        (f"move {mb}: no write acked (longest ack gap)", "< 100 ms", figures["move: longest ack gap ms"], 100, " ms"),
        (f"move {mb}: slowest write (issue to ack)", "< 100 ms", figures["move: slowest write ms"], 100, " ms"),
        ("cold zk:// connect + first get, 64 partitions", "< 50 ms", figures["cold connect+get ms"], 50, " ms"),
    ]  # fmt: skip
    print(f"\n{'figure':48s} {'bar':>9s} {'measured':>11s}  met")
    for name, bar, got, limit, unit in rows:
        met = got <= limit if unit == "x" else got < limit
        print(f"{name:48s} {bar:>9s} {got:9.2f}{unit:2s}  {'yes' if met else 'NO'}")
    print("\ndetails:")
    for key, value in figures.items():
        print(f"  {key:42s} {value:.2f}" if isinstance(value, float) else f"  {key:42s} {value}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
