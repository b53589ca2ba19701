"""Measurements for benches/report.py: add_dup by table size, write-to-visible lag (embedded and
a Redis replica), the disk's fdatasync. Each returns plain data; report.py keeps it as JSON."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

import pegasus_fast as pf
from applied_poll import AppliedPoller
from pegasus_fast.bench import scenario, stats


def fdatasync_latency(directory: str, n: int = 500) -> dict[str, float]:
    """4 KiB appended then fdatasync'd, ``n`` times, in ``directory``: the disk's sync cost."""
    path = os.path.join(directory, "fdatasync-probe")
    block = os.urandom(4096)
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for _ in range(n):
            os.write(fd, block)
            start = time.perf_counter()
            os.fdatasync(fd)
            times.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        os.unlink(path)
    return {"n": n, "p50_ms": stats.percentile(times, 50) * 1e3, "p99_ms": stats.percentile(times, 99) * 1e3}


def add_dup_sweep(
    root: str,
    sizes: list[int],
    runs: dict[str, int],
    legacy_seconds: float,
    partitions: int = 8,
    say: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """For each size: fill one source (untimed), then time add_dup to DS_LOG from a fresh copy of it,
    ``runs[policy]`` times per policy, the policies' runs interleaved. ``large-only`` is the
    adaptive policy with ``small_partition_max_bytes=0``: every non-empty partition takes the
    checkpoint-copy path, to show where the two paths' costs cross."""
    out = []
    for records in sizes:
        pristine = os.path.join(root, "pristine")
        start = time.perf_counter()
        data_bytes = scenario.fill(pristine, partitions, records)
        fill_s = time.perf_counter() - start
        point: dict[str, Any] = {"records": records, "data_bytes": data_bytes, "fill_seconds": fill_s}
        configs = {
            "adaptive": scenario.adaptive_config(),
            "legacy": scenario.legacy_config(legacy_seconds),
            "large-only": scenario.adaptive_config(small_partition_max_bytes=0),
        }
        configs = {k: v for k, v in configs.items() if runs.get(k)}
        times: dict[str, list[float]] = {p: [] for p in configs}
        kinds: dict[str, list[str]] = {}
        for r in range(max(runs[p] for p in configs)):
            for policy, cfg in configs.items():
                if r < runs[policy]:
                    run = scenario.run_from_copy(pristine, os.path.join(root, "run"), cfg)
                    times[policy].append(run.seconds)
                    kinds[policy] = sorted(set(run.kinds))
        for policy in configs:
            point[policy] = {**stats.summary(times[policy]), "runs": times[policy], "kinds": kinds[policy]}
        shutil.rmtree(pristine)
        say(
            f"  {records:>10,} records ({data_bytes / 1e6:,.1f} MB): adaptive "
            f"{point['adaptive']['median'] * 1e3:,.1f} ms {kinds['adaptive']}, legacy "
            f"{point['legacy']['median']:,.2f} s"
        )
        out.append(point)
    return out


def embedded_lag(wal_sync: str, n: int = 1000, rate: int = 1000, partitions: int = 8) -> list[float]:
    """Seconds from before ``Table.set`` to the write being applied on an embedded follower.

    From the first write to a fresh table and follower; a reader thread polls every follower
    partition's applied source decree every 50 us (without a pause it starves the shipper of
    the GIL), so a figure is late by up to one poll.
    """
    cfg = pf.Config(wal_sync=wal_sync)
    with tempfile.TemporaryDirectory(prefix="pf-lag-", dir=os.environ.get("PF_BENCH_DIR")) as root:
        src = pf.Cluster.open(os.path.join(root, "src"), name="source", config=cfg)
        dst = pf.Cluster.open(os.path.join(root, "dst"), name="target", config=cfg)
        try:
            t = src.create_table("lag", partition_count=partitions)
            dup = src.add_duplication("lag", dst)
            dup.wait_for(pf.DupStatus.LOG, timeout=30)
            follower = dst.table("lag")
            poller = AppliedPoller(follower).start()
            applied_at = poller.applied_at
            writes = []
            start = time.perf_counter()
            for i in range(n):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                hk = b"key%d" % i
                before = time.perf_counter()
                d = t.set(hk, b"s", b"v" * 100)
                writes.append((t.partition_index(hk), d, before))
            poller.wait_for(n)
            poller.stop()
        finally:
            src.close()
            dst.close()
    missing = [w for w in writes if (w[0], w[1]) not in applied_at]
    if missing:
        raise RuntimeError(f"{len(missing)} writes never reached the follower")
    return [applied_at[(p, d)] - w for p, d, w in writes]


