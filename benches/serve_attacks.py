"""Issue #20 §1 figures: a served cluster (``pegasus-fast serve`` child, with a token) under
attacks by a peer holding the token: 64 stalled calls plus 16 stalled request streams (health,
set and Info latencies meanwhile, the server's growth), four 250 MiB messages (refused by
max_message_bytes as they arrive), 300 stalls over 3 connections (one client's waiting bound).

    PYTHONPATH=python .venv/bin/python benches/serve_attacks.py [rust|python]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import pegasus_fast as pf  # noqa: E402
from attacker import APPLY_STREAM, PeakRss, Stalls, huge_calls  # noqa: E402
from test_serve_stall import TOKEN, _health, _served  # noqa: E402


def _pct(fn: Callable[[], object], n: int = 200) -> str:
    took = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        took.append(time.perf_counter() - t)
    q = statistics.quantiles(took, n=100)
    return f"p50 {q[49] * 1e3:.2f} ms, p95 {q[94] * 1e3:.2f} ms, max {max(took) * 1e3:.2f} ms"


def main() -> None:
    backend = sys.argv[1] if len(sys.argv) > 1 else "rust"
    with tempfile.TemporaryDirectory() as d, _served(backend, Path(d)) as (proc, target):
        url = f"pegasus://{target}"
        with pf.connect(url, token=TOKEN, timeout=10) as rc:
            rc.create_table("t", 2)
        check = _health(target)
        check()
        peak = PeakRss(proc.pid)
        stalls = [Stalls(target, 64, token=TOKEN), Stalls(target, 16, token=TOKEN, method=APPLY_STREAM)]
        with pf.connect(url, token=TOKEN, timeout=5) as rc:
            t = rc.table("t")
            print("health under 64+16 stalls:", _pct(check))
            print("set under 64+16 stalls:   ", _pct(lambda: t.set(b"h", b"s", b"v")))
            print("info under 64+16 stalls:  ", _pct(rc.info))
        held = sum(not c.done() for s in stalls for c in s.calls)
        print(f"stalls still held: {held} of 80; server RSS growth {peak.stop() >> 10} KiB")
        for s in stalls:
            s.close()
        peak = PeakRss(proc.pid)
        began = time.perf_counter()
        codes = huge_calls(target, 4, 250 << 20, token=TOKEN)
        print(
            f"4 x 250 MiB with the token: {[c.name for c in codes]} in {time.perf_counter() - began:.2f} s;"  # type: ignore[attr-defined]
            f" server RSS growth {peak.stop() >> 20} MiB"
        )
        peak = PeakRss(proc.pid)
        many = [Stalls(target, 100, token=TOKEN) for _ in range(3)]
        time.sleep(1.0)
        held = sum(not c.done() for s in many for c in s.calls)
        print(
            f"300 stalls over 3 connections: {held} held, {300 - held} refused; server RSS growth"
            f" {peak.stop() >> 10} KiB; health {_pct(check, 40)}"
        )
        for s in many:
            s.close()


if __name__ == "__main__":
    main()
