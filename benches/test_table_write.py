"""``Table.set`` and ``Table.multi_set`` against a bare ``rocksdict.Rdict`` with RocksDB's own WAL.

One thread, ``Config(wal_sync="none")``, a 1-partition table; 16 B hash keys, sort key
b"s", 100 B values (multi_set: 100 sort keys under one hash key). The baseline writes the
same RocksDB keys (Pegasus encoding, prepared untimed) and values with default ``WriteOptions`` (its WAL on,
no sync). Bars: set at least 40% of ``Rdict.put`` ops/s; multi_set at least 60% of a
``WriteBatch`` of the same 100 records written with ``db.write``. Every round writes new
keys.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
import rocksdict
from pegasus_fast import _backend
from pegasus_fast.records import encode_key

SET_GROUP = "table-set: one thread, 16 B keys, 100 B values"
MULTI_GROUP = "table-multi_set: 100 records of 100 B"
ROUNDS = 15


def _sizes(smoke: bool, role: str) -> tuple[int, int]:
    """(set ops, multi_set ops) per round; the pure-Python twin gets fewer, rates are per op."""
    if smoke:
        return 20, 2
    return (5_000, 100) if role == "python" else (20_000, 1_000)


def _key_pool(n: int) -> Iterator[list[bytes]]:
    while True:
        yield [os.urandom(16) for _ in range(n)]


VALUE = os.urandom(100)
SORT_KEYS = [b"s%03d" % i for i in range(100)]
MULTI_VALUES = {sk: os.urandom(100) for sk in SORT_KEYS}


@pytest.fixture
def table(backend: ModuleType, tmp_path: Path) -> Iterator[pf.Table]:
    cluster = pf.Cluster.open(tmp_path / "cluster", config=pf.Config(wal_sync="none"))
    try:
        yield cluster.create_table("bench", partition_count=1)
    finally:
        cluster.close()


@pytest.fixture
def rdict(tmp_path: Path) -> Iterator[rocksdict.Rdict]:
    opts = rocksdict.Options(raw_mode=True)
    opts.create_if_missing(True)
    db = rocksdict.Rdict(str(tmp_path / "rdb"), opts)
    try:
        yield db
    finally:
        db.close()


def _pedantic(benchmark, target, n: int, role: str, prepare=lambda keys: keys) -> None:
    """``n`` ops per round on fresh keys; ``prepare`` (untimed) turns the hash keys into the target's input."""
    pool = _key_pool(n)
    benchmark.extra_info.update(role=role, ops=n)
    benchmark.pedantic(target, setup=lambda: ((prepare(next(pool)),), {}), rounds=ROUNDS, warmup_rounds=1)


@pytest.mark.benchmark(group=SET_GROUP)
def test_table_set(benchmark, backend: ModuleType, table: pf.Table, smoke: bool) -> None:
    n, _ = _sizes(smoke, _backend.name)

    def run(keys: list[bytes]) -> None:
        for k in keys:
            table.set(k, b"s", VALUE)

    _pedantic(benchmark, run, n, _backend.name)


@pytest.mark.benchmark(group=SET_GROUP)
def test_rocksdict_put(benchmark, rdict: rocksdict.Rdict, smoke: bool) -> None:
    """The bar (independent of the backend)."""
    n, _ = _sizes(smoke, "rocksdict")
    put = rdict.put

    def run(keys: list[bytes]) -> None:
        for k in keys:
            put(k, VALUE)

    _pedantic(benchmark, run, n, "rocksdict", lambda hks: [encode_key(hk, b"s") for hk in hks])


@pytest.mark.benchmark(group=MULTI_GROUP)
def test_table_multi_set(benchmark, backend: ModuleType, table: pf.Table, smoke: bool) -> None:
    _, n = _sizes(smoke, _backend.name)

    def run(keys: list[bytes]) -> None:
        for k in keys:
            table.multi_set(k, MULTI_VALUES)

    _pedantic(benchmark, run, n, _backend.name)


@pytest.mark.benchmark(group=MULTI_GROUP)
def test_rocksdict_write_batch(benchmark, rdict: rocksdict.Rdict, smoke: bool) -> None:
    """The bar (independent of the backend): the same 100 records in one WriteBatch."""
    _, n = _sizes(smoke, "rocksdict")
    values = list(MULTI_VALUES.values())

    def run(records: list[list[tuple[bytes, bytes]]]) -> None:
        for op in records:
            wb = rocksdict.WriteBatch(raw_mode=True)
            for key, value in op:
                wb.put(key, value)
            rdict.write(wb)

    def prepare(hks: list[bytes]) -> list[list[tuple[bytes, bytes]]]:
        return [[(encode_key(hk, sk), v) for sk, v in zip(SORT_KEYS, values)] for hk in hks]

    _pedantic(benchmark, run, n, "rocksdict", prepare)
