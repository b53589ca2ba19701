"""Scan path vs bare rocksdict, measured as interleaved pairs (issue #10 part 5).

    python benches/scan_path.py [--rounds 9] [--mb 8] [--backend rust|python]

One table of 1 partition holding about ``--mb`` MB of 100 B values (16 B hash
keys, 5 B sort keys), flushed, so the scan reads SST files. Every round times
``list(db.items())`` of rocksdict over the partition's own RocksDB (the same keys
and values) and ``list(Table.scan())`` back to back, alternating which goes
first; the figure is the median of the per-round ratios (bar >= 0.6x). Also per
round: ``list(Table.scan_batches())`` (contiguous buffers with offsets), in MB/s
of the RocksDB keys and values it reads (bar >= 1 GB/s), and a bare
``RdictIter`` loop (``key()``, ``value()``, ``next()``) for reference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import pegasus_fast as pf
from pegasus_fast import _backend


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _iter_loop(db: Any) -> list[tuple[bytes, bytes]]:
    it = db.iter()
    it.seek_to_first()
    out = []
    while it.valid():
        out.append((it.key(), it.value()))
        it.next()
    return out


def measure(rounds: int, mb: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="pf-scan-") as root:
        cluster = pf.Cluster.open(os.path.join(root, "c"), config=pf.Config(wal_sync="none"))
        try:
            table = cluster.create_table("scan", partition_count=1)
            n = int(mb * 1e6 / 140)  # ~140 B a record in RocksDB: 23 B key, 12 B header, 100 B value
            for i in range(0, n, 100):
                hk = os.urandom(16)
                table.multi_set(hk, {b"s%04d" % j: os.urandom(100) for j in range(i, min(i + 100, n))})
            part = table.partitions[0]
            part.flush()
            db = part.db
            size = sum(len(k) + len(v) for k, v in db.items())
            records = len(list(table.scan()))
            ratios, batch_mbs, loop_ratios = [], [], []
            has_batches = hasattr(table, "scan_batches")
            for r in range(rounds + 1):  # round 0 warms up
                if r % 2:
                    ours, bare = _timed(lambda: list(table.scan())), _timed(lambda: list(db.items()))
                else:
                    bare, ours = _timed(lambda: list(db.items())), _timed(lambda: list(table.scan()))
                # (older versions, before issue #10, have no scan_batches)
                batches = _timed(lambda: list(table.scan_batches())) if has_batches else float("nan")
                loop = _timed(lambda: _iter_loop(db))
                if r:
                    ratios.append(bare / ours)
                    batch_mbs.append(size / 1e6 / batches)
                    loop_ratios.append(bare / loop)
        finally:
            cluster.close()
    return {
        "records / MB of RocksDB keys and values": f"{records:,} / {size / 1e6:.1f} MB",
        "list(Table.scan()) / list(db.items()) (median of pairs)": f"{statistics.median(ratios):.2f}x",
        "  min..max": f"{min(ratios):.2f}x .. {max(ratios):.2f}x",
        "  last round": f"scan {ours * 1e3:.1f} ms ({size / 1e6 / ours:.0f} MB/s), "
        f"items {bare * 1e3:.1f} ms ({size / 1e6 / bare:.0f} MB/s)",
        "list(Table.scan_batches()) MB/s (median)": f"{statistics.median(batch_mbs):.0f} MB/s",
        "bare RdictIter loop / list(db.items()) (median)": f"{statistics.median(loop_ratios):.2f}x",
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--mb", type=float, default=8.0)
    ap.add_argument("--backend", choices=["rust", "python"], default=None)
    args = ap.parse_args()
    which = args.backend or _backend.name
    with _backend.use(which):
        results = measure(args.rounds, args.mb)
    print(f"backend {which}, {args.rounds} interleaved rounds (bars: scan >= 0.6x items, batches >= 1 GB/s)")
    for k, v in results.items():
        print(f"  {k:58s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
