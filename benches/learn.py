"""Learning a large checkpoint (DESIGN.md §5 APP, §7), each figure beside ``cp -r`` + ``sync`` in the same run.

    python benches/learn.py              # ~256 MB checkpoint, 5 rounds, the Rust backend
    python benches/learn.py --mb 64      # smaller
    python benches/learn.py --backend rust --backend python

Figures, per backend:
  embedded learn: ``LocalFollower.checkpoint_offsets`` + ``learn_checkpoint`` of one partition's
    RocksDB checkpoint into a fresh follower cluster, fed by ``read_chunks`` as the driver feeds
    it (chunks read, written into learn/, every file's BLAKE3 verified, made durable, installed,
    RocksDB opened);
  wire receive: ``learn.receive_files`` of the same checkpoint's chunks already in memory (what a
    served follower does with a gRPC stream's chunks; moves use the same function), with the
    fsync of the files the install waits for: bytes received per second;
  cp -r + sync: ``cp -r`` of the checkpoint directory, then ``sync``;
  before: the same two with the receive as it was before issue #17 item 5 (``receive_before``:
    Python writes through fileio, then every file read back and hashed by the Rust
    ``hash_file``), swapped into learn.py for its rounds.
Every round starts after ``os.sync()``, with the source's files in the page cache.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext

import pegasus_fast as pf
from pegasus_fast import _backend, fileio
from pegasus_fast.duplication import checkpoints as policy
from pegasus_fast.duplication import learn
from pegasus_fast.duplication.ports import Chunk, SourceId
from pegasus_fast.engine.local_follower import LocalFollower
from pegasus_fast.errors import ChecksumMismatchError, InvalidArgumentError


def backends() -> list[str]:
    out = []
    for name in ("rust", "python"):
        try:
            _backend.load(name)
            out.append(name)
        except ImportError:
            pass
    return out


def make_checkpoint(root: str, mb: int) -> tuple[pf.Cluster, str, list[tuple[str, int, str]], int]:
    cfg = pf.Config(wal_sync="none")
    src = pf.Cluster.open(os.path.join(root, "src"), name="source", config=cfg)
    t = src.create_table("big", partition_count=1)
    value = os.urandom(64 << 10)
    for i in range(0, (mb << 20) // len(value), 16):
        # each value differs (no two SST blocks alike), none compresses
        t.multi_set(b"h%07d" % i, {b"s%02d" % j: os.urandom(16) + value[16:] for j in range(16)})
    info = t.partitions[0].checkpoint()
    manifest = policy.manifest_of(info.path)
    return src, info.path, manifest, info.decree


def warm(directory: str) -> None:
    for name in os.listdir(directory):
        with open(os.path.join(directory, name), "rb") as f:
            while f.read(8 << 20):
                pass


def receive_before(target: str, manifest: list, chunks: Iterable[Chunk]) -> None:
    """learn.receive_files before issue #17 item 5 (its verify_manifest was hash_file per file)."""
    impl = _backend.impl
    wanted = learn.check_manifest(manifest)
    fds: dict[str, int] = {}
    try:
        for chunk in chunks:
            if chunk.name not in wanted:
                raise InvalidArgumentError(f"a chunk names a file outside the manifest: {chunk.name!r}")
            path = os.path.join(target, chunk.name)
            size = wanted[chunk.name][0]
            if impl.crc32c(chunk.data) != chunk.crc32c:
                raise ChecksumMismatchError(path, "crc32c", "crc32c")
            if chunk.offset < 0 or chunk.offset + len(chunk.data) > size:
                raise ChecksumMismatchError(path, f"{size} bytes", "past it")
            fd = fds.get(chunk.name)
            if fd is None:
                fd = fds[chunk.name] = fileio.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW)
            held = os.fstat(fd).st_size
            if chunk.offset > held:
                raise InvalidArgumentError("a hole")
            if chunk.offset < held:
                fileio.truncate(fd, chunk.offset)
            os.lseek(fd, chunk.offset, os.SEEK_SET)
            fileio.write(fd, chunk.data)
    finally:
        for fd in fds.values():
            fileio.close(fd)
    for name, (size, _digest) in wanted.items():
        if size == 0 and name not in fds:
            fileio.close(fileio.open(os.path.join(target, name), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW))
    for name, size, digest in manifest:
        path = os.path.join(target, name)
        if impl.hash_file(path) != (size, digest):
            raise ChecksumMismatchError(path, digest, "?")


