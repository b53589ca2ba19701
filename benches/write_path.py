"""Write path vs bare rocksdict, measured as interleaved pairs (issue #10 part 4).

    python benches/write_path.py [--rounds 9] [--backend rust|python] [--threads-seconds 2]

On a shared machine the speed drifts by 2x within a minute, so a ratio of two
medians taken at different moments swings around the bar. Here every round
makes a fresh store of each kind (a new rocksdict ``Rdict``, raw mode, its WAL
on, default ``WriteOptions``; a new cluster with ``wal_sync="none"`` and a
1-partition table whose RocksDB is opened before timing), then times the
baseline and ours back to back on the same number of fresh keys, alternating
which goes first. The figure is the median of the per-round ratios (ops/s of
ours / ops/s of the baseline). Bars: ``Table.set`` >= 0.6x ``Rdict.put``;
``multi_set`` of 100 records >= 0.9x one ``WriteBatch`` of the same records.

Group commit: writes/s of ``Table.set`` under ``wal_sync="group"`` (8 partitions)
with 1, 2, 4 and 8 writer threads, against ``Rdict.put`` with ``sync=True`` on
the same thread counts (each thread its own keys), ``--threads-seconds`` in all for
each, as interleaved short rounds (the median of each side).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial

import pegasus_fast as pf
import rocksdict
from pegasus_fast import _backend
from pegasus_fast.records import encode_key

VALUE = os.urandom(100)
MULTI = {b"s%03d" % i: os.urandom(100) for i in range(100)}
#: rounds per thread count of the group-commit figures
GROUP_ROUNDS = 5


def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _fresh(root: str, r: int) -> tuple[rocksdict.Rdict, pf.Cluster, pf.Table]:
    db = rocksdict.Rdict(os.path.join(root, f"bare{r}"), rocksdict.Options(raw_mode=True))
    cluster = pf.Cluster.open(os.path.join(root, f"c{r}"), config=pf.Config(wal_sync="none"))
    table = cluster.create_table("bench", partition_count=1)
    _open(table)
    return db, cluster, table


def _open(table: pf.Table) -> None:
    """Open every partition's RocksDB before timing: a fresh store is created, not creating."""
    for p in table.partitions:
        # before issue #10 a partition had no public open (its first write opened it)
        (getattr(p, "open_now", None) or p._lazy_open)()


def _bare_set(db: rocksdict.Rdict, keys: list[bytes]) -> None:
    put = db.put
    for k in keys:
        put(k, VALUE)


def _ours_set(table: pf.Table, hash_keys: list[bytes]) -> None:
    tset = table.set
    for hk in hash_keys:
        tset(hk, b"s", VALUE)


def _bare_multi(db: rocksdict.Rdict, batches: list[list[tuple[bytes, bytes]]]) -> None:
    for records in batches:
        wb = rocksdict.WriteBatch(raw_mode=True)
        for key, value in records:
            wb.put(key, value)
        db.write(wb)


def _ours_multi(table: pf.Table, hash_keys: list[bytes]) -> None:
    tmulti = table.multi_set
    for hk in hash_keys:
        tmulti(hk, MULTI)


def measure(rounds: int, set_ops: int, multi_ops: int) -> dict[str, object]:
    set_ratios, multi_ratios = [], []
    with tempfile.TemporaryDirectory(prefix="pf-write-") as root:
        for r in range(rounds + 1):  # round 0 warms up
            hks = [os.urandom(16) for _ in range(set_ops)]
            bare_keys = [encode_key(os.urandom(16), b"s") for _ in range(set_ops)]
            mhks = [os.urandom(16) for _ in range(multi_ops)]
            mbatches = [
                [(encode_key(hk, sk), v) for sk, v in MULTI.items()]
                for hk in (os.urandom(16) for _ in range(multi_ops))
            ]
            db, cluster, table = _fresh(root, r)
            try:
                bare_s = partial(_bare_set, db, bare_keys)
                ours_s = partial(_ours_set, table, hks)
                bare_mb = partial(_bare_multi, db, mbatches)
                ours_mb = partial(_ours_multi, table, mhks)
                if r % 2:
                    ours, bare = _timed(ours_s), _timed(bare_s)
                    ours_m, bare_m = _timed(ours_mb), _timed(bare_mb)
                else:
                    bare, ours = _timed(bare_s), _timed(ours_s)
                    bare_m, ours_m = _timed(bare_mb), _timed(ours_mb)
            finally:
                cluster.close()
                db.close()
            if r:
                set_ratios.append(bare / ours)  # ops/s ratio: ours / bare
                multi_ratios.append(bare_m / ours_m)
    return {
        "Table.set / rocksdict put (median of pairs)": statistics.median(set_ratios),
        "Table.set / rocksdict put (min..max)": (min(set_ratios), max(set_ratios)),
        "Table.set us/op, last round (ours, bare)": (ours / set_ops * 1e6, bare / set_ops * 1e6),
        "multi_set(100) / WriteBatch (median of pairs)": statistics.median(multi_ratios),
        "multi_set(100) / WriteBatch (min..max)": (min(multi_ratios), max(multi_ratios)),
        "multi_set us/op, last round (ours, bare)": (ours_m / multi_ops * 1e6, bare_m / multi_ops * 1e6),
    }


