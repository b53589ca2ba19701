"""What tombstones cost (docs/last-writer-wins.md): deletes/s and bytes kept, with and without.

Interleaved rounds in one run (the machine is shared): each round writes N records,
then deletes them, on a fresh cluster with ``delete_tombstone_seconds`` 3600 and 0.

    python benches/tombstones.py [--n 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import pegasus_fast as pf


def one(tombstone_seconds: int, n: int) -> tuple[float, int]:
    cfg = pf.Config(wal_sync="none", delete_tombstone_seconds=tombstone_seconds)
    with tempfile.TemporaryDirectory(prefix="pf-tomb-") as root, pf.Cluster.open(root, config=cfg) as c:
        t = c.create_table("t", partition_count=4)
        keys = [b"key%08d" % i for i in range(n)]
        for k in keys:
            t.set(k, b"s", b"v" * 100)
        start = time.perf_counter()
        for k in keys:
            t.delete(k, b"s")
        took = time.perf_counter() - start
        for p in t.partitions:
            p.flush()
        kept = sum(len(k) + len(v) for p in t.partitions for k, v in p.raw_view())
    return n / took, kept


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    ratios, on_rates, off_rates = [], [], []
    kept_on = kept_off = 0
    for _ in range(args.rounds):
        on, kept_on = one(3600, args.n)
        off, kept_off = one(0, args.n)
        on_rates.append(on)
        off_rates.append(off)
        ratios.append(on / off)
    print(f"pegasus_fast {pf.__version__}, backend {pf.backend()}, {args.n} deletes x {args.rounds} rounds")
    print(f"deletes/s with tombstones (median)      {statistics.median(on_rates):12.0f}")
    print(f"deletes/s without (median)              {statistics.median(off_rates):12.0f}")
    print(f"with/without, interleaved pairs (median) {statistics.median(ratios):11.2f}x")
    print(f"bytes kept after the deletes, with      {kept_on:12d}  ({kept_on / args.n:.1f} per delete)")
    print(f"bytes kept after the deletes, without   {kept_off:12d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
