"""Write path vs bare rocksdict, measured as interleaved pairs (issue #2's set/multi_set bars).

    python benches/write_path.py [--rounds 21] [--backend rust|python]

On a shared machine the speed drifts by 2x within a minute, so a ratio of two
medians taken at different moments (pytest-benchmark runs one group member
after the other) swings around the bar. Here every round times the baseline
and ours back to back (alternating which goes first) on fresh keys, and the
figure is the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import pegasus_fast as pf
import rocksdict
from pegasus_fast import _backend
from pegasus_fast.records import encode_key

VALUE = os.urandom(100)
SORT_KEYS = [b"s%03d" % i for i in range(100)]
MULTI = {sk: os.urandom(100) for sk in SORT_KEYS}


def _timed(fn, arg) -> float:
    start = time.perf_counter()
    fn(arg)
    return time.perf_counter() - start


def measure(rounds: int, set_ops: int, multi_ops: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="pf-write-") as root:
        db = rocksdict.Rdict(os.path.join(root, "bare"), rocksdict.Options(raw_mode=True))
        cluster = pf.Cluster.open(os.path.join(root, "c"), config=pf.Config(wal_sync="none"))
        table = cluster.create_table("bench", partition_count=1)
        put = db.put

        def bare_set(keys: list[bytes]) -> None:
            for k in keys:
                put(k, VALUE)

        def ours_set(keys: list[bytes]) -> None:
            for k in keys:
                table.set(k, b"s", VALUE)

        def bare_multi(batches: list[list[tuple[bytes, bytes]]]) -> None:
            for records in batches:
                wb = rocksdict.WriteBatch(raw_mode=True)
                for key, value in records:
                    wb.put(key, value)
                db.write(wb)

        def ours_multi(hash_keys: list[bytes]) -> None:
            for hk in hash_keys:
                table.multi_set(hk, MULTI)

        set_ratios, multi_ratios = [], []
        try:
            for r in range(rounds + 1):  # round 0 warms up
                hks = [os.urandom(16) for _ in range(set_ops)]
                bare_keys = [encode_key(os.urandom(16), b"s") for _ in range(set_ops)]
                mhks = [os.urandom(16) for _ in range(multi_ops)]
                mbatches = [
                    [(encode_key(hk, sk), v) for sk, v in MULTI.items()]
                    for hk in (os.urandom(16) for _ in range(multi_ops))
                ]
                if r % 2:
                    ours, bare = _timed(ours_set, hks), _timed(bare_set, bare_keys)
                    ours_m, bare_m = _timed(ours_multi, mhks), _timed(bare_multi, mbatches)
                else:
                    bare, ours = _timed(bare_set, bare_keys), _timed(ours_set, hks)
                    bare_m, ours_m = _timed(bare_multi, mbatches), _timed(ours_multi, mhks)
                if r:
                    set_ratios.append(bare / ours)  # ops/s ratio: ours / bare
                    multi_ratios.append(bare_m / ours_m)
        finally:
            cluster.close()
            db.close()
    return {
        "Table.set / rocksdict put (median of pairs)": statistics.median(set_ratios),
        "Table.set / rocksdict put (min..max)": (min(set_ratios), max(set_ratios)),
        "multi_set(100) / WriteBatch (median of pairs)": statistics.median(multi_ratios),
        "multi_set(100) / WriteBatch (min..max)": (min(multi_ratios), max(multi_ratios)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--backend", choices=["rust", "python"], default=None)
    args = ap.parse_args()
    which = args.backend or _backend.name
    with _backend.use(which):
        n_set, n_multi = (20_000, 1_000) if which == "rust" else (2_000, 50)
        results = measure(args.rounds, n_set, n_multi)
    print(f"backend {which}, {args.rounds} interleaved rounds (bars: set >= 0.40, multi_set >= 0.60)")
    for k, v in results.items():
        print(f"  {k:48s} " + (f"{v:.2f}x" if isinstance(v, float) else f"{v[0]:.2f}x .. {v[1]:.2f}x"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