def _run_threads(n: int, seconds: float, write: Callable[[int, int], None]) -> float:
    """Writes/s of ``n`` threads calling ``write(thread, i)`` for ``seconds``."""
    counts = [0] * n
    stop = threading.Event()

    def worker(t: int) -> None:
        i = 0
        while not stop.is_set():
            write(t, i)
            i += 1
        counts[t] = i

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n)]
    start = time.perf_counter()
    for th in threads:
        th.start()
    time.sleep(seconds)
    stop.set()
    for th in threads:
        th.join()
    return sum(counts) / (time.perf_counter() - start)


def _bare_sync(
    db: rocksdict.Rdict, sync: rocksdict.WriteOptions, prefixes: list[bytes], t: int, i: int
) -> None:
    db.put(encode_key(prefixes[t] + b"%d" % i, b"s"), VALUE, write_opt=sync)


def _ours_group(table: pf.Table, prefixes: list[bytes], t: int, i: int) -> None:
    table.set(prefixes[t] + b"%d" % i, b"s", VALUE)


def group_commit(seconds: float) -> dict[str, object]:
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="pf-group-") as root:
        for n in (1, 2, 4, 8):
            db = rocksdict.Rdict(os.path.join(root, f"bare{n}"), rocksdict.Options(raw_mode=True))
            sync = rocksdict.WriteOptions()
            sync.sync = True
            cluster = pf.Cluster.open(os.path.join(root, f"c{n}"), config=pf.Config(wal_sync="group"))
            table = cluster.create_table("bench", partition_count=8)
            _open(table)
            try:
                prefixes = [os.urandom(8) for _ in range(n)]
                bare = partial(_bare_sync, db, sync, prefixes)
                ours = partial(_ours_group, table, prefixes)
                # interleaved short rounds, the median of each: fsync speed drifts on a shared disk
                theirs_r, mine_r = [], []
                for r in range(GROUP_ROUNDS):
                    for fn, acc in ((bare, theirs_r), (ours, mine_r))[:: 1 if r % 2 else -1]:
                        acc.append(_run_threads(n, seconds / GROUP_ROUNDS, fn))
                theirs, mine = statistics.median(theirs_r), statistics.median(mine_r)
            finally:
                cluster.close()
                db.close()
            out[f"{n} thread(s): Table.set group / rocksdict put sync=True, writes/s"] = (mine, theirs)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--backend", choices=["rust", "python"], default=None)
    ap.add_argument("--threads-seconds", type=float, default=2.0, help="0: skip the group-commit figures")
    args = ap.parse_args()
    which = args.backend or _backend.name
    with _backend.use(which):
        n_set, n_multi = (20_000, 1_000) if which == "rust" else (2_000, 50)
        results = measure(args.rounds, n_set, n_multi)
        if args.threads_seconds > 0:
            results.update(group_commit(args.threads_seconds))
    print(f"backend {which}, {args.rounds} interleaved rounds (bars: set >= 0.6x, multi_set >= 0.9x)")
    for k, v in results.items():
        if isinstance(v, float):
            text = f"{v:.2f}x"
        elif "writes/s" in k:
            text = f"{v[0]:,.0f} vs {v[1]:,.0f} ({v[0] / v[1]:.2f}x)"
        elif "us/op" in k:
            text = f"{v[0]:.2f} us vs {v[1]:.2f} us"
        else:
            text = f"{v[0]:.2f}x .. {v[1]:.2f}x"
        print(f"  {k:66s} {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
