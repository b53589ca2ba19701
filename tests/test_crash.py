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
        rest, err = child.communicate(timeout=30)
        rest = first_ack + rest
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
