"""The served data plane against Redis 7 on the same machine (issue #19, DESIGN.md §11).

Starts a Redis (Debian's ``redis-server``: ``apt-get install -y redis-server``) on a free
loopback port with its own directory, ``appendonly yes`` + ``appendfsync always`` (durable SET,
one fsync per event-loop turn), and ``pegasus-fast serve`` (``wal_sync="group"``, a table of 8
partitions) beside it; drives both with the same Rust load generator (``bench_served``: 32
connections, one request in flight each, 100-byte values) and reports ratios to Redis:
GET and durable SET throughput, p99 at half Redis's load (open loop: both given the same rate),
a single Python thread's ``RemoteTable.get`` round trip against a redis-py GET, the embedded
Table.get / Table.set costs, and the front end's batch-size histogram under load.

    .venv/bin/python benches/served.py [--seconds 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pegasus_fast as pf
from pegasus_fast import _backend

CLIENTS, VALUE, PARTITIONS, KEYSPACE = 32, 100, 8, 10000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is missing: apt-get update && apt-get install -y redis-server")
    port = free_port()
    d = root / "redis"
    d.mkdir()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d), "--appendonly", "yes",
         "--appendfsync", "always", "--save", "", "--daemonize", "no", "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def start_ours(root: Path) -> tuple[subprocess.Popen[str], str, int, str]:
    with pf.Cluster.open(root / "c") as c:
        c.create_table("bench", partition_count=PARTITIONS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pegasus_fast", "--cluster", str(root / "c"), "serve", "--listen", "127.0.0.1:0",
         "--pegasus-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--config", "wal_sync=group"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    metrics = proc.stdout.readline().strip().removeprefix("metrics: ")
    target = proc.stdout.readline().strip().removeprefix("pegasus: ")
    return proc, url, int(target.rsplit(":", 1)[1]), metrics


def load(
    port: int, op: str, protocol: str, seconds: float, rate: float = 0.0, prefill: bool = False
) -> dict[str, Any]:
    return dict(
        _backend.impl.bench_served(
            "127.0.0.1", port, op, protocol=protocol, clients=CLIENTS, seconds=seconds, warmup=1.0,
            value_size=VALUE, keyspace=KEYSPACE, rate=rate, prefill=prefill,
        )
    )  # fmt: skip


def rtt_p50(fn: Any, n: int = 3000) -> float:
    for _ in range(200):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter_ns()
        fn()
        out.append(time.perf_counter_ns() - t)
    return statistics.median(out) / 1000


def embedded(root: Path) -> dict[str, float]:
    with pf.Cluster.open(root / "e") as c:
        t = c.create_table("t", partition_count=PARTITIONS)
        v = b"x" * VALUE
        for i in range(1000):
            t.set(b"k%d" % i, b"", v)
        get = rtt_p50(lambda: t.get(b"k7", b""), 20000)
        s = rtt_p50(lambda: t.set(b"k7", b"", v), 2000)
    return {"table_get_p50_us": get, "table_set_p50_us": s}


def histogram(metrics_url: str) -> dict[str, float]:
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("pegasus_front_batch_size"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    if _backend.name != "rust":
        raise SystemExit("the load generator and the Rust front end need the Rust backend")
    import redis  # pip install redis

    root = Path(tempfile.mkdtemp(prefix="served-bench-"))
    rproc, rport = start_redis(root)
    oproc, url, oport, metrics = start_ours(root)
    res: dict[str, Any] = {
        "clients": CLIENTS,
        "value_bytes": VALUE,
        "partitions": PARTITIONS,
        "cores": os.cpu_count(),
    }
    try:
        for name, port, proto in (("redis", rport, "redis"), ("ours", oport, "pegasus")):
            res[f"{name}_set"] = load(port, "set", proto, args.seconds, prefill=True)
            res[f"{name}_get"] = load(port, "get", proto, args.seconds)
        res["batch_histogram_after_max_load"] = histogram(metrics)
        for op in ("get", "set"):
            half = res[f"redis_{op}"]["ops_per_sec"] / 2
            for name, port, proto in (("redis", rport, "redis"), ("ours", oport, "pegasus")):
                res[f"{name}_{op}_half_load"] = load(port, op, proto, args.seconds, rate=half)
        r = redis.Redis(port=rport)
        r.set(b"k7", b"x" * VALUE)
        res["redis_py_get_p50_us"] = rtt_p50(lambda: r.get(b"k7"))
        with pf.connect(url) as rc:
            t = rc.table("bench")
            t.set(b"k7", b"", b"x" * VALUE)
            res["remote_table_get_p50_us"] = rtt_p50(lambda: t.get(b"k7", b""))
        res["embedded"] = embedded(root)
    finally:
        oproc.terminate()
        oproc.wait(30)
        rproc.terminate()
        rproc.wait(30)
        shutil.rmtree(root, ignore_errors=True)
    ratio = lambda a, b: round(a / b, 3) if b else None  # noqa: E731
    res["ratios"] = {
        "get_vs_redis_get (bar >= 0.5)": ratio(
            res["ours_get"]["ops_per_sec"], res["redis_get"]["ops_per_sec"]
        ),
        "durable_set_vs_redis_set_always (bar >= 1.0)": ratio(
            res["ours_set"]["ops_per_sec"], res["redis_set"]["ops_per_sec"]
        ),
        "get_p99_at_half_load_vs_redis (bar <= 2.0)": ratio(
            res["ours_get_half_load"]["p99_us"], res["redis_get_half_load"]["p99_us"]
        ),
        "set_p99_at_half_load_vs_redis (bar <= 2.0)": ratio(
            res["ours_set_half_load"]["p99_us"], res["redis_set_half_load"]["p99_us"]
        ),
        "remote_get_rtt_vs_redis_py (bar <= 1.5)": ratio(
            res["remote_table_get_p50_us"], res["redis_py_get_p50_us"]
        ),
    }
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
