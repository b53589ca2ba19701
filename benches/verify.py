"""dup.verify between two served clusters (issue #21 §1): its time against ``scan_batches`` of
both tables one after the other, on the same machine and data.

    python benches/verify.py               # a 1.2 GB table (the issue's figure)
    python benches/verify.py --mb 200      # smaller, for a shared machine

The source table (8 partitions, ``--value-bytes`` values) is written embedded, then served by
a `pegasus-fast serve` process and duplicated (with its checkpoint) to another served cluster.
Figures (median of ``--rounds``, each after one warm-up):

  verify: ``RemoteDuplication.verify()`` from a client, every partition compared (the source
    server digests its view while the follower server digests its own);
  scan: with both servers stopped, ``Table.scan_batches()`` over the source table, then over the
    follower table (each cluster opened embedded, the opens not timed), every record read;
  ratio verify / scan (bar <= 1.5).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import pegasus_fast as pf

sys.path.insert(0, os.path.dirname(__file__))
from remote import served  # noqa: E402

TABLE = "big"
PARTITIONS = 8
BAR = 1.5


def fill(path: str, mb: int, value_bytes: int) -> int:
    """The source table, written embedded; returns how many records it holds."""
    with pf.Cluster.open(path, name="source", config=pf.Config(wal_sync="none")) as c:
        t = c.create_table(TABLE, partition_count=PARTITIONS)
        n = (mb << 20) // (value_bytes + 24)
        per = 100
        for i in range(0, n, per):
            # random values: RocksDB's compression cannot shrink the table below its size
            t.multi_set(b"h%09d" % i, {b"s%03d" % j: os.urandom(value_bytes) for j in range(per)})
        for p in t.partitions:
            p.flush()
        return n - n % per + (per if n % per else 0)


def scan_both(src: str, dst: str) -> tuple[float, int]:
    """scan_batches of the source table, then of the follower's (seconds, records read); the
    clusters' opens are not timed."""
    total, seconds = 0, 0.0
    for path, name in ((src, "source"), (dst, "target")):
        with pf.Cluster.open(path, name=name) as c:
            t = c.table(TABLE)
            started = time.perf_counter()
            for batch in t.scan_batches():
                total += len(batch)
            seconds += time.perf_counter() - started
    return seconds, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=1229, help="size of the table's user data (default 1.2 GB)")
    ap.add_argument("--value-bytes", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where the clusters go (default: a temporary directory)")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="verify-bench.", dir=args.dir)
    try:
        src, dst = os.path.join(root, "source"), os.path.join(root, "target")
        t0 = time.perf_counter()
        n = fill(src, args.mb, args.value_bytes)
        print(f"# {n} records of {args.value_bytes} B values ({args.mb} MB) in {PARTITIONS} partitions, "
              f"written in {time.perf_counter() - t0:.1f} s; backend {pf.backend()}")  # fmt: skip
        verify_s: list[float] = []
        with served(src) as (_, src_url), served(dst) as (_, dst_url):
            with pf.connect(src_url, timeout=600) as c:
                t0 = time.perf_counter()
                d = c.add_duplication(TABLE, dst_url)
                d.wait_for(pf.DupStatus.LOG, timeout=3600)
                print(f"# add_duplication to DS_LOG (checkpoints copied): {time.perf_counter() - t0:.1f} s")
                r = d.verify()  # warm-up: both servers read their tables once
                assert r.equal, r
                for _ in range(args.rounds):
                    t0 = time.perf_counter()
                    r = d.verify()
                    verify_s.append(time.perf_counter() - t0)
                    assert r.equal, r
                    assert sum(p.records for p in r.partitions) == n, r
        scan_both(src, dst)  # warm-up
        scans = [scan_both(src, dst) for _ in range(args.rounds)]
        assert all(k == 2 * n for _, k in scans), scans
        v, s = statistics.median(verify_s), statistics.median(x for x, _ in scans)
        print(
            f"verify (served -> served, every partition): {v:.2f} s  rounds {[round(x, 2) for x in verify_s]}"
        )
        print(
            f"scan_batches of both tables, one after the other: {s:.2f} s  rounds {[round(x, 2) for x, _ in scans]}"
        )
        ratio = v / s
        print(f"ratio verify / scan: {ratio:.2f}x  (bar <= {BAR}x: {'PASS' if ratio <= BAR else 'FAIL'})")
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"# data left in {root}")


if __name__ == "__main__":
    main()
