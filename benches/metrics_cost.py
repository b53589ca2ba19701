"""What counting a batch costs the Pegasus port: ``PendingBatch.finish()`` of a batch of GET answers
(a real BatchHandler over an empty cluster, nothing to fsync), best of 7 runs of 20,000, in µs a
batch, for batches of 1, 4, 8, 32 and 128. Run it against a tree without request metrics to see
what they add (docs/observability.md).

    PYTHONPATH=python python benches/metrics_cost.py
"""

from __future__ import annotations

import inspect
import tempfile
import time

import pegasus_fast as pf
from pegasus_fast.net.pegasus.handler import BatchHandler, PendingBatch


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, pf.Cluster.open(tmp + "/c") as c:
        h = BatchHandler(c)
        timed = "start" in inspect.signature(PendingBatch).parameters

        def bench(n: int) -> float:
            out = [(6, i, 1, 0, "RPC_RRDB_RRDB_GET", "ERR_OK", b"x") for i in range(n)]
            best = float("inf")
            for _ in range(7):
                runs = 20_000
                t = time.perf_counter()
                for _ in range(runs):
                    if timed:
                        PendingBatch(h, (), out, [], None, time.perf_counter()).finish()
                    else:
                        PendingBatch(h, (), out, [], None).finish()
                best = min(best, (time.perf_counter() - t) / runs)
            return best * 1e6

        print(" ".join(f"n={n}: {bench(n):.2f}" for n in (1, 4, 8, 32, 128)), "µs a batch")


if __name__ == "__main__":
    main()
