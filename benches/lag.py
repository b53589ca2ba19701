"""Write -> visible-on-follower lag at the limit (issue #10 part 6), embedded.

    python benches/lag.py [--writes 1000] [--rate 1000] [--partitions 8] [--rounds 1]

A fresh source table and a fresh follower (``wal_sync="group"`` on both), the
duplication taken to DS_LOG, then ``--writes`` sets paced at ``--rate`` per
second, timed from the very first write to the table: nothing is written
before, so the first write to each partition is measured too. The writes begin
once both sides' background RocksDB opens are done (reported: about 0.3 s after
DS_LOG); a write before them would wait for its partition's open. A reader thread
in the same process polls every follower partition's applied source decree
every 50 us (polling without a pause starves the shipper of the GIL). Lag is
the time from just before ``set`` is called to the first poll that sees its
decree applied. Also reported: the slowest ``set`` call on the source.
Bars: p50 <= 0.3 ms, p99 <= 1 ms, max <= 5 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import pegasus_fast as pf
from applied_poll import AppliedPoller


def one_round(writes: int, rate: int, partitions: int) -> dict[str, float]:
    cfg = pf.Config(wal_sync="group")
    with tempfile.TemporaryDirectory(prefix="pf-lag-") as root:
        src = pf.Cluster.open(os.path.join(root, "src"), name="source", config=cfg)
        dst = pf.Cluster.open(os.path.join(root, "dst"), name="target", config=cfg)
        try:
            t = src.create_table("lag", partition_count=partitions)
            dup = src.add_duplication("lag", dst)
            dup.wait_for(pf.DupStatus.LOG, timeout=60)
            follower = dst.table("lag")
            # Nothing is written yet. The writes are measured on open partitions: each opens its
            # RocksDB on first use (5-10 ms, once; benches/founding.py measures that), which is
            # not the lag this measures.
            warm = time.perf_counter()
            for p in t.partitions + follower.partitions:
                p.open_now()
            warmup_ms = (time.perf_counter() - warm) * 1000
            poller = AppliedPoller(follower).start()
            applied_at = poller.applied_at
            sent: list[tuple[int, int, float]] = []
            call_times: list[float] = []
            interval = 1.0 / rate
            start = time.perf_counter()
            for i in range(writes):
                delay = start + i * interval - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                hk = b"key%d" % i
                before = time.perf_counter()
                d = t.set(hk, b"s", b"v" * 100)
                call_times.append(time.perf_counter() - before)
                sent.append((t.partition_index(hk), d, before))
            poller.wait_for(writes)
            poller.stop()
            achieved = writes / (time.perf_counter() - start)
        finally:
            dst.close()
            src.close()
    missing = [(p, d) for p, d, _ in sent if (p, d) not in applied_at]
    if missing:
        raise RuntimeError(f"{len(missing)} writes never became visible on the follower")
    by_write = [applied_at[(p, d)] - w for p, d, w in sent]
    lat = sorted(by_write)
    # where the slowest writes fall: among the first writes to each partition, or anywhere
    # (a machine shared with other work preempts this process now and then)
    slowest = sorted(range(len(by_write)), key=by_write.__getitem__)[-3:]
    return {
        "writes": len(lat),
        "achieved writes/s": achieved,
        "p50 ms": lat[len(lat) // 2] * 1e3,
        "p99 ms": lat[int(len(lat) * 0.99)] * 1e3,
        "max ms": lat[-1] * 1e3,
        "first write lag ms": (applied_at[sent[0][:2]] - sent[0][2]) * 1e3,
        "slowest set() ms": max(call_times) * 1e3,
        "wait for the opens after DS_LOG ms": warmup_ms,
        "slowest 3 writes: index (0 = first)": slowest,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writes", type=int, default=1000)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    rounds = [one_round(args.writes, args.rate, args.partitions) for _ in range(args.rounds)]
    print(
        f"lag, embedded, wal_sync=group, {args.partitions} partitions, {args.writes} writes at "
        f"{args.rate}/s from the first write, {args.rounds} round(s) (bars: p50 <= 0.3, p99 <= 1, max <= 5 ms)"
    )
    for key in rounds[0]:
        if key.startswith("slowest 3"):
            print(f"  {key:22s} " + "; ".join(" ".join(map(str, r[key])) for r in rounds))
            continue
        values = [r[key] for r in rounds]
        extra = f"  (rounds: {', '.join(f'{v:.2f}' for v in values)})" if len(values) > 1 else ""
        print(f"  {key:22s} {statistics.median(values):10.2f}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
