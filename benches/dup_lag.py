"""Duplication lag under a steady stream of writes (issue #21 §5), the reader in its own process.

    python benches/dup_lag.py [--writes 3000] [--rate 1000] [--partitions 8] [--case a,b] [--poll-us 200]
                               [--served-writers 4] [--pegasus-port] [--applies-over-grpc]

Cases:
  (a) embedded source (this process, wal_sync="group") -> served follower (`pegasus-fast serve`);
  (b) served source -> served follower, written by a client in this process (over gRPC).

With --pegasus-port every served cluster also serves Pegasus's protocol (`serve
--pegasus-listen`): the follower takes the duplication's applies there (OP_DUP_APPLY, the
Rust front end and client: net/follower.py), the reader reads there, and case (b)'s client
writes there. --applies-over-grpc keeps the applies on gRPC all the same
(PEGASUS_FAST_DUPLICATION=grpc), to compare the two in one run.

Writes are paced at ``--rate`` per second, each a new key spread over the
partitions by its hash (case (b) by ``--served-writers`` client threads: one
client's set waits for its round trip and the source's fsync). Lag of write i =
the time the reader first sees it on the follower minus the time the source
acknowledged it (``set`` returned). The reader is a process of its own
(python benches/dup_lag.py --reader ...): the writers mark each write once
acknowledged (a byte of a shared file), and the reader asks the follower, in
one BatchGet, for every acknowledged write it has not seen yet, then sleeps ``--poll-us`` microseconds; a figure is late by up to one poll and
one BatchGet. Both processes stamp with time.perf_counter (CLOCK_MONOTONIC, one
clock for the machine). Every partition of both sides is written and read once
before measuring (their RocksDB opens are not the lag measured here).
Bars: p50 < 2 ms, p99 < 10 ms.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pegasus_fast as pf
from pegasus_fast.net.follower import DUPLICATION_ENV
from remote import free_port, served


def key(i: int) -> bytes:
    return b"lag%d" % i


def reader(url: str, table: str, writes: int, poll_us: int, out: str, ready: str, acked: str) -> int:
    """Poll the follower until every write was seen; write {i: first seen} as JSON to ``out``.

    ``acked`` is a shared file of one byte per write, set once the source acknowledged it:
    each poll asks the follower, in one BatchGet, for the acknowledged writes not seen yet
    (among the next 256), and none is made while there is none.
    """
    seen: dict[int, float] = {}
    with pf.connect(url) as c, open(acked, "rb") as f:
        flags = mmap.mmap(f.fileno(), writes, access=mmap.ACCESS_READ)
        t = c.table(table)
        t.batch_get([(key(0), b"s")])
        with open(ready, "w") as r:
            r.write("ready")
        lo = 0
        deadline = time.monotonic() + 120 + writes / 100
        pause = poll_us / 1e6
        while lo < writes and time.monotonic() < deadline:
            ahead = flags[lo : lo + 256]
            idx = [lo + k for k, b in enumerate(ahead) if b and lo + k not in seen]
            if not idx:
                time.sleep(20e-6)
                continue
            values = t.batch_get([(key(i), b"s") for i in idx])
            now = time.perf_counter()
            for i, v in zip(idx, values):
                if v is not None:
                    seen[i] = now
            while lo in seen:
                lo += 1
            if pause:
                time.sleep(pause)
    with open(out, "w") as f:
        json.dump(seen, f)
    return 0


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


@contextmanager
def reading(root: str, url: str, writes: int, poll_us: int, acked: str) -> Iterator[str]:
    """A reader process, ready to poll; yields the path its results appear at once it exits."""
    out, ready = os.path.join(root, "seen.json"), os.path.join(root, "reader.ready")
    proc = subprocess.Popen(
        [sys.executable, __file__, "--reader", url, "--writes", str(writes), "--poll-us", str(poll_us),
         "--out", out, "--ready", ready, "--acked", acked],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(ready):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the reader did not start")
            time.sleep(0.01)
        yield out
        proc.wait(300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def warm(t: object, follower: object, partitions: int) -> None:
    """A write to every partition, seen on the follower: both sides' partitions are open."""
    keys = [(b"warm%d" % i, b"s") for i in range(partitions * 8)]
    for hk, sk in keys:
        t.set(hk, sk, b"w")  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while None in follower.batch_get(keys):  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise RuntimeError("the warm-up writes never reached the follower")
        time.sleep(0.005)


