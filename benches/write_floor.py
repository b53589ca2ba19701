"""How close can any Table.set get to a bare rocksdict put? (issue #10 part 4, a reference)

    python benches/write_floor.py [--rounds 9]

Times, against ``Rdict.put`` with RocksDB's WAL on (fresh stores every round,
interleaved, median of the per-round ratios), the least one write of this
design does, with no routing, lock or bookkeeping at all:

- *floor*: a rocksdict ``WriteBatch``, ``encode_write`` (the WAL block and the
  record plus decree meta key put into the batch), one ``os.write`` of the block,
  ``db.write`` with RocksDB's WAL off;
- *floor without a WriteBatch*: ``encode_block``, ``os.write``, ``db.put`` of the
  record alone (RocksDB's WAL off) -- what a write would cost if the decree meta
  key were not written with every write.

If the floor is under the 0.6x bar, no Python-side trimming reaches it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import rocksdict
from pegasus_fast import _backend
from pegasus_fast.records import encode_key

VALUE = os.urandom(100)


def one_round(root: str, r: int, n: int) -> tuple[float, float, float]:
    impl = _backend.impl
    bare_db = rocksdict.Rdict(f"{root}/bare{r}", rocksdict.Options(raw_mode=True))
    ours_db = rocksdict.Rdict(f"{root}/ours{r}", rocksdict.Options(raw_mode=True))
    no_wal = rocksdict.WriteOptions()
    no_wal.disable_wal = True
    ours_db.set_write_options(no_wal)
    fd = os.open(f"{root}/wal{r}", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        keys = [encode_key(os.urandom(16), b"s") for _ in range(n)]
        hks = [os.urandom(16) for _ in range(n)]
        put = bare_db.put
        start = time.perf_counter()
        for k in keys:
            put(k, VALUE)
        bare = time.perf_counter() - start
        batch, encode_write, write, db_write = (
            rocksdict.WriteBatch,
            impl.encode_write,
            os.write,
            ours_db.write,
        )
        start = time.perf_counter()
        for i, hk in enumerate(hks):
            wb = batch(True)
            write(fd, encode_write([(i + 1, 1_700_000_000_000_000 + i, 1, [(0, hk, b"s", VALUE, 0)])], wb, 0))
            db_write(wb)
        floor = time.perf_counter() - start
        encode_block, db_put = impl.encode_block, ours_db.put
        start = time.perf_counter()
        for i, hk in enumerate(hks):
            write(fd, encode_block([(n + i + 1, 1_700_000_000_000_000 + i, 1, [(0, hk, b"s", VALUE, 0)])]))
            db_put(encode_key(hk, b"s"), VALUE)
        no_batch = time.perf_counter() - start
    finally:
        os.close(fd)
        bare_db.close()
        ours_db.close()
    return bare, floor, no_batch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--ops", type=int, default=20_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pf-floor-") as root:
        rounds = [one_round(root, r, args.ops) for r in range(args.rounds)]
    print(f"backend {_backend.name}, {args.rounds} rounds of {args.ops:,} writes (bar for Table.set: 0.6x)")
    print(
        f"  bare put us/op (median)                        {statistics.median(r[0] for r in rounds) / args.ops * 1e6:.2f}"
    )
    print(
        f"  floor / bare put (median)                      {statistics.median(r[0] / r[1] for r in rounds):.2f}x"
    )
    print(
        f"  floor without a WriteBatch / bare put (median) {statistics.median(r[0] / r[2] for r in rounds):.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
