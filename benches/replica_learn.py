"""Re-replication (issue #22): a node with a replica of every partition dies, a new node joins,
and every partition gets its third replica back, learned from its primary; measured in one run.

    python benches/replica_learn.py                   # 8 partitions of ~100 MB: ~3 min on 2 cores
    python benches/replica_learn.py --mb 20 --json out.json

It starts its own ZooKeeper and nodes n1, n2, n3 (`serve --zk --pegasus-listen`, a 2 s
ZooKeeper session, replica_grace_seconds=1, the default learning pace), a table of 8
partitions with 3 replicas whose primaries are all on n1, and loads ~--mb MB of incompressible
64 KiB values into each partition. Then, with the Rust load generator reading from n1's
Pegasus port at --rate gets/s (open loop: latency counted from when each was due):

  idle:      n1's gets for --seconds in 2 s windows, nothing else going on;
  learning:  n3 killed (SIGKILL), n4 started: the leader removes n3 once its session expires
             and, after the grace, has n4 learn each partition from n1 (a checkpoint copy
             paced at replica_learn_mb_per_sec, then the log), one after the other; n1's gets
             in 2 s windows while that runs (the last window ends up to 2 s after it).

Figures: the time from the kill to every partition at 3 live replicas again (bar < 30 s for
8 partitions of 100 MB), the copy time alone (n4's start to restored), and the ratio of n1's
get p99 over the whole learning to its p99 over the whole idle measurement (bar <= 2x). Also
given, stricter than the bar: the worst 2 s window of each, and their ratio. Every value is
read back from n4 alone at the end (n1 and n2 killed first), so the figure is of whole copies.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from typing import Any

import pegasus_fast as pf
from pegasus_fast import _backend
from replicas import start, start_node

SERVE_ARGS = ("--config", "zk_session_timeout_seconds=2", "--config", "replica_grace_seconds=1")
VALUE = 64 << 10


def percentile(lat: list[int], q: float) -> int:
    """As the load generator computes its own (front/bench.rs): of a sorted list."""
    return lat[min(len(lat), max(1, math.ceil(len(lat) * q))) - 1]


def merged_p99(windows: list[dict[str, Any]]) -> int:
    return percentile(sorted(x for w in windows for x in w["latencies_us"]), 0.99)


def gets(host: str, port: int, rate: float, seconds: float) -> dict[str, Any]:
    return _backend.impl.bench_served(  # type: ignore[no-any-return]
        host,
        port,
        "get",
        protocol="pegasus",
        table="big",
        clients=16,
        seconds=seconds,
        warmup=0.5,
        value_size=100,
        keyspace=10000,
        rate=rate,
        threads=1,
        prefill=False,
        samples=True,
    )


def load(t: pf.RoutedTable, partitions: int, mb: int) -> list[tuple[bytes, int]]:
    """~``mb`` MB into each partition: 16 values of 64 KiB per hash key, one multi_set each."""
    per_key = 16
    keys: list[tuple[bytes, int]] = []
    want = {p: mb * (1 << 20) // (VALUE * per_key) for p in range(partitions)}
    i = 0
    while any(want.values()):
        hk = b"big%d" % i
        i += 1
        p = t.partition_index(hk)
        if want[p] == 0:
            continue
        want[p] -= 1
        t.multi_set(hk, {b"s%d" % j: os.urandom(VALUE) for j in range(per_key)})
        keys.append((hk, per_key))
    return keys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=100, help="MB per partition (default 100)")
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--rate", type=float, default=1000.0, help="gets/s on n1 (default 1,000)")
    ap.add_argument("--seconds", type=float, default=6.0, help="the idle measurement's length (2 s windows)")
    ap.add_argument(
        "--pace", type=float, default=None, help="replica_learn_mb_per_sec of the nodes (default: Config's)"
    )
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    serve_args = (
        SERVE_ARGS
        if args.pace is None
        else (*SERVE_ARGS, "--config", f"replica_learn_mb_per_sec={args.pace}")
    )
    if getattr(_backend.impl, "bench_served", None) is None:
        print("the load generator is Rust; this install runs pure Python", file=sys.stderr)
        return 2
    out: dict[str, Any] = {
        "mb per partition": args.mb,
        "partitions": args.partitions,
        "pace MiB/s": args.pace,
    }
    with tempfile.TemporaryDirectory(prefix="pf-learn-") as root, ExitStack() as stack:
        pids: dict[str, int] = {}
        url, pegasus = start(stack, root, pids, *serve_args)
        host, port = pegasus.rsplit(":", 1)
        with pf.connect(url) as c:
            t = c.create_table("big", partition_count=args.partitions, replica_count=3)
            for r in t.replicas():
                if r.primary != "n1":
                    c.move_partition("big", r.pidx, "n1")
            started = time.monotonic()
            keys = load(t, args.partitions, args.mb)
            out["load s"] = round(time.monotonic() - started, 1)
            print(f"loaded {args.partitions} x ~{args.mb} MB in {out['load s']} s", flush=True)
            idle = [gets(host, int(port), args.rate, 2.0) for _ in range(max(1, round(args.seconds / 2)))]
            print(
                f"idle:     get p99 per 2 s window {[w['p99_us'] for w in idle]} us, "
                f"p50 {[w['p50_us'] for w in idle]} us"
            )
            killed = time.monotonic()
            os.kill(pids["n3"], signal.SIGKILL)
            start_node(stack, root, url[len("zk://") :], "n4", pids, *serve_args)
            joined = time.monotonic()
            during: list[dict[str, Any]] = []
            done = threading.Event()

            def measure() -> None:
                while not done.is_set():
                    during.append(gets(host, int(port), args.rate, 2.0))

            th = threading.Thread(target=measure, daemon=True)
            th.start()
            while True:
                reps = t.replicas()
                if all(r.secondaries and "n4" in r.secondaries and len(r.secondaries) == 2 for r in reps):
                    break
                time.sleep(0.05)
            restored = time.monotonic()
            done.set()
            th.join()
            out["kill to restored s"] = round(restored - killed, 2)
            out["n4 start to restored s"] = round(restored - joined, 2)
            p99s = [d["p99_us"] for d in during]
            p50s = [d["p50_us"] for d in during]
            out["get p99 us idle"] = merged_p99(idle)
            out["get p99 us learning"] = merged_p99(during)
            out["get p99 learning/idle (bar <= 2)"] = round(
                out["get p99 us learning"] / out["get p99 us idle"], 2
            )
            out["get p99 us idle, worst 2 s window"] = max(w["p99_us"] for w in idle)
            out["get p99 us learning, worst 2 s window"] = max(p99s)
            out["get p99 worst windows learning/idle"] = round(
                max(p99s) / out["get p99 us idle, worst 2 s window"], 2
            )
            out["get p50 us idle, worst 2 s window"] = max(w["p50_us"] for w in idle)
            out["get p50 us learning, worst 2 s window"] = max(p50s)
            out["get errors idle, learning"] = (
                sum(w["errors"] for w in idle),
                sum(d["errors"] for d in during),
            )
            print(f"learning: get p99 per 2 s window {p99s} us, p50 {p50s} us")
            # whole copies: n4 alone answers every value
            for n in ("n1", "n2"):
                os.kill(pids[n], signal.SIGKILL)
            while any(r.primary != "n4" for r in t.replicas()):
                time.sleep(0.05)
            missing = 0
            for hk, n in keys:
                missing += sum(1 for j in range(n) if len(t.get(hk, b"s%d" % j) or b"") != VALUE)
            out["values missing on n4"] = missing
    print()
    for k, v in out.items():
        print(f"{k:<42} {v}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