def stream(t: object, writes: int, rate: int, writers: int, acked: str) -> tuple[list[float], float]:
    """The paced writes (write i is due at i / rate, by writer thread i % writers); returns
    each one's acknowledgement time, and the rate achieved. Each acknowledged write's byte of
    the shared file the reader reads is set."""
    at = [0.0] * writes
    interval = 1.0 / rate
    with open(acked, "r+b") as f:
        flags = mmap.mmap(f.fileno(), writes)

        def write(k: int) -> None:
            for i in range(k, writes, writers):
                delay = start + i * interval - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                t.set(key(i), b"s", b"v" * 100)  # type: ignore[attr-defined]
                at[i] = time.perf_counter()
                flags[i] = 1

        start = time.perf_counter()
        threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return at, writes / (time.perf_counter() - start)


def one_case(case: str, root: str, args: argparse.Namespace) -> dict[str, float]:
    base = os.path.join(root, case)
    os.makedirs(base)
    with ExitStack() as stack:
        port = ("--pegasus-listen", f"127.0.0.1:{free_port()}") if args.pegasus_port else ()
        _p, dst_url = stack.enter_context(served(os.path.join(base, "dst"), *port))
        dst = stack.enter_context(pf.connect(dst_url))
        if case == "a":
            src: object = stack.enter_context(
                pf.Cluster.open(os.path.join(base, "src"), name="src", config=pf.Config(wal_sync="group"))
            )
        else:
            extra = ("--pegasus-listen", f"127.0.0.1:{free_port()}") if args.pegasus_port else ()
            _p1, src_url = stack.enter_context(served(os.path.join(base, "src"), *extra))
            src = stack.enter_context(pf.connect(src_url))
        t = src.create_table("t", partition_count=args.partitions)  # type: ignore[attr-defined]
        d = src.add_duplication("t", dst_url)  # type: ignore[attr-defined]
        d.wait_for(pf.DupStatus.LOG, timeout=60)
        warm(t, dst.table("t"), args.partitions)
        flags = os.path.join(base, "acked")
        with open(flags, "wb") as f:
            f.write(bytes(args.writes))
        writers = 1 if case == "a" else args.served_writers
        with reading(base, dst_url, args.writes, args.poll_us, flags) as out:
            acked, achieved = stream(t, args.writes, args.rate, writers, flags)
        with open(out) as f:
            seen = {int(i): at for i, at in json.load(f).items()}
    missing = [i for i in range(args.writes) if i not in seen]
    if missing:
        raise RuntimeError(f"{len(missing)} writes never became visible on the follower")
    lags = [(seen[i] - acked[i]) * 1e3 for i in range(args.writes)]
    return {
        "achieved writes/s": achieved,
        "p50 ms": pct(lags, 0.5),
        "p90 ms": pct(lags, 0.9),
        "p99 ms": pct(lags, 0.99),
        "max ms": max(lags),
    }


NAMES = {"a": "(a) embedded source -> served follower", "b": "(b) served source -> served follower"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writes", type=int, default=3000)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--case", default="a,b")
    ap.add_argument("--poll-us", type=int, default=200)
    ap.add_argument("--served-writers", type=int, default=4, help="writer threads of case (b)")
    ap.add_argument(
        "--pegasus-port",
        action="store_true",
        help="every served cluster also serves Pegasus's protocol: the follower takes its applies "
        "there (OP_DUP_APPLY), the reader reads there, case (b)'s client writes there",
    )
    ap.add_argument(
        "--applies-over-grpc",
        action="store_true",
        help="keep the duplication's applies on gRPC even to a follower with a Pegasus port",
    )
    ap.add_argument("--reader", help=argparse.SUPPRESS)
    ap.add_argument("--acked", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--ready", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.applies_over_grpc:
        os.environ[DUPLICATION_ENV] = "grpc"  # this process's shipping and the served ones'
    if args.reader:
        return reader(args.reader, "t", args.writes, args.poll_us, args.out, args.ready, args.acked)
    print(
        f"duplication lag, {args.partitions} partitions, {args.writes} writes at {args.rate}/s, "
        f"reader in its own process polling every {args.poll_us} us; "
        f"{'Pegasus ports' if args.pegasus_port else 'gRPC only'}"
        f"{', applies over gRPC' if args.applies_over_grpc else ''}; load {os.getloadavg()[0]:.2f} "
        "(bars: p50 < 2 ms, p99 < 10 ms)"
    )
    with tempfile.TemporaryDirectory(prefix="pf-duplag-") as root:
        for case in args.case.split(","):
            r = one_case(case, root, args)
            bar = "PASS" if r["p50 ms"] < 2 and r["p99 ms"] < 10 else "FAIL"
            print(f"  {NAMES[case]}: " + ", ".join(f"{k} {v:.2f}" for k, v in r.items()) + f"  [{bar}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