def remote_lag(wal_sync: str = "group", n: int = 1000, rate: float = 1000.0) -> list[float]:
    """Write -> visible on a follower served by a real `pegasus-fast serve` process.

    The source is embedded here; each write is then read back through the follower's
    server (one gRPC get after another, no pause: each is a round trip that releases the
    GIL) until it is visible. Seconds per write, like ``embedded_lag``.
    """
    import subprocess
    import sys

    with tempfile.TemporaryDirectory(prefix="pf-remote-lag-", dir=os.environ.get("PF_BENCH_DIR")) as root:
        ready = os.path.join(root, "ready")
        proc = subprocess.Popen(
            [sys.executable, "-m", "pegasus_fast", "--cluster", os.path.join(root, "dst"), "serve",
             "--listen", "127.0.0.1:0", "--ready-file", ready],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.time() + 60
            while not os.path.exists(ready):
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("the follower's server did not start")
                time.sleep(0.01)
            with open(ready) as f:
                url = f.read().strip()
            src = pf.Cluster.open(
                os.path.join(root, "src"), name="source", config=pf.Config(wal_sync=wal_sync)
            )
            try:
                t = src.create_table("t", partition_count=8)
                d = src.add_duplication("t", url)
                d.wait_for(pf.DupStatus.LOG, timeout=60)
                with pf.connect(url, timeout=10) as remote:
                    ft = remote.table("t")
                    out = []
                    start = time.perf_counter()
                    for i in range(n):
                        delay = start + i / rate - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
                        hk = b"key%d" % i
                        before = time.perf_counter()
                        t.set(hk, b"s", b"v" * 100)
                        while ft.get(hk, b"s") is None:
                            pass
                        out.append(time.perf_counter() - before)
                return out
            finally:
                src.close()
        finally:
            proc.terminate()
            proc.wait(30)


# Redis -----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Resp:
    """The few RESP commands the measurement needs, over one socket (no client library)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb")

    def call(self, *args: bytes) -> Any:
        out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        self.sock.sendall(out)
        line = self.f.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if kind == b"-":
            raise RuntimeError(rest.decode())
        return rest

    def close(self) -> None:
        self.f.close()
        self.sock.close()


def redis_available() -> bool:
    return shutil.which("redis-server") is not None


def redis_lag(fsync: bool, n: int = 1000, rate: int = 1000) -> list[float]:
    """Seconds from sending SET to a master to GET returning the value on its replica.

    A master and a replica on loopback ports, started here and stopped after. With ``fsync``
    both have ``appendonly yes`` and ``appendfsync always``; without, no persistence at all.
    The writer paces 1,000 SETs/s, waits for each SET's reply, then GETs the key on the
    replica in a loop (each GET a round trip, about 30-50 us) until it is there.
    """
    persist = ["--appendonly", "yes", "--appendfsync", "always"] if fsync else ["--appendonly", "no"]
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="pf-redis-", dir=os.environ.get("PF_BENCH_DIR")) as root:
        ports = [_free_port(), _free_port()]
        try:
            for k, port in enumerate(ports):
                d = os.path.join(root, str(k))
                os.mkdir(d)
                argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d]
                argv += ["--save", "", "--daemonize", "no", *persist]
                if k == 1:
                    argv += ["--replicaof", "127.0.0.1", str(ports[0])]
                procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            master, replica = _connect(ports[0]), _connect(ports[1])
            deadline = time.time() + 20
            while b"master_link_status:up" not in (replica.call(b"INFO", b"replication") or b""):
                if time.time() > deadline:
                    raise RuntimeError("the Redis replica did not connect to its master")
                time.sleep(0.05)
            out = []
            value = b"v" * 100
            start = time.perf_counter()
            for i in range(n):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                key = b"key%d" % i
                before = time.perf_counter()
                master.call(b"SET", key, value)
                while replica.call(b"GET", key) is None:
                    pass
                out.append(time.perf_counter() - before)
            master.close()
            replica.close()
            return out
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(10)


def _connect(port: int) -> _Resp:
    deadline = time.time() + 10
    while True:
        try:
            return _Resp(port)
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.02)


def redis_version() -> str:
    done = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    return done.stdout.strip()
