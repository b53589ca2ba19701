"""Moving one partition between two served nodes while a writer keeps writing to it (issue #11).

    python benches/move.py [--mb 100] [--rate 1000] [--writers 8] [--seconds 1.0]

Nodes A and B are child processes, each a cluster served with the Client and Node services
(multinode/transfer.py) on 127.0.0.1; table ``t`` has 4 partitions on both, and A's partition 2
is filled with about ``--mb`` MB first. Writer threads in this process (``--writers``, each waiting
for its write's fsync) write to partition 2 through ``pf.connect(A)`` at ``--rate`` sets a second
in all; a refused write (PartitionUnavailableError) is retried at once, and each writer records
the longest window from a first refused write to the next acknowledged one. Then, as the meta leader would: B.Learn (from A), A.Fence, B.CatchUp up
to the fenced decree, and, standing in for the ZooKeeper switch, B.Sync (here: serve the learned
partition) and the writers redirected to B. Printed: the Learn time, the fence -> switch window
(Fence, CatchUp, Sync and the redirect), the longest refused window, and checks: B's first
decree follows A's fenced one, and every acknowledged write is on B. Bar: the refused window
under 100 ms.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pegasus_fast as pf
from pegasus_fast import _backend
from pegasus_fast.errors import PartitionUnavailableError
from pegasus_fast.multinode.transfer import NodeTransfer
from pegasus_fast.net import pegasus_fast_pb2 as pb
from pegasus_fast.net import pegasus_fast_pb2_grpc as rpc
from pegasus_fast.net.wire import CHANNEL_OPTIONS
from pegasus_fast.server.client_service import ClientService
from pegasus_fast.storage.partition import LEARNING

PIDX = 2
VALUE_BYTES = 16 << 10
VALUES_PER_WRITE = 32
BAR_MS = 100.0


class BenchNode(NodeTransfer):
    """Sync stands in for the ZooKeeper switch: every learned partition of ``t`` serves."""

    def Sync(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.Empty:  # noqa: N802
        for p in self.c.table("t").partitions:
            if p.state == LEARNING:
                p.serve_learned()
        return pb.Empty()


def _keys_of(t: Any, pidx: int, n: int, prefix: bytes) -> list[bytes]:
    out, i = [], 0
    while len(out) < n:
        hk = prefix + b"%08d" % i
        if t.partition_index(hk) == pidx:
            out.append(hk)
        i += 1
    return out


def node_main(path: str, name: str, fill_mb: int, ready: Any, stop: Any) -> None:
    cluster = pf.Cluster.open(path, name=name)
    t = cluster.create_table("t", partition_count=4)
    writes = (fill_mb << 20) // (VALUE_BYTES * VALUES_PER_WRITE)
    for hk in _keys_of(t, PIDX, writes, b"fill"):
        t.multi_set(hk, {b"s%02d" % j: os.urandom(VALUE_BYTES) for j in range(VALUES_PER_WRITE)})
    server = grpc.server(ThreadPoolExecutor(max_workers=16), options=CHANNEL_OPTIONS)
    rpc.add_ClientServicer_to_server(ClientService(cluster), server)
    node = BenchNode(cluster)
    rpc.add_NodeServicer_to_server(node, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    ready.put((f"pegasus://127.0.0.1:{port}", t.partitions[PIDX].data_bytes(), _backend.name))
    stop.wait()
    server.stop(1).wait()
    node.close()
    cluster.close()


class Writer(threading.Thread):
    def __init__(self, client: Any, keys: list[bytes], rate: int) -> None:
        super().__init__(name="writer", daemon=True)
        self.client = client
        self.keys = keys
        self.interval = 1.0 / rate
        self.stopping = threading.Event()
        self.acked: dict[bytes, tuple[bytes, int]] = {}
        #: the first decree each client acknowledged, by id(client)
        self.first_decree: dict[int, int] = {}
        self.refused = 0
        self.longest_refused = 0.0
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()

    def redirect(self, client: Any) -> None:
        with self.lock:
            self.client = client

    def run(self) -> None:
        start = time.perf_counter()
        i = 0
        refused_since: float | None = None
        while not self.stopping.is_set():
            delay = start + i * self.interval - time.perf_counter()
            if delay > 0 and refused_since is None:
                time.sleep(delay)
            hk, v = self.keys[i % len(self.keys)], b"w%d" % i
            with self.lock:
                client = self.client
            try:
                decree = client.table("t").set(hk, b"w", v)
            except PartitionUnavailableError:
                self.refused += 1
                if refused_since is None:
                    refused_since = time.perf_counter()
                continue  # at once, the same write again
            except BaseException as exc:  # noqa: BLE001 - reported by the driver
                self.errors.append(exc)
                return
            if refused_since is not None:
                self.longest_refused = max(self.longest_refused, time.perf_counter() - refused_since)
                refused_since = None
            self.acked[hk] = (v, decree)
            self.first_decree.setdefault(id(client), decree)
            i += 1
        self.sent = i
        self.elapsed = time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=100, help="MB in the moved partition before the move")
    ap.add_argument("--rate", type=int, default=1000, help="writes a second to the moved partition")
    ap.add_argument(
        "--writers", type=int, default=2, help="writer threads sharing --rate (each waits for its fsync)"
    )
    ap.add_argument("--seconds", type=float, default=1.0, help="writing before and after the move")
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="pf-move-") as root:
        stop = ctx.Event()
        qa, qb = ctx.Queue(), ctx.Queue()
        procs = [
            ctx.Process(target=node_main, args=(os.path.join(root, "a"), "a", args.mb, qa, stop)),
            ctx.Process(target=node_main, args=(os.path.join(root, "b"), "b", 0, qb, stop)),
        ]
        for proc in procs:
            proc.start()
        try:
            (url_a, size_a, backend), (url_b, _, _) = qa.get(timeout=600), qb.get(timeout=600)
            print(f"backend {backend}; A's partition {PIDX}: {size_a / 1e6:.1f} MB")
            return drive(url_a, url_b, args)
        finally:
            stop.set()
            for proc in procs:
                proc.join(30)


def drive(url_a: str, url_b: str, args: argparse.Namespace) -> int:
    ca, cb = pf.connect(url_a), pf.connect(url_b)
    node_a = rpc.NodeStub(grpc.insecure_channel(url_a.split("://")[1], options=CHANNEL_OPTIONS))
    node_b = rpc.NodeStub(grpc.insecure_channel(url_b.split("://")[1], options=CHANNEL_OPTIONS))
    keys = _keys_of(ca.table("t"), PIDX, 500 * args.writers, b"w")
    writers = [Writer(ca, keys[i :: args.writers], args.rate // args.writers) for i in range(args.writers)]
    for w in writers:
        w.start()
    time.sleep(args.seconds)
    ref = pb.PartitionRef(table="t", pidx=PIDX)
    t0 = time.perf_counter()
    learned = node_b.Learn(pb.LearnPartitionRequest(table="t", pidx=PIDX, source_url=url_a)).decree
    t1 = time.perf_counter()
    fenced = node_a.Fence(ref).decree
    t2 = time.perf_counter()
    req = pb.LearnPartitionRequest(table="t", pidx=PIDX, source_url=url_a, through=fenced)
    caught = node_b.CatchUp(req).decree
    t3 = time.perf_counter()
    node_b.Sync(pb.Empty())
    for w in writers:
        w.redirect(cb)
    t4 = time.perf_counter()
    time.sleep(args.seconds)
    for w in writers:
        w.stopping.set()
        w.join()
    firsts = [w.first_decree[id(cb)] for w in writers if id(cb) in w.first_decree]
    b_first = min(firsts) if firsts else None
    acked = {hk: v for w in writers for hk, (v, _d) in w.acked.items()}
    missing = sum(cb.table("t").get(hk, b"w") != v for hk, v in acked.items())
    sent, refused = sum(w.sent for w in writers), sum(w.refused for w in writers)
    elapsed = max(w.elapsed for w in writers)
    longest = max(w.longest_refused for w in writers)
    errors = [e for w in writers for e in w.errors]
    print(f"learn: {(t1 - t0) * 1000:.0f} ms (to decree {learned})")
    print(
        f"fence -> switch: {(t4 - t1) * 1000:.1f} ms (fence {(t2 - t1) * 1000:.1f}, catch-up "
        f"{(t3 - t2) * 1000:.1f} to decree {caught}, sync + redirect {(t4 - t3) * 1000:.1f})"
    )
    print(
        f"writers: {sent} writes in {elapsed:.1f} s ({sent / elapsed:.0f}/s), {refused} refused, "
        f"longest refused window {longest * 1000:.1f} ms "
        f"(bar {BAR_MS:.0f} ms: {'PASS' if longest * 1000 < BAR_MS else 'FAIL'})"
    )
    print(
        f"checks: fenced decree {fenced}, B's first write decree {b_first}, "
        f"acknowledged writes missing on B: {missing}"
    )
    ca.close()
    cb.close()
    ok = not errors and caught == fenced and missing == 0 and b_first == fenced + 1
    if errors:
        print(f"a writer failed: {errors[0]!r}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
