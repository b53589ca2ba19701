"""WAL encode: 10k mutations (16 B keys, 100 B values), one per block as the write path does,
and the same 10k in one block. Bar: Rust at least 20x the Python twin."""

from __future__ import annotations

import os
from types import ModuleType

import pytest
from inputs import make_mutation
from pegasus_fast import _backend

N = 10_000


@pytest.fixture(scope="module")
def mutations(smoke: bool) -> list[tuple]:
    n = 100 if smoke else N
    return [make_mutation(i + 1, os.urandom(16), os.urandom(100)) for i in range(n)]


@pytest.mark.benchmark(group="wal-encode: 10k mutations, one block each")
def test_encode_block_per_mutation(benchmark, backend: ModuleType, mutations: list[tuple]) -> None:
    encode = backend.encode_block

    def run() -> int:
        total = 0
        for m in mutations:
            total += len(encode([m]))
        return total

    benchmark.extra_info.update(role=_backend.name, mutations=len(mutations))
    rounds = 10 if _backend.name == "rust" else 3
    total = benchmark.pedantic(run, rounds=rounds, warmup_rounds=1)
    benchmark.extra_info["bytes"] = total


@pytest.mark.benchmark(group="wal-encode: 10k mutations in one block")
def test_encode_one_block(benchmark, backend: ModuleType, mutations: list[tuple]) -> None:
    benchmark.extra_info.update(role=_backend.name, mutations=len(mutations))
    rounds = 20 if _backend.name == "rust" else 3
    block = benchmark.pedantic(backend.encode_block, args=(mutations,), rounds=rounds, warmup_rounds=1)
    benchmark.extra_info["bytes"] = len(block)
