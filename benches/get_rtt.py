"""One Python thread's ``RemoteTable.get`` round trip against a redis-py GET (issue #19's bar).

Starts a Redis (Debian's ``redis-server``) and ``pegasus-fast serve --pegasus-listen`` side by
side on loopback (as benches/served.py does), then times, in alternating rounds so that both
see the same machine load, ``n`` calls of each from one thread: p50 / p99 per call and the
ratio of the p50s (bar: at most 1.5).

    .venv/bin/python benches/get_rtt.py [--n 5000] [--rounds 3] [--json PATH]
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pegasus_fast as pf  # noqa: E402
from served import VALUE, start_ours, start_redis  # noqa: E402


def timed(fn: Any, n: int) -> list[int]:
    for _ in range(min(n, 500)):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter_ns()
        fn()
        out.append(time.perf_counter_ns() - t)
    return out


def summary(ns: list[int]) -> dict[str, float]:
    ns = sorted(ns)
    return {
        "p50_us": round(statistics.median(ns) / 1000, 1),
        "p99_us": round(ns[int(len(ns) * 0.99)] / 1000, 1),
        "mean_us": round(statistics.fmean(ns) / 1000, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    import redis  # pip install redis

    root = Path(tempfile.mkdtemp(prefix="get-rtt-"))
    rproc, rport = start_redis(root)
    oproc, url, _, _ = start_ours(root)
    theirs: list[int] = []
    ours: list[int] = []
    try:
        r = redis.Redis(port=rport)
        r.set(b"k7", b"x" * VALUE)
        with pf.connect(url) as rc:
            t = rc.table("bench")
            t.set(b"k7", b"", b"x" * VALUE)
            for _ in range(args.rounds):
                theirs += timed(lambda: r.get(b"k7"), args.n)
                ours += timed(lambda: t.get(b"k7", b""), args.n)
    finally:
        oproc.terminate()
        oproc.wait(30)
        rproc.terminate()
        rproc.wait(30)
        shutil.rmtree(root, ignore_errors=True)
    res = {
        "n": args.n * args.rounds,
        "loadavg": os.getloadavg(),
        "redis_py_get": summary(theirs),
        "remote_table_get": summary(ours),
    }
    res["p50_ratio (bar <= 1.5)"] = round(
        res["remote_table_get"]["p50_us"] / res["redis_py_get"]["p50_us"], 3
    )
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
