"""Replicated partitions (issue #22): what 3 replicas cost a durable write, measured in one run.

    python benches/replicas.py                      # ~1 min on 2 cores
    python benches/replicas.py --rounds 5 --seconds 5 --json out.json

It starts its own ZooKeeper (tests/zkserver.py) and three `pegasus-fast serve --zk
--pegasus-listen` processes on 127.0.0.1, each with its own temporary directory, and stops
them all at the end. Two tables of 8 partitions: `one` (replica_count=1) and `three`
(replica_count=3), every primary moved to n1, so the same node answers both. The Rust load
generator (`pegasus-fast bench served`: --clients connections, one request in flight each,
100-byte values) sends durable sets to n1's Pegasus port, rounds interleaved (one, three, one,
three, ...). Figures, as ratios of the medians of the rounds (the bars of issue #22):

  set ops/s, 3 replicas / 1 replica      (bar >= 0.5x)
  set p50,   3 replicas / 1 replica      (bar <= 2x)

Both tables live on the same three nodes, so the 1-replica rounds pay for nothing the
3-replica rounds do not: the difference is the secondaries' logging and the round trip to them.
CPU per acknowledged set is given for each node (all three share this machine's cores).

Then the founding scenario, replicated (bar < 100 ms): an embedded source table of 8
partitions with 0, 1 or 2 records, `add_duplication` into the three nodes (their
default_replica_count is 3, so the follower table keeps 3 replicas of each partition),
timed until DS_LOG, every partition fully healthy (primary serving, every replica live) and
every record readable through the zk:// client; median of --rounds per case.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack

import pegasus_fast as pf
from pegasus_fast import _backend
from pegasus_fast.coord.zk import connect, parse_zk, read_nodes
from remote import served

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from zkserver import ZooKeeperServer  # noqa: E402 - the tests' ZooKeeper, on their path

NODES = ("n1", "n2", "n3")


def cpu_seconds(pid: int) -> float:
    """A process's user + system CPU time so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(
    stack: ExitStack, root: str, pids: dict[str, int], *serve_args: str, nodes: tuple[str, ...] = NODES
) -> tuple[str, str]:
    """ZooKeeper and the nodes (``pids`` gets their process ids; ``serve_args``: more of each
    node's serve arguments); the cluster's URL and n1's Pegasus address."""
    zk = ZooKeeperServer(os.path.join(root, "zk"))
    stack.callback(zk.stop)
    quiet = logging.getLogger("kazoo")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # its "connection refused" while the server starts up
    try:
        spec = f"{zk.start()}/bench"
    finally:
        quiet.setLevel(level)
    for n in nodes:
        start_node(stack, root, spec, n, pids, *serve_args)
    client = connect(parse_zk(f"zk://{spec}"))
    try:
        pegasus = read_nodes(client)["n1"].pegasus
    finally:
        client.stop()
        client.close()
    return f"zk://{spec}", pegasus


def start_node(
    stack: ExitStack, root: str, spec: str, n: str, pids: dict[str, int], *serve_args: str
) -> None:
    """One more node of the cluster at ZooKeeper ``spec``."""
    proc, _url = stack.enter_context(
        served(
            os.path.join(root, n),
            "--zk",
            spec,
            "--node-id",
            n,
            "--pegasus-listen",
            "127.0.0.1:0",
            "--config",
            f"default_replica_count={os.environ.get('PF_BENCH_FOLLOWER_REPLICAS', '3')}",
            *serve_args,
        )
    )
    pids[n] = proc.pid