@contextmanager
def receive_as_before() -> Iterator[None]:
    saved = learn.receive_files
    learn.receive_files = receive_before  # type: ignore[assignment]
    try:
        yield
    finally:
        learn.receive_files = saved  # type: ignore[assignment]


def embedded(root: str, k: int, directory: str, manifest: list, decree: int) -> float:
    dst = pf.Cluster.open(os.path.join(root, f"dst-{k}"), name="target")
    try:
        follower = LocalFollower(dst)
        follower.ensure_table("big", 1, SourceId("source", "uid", "big", 1), True)
        os.sync()
        start = time.perf_counter()
        offsets = follower.checkpoint_offsets("big", 0, decree, manifest)
        follower.learn_checkpoint(
            "big", 0, decree, manifest, policy.read_chunks(directory, manifest, offsets)
        )
        elapsed = time.perf_counter() - start
        assert dst.table("big").partitions[0].source_decree == decree
    finally:
        dst.close()
        shutil.rmtree(os.path.join(root, f"dst-{k}"), ignore_errors=True)
    return elapsed


def wire_receive(root: str, chunks: list, manifest: list) -> float:
    target = os.path.join(root, "recv")
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    os.sync()
    start = time.perf_counter()
    learn.receive_files(target, manifest, iter(chunks))  # looked up now: receive_as_before swaps it
    fileio.fsync_tree(target)  # the install waits for it (learn._take_checkpoint, transfer.receive)
    elapsed = time.perf_counter() - start
    shutil.rmtree(target, ignore_errors=True)
    return elapsed


def cp_sync(root: str, directory: str) -> float:
    target = os.path.join(root, "cp")
    shutil.rmtree(target, ignore_errors=True)
    os.sync()
    start = time.perf_counter()
    subprocess.run(["cp", "-r", directory, target], check=True)
    subprocess.run(["sync"], check=True)
    elapsed = time.perf_counter() - start
    shutil.rmtree(target, ignore_errors=True)
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--backend",
        action="append",
        choices=["rust", "python"],
        help="repeatable; default rust (the twin's pure-Python crc32c makes it minutes per round)",
    )
    args = ap.parse_args()
    print(f"pegasus_fast {pf.__version__}, default backend {pf.backend()}, backends {backends()}")
    with tempfile.TemporaryDirectory(prefix="pf-bench-learn-", dir=os.environ.get("PF_BENCH_DIR")) as root:
        src, directory, manifest, decree = make_checkpoint(root, args.mb)
        try:
            total = sum(e[1] for e in manifest)
            print(f"checkpoint: {len(manifest)} files, {total / 1e6:.1f} MB, decree {decree}")
            warm(directory)
            chunks = list(policy.read_chunks(directory, manifest, {}))
            times: dict[str, list[float]] = {"cp -r + sync": []}
            k = 0
            runs: list[tuple[str, str, bool]] = []  # (label, backend, receive as before)
            for name in args.backend or ["rust"]:
                runs.append((name, name, False))
            runs.append(("before", "rust", True))
            for r in range(args.rounds):
                # each round in another order: no variant always runs first (or right after cp)
                order = runs[r % len(runs) :] + runs[: r % len(runs)]
                for label, name, before in order:
                    with _backend.use(name), receive_as_before() if before else nullcontext():
                        k += 1
                        times.setdefault(f"{label}: embedded learn", []).append(
                            embedded(root, k, directory, manifest, decree)
                        )
                        times.setdefault(f"{label}: wire receive", []).append(
                            wire_receive(root, chunks, manifest)
                        )
                    if (label, name, before) == order[len(order) // 2]:
                        times["cp -r + sync"].append(cp_sync(root, directory))
        finally:
            src.close()
    cp = statistics.median(times["cp -r + sync"])
    width = max(len(k) for k in times)
    for key, ts in times.items():
        med = statistics.median(ts)
        print(
            f"{key.ljust(width)}  median {med:7.3f} s  ({total / med / 1e6:7.1f} MB/s)  "
            f"x{med / cp:5.2f} of cp -r + sync   rounds {' '.join(f'{t:.3f}' for t in ts)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
