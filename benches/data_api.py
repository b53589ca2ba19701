"""The data API against its peers, each a ratio measured in one run (issue #18 part 8).

    python benches/data_api.py [--rounds 7] [--backend rust|python]

Embedded, ``wal_sync="none"`` (the write path's own cost, not an fsync's: the hardest
case for a ratio to ``set``), one partition opened before timing. Each round makes a fresh
cluster and times both sides back to back, alternating which goes first; a figure is the
median of the per-round ratios (ours / peer, in operations or records per second).

- ``incr`` / ``set``: 1,000 counters, each op on the next one in turn; set writes an
  8-byte value to the same keys. Bar 0.8x.
- ``check_and_set`` / ``set``: a VALUE_EXIST check that passes, then a set of the same key,
  against set of those keys. Bar 0.7x.
- ``multi_get`` of a 100-record sort-key range / a bare rocksdict prefix iteration of the
  same 100 records in the same RocksDB (``seek``, ``key``/``value``/``next`` until the
  prefix ends, into a dict of raw keys and values). Bar 0.8x.
- filtered ``scan`` / unfiltered ``scan`` of 100,000 records, in records read per second:
  a sort-key filter that keeps every record (the filter's whole cost and none of its
  savings), and one that keeps a tenth. Bar 0.6x, on the one that keeps every record.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import pegasus_fast as pf
from pegasus_fast import _backend
from pegasus_fast.records import hash_key_prefix

BARS = {"incr / set": 0.8, "check_and_set / set": 0.7, "multi_get(100) / rocksdict prefix": 0.8}
SCAN_BAR = ("scan, filter keeping all / unfiltered", 0.6)
COUNTERS = 1000
RANGE = 100
HASH_KEYS = 200
SCAN_RECORDS = 100_000


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _pair(ours: Callable[[], object], peer: Callable[[], object], r: int) -> float:
    """ours / peer in throughput (peer time / our time), the order alternating by round."""
    if r % 2:
        t_ours, t_peer = _timed(ours), _timed(peer)
    else:
        t_peer, t_ours = _timed(peer), _timed(ours)
    return t_peer / t_ours


def _fresh(root: str, name: str) -> tuple[pf.Cluster, pf.Table]:
    cluster = pf.Cluster.open(os.path.join(root, name), config=pf.Config(wal_sync="none"))
    table = cluster.create_table("bench", partition_count=1)
    for p in table.partitions:
        p.open_now()
    return cluster, table


def writes(root: str, r: int, ops: int) -> dict[str, float]:
    cluster, t = _fresh(root, f"w{r}")
    try:
        keys = [b"counter%04d" % i for i in range(COUNTERS)]
        seq = [keys[i % COUNTERS] for i in range(ops)]
        for k in keys:
            t.set(k, b"s", b"0")
        tset, tincr, tcas = t.set, t.incr, t.check_and_set
        exist = pf.CheckType.VALUE_EXIST

        def do_set() -> None:
            for k in seq:
                tset(k, b"s", b"12345678")

        def do_incr() -> None:
            for k in seq:
                tincr(k, b"s")

        def do_cas() -> None:
            for k in seq:
                tcas(k, b"s", exist, b"", b"s", b"12345678")

        return {
            "incr / set": _pair(do_incr, do_set, r),
            "check_and_set / set": _pair(do_cas, do_set, r),
        }
    finally:
        cluster.close()


def ranges(root: str, r: int, reads: int) -> dict[str, float]:
    cluster, t = _fresh(root, f"r{r}")
    try:
        hks = [b"user%05d" % i for i in range(HASH_KEYS)]
        for hk in hks:
            t.multi_set(hk, {b"item%04d" % j: os.urandom(64) for j in range(RANGE + 20)})
        db = t.partitions[0].db
        seq = [hks[i % HASH_KEYS] for i in range(reads)]
        # the range: sort keys item0010 .. item0109, exactly 100 records of the 120
        start, stop = b"item0010", b"item0110"
        mget = t.multi_get

        def ours() -> None:
            for hk in seq:
                got = mget(hk, start_sort_key=start, stop_sort_key=stop)
                assert len(got) == RANGE

        def bare() -> None:
            for hk in seq:
                first, end = hash_key_prefix(hk) + start, hash_key_prefix(hk) + stop
                out = {}
                it = db.iter()
                it.seek(first)
                while it.valid():
                    k = it.key()
                    if k >= end:
                        break
                    out[k] = it.value()
                    it.next()
                assert len(out) == RANGE

        return {"multi_get(100) / rocksdict prefix": _pair(ours, bare, r)}
    finally:
        cluster.close()


def scans(root: str, r: int) -> dict[str, float]:
    cluster, t = _fresh(root, f"s{r}")
    try:
        for i in range(SCAN_RECORDS // 100):
            t.multi_set(b"h%06d" % i, {b"s%03d" % j: b"v" * 32 for j in range(100)})
        keep_all = (pf.FilterType.MATCH_PREFIX, b"s")
        tenth = (pf.FilterType.MATCH_POSTFIX, b"0")  # s000, s010, ..., s090

        def unfiltered() -> None:
            n = sum(1 for _ in t.scan())
            assert n == SCAN_RECORDS

        def filtered_all() -> None:
            n = sum(1 for _ in t.scan(sort_key_filter=keep_all))
            assert n == SCAN_RECORDS

        def filtered_some() -> None:
            n = sum(1 for _ in t.scan(sort_key_filter=tenth))
            assert n == SCAN_RECORDS // 10

        return {
            SCAN_BAR[0]: _pair(filtered_all, unfiltered, r),
            "scan, filter keeping a tenth / unfiltered": _pair(filtered_some, unfiltered, r),
        }
    finally:
        cluster.close()


def measure(rounds: int, ops: int, reads: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="pf-data-api-") as root:
        for r in range(rounds + 1):  # round 0 warms up
            got = {**writes(root, r, ops), **ranges(root, r, reads), **scans(root, r)}
            if r:
                for name, ratio in got.items():
                    out.setdefault(name, []).append(ratio)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--backend", choices=["rust", "python"], default=None)
    args = ap.parse_args()
    which = args.backend or _backend.name
    bars = {**BARS, SCAN_BAR[0]: SCAN_BAR[1]}
    with _backend.use(which):
        ops, reads = (20_000, 2_000) if which == "rust" else (5_000, 500)
        results = measure(args.rounds, ops, reads)
    print(f"backend: {which}, {args.rounds} rounds, median (min..max) of ours/peer per round")
    failed = False
    for name, ratios in results.items():
        median = statistics.median(ratios)
        bar = bars.get(name)
        verdict = "" if bar is None else (f"  bar {bar}x: " + ("ok" if median >= bar else "MISSED"))
        failed |= bar is not None and median < bar
        print(f"  {name:45s} {median:5.2f}x ({min(ratios):.2f}..{max(ratios):.2f}){verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