def founding_ms(root: str, url: str, c: pf.RoutedCluster, name: str, records: int) -> float:
    """One add_duplication of a new 8-partition table into the replicated follower, in ms."""
    src = pf.Cluster.open(
        os.path.join(root, "src-" + name),
        name="source" + name.replace("_", ""),
        config=pf.Config(cluster_id=1),
    )
    try:
        t = src.create_table(name, partition_count=8)
        keys = [b"h%d" % i for i in range(records)]
        for k in keys:
            t.set(k, b"s", b"v" * 100)
        start = time.perf_counter()
        dup = src.add_duplication(name, url, with_checkpoint=True)
        dup.wait_for(pf.DupStatus.LOG, timeout=60)
        logged = (time.perf_counter() - start) * 1000
        ft = c.table(name)
        while not ft.health().fully_healthy == 8 or any(ft.get(k, b"s") != b"v" * 100 for k in keys):
            time.sleep(0.0005)
        took = (time.perf_counter() - start) * 1000
        if os.environ.get("PF_BENCH_VERBOSE"):
            print(f"  {name}: DS_LOG at {logged:.1f} ms, healthy and read at {took:.1f} ms", flush=True)
        reps = ft.replicas()
        assert all(len(r.secondaries) == 2 for r in reps), reps
        dup.remove()
        return round(took, 1)
    finally:
        src.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0, help="each round's measured length")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    bench = getattr(_backend.impl, "bench_served", None)
    if bench is None:
        print("the load generator is Rust; this install runs pure Python", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="pf-replicas-") as root, ExitStack() as stack:
        pids: dict[str, int] = {}
        url, pegasus = start(stack, root, pids)
        host, port = pegasus.rsplit(":", 1)
        with pf.connect(url) as c:
            for name, rc in (("one", 1), ("three", 3)):
                t = c.create_table(name, partition_count=args.partitions, replica_count=rc)
                for r in t.replicas():
                    if r.primary != "n1":
                        c.move_partition(name, r.pidx, "n1")
                reps = t.replicas()
                assert all(r.primary == "n1" and len(r.secondaries) == rc - 1 for r in reps), reps
        rows: dict[str, list[dict[str, float]]] = {"one": [], "three": []}
        for i in range(args.rounds):
            for name in ("one", "three"):
                cpu0 = {n: cpu_seconds(pid) for n, pid in pids.items()}
                r = bench(
                    host,
                    int(port),
                    "set",
                    protocol="pegasus",
                    table=name,
                    clients=args.clients,
                    seconds=args.seconds,
                    warmup=1.0,
                    value_size=100,
                    keyspace=10000,
                    rate=0.0,
                    threads=1,
                    prefill=False,
                )
                # CPU per acknowledged set on each node, warm-up included in both (µs)
                done = r["ops_per_sec"] * args.seconds
                r["cpu_us_per_set"] = {
                    n: round((cpu_seconds(pid) - cpu0[n]) * 1e6 / max(done, 1), 1) for n, pid in pids.items()
                }
                rows[name].append(r)
                print(
                    f"round {i + 1} {name:<5} set {r['ops_per_sec']:>8.0f}/s  p50 {r['p50_us']:>6.0f} us  "
                    f"p99 {r['p99_us']:>6.0f} us  errors {r['errors']}  cpu us/set {r['cpu_us_per_set']}",
                    flush=True,
                )

        founding = {n: [] for n in (0, 1, 2)}
        with pf.connect(url) as c:
            for i in range(args.rounds):
                for n in (0, 1, 2):
                    founding[n].append(founding_ms(root, url, c, f"f{i}_{n}", n))
        for n in (0, 1, 2):
            print(f"founding, 3 replicas, {n} records: {founding[n]} ms", flush=True)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in rows[name])

    out = {
        "set ops/s 1 replica": med("one", "ops_per_sec"),
        "set ops/s 3 replicas": med("three", "ops_per_sec"),
        "set p50 us 1 replica": med("one", "p50_us"),
        "set p50 us 3 replicas": med("three", "p50_us"),
        "set p99 us 1 replica": med("one", "p99_us"),
        "set p99 us 3 replicas": med("three", "p99_us"),
    }
    for n in (0, 1, 2):
        out[f"founding 3 replicas {n} rec ms"] = statistics.median(founding[n])
    out["throughput 3/1 (bar >= 0.5)"] = out["set ops/s 3 replicas"] / out["set ops/s 1 replica"]
    out["p50 3/1 (bar <= 2)"] = out["set p50 us 3 replicas"] / out["set p50 us 1 replica"]
    print()
    for k, v in out.items():
        print(f"{k:<32} {v:>10.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rounds": rows, "figures": out}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
