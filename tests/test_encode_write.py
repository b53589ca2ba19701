"""encode_write: the write path's one backend call. Its block is encode_block's, byte for
byte, and it puts mutation_writes' writes into the batch in order, on both backends."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pegasus_fast as pf
import pytest
from pegasus_fast.records import Op

MUTATIONS: list[Any] = [
    (1, 1_700_000_000_000_000, 3, [(int(Op.PUT), b"hk", b"sk", b"value", 0)]),
    (2, 1_700_000_000_000_001, 3, [(int(Op.DELETE), b"hk", b"sk")]),
    (3, 1_700_000_000_000_002, 3, [(int(Op.MULTI_PUT), b"h", [(b"a", b"1"), (b"b", b"")], 99)]),
    (4, 1_700_000_000_000_003, 3, [(int(Op.MULTI_DELETE), b"h", [b"a", b"c"])]),
    (5, 1_700_000_000_000_004, 3, [(int(Op.SOURCE_DECREE), 42), (int(Op.EMPTY),)]),
]


class Recorder:
    def __init__(self) -> None:
        self.writes: list[tuple[bytes, bytes | None]] = []

    def put(self, key: bytes, value: bytes) -> None:
        self.writes.append((key, value))

    def delete(self, key: bytes) -> None:
        self.writes.append((key, None))


@pytest.mark.parametrize("tombstones", [0, 3600])
@pytest.mark.parametrize("n", [1, 2, len(MUTATIONS)])
def test_encode_write_is_encode_block_and_mutation_writes(
    backend: ModuleType, other_backend: ModuleType, tombstones: int, n: int
) -> None:
    for start in range(len(MUTATIONS) - n + 1):
        muts = MUTATIONS[start : start + n]
        batch = Recorder()
        block = backend.encode_write(muts, batch, tombstones)
        assert block == backend.encode_block(muts) == other_backend.encode_block(muts)
        assert batch.writes == backend.mutation_writes(muts, tombstones)
        twin = Recorder()
        assert other_backend.encode_write(muts, twin, tombstones) == block
        assert twin.writes == batch.writes


def test_bad_input_leaves_the_batch_untouched(backend: ModuleType) -> None:
    batch = Recorder()
    with pytest.raises(pf.InvalidArgumentError):
        backend.encode_write([(1, 0, 0, [(int(Op.PUT), b"h" * 65535, b"", b"v", 0)])], batch)
    with pytest.raises(pf.InvalidTypeError):
        backend.encode_write([(1, 0, 0, [(int(Op.PUT), "str", b"", b"v", 0)])], batch)
    with pytest.raises(pf.InvalidArgumentError):
        backend.encode_write([], batch)
    assert batch.writes == []


class _Mapping(dict):  # type: ignore[type-arg]
    """A dict subclass: not exactly a dict, so it takes the general path."""


@pytest.mark.parametrize(
    ("pairs", "total"),
    [
        ({b"a": b"12", b"bc": b""}, 5),
        ({}, 0),
        ({b"a": b"1", "b": b"2"}, -1),
        ({b"a": bytearray(b"1")}, -1),
        (_Mapping({b"a": b"1"}), -1),
        ([(b"a", b"1")], -1),
    ],
)
def test_pairs_bytes(backend: ModuleType, other_backend: ModuleType, pairs: Any, total: int) -> None:
    assert backend.pairs_bytes(pairs) == other_backend.pairs_bytes(pairs) == total


def test_multi_set_of_every_key_type(backend: ModuleType, tmp_path: Any) -> None:
    with pf.Cluster.open(tmp_path / "c") as c:
        t = c.create_table("t", partition_count=2)
        t.multi_set(b"h", {b"a": b"1", "b": "2", b"c": memoryview(b"3")})
        t.multi_set(b"h", _Mapping({b"d": b"4"}))
        assert t.multi_get(b"h") == {b"a": b"1", b"b": b"2", b"c": b"3", b"d": b"4"}
        with pytest.raises(pf.InvalidTypeError):
            t.multi_set(b"h", {b"e": 5})
        assert t.multi_get(b"h") == {b"a": b"1", b"b": b"2", b"c": b"3", b"d": b"4"}
