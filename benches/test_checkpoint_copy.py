"""The learning copy of a 256 MB checkpoint (4 files of 64 MB of random bytes, page cache warm):
the source's ``read_chunks`` (1 MiB checksummed chunks) fed to the backend's
``CheckpointReceiver``, as a follower learns (duplication/learn.py ``receive_files``).

Bar: Rust within 1.5x of plain ``shutil.copyfile`` of the same files, measured in the same run
and group. The receiver also checks each chunk's crc32c, hashes (BLAKE3) and verifies every
file, and fsyncs every file and the directory; ``shutil.copyfile`` + fsync is measured alongside
to show how much of any gap is the fsync. Every round copies into an empty directory, after
``os.sync()`` so no writeback of an earlier round runs during it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from pegasus_fast import _backend
from pegasus_fast.duplication.checkpoints import read_chunks

GROUP = "checkpoint-copy: 256 MB, 4 x 64 MB"
FILE_SIZE, FILES = 64 << 20, 4
ROUNDS = 3


@pytest.fixture(scope="session")
def checkpoint_src(tmp_path_factory: pytest.TempPathFactory, smoke: bool) -> tuple[Path, list[str]]:
    src = tmp_path_factory.mktemp("checkpoint-src")
    size = (256 << 10) if smoke else FILE_SIZE
    names = [f"{i:06d}.sst" for i in range(FILES)]
    for name in names:
        with open(src / name, "wb") as f:
            for _ in range(size >> 20 or 1):
                f.write(os.urandom(min(size, 1 << 20)))
    for name in names:  # warm the page cache
        with open(src / name, "rb") as f:
            while f.read(8 << 20):
                pass
    os.sync()
    return src, names


def _run(
    benchmark, role: str, bench_tmp: Path, src: tuple[Path, list[str]], copy: Callable[[Path], object]
) -> None:
    path, names = src
    dst = bench_tmp / f"checkpoint-dst-{role}"

    def setup() -> tuple[tuple, dict]:
        shutil.rmtree(dst, ignore_errors=True)
        os.sync()
        return (dst,), {}

    benchmark.extra_info.update(role=role, bytes=sum(os.path.getsize(path / n) for n in names))
    benchmark.pedantic(copy, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    shutil.rmtree(dst, ignore_errors=True)


def _receive(backend: ModuleType, src: Path, names: list[str], dst: Path, sync: bool) -> None:
    if src not in _MANIFESTS:  # the source's manifest is made once, before any timed round
        _MANIFESTS[src] = [(n, *backend.hash_file(src / n)) for n in names]
    manifest = _MANIFESTS[src]
    dst.mkdir()
    receiver = backend.CheckpointReceiver(str(dst), manifest, sync=sync)
    for c in read_chunks(str(src), manifest, {}):
        receiver.write(c.name, c.offset, c.data, c.crc32c)
    receiver.finish()


_MANIFESTS: dict[Path, list[tuple[str, int, str]]] = {}


@pytest.mark.benchmark(group=GROUP)
def test_learn_copy(benchmark, backend: ModuleType, bench_tmp: Path, checkpoint_src) -> None:
    src, names = checkpoint_src
    _run(
        benchmark,
        _backend.name,
        bench_tmp,
        checkpoint_src,
        lambda dst: _receive(backend, src, names, dst, True),
    )


@pytest.mark.benchmark(group=GROUP)
def test_learn_copy_no_sync(benchmark, backend: ModuleType, bench_tmp: Path, checkpoint_src) -> None:
    """For reference: the receiver with sync=False."""
    src, names = checkpoint_src
    _run(
        benchmark,
        f"{_backend.name} sync=False",
        bench_tmp,
        checkpoint_src,
        lambda dst: _receive(backend, src, names, dst, False),
    )


@pytest.mark.benchmark(group=GROUP)
def test_shutil_copyfile(benchmark, bench_tmp: Path, checkpoint_src) -> None:
    """The bar: plain shutil.copyfile (no hash, no fsync). Independent of the backend."""
    src, names = checkpoint_src

    def copy(dst: Path) -> None:
        dst.mkdir()
        for name in names:
            shutil.copyfile(src / name, dst / name)

    _run(benchmark, "shutil", bench_tmp, checkpoint_src, copy)


@pytest.mark.benchmark(group=GROUP)
def test_shutil_copyfile_fsync(benchmark, bench_tmp: Path, checkpoint_src) -> None:
    """For reference: shutil.copyfile, then fsync each file and the directory, as the receiver does."""
    src, names = checkpoint_src

    def copy(dst: Path) -> None:
        dst.mkdir()
        for name in names:
            shutil.copyfile(src / name, dst / name)
            fd = os.open(dst / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(dst, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    _run(benchmark, "shutil+fsync", bench_tmp, checkpoint_src, copy)
