"""Log scan with checksum verification: ``scan_log_dir`` over WAL directories written with
``encode_block`` (one mutation per block, real ``log.<index>.<offset>`` layout).

Bars: Rust at least 20x the Python twin on ~8 MB, and at least 500 MB/s. The 64 MB
Rust-only run and the verify-only runs (``start_decree`` past the end: every block is
read and checksummed, no mutation becomes a Python object) show where the time goes.
"""

from __future__ import annotations

import gc
from pathlib import Path
from types import ModuleType

import pytest
from inputs import write_wal_dir
from pegasus_fast import _backend

SMALL, LARGE = 8 << 20, 64 << 20


@pytest.fixture(scope="session")
def wal_8mb(tmp_path_factory: pytest.TempPathFactory, smoke: bool) -> tuple[Path, int, int]:
    path = tmp_path_factory.mktemp("wal-8mb")
    n, size = write_wal_dir(path, (64 << 10) if smoke else SMALL)
    return path, n, size


@pytest.fixture(scope="session")
def wal_64mb(tmp_path_factory: pytest.TempPathFactory, smoke: bool) -> tuple[Path, int, int]:
    path = tmp_path_factory.mktemp("wal-64mb")
    n, size = write_wal_dir(path, (64 << 10) if smoke else LARGE)
    return path, n, size


def _scan(benchmark, backend: ModuleType, wal: tuple[Path, int, int], start_decree: int, rounds: int) -> None:
    path, n, size = wal
    benchmark.extra_info.update(role=_backend.name, mutations=n, bytes=size)
    muts, infos = benchmark.pedantic(
        backend.scan_log_dir, args=(str(path), start_decree), rounds=rounds, warmup_rounds=1
    )
    assert len(muts) == (n if start_decree <= 1 else 0)
    assert sum(i[4] for i in infos) == size


@pytest.mark.benchmark(group="log-scan: 8 MB")
def test_scan_log_dir_8mb(benchmark, backend: ModuleType, wal_8mb: tuple[Path, int, int]) -> None:
    _scan(benchmark, backend, wal_8mb, 0, 10 if _backend.name == "rust" else 2)


@pytest.mark.benchmark(group="log-scan: 8 MB")
def test_scan_log_dir_8mb_gc_off(benchmark, backend: ModuleType, wal_8mb: tuple[Path, int, int]) -> None:
    """For reference: the same scan with Python's cyclic GC off (its passes over the growing result)."""
    if _backend.name != "rust":
        pytest.skip("the Rust figure is the one that the GC may hold back")
    path, n, size = wal_8mb
    benchmark.extra_info.update(role="rust gc-off", mutations=n, bytes=size)

    def scan() -> None:
        gc.disable()
        try:
            backend.scan_log_dir(str(path))
        finally:
            gc.enable()

    benchmark.pedantic(scan, rounds=10, warmup_rounds=1)


@pytest.mark.benchmark(group="log-scan: 8 MB, verify only (no mutations returned)")
def test_scan_log_dir_8mb_verify_only(benchmark, backend: ModuleType, wal_8mb: tuple[Path, int, int]) -> None:
    _scan(benchmark, backend, wal_8mb, wal_8mb[1] + 1, 10 if _backend.name == "rust" else 2)


@pytest.mark.benchmark(group="log-scan: 64 MB, Rust only")
def test_scan_log_dir_64mb(benchmark, backend: ModuleType, wal_64mb: tuple[Path, int, int]) -> None:
    if _backend.name != "rust":
        pytest.skip("64 MB is too slow for the pure-Python twin; the 8 MB group compares the two")
    _scan(benchmark, backend, wal_64mb, 0, 5)


@pytest.mark.benchmark(group="log-scan: 64 MB, Rust only, verify only")
def test_scan_log_dir_64mb_verify_only(
    benchmark, backend: ModuleType, wal_64mb: tuple[Path, int, int]
) -> None:
    if _backend.name != "rust":
        pytest.skip("64 MB is too slow for the pure-Python twin")
    _scan(benchmark, backend, wal_64mb, wal_64mb[1] + 1, 5)
