"""Served clusters (issue #9): every figure measured in one run, against the bars of the issue.

    python benches/remote.py                  # the quick set (~1-2 min on 2 cores)
    python benches/remote.py --large-gb 1.2   # adds the 1.2 GB table to a remote follower

Clusters are served by real `pegasus-fast serve` processes on 127.0.0.1 (so the
source and the follower do not share a GIL), except where a figure names an
embedded source. Figures:

  add_duplication over the network to DS_LOG, 8 partitions, 0/1/2 records, with
    the follower fully healthy 8/8 and every record read back from it:
    served → served (bar < 30 ms) and embedded → served (bar < 20 ms);
  write → visible on a remote follower at 1,000 writes/s (bar p50 < 2 ms, p99 < 10 ms);
  log shipping over one stream (bar >= 200k mutations/s at 100 B, >= 300 MB/s at 64 KB);
  client: get p50 against a bare grpcio unary call (bar within 1.5x),
    multi_set of 100 records from one client (bar >= 100k records/s);
  --large-gb: a large table to a remote follower vs `cp -r` + `sync` (bar within 2x),
    and the bytes re-sent after the follower is killed halfway (bar < 60%).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager

import grpc
import pegasus_fast as pf

ROUNDS = 7


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(path: str, *extra: str, port: int = 0) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A `pegasus-fast serve` process on ``path``; SIGTERM at the end."""
    ready = path + ".ready"
    if os.path.exists(ready):
        os.unlink(ready)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pegasus_fast", "--cluster", path, "serve", "--listen", f"127.0.0.1:{port}",
         "--ready-file", ready, *extra],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(ready):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve on {path} did not start")
            time.sleep(0.01)
        with open(ready) as f:
            yield proc, f.read().strip()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def read_back_all(follower: pf.RemoteCluster, table: str, records: list[tuple[bytes, bytes, bytes]]) -> None:
    t = follower.table(table)
    while not t.health().is_fully_healthy:
        time.sleep(0.0005)
    for hk, sk, v in records:
        while t.get(hk, sk) != v:
            time.sleep(0.0005)


def bench_add_dup(root: str) -> None:
    print(
        "\n# add_duplication over the network to DS_LOG, 8 partitions, follower 8/8 healthy, records read back"
    )
    for mode in ("served -> served", "embedded -> served"):
        for n in (0, 1, 2):
            times = []
            for r in range(ROUNDS):
                base = os.path.join(root, f"add-{mode[:3]}-{n}-{r}")
                os.makedirs(base)
                records = [(b"hk%d" % i, b"sk", b"value%d" % i) for i in range(n)]
                with served(os.path.join(base, "dst")) as (_p2, dst_url), pf.connect(dst_url) as dst:
                    if mode.startswith("served"):
                        with served(os.path.join(base, "src")) as (_p1, src_url), pf.connect(src_url) as src:
                            t = src.create_table("t", partition_count=8)
                            for rec in records:
                                t.set(*rec)
                            time.sleep(0.5)  # an existing table: its background RocksDB opens are done
                            start = time.perf_counter()
                            d = src.add_duplication("t", dst_url)
                            d.wait_for(pf.DupStatus.LOG, timeout=60)
                            read_back_all(dst, "t", records)
                            times.append((time.perf_counter() - start) * 1000)
                    else:
                        with pf.Cluster.open(os.path.join(base, "src"), name="src") as src:
                            t = src.create_table("t", partition_count=8)
                            for rec in records:
                                t.set(*rec)
                            time.sleep(0.5)  # an existing table: its background RocksDB opens are done
                            start = time.perf_counter()
                            d = src.add_duplication("t", dst_url)
                            d.wait_for(pf.DupStatus.LOG, timeout=60)
                            read_back_all(dst, "t", records)
                            times.append((time.perf_counter() - start) * 1000)
            bar = 30 if mode.startswith("served") else 20
            med = statistics.median(times)
            print(
                f"  {mode:20s} {n} records: median {med:6.1f} ms  (min {min(times):.1f}, max {max(times):.1f})"
                f"  bar < {bar} ms: {'PASS' if med < bar else 'FAIL'}"
            )


