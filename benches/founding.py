"""The founding scenario (apache/incubator-pegasus#2069, issue #16): add_duplication of a new,
empty or nearly empty table, timed right after ``create_table`` and again a second later.

    python benches/founding.py [--rounds 7] [--dir DIR] [--json PATH]

Each round: a fresh embedded source and follower (``wal_sync="group"``), ``create_table``,
0/1/2 records written, then (at once, or after a 1 s pause) ``add_duplication(
with_checkpoint=True)`` timed until DS_LOG, every follower partition fully healthy and every
record readable on the follower. Medians and spreads (min, max) per case, the bars of issue
#16, and the machine's own costs beside them: fdatasync, mkdir (a partition directory is an
inode, and inodes are slow on some virtual disks) and a RocksDB create-and-open. Last, the
price of opening lazily: the first write to a new partition against a later one, with
``open_rocksdb_eagerly`` off (the default) and on.

``--dir`` is where the clusters go (default: a temporary directory); compare machines on
the same kind of disk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import pegasus_fast as pf
import rocksdict

CASES = [(8, 0), (8, 1), (8, 2), (64, 1)]
#: issue #16's bars, ms, embedded, Rust backend (the same right after create_table or later)
BARS_MS = {(8, 0): 10.0, (8, 1): 20.0, (8, 2): 25.0, (64, 1): 60.0}


def add_dup_ms(root: str, partitions: int, records: int, pause: float, eager: bool = False) -> float:
    cfg = {"wal_sync": "group", "open_rocksdb_eagerly": eager}
    src = pf.Cluster.open(os.path.join(root, "src"), name="source", config=pf.Config(cluster_id=1, **cfg))
    dst = pf.Cluster.open(os.path.join(root, "dst"), name="target", config=pf.Config(cluster_id=2, **cfg))
    try:
        t = src.create_table("t", partition_count=partitions)
        keys = [(b"h%d" % i, b"s") for i in range(records)]
        for hk, sk in keys:
            t.set(hk, sk, b"v" * 100)
        if pause:
            time.sleep(pause)
        start = time.perf_counter()
        dup = src.add_duplication("t", dst, with_checkpoint=True)
        dup.wait_for(pf.DupStatus.LOG, timeout=60)
        follower = dst.table("t")
        while follower.health().fully_healthy != partitions:
            if time.perf_counter() - start > 60:
                raise TimeoutError(f"follower not healthy: {follower.health()}")
            time.sleep(0.0002)
        for hk, sk in keys:
            if follower.get(hk, sk) != b"v" * 100:
                raise AssertionError(f"{hk!r} not readable on the follower")
        return (time.perf_counter() - start) * 1000.0
    finally:
        src.close()
        dst.close()


def machine_costs(root: str, n: int = 20) -> dict[str, float]:
    """Median ms of an fdatasync of a 4 KiB write, a mkdir, and a RocksDB create-and-open."""
    sync, mkdir, rdb = [], [], []
    path = os.path.join(root, "fsync.probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for _ in range(n):
            os.write(fd, b"x" * 4096)
            s = time.perf_counter()
            os.fdatasync(fd)
            sync.append(time.perf_counter() - s)
    finally:
        os.close(fd)
    for i in range(n):
        s = time.perf_counter()
        os.mkdir(os.path.join(root, f"d{i}"))
        mkdir.append(time.perf_counter() - s)
    for i in range(min(n, 10)):
        opts = rocksdict.Options(raw_mode=True)
        opts.create_if_missing(True)
        s = time.perf_counter()
        db = rocksdict.Rdict(os.path.join(root, f"rdb{i}"), opts)
        rdb.append(time.perf_counter() - s)
        db.close()
    ms = lambda xs: statistics.median(xs) * 1000.0  # noqa: E731
    return {"fdatasync_ms": ms(sync), "mkdir_ms": ms(mkdir), "rocksdb_open_ms": ms(rdb)}


def first_write_ms(root: str, eager: bool, rounds: int) -> tuple[float, float]:
    """Median ms of the first write to a new partition, and of a write after it."""
    firsts, laters = [], []
    for r in range(rounds):
        d = os.path.join(root, f"fw{r}")
        c = pf.Cluster.open(d, config=pf.Config(wal_sync="group", open_rocksdb_eagerly=eager))
        try:
            t = c.create_table("t", partition_count=1)
            deadline = time.monotonic() + 10
            while eager and not t.partitions[0].is_open and time.monotonic() < deadline:
                time.sleep(0.001)
            s = time.perf_counter()
            t.set(b"a", b"s", b"v")
            firsts.append(time.perf_counter() - s)
            s = time.perf_counter()
            t.set(b"b", b"s", b"v")
            laters.append(time.perf_counter() - s)
        finally:
            c.close()
            shutil.rmtree(d, ignore_errors=True)
    return statistics.median(firsts) * 1000.0, statistics.median(laters) * 1000.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--dir", default=None, help="where the clusters are made (default: a temp dir)")
    ap.add_argument("--json", default=None, help="write the figures here too")
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="founding-", dir=args.dir)
    out: dict[str, object] = {"backend": pf.backend(), "rounds": args.rounds}
    try:
        probe = os.path.join(base, "probe")
        os.makedirs(probe)
        costs = machine_costs(probe)
        out["machine"] = costs
        print(f"backend {pf.backend()}, {args.rounds} rounds a case, in {base}")
        print(
            "machine: fdatasync {fdatasync_ms:.2f} ms, mkdir {mkdir_ms:.2f} ms, "
            "RocksDB create+open {rocksdb_open_ms:.2f} ms".format(**costs)
        )
        print(f"{'case':<22}{'when':<16}{'median ms':>10}{'min':>8}{'max':>8}{'bar':>8}  verdict")
        cases = []
        ok = True
        for partitions, records in CASES:
            for pause, when in ((0.0, "after create"), (1.0, "a second later")):
                xs = []
                for r in range(args.rounds):
                    root = os.path.join(base, f"r{partitions}_{records}_{int(pause)}_{r}")
                    xs.append(add_dup_ms(root, partitions, records, pause))
                    shutil.rmtree(root, ignore_errors=True)
                med = statistics.median(xs)
                bar = BARS_MS[(partitions, records)]
                verdict = "PASS" if med <= bar else "FAIL"
                ok &= med <= bar
                name = f"{partitions} partitions, {records} rec"
                print(f"{name:<22}{when:<16}{med:>10.1f}{min(xs):>8.1f}{max(xs):>8.1f}{bar:>8.0f}  {verdict}")
                cases.append(
                    {
                        "partitions": partitions,
                        "records": records,
                        "pause_s": pause,
                        "median_ms": med,
                        "min_ms": min(xs),
                        "max_ms": max(xs),
                        "bar_ms": bar,
                        "samples_ms": xs,
                    }
                )
        out["cases"] = cases
        for partitions, records in ((8, 0),):
            xs = []
            for r in range(args.rounds):
                root = os.path.join(base, f"eager{r}")
                xs.append(add_dup_ms(root, partitions, records, 0.0, eager=True))
                shutil.rmtree(root, ignore_errors=True)
            out["eager_8_0_after_create_ms"] = statistics.median(xs)
            print(
                f"reference: open_rocksdb_eagerly=True, 8 partitions, 0 rec, after create: "
                f"{statistics.median(xs):.1f} ms (median)"
            )
        for eager in (False, True):
            first, later = first_write_ms(base, eager, args.rounds)
            out[f"first_write_ms_eager_{eager}"] = first
            out[f"later_write_ms_eager_{eager}"] = later
            print(
                f"first write to a new partition, open_rocksdb_eagerly={eager}: "
                f"{first:.2f} ms (a later write: {later:.2f} ms)"
            )
        out["pass"] = ok
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=1)
        return 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
