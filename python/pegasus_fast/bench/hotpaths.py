"""The hot paths, each timed on one backend module at a time.

Both backends run in one process: ``_backend.load`` gives either module, the WAL,
scan, copy and replay functions take their module directly, and the store paths
(snapshot encode and apply) run under ``_backend.use``. Rounds interleave the two
backends (rust, python, python, rust, ...) so a slow minute on this shared machine
falls on both; subprocesses with ``PEGASUS_FAST_PURE_PYTHON=1`` would add their
start-up and rebuild every input twice for nothing the in-process switch lacks.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .. import _backend
from ..config import Config
from ..duplication import checkpoints as policy
from ..duplication.ports import SourceId
from ..engine.cluster import Cluster
from ..engine.local_follower import LocalFollower
from . import inputs


@dataclass(frozen=True)
class Sizes:
    encode_mutations: int
    scan_bytes: int
    copy_files: int
    copy_file_bytes: int
    snapshot_records: int
    rounds_rust: int
    rounds_python: int


QUICK = Sizes(3_000, 2 << 20, 2, 16 << 20, 10_000, 7, 3)
FULL = Sizes(10_000, 8 << 20, 4, 32 << 20, 50_000, 9, 5)


@dataclass
class HotPath:
    key: str
    label: str
    #: what one round processes, for the rates: {"bytes": ..., "items": ...}
    work: dict[str, int]
    #: times one round on the given backend, returns seconds
    measure: Callable[[str, ModuleType], float]


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@contextmanager
def hot_paths(root: Path, sizes: Sizes) -> Iterator[list[HotPath]]:
    """Make every input under ``root`` (untimed); the hot paths over them, while open."""
    clusters: list[Cluster] = []
    try:
        yield _build(root, sizes, clusters)
    finally:
        for c in reversed(clusters):
            c.close()


def _build(root: Path, sizes: Sizes, clusters: list[Cluster]) -> list[HotPath]:
    paths: list[HotPath] = []

    muts = inputs.mutations(sizes.encode_mutations)
    encoded = sum(len(inputs.fastest_backend().encode_block([m])) for m in muts)

    def encode(_: str, mod: ModuleType) -> float:
        enc = mod.encode_block
        return _timed(lambda: [enc([m]) for m in muts])

    paths.append(
        HotPath(
            "wal_encode",
            f"WAL encode: {len(muts):,} mutations, one block each",
            {"bytes": encoded, "items": len(muts)},
            encode,
        )
    )

    wal = root / "wal"
    n, size = inputs.write_wal_dir(wal, sizes.scan_bytes)

    def scan(_: str, mod: ModuleType) -> float:
        return _timed(lambda: mod.scan_log_dir(str(wal), 0))

    def replay(_: str, mod: ModuleType) -> float:
        return _timed(lambda: mod.replay_log_dir(str(wal), 0))

    mb = f"{size / 1e6:.0f} MB"
    paths.append(HotPath("log_scan", f"log scan with checksums: {mb}", {"bytes": size, "items": n}, scan))
    paths.append(HotPath("replay", f"replay into write batches: {mb}", {"bytes": size, "items": n}, replay))

    src = root / "copy-src"
    names = inputs.write_random_files(src, sizes.copy_files, sizes.copy_file_bytes)
    copy_bytes = sizes.copy_files * sizes.copy_file_bytes

    manifest = [(n, *_backend.impl.hash_file(src / n)) for n in names]

    def copy(name: str, mod: ModuleType) -> float:
        """A follower's learning copy: the source's chunks into the backend's receiver."""
        dst = root / f"copy-dst-{name}"
        shutil.rmtree(dst, ignore_errors=True)
        dst.mkdir()
        os.sync()  # no writeback of an earlier round during this one

        def learn() -> None:
            receiver = mod.CheckpointReceiver(str(dst), manifest)
            for c in policy.read_chunks(str(src), manifest, {}):
                receiver.write(c.name, c.offset, c.data, c.crc32c)
            receiver.finish()

        elapsed = _timed(learn)
        shutil.rmtree(dst, ignore_errors=True)
        return elapsed

    paths.append(
        HotPath(
            "copy_hash",
            f"learning copy (chunks, hash, fsync): {sizes.copy_files} x {sizes.copy_file_bytes >> 20} MB",
            {"bytes": copy_bytes, "items": sizes.copy_files},
            copy,
        )
    )
    paths.extend(_snapshot_paths(root, sizes.snapshot_records, clusters))
    return paths


def _snapshot_paths(root: Path, records: int, clusters: list[Cluster]) -> list[HotPath]:
    """Logical snapshot of one partition: encode on a source, apply on a fresh follower table."""
    cfg = Config(wal_sync="none")
    src = Cluster.open(str(root / "snap-src"), name="source", config=cfg)
    clusters.append(src)
    dst = Cluster.open(str(root / "snap-dst"), name="target", config=cfg)
    clusters.append(dst)
    t = src.create_table("hot", partition_count=1)
    rnd = os.urandom(1 << 20)
    batch = 100
    for i in range(0, records, batch):
        o = (i * 7) % ((1 << 20) - 100 * batch)
        t.multi_set(b"h%08d" % i, {b"s%03d" % j: rnd[o + 100 * j : o + 100 * (j + 1)] for j in range(batch)})
    part = t.partitions[0]
    part.flush()
    follower = LocalFollower(dst)
    made: dict[str, policy.Artifact] = {}
    counter = [0]

    def encode(name: str, _: ModuleType) -> float:
        with _backend.use(name):
            start = time.perf_counter()
            art = policy.adaptive(part, 1 << 40)
            elapsed = time.perf_counter() - start
        if art.kind != policy.SMALL:
            raise RuntimeError(f"expected a logical snapshot, got {art.kind}")
        made[name] = art
        return elapsed

    def apply(name: str, _: ModuleType) -> float:
        art = made.get(name) or policy.adaptive(part, 1 << 40)
        counter[0] += 1
        table = f"snap{counter[0]}"
        follower.ensure_table(table, 1, SourceId("bench", "", f"hot{counter[0]}", 1), True)
        with _backend.use(name):
            start = time.perf_counter()
            follower.learn_snapshot(table, 0, art.decree, art.block or b"")
            dst.table(table).partitions[0].db  # noqa: B018 - opening applies the snapshot
            elapsed = time.perf_counter() - start
        dst.drop_table(table)
        return elapsed

    size = len(policy.adaptive(part, 1 << 40).block or b"")
    work = {"bytes": size, "items": records}
    return [
        HotPath("snapshot_encode", f"snapshot encode: {records:,} records", work, encode),
        HotPath("snapshot_apply", f"snapshot apply: {records:,} records", work, apply),
    ]