def bench_lag(root: str, writes: int = 1000) -> None:
    print("\n# write -> visible on a remote follower, 1,000 writes/s, embedded source, served follower")
    base = os.path.join(root, "lag")
    os.makedirs(base)
    cfg = pf.Config(wal_sync="group")
    with (
        served(os.path.join(base, "dst")) as (_p, dst_url),
        pf.connect(dst_url) as dst,
        pf.Cluster.open(os.path.join(base, "src"), name="src", config=cfg) as src,
    ):
        t = src.create_table("t", partition_count=8)
        t.set(b"warm", b"up", b"x")
        d = src.add_duplication("t", dst_url)
        d.wait_for(pf.DupStatus.LOG, timeout=60)
        ft = dst.table("t")
        while ft.get(b"warm", b"up") is None:
            time.sleep(0.001)
        lags = []
        next_at = time.perf_counter()
        for i in range(writes):
            key = b"k%d" % i
            start = time.perf_counter()
            t.set(key, b"s", b"v")
            while ft.get(key, b"s") is None:
                pass
            lags.append((time.perf_counter() - start) * 1000)
            next_at += 0.001
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    p50, p99 = pct(lags, 0.5), pct(lags, 0.99)
    print(
        f"  p50 {p50:.2f} ms (bar < 2: {'PASS' if p50 < 2 else 'FAIL'}), p99 {p99:.2f} ms "
        f"(bar < 10: {'PASS' if p99 < 10 else 'FAIL'}), max {max(lags):.2f} ms over {writes} writes"
    )


