"""Reopen after a crash with unflushed writes: ``Cluster.open`` replays the WAL.

A child process (on the backend under test) opens a cluster, creates a 1-partition
table, makes N ``set()`` calls with ``wal_sync="none"`` and ``os._exit(0)``s without
closing, so RocksDB's memtable (its own WAL is off) is lost and every write lives only
in our WAL. The memtable is sized so nothing flushes while writing. Each round copies
the crashed directory fresh (untimed), then times ``Cluster.open``. Rate = the
partition's ``replayed`` / open time. N is 1M on Rust, 100k on the pure-Python twin.
Bar: Rust at least 300k mutations/s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
from inputs import child_env
from pegasus_fast import _backend

GROUP = "reopen: WAL replay of unflushed writes"

CHILD = r"""
import os, sys
import pegasus_fast as pf
path, n = sys.argv[1], int(sys.argv[2])
cfg = pf.Config(wal_sync="none", rocksdb_write_buffer_size=2 << 30, checkpoint_interval_seconds=1e6,
                checkpoint_max_interval_hours=1e6, gc_interval_ms=10**9)
c = pf.Cluster.open(path, name="bench", config=cfg)
t = c.create_table("bench", partition_count=1)
rnd = os.urandom(1 << 20)
for i in range(n):
    o = (i * 116) % ((1 << 20) - 116)
    t.set(rnd[o : o + 16], b"s", rnd[o + 16 : o + 116])
assert pf.backend() == sys.argv[3], pf.backend()
os._exit(0)
"""


@pytest.fixture(scope="session")
def crashed(tmp_path_factory: pytest.TempPathFactory, backend: ModuleType, smoke: bool) -> tuple[Path, int]:
    name = _backend.name
    n = 1000 if smoke else (1_000_000 if name == "rust" else 100_000)
    path = tmp_path_factory.mktemp(f"crashed-{name}") / "cluster"
    subprocess.run([sys.executable, "-c", CHILD, str(path), str(n), name], env=child_env(name), check=True)
    return path, n


@pytest.mark.benchmark(group=GROUP)
def test_reopen_replay(benchmark, backend: ModuleType, crashed: tuple[Path, int], tmp_path: Path) -> None:
    src, n = crashed
    dst = tmp_path / "cluster"
    opened: list[pf.Cluster] = []

    def close_all() -> None:
        while opened:
            opened.pop().close()

    def setup() -> tuple[tuple, dict]:
        close_all()
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)
        os.sync()  # no writeback of the copy during the timed open
        return (), {}

    def reopen() -> None:
        opened.append(pf.Cluster.open(dst))

    benchmark.extra_info.update(role=_backend.name, writes=n)
    rounds = 3 if _backend.name == "rust" else 2
    try:
        benchmark.pedantic(reopen, setup=setup, rounds=rounds)
        replayed = opened[-1].table("bench").partitions[0].replayed
    finally:
        close_all()
    benchmark.extra_info["replayed"] = replayed
    assert replayed == n
