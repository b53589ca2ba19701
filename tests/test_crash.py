"""kill -9 during group-committed writes: every acknowledged write survives."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pegasus_fast as pf
import pytest
from conftest import PYTHON, child_env

SEEDS = 20 if os.environ.get("CI", "").strip().lower() == "true" else 5

# Two threads write; each acknowledged write is printed (and flushed) only after
# the call returned, so a printed line is a promise the store made.
WRITER = """
import sys, threading
import pegasus_fast as pf
assert pf.backend() == sys.argv[2], pf.backend()
c = pf.Cluster.open(sys.argv[1], config=pf.Config(wal_sync="group"))
t = c.create_table("t", partition_count=4)
out = sys.stdout
lock = threading.Lock()
def report(hk, sk, decree):
    with lock:
        out.write(f"{hk} {sk} {decree}\\n")
        out.flush()
def setter():
    i = 0
    while True:
        hk = f"a{i}"
        report(hk, "s", t.set(hk, "s", f"val-{hk}-s"))
        i += 1
def multi_setter():
    i = 0
    while True:
        hk = f"b{i}"
        decree = t.multi_set(hk, {"x": f"val-{hk}-x", "y": f"val-{hk}-y"})
        report(hk, "x", decree)
        report(hk, "y", decree)
        i += 1
threads = [threading.Thread(target=f, daemon=True) for f in (setter, multi_setter)]
out.write("ready\\n")
out.flush()
for th in threads:
    th.start()
for th in threads:
    th.join()
"""


@pytest.mark.parametrize("seed", range(SEEDS))
def test_acknowledged_writes_survive_sigkill(
    backend_name: str, open_cluster: Callable[..., pf.Cluster], cluster_dir: Path, seed: int
) -> None:
    delay = random.Random(seed).uniform(0.05, 0.4)
    child = subprocess.Popen(
        [PYTHON, "-c", WRITER, str(cluster_dir), backend_name],
        env=child_env(backend_name),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first == "ready\n", child.stderr.read() if child.stderr else ""
        # the random delay counts from the first acknowledged write, so slow
        # start-up (imports, the first RocksDB open) cannot make a run vacuous
        first_ack = child.stdout.readline()
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        # read through the same buffered reader: communicate() would read the
        # pipe beneath it and miss acknowledgements readline() already buffered
        rest = first_ack + child.stdout.read()
        err = child.stderr.read() if child.stderr else ""
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, err
    acked = [line.split(" ") for line in rest.splitlines(keepends=True) if line.endswith("\n")]
    acked = [a for a in acked if len(a) == 3]  # a line cut by the kill has no newline
    assert acked
    assert {hk[0] for hk, _sk, _d in acked} == {"a", "b"}

    c = open_cluster(cluster_dir)
    t = c.table("t")
    committed = [s.last_committed_decree for s in t.partition_stats()]
    owner: dict[tuple[int, int], str] = {}
    for hk, sk, decree_text in acked:
        decree = int(decree_text)
        assert t.get(hk, sk) == f"val-{hk}-{sk}".encode(), (hk, sk, decree)
        pidx = t.partition_index(hk)
        assert 1 <= decree <= committed[pidx]
        # one decree per mutation: two hash keys never share one in a partition
        assert owner.setdefault((pidx, decree), hk) == hk
    # the store keeps writing after recovery, numbering on from the last decree
    p = t.partition_index("after")
    assert t.set("after", "s", "v") == committed[p] + 1


# -- mixed operations, several kill/reopen rounds -------------------------------------------------

ROUNDS = 3
THREADS = 3

# Each thread owns its hash keys and runs a sequence of operations drawn from a
# seeded generator the parent runs too; it prints "<thread> <index>" once an
# operation returned. So the parent knows, per thread, every acknowledged
# operation and the one that may have been in flight when the kill came.
OPS = """
import random
def ops(seed, rnd, k):
    rng = random.Random(f"{seed}-{rnd}-{k}")
    hks = [f"k{k}-{j}" for j in range(4)]
    sks = ["a", "b", "c"]
    i = 0
    while True:
        hk = rng.choice(hks)
        kind = rng.choice(["set", "set", "delete", "multi_set", "multi_delete"])
        v = f"{rnd}-{k}-{i}"
        if kind == "set":
            yield ("set", hk, rng.choice(sks), v)
        elif kind == "delete":
            yield ("delete", hk, rng.choice(sks))
        elif kind == "multi_set":
            yield ("multi_set", hk, {sk: f"{v}-{sk}" for sk in rng.sample(sks, rng.randint(1, 3))})
        else:
            yield ("multi_delete", hk, rng.sample(sks, rng.randint(1, 3)))
        i += 1
