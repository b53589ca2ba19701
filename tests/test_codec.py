"""CRCs, partition hashing, the WAL block codec and RocksDB writes, on both backends."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pegasus_fast as pf
import pytest
from conftest import BACKENDS, PACKAGE_ROOT, load_backend
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

DATA = Path(__file__).parent / "data"
PUT, DELETE, MULTI_PUT, MULTI_DELETE, EMPTY, RAW_PUT, SOURCE_DECREE = range(7)


# -- reference implementations, straight from the definitions (bit by bit) -----------


def ref_crc(data: bytes, poly: int, width: int, crc: int = 0) -> int:
    mask = (1 << width) - 1
    crc ^= mask
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
    return crc ^ mask


def ref_crc32c(data: bytes) -> int:
    return ref_crc(data, 0x82F63B78, 32)


def ref_crc64(data: bytes) -> int:
    return ref_crc(data, 0x9A6C9329AC4BC9B5, 64)


# -- CRCs and partitioning --------------------------------------------------------------


def test_crc_check_values(backend: ModuleType) -> None:
    assert backend.crc32c(b"123456789") == 0xE3069283
    assert backend.crc64(b"123456789") == 0xAE8B14860A799888
    assert backend.crc32c(b"") == 0
    assert backend.crc64(b"") == 0


@given(a=st.binary(max_size=300), b=st.binary(max_size=300))
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_crc_chaining_and_reference(backend: ModuleType, a: bytes, b: bytes) -> None:
    assert backend.crc32c(a + b) == ref_crc32c(a + b)
    assert backend.crc64(a + b) == ref_crc64(a + b)
    assert backend.crc32c(b, backend.crc32c(a)) == backend.crc32c(a + b)
    assert backend.crc64(b, backend.crc64(a)) == backend.crc64(a + b)


# Values computed from the definition: crc64 (ref_crc64 above) of the key mod count.
PARTITION_CASES = [
    (b"", 8, b"", 0),  # crc64(b"") == 0
    (b"123456789", 8, b"", 0xAE8B14860A799888 % 8),
    (b"123456789", 1000, b"ignored", 0xAE8B14860A799888 % 1000),
    (b"", 1000, b"123456789", 0xAE8B14860A799888 % 1000),  # empty hash key: the sort key decides
    (b"user:1", 7, b"", ref_crc64(b"user:1") % 7),
    (b"hash", 1024, b"sort", ref_crc64(b"hash") % 1024),
]


@pytest.mark.parametrize(("hash_key", "count", "sort_key", "expected"), PARTITION_CASES)
def test_partition_index(
    backend: ModuleType, hash_key: bytes, count: int, sort_key: bytes, expected: int
) -> None:
    assert backend.partition_index(hash_key, count, sort_key) == expected


def test_partition_index_fixed_values(backend: ModuleType) -> None:
    # pinned numbers, so a change in the reference above cannot hide a change here
    assert backend.partition_index(b"123456789", 1000) == 296
    assert backend.partition_index(b"", 1000, b"123456789") == 296
    assert backend.crc64(b"user:1") == 0x595587BE8D69B680
    assert backend.partition_index(b"user:1", 7) == 4
    assert backend.partition_index(b"hash", 1024, b"sort") == 636
    assert backend.partition_index(b"123456789", 1) == 0


@given(hk=st.binary(max_size=40), sk=st.binary(max_size=40), count=st.integers(1, 1024))
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_partition_index_definition(backend: ModuleType, hk: bytes, sk: bytes, count: int) -> None:
    assert backend.partition_index(hk, count, sk) == ref_crc64(hk if hk else sk) % count


def test_partition_index_rejects_zero_count(backend: ModuleType) -> None:
    with pytest.raises(ValueError):
        backend.partition_index(b"k", 0)


# -- mutations ----------------------------------------------------------------------------

U32 = st.integers(0, 0xFFFFFFFF)
KEY = st.binary(max_size=24)
HASH_KEY = st.one_of(KEY, st.binary(min_size=250, max_size=300))
OPS = st.one_of(
    st.tuples(st.just(PUT), HASH_KEY, KEY, st.binary(max_size=64), U32),
    st.tuples(st.just(DELETE), HASH_KEY, KEY),
    st.tuples(st.just(MULTI_PUT), HASH_KEY, st.lists(st.tuples(KEY, KEY), max_size=4), U32),
    st.tuples(st.just(MULTI_DELETE), HASH_KEY, st.lists(KEY, max_size=4)),
    st.just((EMPTY,)),
    st.tuples(st.just(RAW_PUT), KEY, KEY),
    st.tuples(st.just(SOURCE_DECREE), st.integers(0, 2**64 - 1)),
)


@st.composite
def mutation_lists(draw: Any, max_ts: int = 2**64 - 1) -> list[tuple[int, int, int, list]]:
    n = draw(st.integers(1, 5))
    first = draw(st.integers(0, 2**64 - 1 - n))
    return [
        (
            first + i,
            draw(st.integers(0, max_ts)),
            draw(st.integers(0, 127)),
            draw(st.lists(OPS, max_size=4)),
        )
        for i in range(n)
    ]


@given(mutations=mutation_lists())
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_encode_decode_round_trip(backend: ModuleType, mutations: list) -> None:
    block = backend.encode_block(mutations)
    assert backend.decode_block(block) == mutations
    payload = block[28:]
    magic, payload_len, first, count, payload_crc, header_crc = struct.unpack_from("<4sIQIII", block)
    assert (magic, payload_len, first, count) == (b"PFW1", len(payload), mutations[0][0], len(mutations))
    assert payload_crc == ref_crc32c(payload)
    assert header_crc == ref_crc32c(block[:24])


@given(mutations=mutation_lists(max_ts=(1 << 56) - 1))
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_backends_byte_identical(backend: ModuleType, other_backend: ModuleType, mutations: list) -> None:
    block = backend.encode_block(mutations)
    assert other_backend.encode_block(mutations) == block
    assert other_backend.decode_block(block) == mutations
    assert backend.mutation_writes(mutations) == other_backend.mutation_writes(mutations)


def test_every_op_round_trips(backend: ModuleType) -> None:
    ops = [
        (PUT, b"h", b"s", b"v", 5),
        (DELETE, b"h", b"s"),
        (MULTI_PUT, b"h", [(b"a", b"1"), (b"b", b"2")], 9),
        (MULTI_DELETE, b"h", [b"a", b"b"]),
        (EMPTY,),
        (RAW_PUT, b"\x00\x01hk", b"value"),
        (SOURCE_DECREE, 77),
    ]
    mutations = [(10 + i, 1000 + i, i, [op]) for i, op in enumerate(ops)]
    mutations.append((20, 2000, 127, ops))
    assert backend.decode_block(backend.encode_block(mutations)) == mutations
    for m in mutations:
        assert backend.decode_block(backend.encode_block([m])) == [m]


def test_mutation_writes_layout(backend: ModuleType) -> None:
    ts, cid = 0x0102030405, 3
    tag = (ts << 8) | (cid << 1)
    head = struct.pack(">IQ", 7, tag)
    mutations = [
        (
            41,
            ts,
            cid,
            [
                (PUT, b"hk", b"sk", b"v", 7),
                (DELETE, b"hk", b"gone"),
                (MULTI_PUT, b"m", [(b"a", b"1"), (b"b", b"2")], 7),
                (MULTI_DELETE, b"m", [b"c"]),
                (EMPTY,),
                (RAW_PUT, b"\x00\x01xy", b"raw"),
                (SOURCE_DECREE, 99),
            ],
        ),
        (42, ts, cid, [(EMPTY,)]),
    ]
    assert backend.mutation_writes(mutations) == [
        (b"\x00\x02hksk", head + b"v"),
        (b"\x00\x02hkgone", None),
        (b"\x00\x01ma", head + b"1"),
        (b"\x00\x01mb", head + b"2"),
        (b"\x00\x01mc", None),
        (b"\x00\x01xy", b"raw"),
        (b"\x01", struct.pack("<Q", 99)),
        (b"\x00", struct.pack("<Q", 42)),
    ]
    assert backend.mutation_writes([]) == []


@pytest.mark.parametrize(
    "bad",
    [
        [],  # a block holds at least one mutation
        [(1, 0, 128, [])],  # cluster_id over 127
        [(1, 0, 0, [(PUT, b"x" * 65536, b"s", b"v", 0)])],  # hash key over 65535 bytes
        [(1, 0, 0, [(99,)])],  # unknown op type
    ],
)
def test_encode_rejects(backend: ModuleType, bad: list) -> None:
    with pytest.raises((ValueError, TypeError)):
        backend.encode_block(bad)


def test_mutation_writes_rejects_timestamp_past_timetag(backend: ModuleType) -> None:
    # timetag = timestamp_us << 8 | ... is a u64: 2^56 us does not fit (encode_block still takes it)
    m = [(1, 1 << 56, 0, [(PUT, b"h", b"s", b"v", 0)])]
    assert backend.decode_block(backend.encode_block(m)) == m
    with pytest.raises(ValueError):
        backend.mutation_writes(m)
    assert backend.mutation_writes([(1, (1 << 56) - 1, 127, [])]) == [(b"\x00", struct.pack("<Q", 1))]


def test_mutation_writes_refuses_what_pegasus_refuses(backend: ModuleType) -> None:
    for op in (
        (PUT, b"x" * 65535, b"s", b"v", 0),
        (DELETE, b"x" * 65535, b"s"),
        (MULTI_PUT, b"x" * 65535, [(b"s", b"v")], 0),
        (MULTI_DELETE, b"x" * 65535, [b"s"]),
        (PUT, b"x" * 65536, b"s", b"v", 0),
    ):
        with pytest.raises(pf.InvalidArgumentError):
            backend.mutation_writes([(1, 1, 1, [op])])
    writes = backend.mutation_writes([(1, 1, 1, [(PUT, b"x" * 65534, b"s", b"v", 0)])])
    assert writes[0][0][:2] == b"\xff\xfe"


def test_core_refusals_are_invalid_argument_errors(backend: ModuleType, tmp_path: Path) -> None:
    # one class on both backends: the Rust core's InvalidArgument is converted in one place
    log = tmp_path / "log.1.0"
    log.write_bytes(b"")
    calls = [
        lambda: backend.encode_block([]),
        lambda: backend.CheckpointReceiver(tmp_path, [("../x", 0, "00")]),
        lambda: backend.scan_log_file(log, 5),
        lambda: backend.mutation_writes([(1, 1 << 56, 0, [(PUT, b"h", b"s", b"v", 0)])]),
    ]
    for call in calls:
        with pytest.raises(pf.InvalidArgumentError):
            call()
    # a mutation whose ops carry no timetag takes any timestamp, on both backends
    assert backend.mutation_writes([(1, 1 << 56, 0, [(DELETE, b"h", b"s")])])[0] == (b"\x00\x01hs", None)


def test_replay_takes_a_65535_byte_hash_key_logged_before_the_limit(
    backend: ModuleType, tmp_path: Path
) -> None:
    # the WAL format holds 65535 bytes; a log written before the limit still replays
    hk = b"x" * 65535
    m = [(1, 1, 1, [(PUT, hk, b"s", b"v", 0)])]
    (tmp_path / "log.1.0").write_bytes(backend.encode_block(m))
    batches, _infos = backend.replay_log_dir(tmp_path, 1)
    assert [w[0] for w in batches[0][1]] == [b"\x00", b"\xff\xff" + hk + b"s"]


def test_decode_rejects_anything_but_one_whole_block(backend: ModuleType) -> None:
    block = backend.encode_block([(1, 2, 3, [(PUT, b"h", b"s", b"v", 0)])])
    for bad in (b"", block[:-1], block + b"\x00", block + block, b"\x00" * len(block)):
        with pytest.raises(pf.WalCorruptionError):
            backend.decode_block(bad)
    flipped = bytearray(block)
    flipped[-1] ^= 1
    with pytest.raises(pf.WalCorruptionError):
        backend.decode_block(bytes(flipped))


# -- golden vectors -------------------------------------------------------------------------


def op_from_json(o: dict[str, Any]) -> tuple[Any, ...]:
    h = bytes.fromhex
    kind = o["type"]
    if kind == PUT:
        return (PUT, h(o["hash_key"]), h(o["sort_key"]), h(o["value"]), o["expire_ts"])
    if kind == DELETE:
        return (DELETE, h(o["hash_key"]), h(o["sort_key"]))
    if kind == MULTI_PUT:
        return (MULTI_PUT, h(o["hash_key"]), [(h(s), h(v)) for s, v in o["pairs"]], o["expire_ts"])
    if kind == MULTI_DELETE:
        return (MULTI_DELETE, h(o["hash_key"]), [h(s) for s in o["sort_keys"]])
    if kind == EMPTY:
        return (EMPTY,)
    if kind == RAW_PUT:
        return (RAW_PUT, h(o["key"]), h(o["value"]))
    if kind == SOURCE_DECREE:
        return (SOURCE_DECREE, o["decree"])
    raise AssertionError(f"unknown op type {kind}")


def load_golden() -> tuple[bytes, list[dict[str, Any]]]:
    raw = (DATA / "wal_golden.bin").read_bytes()
    doc = json.loads((DATA / "wal_golden.json").read_text(encoding="utf-8"))
    blocks = []
    for b in doc["blocks"]:
        mutations = [
            (m["decree"], m["timestamp_us"], m["cluster_id"], [op_from_json(o) for o in m["ops"]])
            for m in b["mutations"]
        ]
        writes = [(bytes.fromhex(k), None if v is None else bytes.fromhex(v)) for k, v in b["writes"]]
        blocks.append(
            {"offset": b["offset"], "length": b["length"], "mutations": mutations, "writes": writes}
        )
    return raw, blocks


def test_golden_covers_every_op_type() -> None:
    raw, blocks = load_golden()
    kinds = {op[0] for b in blocks for m in b["mutations"] for op in m[3]}
    assert kinds == set(range(7))
    assert sum(b["length"] for b in blocks) == len(raw)
    assert any(len(b["mutations"]) > 1 for b in blocks)


def test_golden_first_block_by_hand() -> None:
    # the first golden block built from docs/wal-format.md alone, not from any codec
    raw, blocks = load_golden()
    assert blocks[0]["mutations"] == [(1, 1_700_000_000_000_000, 1, [(PUT, b"user:1", b"name", b"alice", 0)])]
    op = b"\x00" + struct.pack("<H", 6) + b"user:1" + struct.pack("<I", 4) + b"name"
    op += struct.pack("<I", 5) + b"alice" + struct.pack("<I", 0)
    payload = struct.pack("<QQBI", 1, 1_700_000_000_000_000, 1, 1) + op
    header = b"PFW1" + struct.pack("<IQII", len(payload), 1, 1, ref_crc32c(payload))
    expected = header + struct.pack("<I", ref_crc32c(header)) + payload
    assert raw[: blocks[0]["length"]] == expected


def test_golden_encode_and_decode(backend: ModuleType) -> None:
    raw, blocks = load_golden()
    for b in blocks:
        chunk = raw[b["offset"] : b["offset"] + b["length"]]
        assert backend.encode_block(b["mutations"]) == chunk
        assert backend.decode_block(chunk) == b["mutations"]
        assert backend.mutation_writes(b["mutations"]) == b["writes"]


def test_golden_scans_as_a_log_file(backend: ModuleType, tmp_path: Path) -> None:
    raw, blocks = load_golden()
    path = tmp_path / "log.1.0"
    path.write_bytes(raw)
    mutations, end, torn = backend.scan_log_file(path)
    assert mutations == [m for b in blocks for m in b["mutations"]]
    assert (end, torn) == (len(raw), False)


def test_golden_generator_is_deterministic(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT)
    subprocess.run([sys.executable, str(DATA / "make_golden.py"), str(tmp_path)], check=True, env=env)
    assert (tmp_path / "wal_golden.bin").read_bytes() == (DATA / "wal_golden.bin").read_bytes()
    assert (tmp_path / "wal_golden.json").read_bytes() == (DATA / "wal_golden.json").read_bytes()


# -- cross-backend log directories ----------------------------------------------------------


def _write_log_dir(encoder: ModuleType, path: Path) -> list:
    """Three files (numbered 9, 10, 11 so numeric order differs from text order)."""
    path.mkdir()
    mutations = []
    offset = 0
    decree = 1
    for index, n_blocks in ((9, 3), (10, 2), (11, 4)):
        data = bytearray()
        for _ in range(n_blocks):
            block = [
                (decree, 1_000_000 + decree, 2, [(PUT, b"h%d" % decree, b"s", b"v" * decree, 0)]),
                (decree + 1, 1_000_001 + decree, 2, [(DELETE, b"h%d" % decree, b"s"), (EMPTY,)]),
            ]
            data += encoder.encode_block(block)
            mutations += block
            decree += 2
        (path / f"log.{index}.{offset}").write_bytes(data)
        offset += len(data)
    return mutations


@pytest.mark.parametrize("writer", BACKENDS)
@pytest.mark.parametrize("reader", BACKENDS)
def test_log_dir_cross_backend(writer: str, reader: str, tmp_path: Path) -> None:
    w, r = load_backend(writer), load_backend(reader)
    wal = tmp_path / "wal"
    mutations = _write_log_dir(w, wal)
    scanned, infos = r.scan_log_dir(wal)
    assert scanned == mutations
    assert [i[0] for i in infos] == sorted(
        (p.name for p in wal.iterdir()), key=lambda n: int(n.split(".")[1])
    )
    assert r.scan_log_dir(wal, 7) == ([m for m in mutations if m[0] >= 7], infos)
    for info in infos:
        file_mutations, end, torn = r.scan_log_file(wal / info[0])
        assert (info[1], info[2], info[3], info[4]) == (file_mutations[0][0], file_mutations[-1][0], end, end)
        assert not torn
    batches, infos2 = r.replay_log_dir(wal, 4, 3)
    assert infos2 == infos
    tail = [m for m in mutations if m[0] >= 4]
    assert [b[0] for b in batches] == [tail[i : i + 3][-1][0] for i in range(0, len(tail), 3)]
    assert [b[1] for b in batches] == [
        sorted(dict(w.mutation_writes(tail[i : i + 3])).items()) for i in range(0, len(tail), 3)
    ]


# -- bad input: typed errors on both backends ---------------------------------------------

_ARG, _TYPE = pf.InvalidArgumentError, pf.InvalidTypeError


@pytest.mark.parametrize(
    ("call", "args", "error"),
    [
        ("encode_block", ([],), _ARG),  # no mutation
        ("encode_block", ([(1, 0, 128, [])],), _ARG),  # cluster_id over 127
        ("encode_block", ([(1, 0, 0, [(PUT, b"x" * 65536, b"s", b"v", 0)])],), _ARG),
        ("encode_block", ([(1, 0, 0, [(99,)])],), _ARG),  # unknown op kind
        ("encode_block", ([(1, 0, 0, [(-1,)])],), _ARG),
        ("encode_block", ([(1, 0, 0, [("put", b"h", b"s", b"v", 0)])],), _TYPE),
        ("encode_block", ([(1, 0, 0, [()])],), _ARG),  # empty op
        ("encode_block", ([(1, 0, 0, [7])],), _TYPE),  # op not a tuple
        ("encode_block", ([(1, 0, 0, [(PUT, b"h", b"s", b"v")])],), _ARG),  # a field short
        ("encode_block", ([(1, 0, 0, [(DELETE, b"h", b"s", b"x")])],), _ARG),  # a field over
        ("encode_block", ([(1, 0, 0, [(EMPTY, b"x")])],), _ARG),
        ("encode_block", ([(1, 0, 0, [(PUT, "h", b"s", b"v", 0)])],), _TYPE),  # str key
        ("encode_block", ([(1, 0, 0, [(PUT, b"h", b"s", b"v", -1)])],), _ARG),  # expire_ts < 0
        ("encode_block", ([(1, 0, 0, [(PUT, b"h", b"s", b"v", 1 << 32)])],), _ARG),
        ("encode_block", ([(1, 0, 0, [(PUT, b"h", b"s", b"v", "0")])],), _TYPE),
        ("encode_block", ([(1, 0, 0, [(MULTI_PUT, b"h", [(b"a",)], 0)])],), _ARG),  # a pair short
        ("encode_block", ([(1, 0, 0, [(MULTI_PUT, b"h", [(b"a", 1)], 0)])],), _TYPE),
        ("encode_block", ([(1, 0, 0, [(MULTI_PUT, b"h", 5, 0)])],), _TYPE),
        ("encode_block", ([(1, 0, 0, [(MULTI_DELETE, b"h", [None])])],), _TYPE),
        ("encode_block", ([(1, 0, 0, [(SOURCE_DECREE, 1 << 64)])],), _ARG),
        ("encode_block", ([(1, 0, 0)],), _ARG),  # mutation of 3 fields
        ("encode_block", ([(-1, 0, 0, [])],), _ARG),  # negative decree
        ("encode_block", ([("1", 0, 0, [])],), _TYPE),
        ("encode_block", ([(1, 0, 0, None)],), _TYPE),  # ops not a list
        ("encode_block", ("not a list",), _TYPE),
        ("mutation_writes", ([(1, 0, 0, [(99,)])],), _ARG),
        ("mutation_writes", ([(1, 0, 0, [(PUT, 1, b"s", b"v", 0)])],), _TYPE),
        ("mutation_writes", ([(1, 0, 0, [(RAW_PUT, b"k")])],), _ARG),
        ("mutation_writes", ([(1, 1 << 56, 0, [(PUT, b"h", b"s", b"v", 0)])],), _ARG),
        ("decode_block", ("PFW1",), _TYPE),
        ("partition_index", (b"k", 0), _ARG),
        ("partition_index", (b"k", -3), _ARG),
        ("partition_index", (b"k", "8"), _TYPE),
        ("partition_index", ("k", 8), _TYPE),
        ("crc32c", ("abc",), _TYPE),
        ("crc32c", (b"abc", -1), _ARG),
        ("crc32c", (b"abc", 1 << 32), _ARG),
        ("crc64", (b"abc", "0"), _TYPE),
    ],
)
def test_bad_input_raises_typed_errors(backend: ModuleType, call: str, args: tuple, error: type) -> None:
    with pytest.raises(error):
        getattr(backend, call)(*args)


def test_bad_scan_arguments_raise_typed_errors(backend: ModuleType, tmp_path: Path) -> None:
    log = tmp_path / "log.1.0"
    log.write_bytes(backend.encode_block([(1, 0, 0, [(EMPTY,)])]))
    with pytest.raises(_ARG):
        backend.scan_log_file(str(log), 10_000)  # offset past the end
    with pytest.raises(_ARG):
        backend.scan_log_file(str(log), -1)
    with pytest.raises(_TYPE):
        backend.scan_log_file(str(log), "0")
    with pytest.raises(_ARG):
        backend.scan_log_dir(str(tmp_path), -1)
    for replay, target in ((backend.replay_log_dir, tmp_path), (backend.replay_log_file, log)):
        with pytest.raises(_ARG):
            replay(str(target), 0, 0)
        with pytest.raises(_ARG):
            replay(str(target), 0, -5)
        with pytest.raises(_TYPE):
            replay(str(target), 0, "4096")
    with pytest.raises(_ARG):
        backend.CheckpointReceiver(str(tmp_path), [("log.1.0", 1)])
    with pytest.raises(_ARG):
        backend.CheckpointReceiver(str(tmp_path), [("log.1.0", -1, "0" * 64)])


def _reseal(block: bytearray) -> bytes:
    struct.pack_into("<I", block, 20, ref_crc32c(bytes(block[28:])))
    struct.pack_into("<I", block, 24, ref_crc32c(bytes(block[:24])))
    return bytes(block)


def test_decode_takes_only_blocks_an_encoder_writes(backend: ModuleType, tmp_path: Path) -> None:
    """Found by fuzz/decode_block: checksummed blocks no writer makes used to decode."""
    block = backend.encode_block([(7, 5, 3, [(PUT, b"h", b"s", b"v", 0)]), (8, 6, 3, [])])
    other_first = bytearray(block)
    struct.pack_into("<Q", other_first, 8, 8)  # header first_decree is not the first mutation's
    big_cluster = bytearray(block)
    big_cluster[28 + 16] = 128  # cluster_id would spill into the timetag's timestamp bits
    no_mutation = bytearray(block[:28])
    struct.pack_into("<I", no_mutation, 4, 0)
    struct.pack_into("<I", no_mutation, 16, 0)
    for bad in (other_first, big_cluster, no_mutation):
        data = _reseal(bad)
        with pytest.raises(pf.WalCorruptionError) as ei:
            backend.decode_block(data)
        assert (ei.value.path, ei.value.offset) == ("<buffer>", 0)
        log = tmp_path / "log.1.0"
        log.write_bytes(block + data + block)
        with pytest.raises(pf.WalCorruptionError) as ei:
            backend.scan_log_file(str(log))
        assert ei.value.offset == len(block)