def bench_shipping(root: str) -> None:
    print("\n# log shipping over one stream (1 partition), embedded source, served follower")
    for value_size, count, bar, unit in (
        (100, 200_000, 200_000, "mutations/s"),
        (64 << 10, 6_000, 300, "MB/s"),
    ):
        base = os.path.join(root, f"ship-{value_size}")
        os.makedirs(base)
        cfg = pf.Config(wal_sync="none", duplicate_log_batch_bytes=4 << 20)
        with (
            served(os.path.join(base, "dst")) as (_p, dst_url),
            pf.connect(dst_url) as dst,
            pf.Cluster.open(os.path.join(base, "src"), name="src", config=cfg) as src,
        ):
            t = src.create_table("t", partition_count=1)
            d = src.add_duplication("t", dst_url)
            d.wait_for(pf.DupStatus.LOG, timeout=60)
            d.pause()
            value = os.urandom(value_size)
            per = max(1, min(100, (1 << 20) // value_size))
            for i in range(0, count, per):
                t.multi_set(b"h%d" % i, {b"s%d" % j: value for j in range(per)})
            for i in range(count % per):
                t.set(b"tail", b"%d" % i, value)
            total = t.partition_stats()[0].last_committed_decree
            muts = count
            start = time.perf_counter()
            d.resume()
            while d.progress()[0].pending_mutations:
                time.sleep(0.002)
            secs = time.perf_counter() - start
            assert dst.table("t").partition_stats()[0].last_committed_decree >= 1
        rate = muts / secs
        mb = muts * value_size / secs / 1e6
        got = rate if unit == "mutations/s" else mb
        print(
            f"  {value_size} B values: {rate:,.0f} mutations/s, {mb:,.0f} MB/s ({total} decrees in {secs:.2f} s)"
            f"  bar >= {bar:,} {unit}: {'PASS' if got >= bar else 'FAIL'}"
        )


class _Echo:
    """A bare grpcio unary service of the same message shape as Get, for the baseline."""

    @staticmethod
    def handler() -> grpc.GenericRpcHandler:
        def get(request: bytes, context: grpc.ServicerContext) -> bytes:
            return request

        return grpc.method_handlers_generic_handler(
            "bare.Echo", {"Get": grpc.unary_unary_rpc_method_handler(get)}
        )


def bench_client(root: str) -> None:
    print("\n# client round trips (served cluster in another process)")
    base = os.path.join(root, "client")
    os.makedirs(base)
    bare = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    bare.add_generic_rpc_handlers((_Echo.handler(),))
    port = bare.add_insecure_port("127.0.0.1:0")
    bare.start()
    try:
        with served(os.path.join(base, "c")) as (_p, url), pf.connect(url) as rc:
            t = rc.create_table("t", partition_count=8)
            t.set(b"hk", b"sk", b"v" * 100)
            ch = grpc.insecure_channel(f"127.0.0.1:{port}")
            echo = ch.unary_unary("/bare.Echo/Get")
            payload = b"\x0a\x01t\x12\x02hk\x1a\x02sk"
            for _ in range(200):
                echo(payload)
                t.get(b"hk", b"sk")
            ratios, gets, bares = [], [], []
            for _ in range(ROUNDS):
                g, b = [], []
                for _ in range(300):
                    s = time.perf_counter()
                    echo(payload)
                    b.append(time.perf_counter() - s)
                    s = time.perf_counter()
                    t.get(b"hk", b"sk")
                    g.append(time.perf_counter() - s)
                gets.append(statistics.median(g) * 1e6)
                bares.append(statistics.median(b) * 1e6)
                ratios.append(gets[-1] / bares[-1])
            ch.close()
            ratio = statistics.median(ratios)
            print(
                f"  get p50 {statistics.median(gets):.0f} us vs bare grpcio unary {statistics.median(bares):.0f} us:"
                f" {ratio:.2f}x  bar <= 1.5x: {'PASS' if ratio <= 1.5 else 'FAIL'}"
            )
            values = {b"s%03d" % i: b"v" * 100 for i in range(100)}
            rates = []
            for r in range(ROUNDS):
                n = 200
                s = time.perf_counter()
                for i in range(n):
                    t.multi_set(b"h%d-%d" % (r, i), values)
                rates.append(n * 100 / (time.perf_counter() - s))
            rate = statistics.median(rates)
            print(
                f"  multi_set(100): {rate:,.0f} records/s  bar >= 100,000: {'PASS' if rate >= 100_000 else 'FAIL'}"
            )
    finally:
        bare.stop(None)


def _dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def bench_large(root: str, gb: float) -> None:
    print(f"\n# a {gb} GB table to a remote follower vs cp -r + sync")
    base = os.path.join(root, "large")
    os.makedirs(base)
    src_path = os.path.join(base, "src")
    value = os.urandom(64 << 10)
    with pf.Cluster.open(src_path, name="src", config=pf.Config(wal_sync="none")) as src:
        t = src.create_table("t", partition_count=8)
        n = int(gb * 1e9 / len(value))
        for i in range(0, n, 16):
            t.multi_set(b"h%d" % i, {b"s%d" % j: value for j in range(16)})
        t.checkpoint()
    tables = os.path.join(src_path, "tables")
    # the table's files: each partition's RocksDB (its checkpoint's files are hard links to them)
    rdbs = sorted(os.path.join(tables, d, "rdb") for d in os.listdir(tables))
    size = sum(_dir_bytes(r) for r in rdbs)
    ckpt = sum(
        _dir_bytes(os.path.join(tables, d, c))
        for d in os.listdir(tables)
        for c in os.listdir(os.path.join(tables, d))
        if c.startswith("checkpoint.")
    )
    copy = os.path.join(base, "cp-copy")
    os.makedirs(copy)
    start = time.perf_counter()
    for i, r in enumerate(rdbs):
        subprocess.run(["cp", "-r", r, os.path.join(copy, f"p{i}")], check=True)
    subprocess.run(["sync"], check=True)
    cp_secs = time.perf_counter() - start
    shutil.rmtree(copy)
    with served(os.path.join(base, "dst")) as (_p, dst_url), pf.Cluster.open(src_path) as src:
        start = time.perf_counter()
        d = src.add_duplication("t", dst_url)
        d.wait_for(pf.DupStatus.LOG, timeout=3600)
        dup_secs = time.perf_counter() - start
        d.remove()
    ratio = dup_secs / cp_secs
    print(
        f"  {size / 1e9:.2f} GB of RocksDB files ({ckpt / 1e9:.2f} GB of checkpoints): duplication "
        f"{dup_secs:.1f} s, cp -r + sync {cp_secs:.1f} s: {ratio:.2f}x  bar <= 2x: {'PASS' if ratio <= 2 else 'FAIL'}"
    )
    # kill -9 the follower halfway through the copy, restart it, count the bytes sent again (a
    # loopback proxy that does nothing but count sits between the two)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from netproxy import FaultyProxy

    port = free_port()
    dst2 = os.path.join(base, "dst2")
    with pf.Cluster.open(src_path) as src, FaultyProxy(port) as proxy:
        with served(dst2, port=port) as (proc, _url):
            d = src.add_duplication("t", proxy.url, "t2")
            while proxy.stats.up_bytes < ckpt / 2:
                time.sleep(0.01)
            proc.kill()
            proc.wait()
        before = proxy.stats.up_bytes
        with served(dst2, port=port):
            d.wait_for(pf.DupStatus.LOG, timeout=3600)
        after = proxy.stats.up_bytes - before
    print(
        f"  follower killed after {before / 1e9:.2f} GB went through; after its restart {after / 1e9:.2f} GB "
        f"more: {after / ckpt:.0%} of the checkpoints  bar < 60%: {'PASS' if after / ckpt < 0.6 else 'FAIL'}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large-gb", type=float, default=0.0)
    ap.add_argument("--only", choices=["add", "lag", "ship", "client", "large"])
    args = ap.parse_args()
    print(f"pegasus_fast {pf.__version__}, backend {pf.backend()}, {os.cpu_count()} cores")
    root = tempfile.mkdtemp(prefix="pf-remote-bench-")
    try:
        if args.only in (None, "add"):
            bench_add_dup(root)
        if args.only in (None, "lag"):
            bench_lag(root)
        if args.only in (None, "ship"):
            bench_shipping(root)
        if args.only in (None, "client"):
            bench_client(root)
        if args.large_gb or args.only == "large":
            bench_large(root, args.large_gb or 1.2)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
