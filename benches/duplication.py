"""Duplication benchmarks (issue #3), every figure measured in one run, reported as ratios.

    python benches/duplication.py                # quick set, the installed backend(s)
    python benches/duplication.py --large-gb 1.2 # adds the 1.2 GB table vs shutil.copytree

Figures:
  add_dup to DS_LOG with the follower fully healthy (8 partitions, 0/1/2 records;
  1 partition, 2 records), adaptive vs legacy (checkpoint_max_interval scaled to 2 s),
  write-on-source to visible-on-follower latency at 1,000 writes/s (p50, p99),
  Rust vs Python twin on the duplication hot path (scan + ship of 100k mutations,
  logical snapshot encode + apply), and optionally a large table vs copytree.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pegasus_fast as pf
from applied_poll import AppliedPoller
from pegasus_fast import _backend
from pegasus_fast.duplication import checkpoints as policy
from pegasus_fast.duplication.ports import SourceId
from pegasus_fast.engine.local_follower import LocalFollower


@contextmanager
def cluster_pair(root: str, config: pf.Config) -> Iterator[tuple[pf.Cluster, pf.Cluster]]:
    """A source and a follower cluster under ``root``, both closed afterwards."""
    src = pf.Cluster.open(os.path.join(root, "src"), name="source", config=config)
    try:
        dst = pf.Cluster.open(os.path.join(root, "dst"), name="target", config=config)
        try:
            yield src, dst
        finally:
            dst.close()
    finally:
        src.close()


def backends() -> list[str]:
    out = []
    for name in ("rust", "python"):
        try:
            _backend.load(name)
            out.append(name)
        except ImportError:
            pass
    return out


def time_add_dup(root: str, partitions: int, records: int, config: pf.Config, timeout: float = 60) -> float:
    with cluster_pair(root, config) as (src, dst):
        t = src.create_table("test1", partition_count=partitions)
        for i in range(records):
            t.set(b"k%d" % i, b"s", b"v%d" % i)
        # The source's RocksDB instances are opened first, as on a table that has been in use:
        # the clock measures add_dup on a table that exists (benches/founding.py measures it
        # right after create_table too). The follower's opens are add_dup's.
        for p in t.partitions:
            open_now = getattr(p, "open_now", None)  # older versions open on first use
            if open_now is not None:
                open_now()
        start = time.perf_counter()
        dup = src.add_duplication("test1", dst)
        dup.wait_for(pf.DupStatus.LOG, timeout=timeout)
        elapsed = time.perf_counter() - start
        health = dst.table("test1").health()
        assert health.fully_healthy == partitions, health
        assert dst.table("test1").count() == records
        return elapsed


def bench_add_dup(rounds: int) -> dict[str, float]:
    out = {}
    for partitions, records in ((8, 0), (8, 1), (8, 2), (1, 2)):
        times = []
        for _ in range(rounds):
            with tempfile.TemporaryDirectory(prefix="pf-bench-") as root:
                times.append(time_add_dup(root, partitions, records, pf.Config()))
        out[f"add_dup {partitions}p/{records}r ms"] = statistics.median(times) * 1000
    return out


def bench_legacy() -> dict[str, float]:
    cfg = pf.Config(
        checkpoint_policy="legacy", checkpoint_max_interval_hours=2.0 / 3600, checkpoint_interval_seconds=0.05
    )
    with tempfile.TemporaryDirectory(prefix="pf-bench-") as root:
        legacy = time_add_dup(root, 8, 2, cfg)
    with tempfile.TemporaryDirectory(prefix="pf-bench-") as root:
        adaptive = time_add_dup(root, 8, 2, pf.Config())
    return {
        "legacy 8p/2r ms": legacy * 1000,
        "adaptive 8p/2r ms (same run)": adaptive * 1000,
        "legacy/adaptive x": legacy / adaptive,
    }


def bench_latency(wal_sync: str, rate: int = 1000, seconds: float = 3.0) -> dict[str, float]:
    cfg = pf.Config(wal_sync=wal_sync)
    with tempfile.TemporaryDirectory(prefix="pf-bench-") as root:
        with cluster_pair(root, cfg) as (src, dst):
            t = src.create_table("lat", partition_count=8)
            dup = src.add_duplication("lat", dst)
            dup.wait_for(pf.DupStatus.LOG, timeout=30)
            # when each source decree became visible on the follower: a reader in this process
            # polls every follower partition's applied source decree every 50 us (polling
            # without a pause would starve the shipper of the GIL)
            writes: list[tuple[int, int, float]] = []
            follower = dst.table("lat")
            poller = AppliedPoller(follower).start()
            applied_at = poller.applied_at
            n = int(rate * seconds)
            interval = 1.0 / rate
            start = time.perf_counter()
            for i in range(n):
                target = start + i * interval
                delay = target - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                hk = b"key%d" % i
                before = time.perf_counter()
                d = t.set(hk, b"s", b"v" * 100)
                writes.append((t.partition_index(hk), d, before))
            poller.wait_for(n)
            poller.stop()
            achieved = n / (time.perf_counter() - start)
    lat = sorted(applied_at[(p, d)] - w for p, d, w in writes if (p, d) in applied_at)
    assert len(lat) == len(writes), "some writes never reached the follower"
    return {
        f"latency[{wal_sync}] writes": len(lat),
        f"latency[{wal_sync}] achieved writes/s": achieved,
        f"latency[{wal_sync}] p50 ms": lat[len(lat) // 2] * 1000,
        f"latency[{wal_sync}] p99 ms": lat[int(len(lat) * 0.99)] * 1000,
    }


def bench_hot_path(n: int) -> dict[str, float]:
    """Scan + ship of n mutations, and logical snapshot encode + apply, per backend."""
    out: dict[str, float] = {}
    for name in backends():
        with _backend.use(name), tempfile.TemporaryDirectory(prefix="pf-bench-") as root:
            cfg = pf.Config(wal_sync="none", duplicate_log_batch_bytes=256 << 10)
            with cluster_pair(root, cfg) as (src, dst):
                t = src.create_table("hot", partition_count=1)
                dup = src.add_duplication("hot", dst)
                dup.wait_for(pf.DupStatus.LOG, timeout=30)
                dup.pause()
                for i in range(n):
                    t.set(b"key%08d" % i, b"s", b"v" * 100)
                start = time.perf_counter()
                dup.resume()
                p = t.partitions[0]
                fp = dst.table("hot").partitions[0]
                while fp.source_decree < p.last_committed:
                    time.sleep(0.001)
                out[f"ship {n} mutations s [{name}]"] = time.perf_counter() - start
                # logical snapshot of the same partition: encode on the source, apply on a fresh follower
                start = time.perf_counter()
                art = policy.adaptive(p, 1 << 40)
                out[f"snapshot encode {n} records s [{name}]"] = time.perf_counter() - start
                assert art.kind == policy.SMALL
                follower = LocalFollower(dst)
                follower.ensure_table("snap", 1, SourceId("bench", "", "hot", 1), True)
                start = time.perf_counter()
                follower.learn_snapshot("snap", 0, art.decree, art.block or b"")
                dst.table("snap").partitions[0].db  # noqa: B018 - opening replays the snapshot
                out[f"snapshot apply {n} records s [{name}]"] = time.perf_counter() - start
    if len(backends()) == 2:
        for what in ("ship", "snapshot encode", "snapshot apply"):
            r = next(v for k, v in out.items() if k.startswith(what) and "[rust]" in k)
            py = next(v for k, v in out.items() if k.startswith(what) and "[python]" in k)
            out[f"{what}: python/rust x"] = py / r
    return out


def bench_large(gb: float) -> dict[str, float]:
    value = os.urandom(64 << 10)
    with tempfile.TemporaryDirectory(prefix="pf-bench-", dir=os.environ.get("PF_BENCH_DIR")) as root:
        cfg = pf.Config(wal_sync="none", log_private_file_size_mb=256)
        with cluster_pair(root, cfg) as (src, dst):
            t = src.create_table("big", partition_count=8)
            records = int(gb * (1 << 30)) // len(value)
            for i in range(0, records, 16):
                t.multi_set(b"h%07d" % i, {b"s%02d" % j: value for j in range(16)})
            t.checkpoint()  # flushed, as a long-running table is
            os.sync()
            files_dir = os.path.join(root, "copy")
            start = time.perf_counter()
            for p in t.partitions:
                shutil.copytree(os.path.join(p.path, "rdb"), os.path.join(files_dir, str(p.pidx)))
            copytree_s = time.perf_counter() - start
            os.sync()  # the follower's copy is durable before it serves: compare with a synced copy too
            copytree_sync_s = time.perf_counter() - start
            start = time.perf_counter()
            dup = src.add_duplication("big", dst)
            dup.wait_for(pf.DupStatus.LOG, timeout=600)
            dup_s = time.perf_counter() - start
            kinds = {p.checkpoint_kind for p in dup.progress()}
    return {
        "large table GB": gb,
        "copytree s": copytree_s,
        "copytree + sync s": copytree_sync_s,
        "add_dup to DS_LOG s": dup_s,
        "add_dup/copytree x": dup_s / copytree_s,
        "add_dup/(copytree + sync) x": dup_s / copytree_sync_s,
        "large kinds": float(kinds == {"large"}),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--hot-n", type=int, default=100_000)
    ap.add_argument("--large-gb", type=float, default=0.0)
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--only-large", action="store_true", help="just the large-table figure")
    args = ap.parse_args()
    print(f"pegasus_fast {pf.__version__}, default backend {pf.backend()}, backends {backends()}")
    results: dict[str, float] = {}
    if not args.only_large:
        results.update(bench_add_dup(args.rounds))
        results.update(bench_legacy())
        if not args.skip_latency:
            results.update(bench_latency("group"))
            results.update(bench_latency("none"))
        results.update(bench_hot_path(args.hot_n))
    if args.large_gb:
        results.update(bench_large(args.large_gb))
    width = max(len(k) for k in results)
    for k, v in results.items():
        print(f"{k.ljust(width)}  {v:12.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