def apply(records, op):
    kind, hk = op[0], op[1]
    if kind == "set":
        records[(hk, op[2])] = op[3]
    elif kind == "delete":
        records.pop((hk, op[2]), None)
    elif kind == "multi_set":
        records.update({(hk, sk): v for sk, v in op[2].items()})
    else:
        for sk in op[2]:
            records.pop((hk, sk), None)
"""

MIXED_WRITER = (
    OPS
    + """
import sys, threading
import pegasus_fast as pf
path, backend, sync, seed, rnd = sys.argv[1:6]
THREADS = int(sys.argv[6])
assert pf.backend() == backend, pf.backend()
c = pf.Cluster.open(path, config=pf.Config(wal_sync=sync))
t = c.table("t") if c.has_table("t") else c.create_table("t", partition_count=4)
out = sys.stdout
lock = threading.Lock()
def run(k):
    for i, op in enumerate(ops(seed, rnd, k)):
        kind, hk = op[0], op[1]
        if kind == "set":
            t.set(hk, op[2], op[3])
        elif kind == "delete":
            t.delete(hk, op[2])
        elif kind == "multi_set":
            t.multi_set(hk, op[2])
        else:
            t.multi_delete(hk, op[2])
        with lock:
            out.write(f"{k} {i}\\n")
            out.flush()
threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(THREADS)]
out.write("ready\\n")
out.flush()
for th in threads:
    th.start()
for th in threads:
    th.join()
"""
)

_ops_ns: dict[str, object] = {}
exec(OPS, _ops_ns)  # the generator the child runs, run here to rebuild its model


def _kill_after_acks(args: list[str], env: dict[str, str], delay: float) -> tuple[str, str, int]:
    child = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first == "ready\n", child.stderr.read() if child.stderr else ""
        first_ack = child.stdout.readline()
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        # read through the same buffered reader: communicate() would read the
        # pipe beneath it and miss what readline() already buffered
        rest = child.stdout.read()
        err = child.stderr.read() if child.stderr else ""
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return first_ack + rest, err, child.returncode


@pytest.mark.parametrize("wal_sync", ["group", "always"])
@pytest.mark.parametrize("seed", range(SEEDS))
def test_mixed_acknowledged_writes_survive_sigkill_across_reopens(
    backend_name: str, cluster_dir: Path, seed: int, wal_sync: str
) -> None:
    ops, apply = _ops_ns["ops"], _ops_ns["apply"]
    rng = random.Random(seed)
    records: dict[tuple[str, str], str] = {}  # what the store held after the last round
    acked_total = 0
    for rnd in range(ROUNDS):
        out, err, rc = _kill_after_acks(
            [
                PYTHON,
                "-c",
                MIXED_WRITER,
                str(cluster_dir),
                backend_name,
                wal_sync,
                str(seed),
                str(rnd),
                str(THREADS),
            ],
            child_env(backend_name),
            rng.uniform(0.05, 0.3),
        )
        assert rc == -signal.SIGKILL, err
        acked = [0] * THREADS  # operations acknowledged per thread
        for line in out.splitlines(keepends=True):
            parts = line.split()
            if line.endswith("\n") and len(parts) == 2:  # a line cut by the kill has no newline
                k, i = int(parts[0]), int(parts[1])
                assert i == acked[k]  # a thread acknowledges in order
                acked[k] = i + 1
        assert sum(acked) > 0
        acked_total += sum(acked)

        c = pf.Cluster.open(cluster_dir)
        try:
            stored = {(hk.decode(), sk.decode()): v.decode() for hk, sk, v in c.table("t").scan()}
        finally:
            c.close()
        for k in range(THREADS):
            mine = {key: v for key, v in records.items() if key[0].startswith(f"k{k}-")}
            gen = ops(seed, rnd, k)
            for _ in range(acked[k]):
                apply(mine, next(gen))
            # the operation in flight at the kill is there entirely or not at all
            in_flight = dict(mine)
            apply(in_flight, next(gen))
            got = {key: v for key, v in stored.items() if key[0].startswith(f"k{k}-")}
            assert got in (mine, in_flight), (rnd, k, acked[k])
        records = stored
    print(
        f"\nmixed sigkill seed {seed} {wal_sync}: {ROUNDS} kills survived, {acked_total} acknowledged, 0 lost"
    )
