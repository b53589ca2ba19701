"""The seed duplication scenario (apache/incubator-pegasus#2069) and add_dup timing by table size.

``add_dup`` is timed from ``add_duplication`` to DS_LOG with the follower fully
healthy. The legacy (pre-#2054) gating runs with its timers scaled: the periodic
emergency checkpoint (``checkpoint_max_interval_hours``, 1 h in Pegasus's report)
comes after ``legacy_seconds`` instead.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass

from ..config import Config
from ..duplication import DupStatus
from ..engine.cluster import Cluster


def adaptive_config(**kw: object) -> Config:
    return Config(**kw)  # type: ignore[arg-type]


def legacy_config(legacy_seconds: float, **kw: object) -> Config:
    return Config(
        checkpoint_policy="legacy",
        checkpoint_max_interval_hours=legacy_seconds / 3600.0,
        checkpoint_interval_seconds=0.05,
        **kw,  # type: ignore[arg-type]
    )


@dataclass
class DupRun:
    seconds: float
    #: checkpoint kind of each partition (empty, small, large)
    kinds: list[str]


def fill(table_path: str, partitions: int, records: int, value_size: int = 100) -> int:
    """A source cluster at ``table_path`` with table ``t`` of ``records`` records, flushed and
    closed; returns its data bytes. Values are random (incompressible), 100 sort keys per hash key."""
    c = Cluster.open(table_path, name="source", config=Config(wal_sync="none"))
    try:
        t = c.create_table("t", partition_count=partitions)
        rnd = os.urandom(1 << 20)
        per = 100
        for i in range(0, records, per):
            o = (i * 13) % ((1 << 20) - value_size * per)
            n = min(per, records - i)
            t.multi_set(
                b"h%09d" % i,
                {b"s%03d" % j: rnd[o + value_size * j : o + value_size * (j + 1)] for j in range(n)},
            )
        for p in t.partitions:
            p.flush()  # flushed, as a long-running table is
        return sum(p.data_bytes() for p in t.partitions)
    finally:
        c.close()


def add_dup_once(source_path: str, follower_path: str, config: Config, timeout: float = 600) -> DupRun:
    """Open the source at ``source_path`` with ``config``, time add_dup of ``t`` to a new follower."""
    src = Cluster.open(source_path, config=config)
    try:
        dst = Cluster.open(follower_path, name="target", config=config)
        try:
            t = src.table("t")
            for p in t.partitions:
                p.db  # noqa: B018 - open RocksDB now: the timing is of add_dup, not of a cold open
            start = time.perf_counter()
            dup = src.add_duplication("t", dst)
            dup.wait_for(DupStatus.LOG, timeout=timeout)
            elapsed = time.perf_counter() - start
            health = dst.table("t").health()
            if health.fully_healthy != t.partition_count:
                raise RuntimeError(f"follower not fully healthy after add_dup: {health}")
            return DupRun(elapsed, [p.checkpoint_kind for p in dup.progress()])
        finally:
            dst.close()
    finally:
        src.close()


def run_once(root: str, partitions: int, records: int, config: Config, value_size: int = 100) -> DupRun:
    """Fill a fresh source under ``root`` and time one add_dup from it (``root`` is emptied)."""
    try:
        fill(os.path.join(root, "src"), partitions, records, value_size)
        return add_dup_once(os.path.join(root, "src"), os.path.join(root, "dst"), config)
    finally:
        for name in ("src", "dst"):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def run_from_copy(pristine: str, root: str, config: Config) -> DupRun:
    """Copy a filled, closed source (untimed) and time add_dup from the copy: every run of a
    size starts from the same table, with no checkpoint left by an earlier run."""
    src, dst = os.path.join(root, "src"), os.path.join(root, "dst")
    try:
        shutil.copytree(pristine, src)
        os.sync()  # no writeback of the copy during the timed add_dup
        return add_dup_once(src, dst, config)
    finally:
        shutil.rmtree(src, ignore_errors=True)
        shutil.rmtree(dst, ignore_errors=True)
