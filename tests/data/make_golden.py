"""Regenerate the WAL golden vectors with the pure-Python twin.

    PYTHONPATH=python python tests/data/make_golden.py [out_dir]

Writes ``wal_golden.bin`` (the blocks back to back, as a log file) and
``wal_golden.json`` (for each block: its offset, length, the mutations it holds
with byte strings in hex, and the RocksDB writes ``mutation_writes`` makes of
them). Deterministic: running it again yields the same bytes.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from pegasus_fast import _pure

PUT, DELETE, MULTI_PUT, MULTI_DELETE, EMPTY, RAW_PUT, SOURCE_DECREE = range(7)
TS = 1_700_000_000_000_000  # 2023-11-14, microseconds

BLOCKS: list[list[tuple[int, int, int, list[tuple[Any, ...]]]]] = [
    # one mutation, one op of each kind that touches user records
    [(1, TS, 1, [(PUT, b"user:1", b"name", b"alice", 0)])],
    [(2, TS + 1, 1, [(DELETE, b"user:1", b"name")])],
    [(3, TS + 2, 2, [(MULTI_PUT, b"user:2", [(b"a", b"1"), (b"b", b""), (b"", b"empty sort key")], 258)])],
    [(4, TS + 3, 2, [(MULTI_DELETE, b"user:2", [b"a", b"b"])])],
    [(5, TS + 4, 3, [(EMPTY,)])],
    [(6, TS + 5, 3, [(RAW_PUT, b"\x00\x01hs", b"\x00\x00\x00\x00" + b"\x00" * 8 + b"raw")])],
    [(7, TS + 6, 127, [(SOURCE_DECREE, 0x0102030405060708)])],
    # several mutations in one block, several ops in one mutation, edge values
    [
        (8, TS + 7, 0, [(PUT, b"", b"sort-only", b"\xff\x00\xfe", 0xFFFFFFFF), (DELETE, b"x" * 300, b"")]),
        (9, TS + 8, 5, []),
        (10, TS + 9, 6, [(MULTI_PUT, "é".encode(), [(b"k" * 256, b"v" * 1000)], 0), (EMPTY,)]),
        (
            11,
            (1 << 56) - 1,
            127,
            [(MULTI_DELETE, b"h", []), (MULTI_PUT, b"h", [], 7), (SOURCE_DECREE, 0), (RAW_PUT, b"", b"")],
        ),
    ],
    # a decree gap is the log's business, not the codec's; the largest decree
    [(0xFFFFFFFFFFFFFFFF, 0, 0, [(PUT, b"\x00", b"\x00", b"\x00", 1)])],
]


def op_to_json(op: tuple[Any, ...]) -> dict[str, Any]:
    kind = op[0]
    if kind == PUT:
        return {
            "type": kind,
            "hash_key": op[1].hex(),
            "sort_key": op[2].hex(),
            "value": op[3].hex(),
            "expire_ts": op[4],
        }
    if kind == DELETE:
        return {"type": kind, "hash_key": op[1].hex(), "sort_key": op[2].hex()}
    if kind == MULTI_PUT:
        return {
            "type": kind,
            "hash_key": op[1].hex(),
            "pairs": [[s.hex(), v.hex()] for s, v in op[2]],
            "expire_ts": op[3],
        }
    if kind == MULTI_DELETE:
        return {"type": kind, "hash_key": op[1].hex(), "sort_keys": [s.hex() for s in op[2]]}
    if kind == EMPTY:
        return {"type": kind}
    if kind == RAW_PUT:
        return {"type": kind, "key": op[1].hex(), "value": op[2].hex()}
    if kind == SOURCE_DECREE:
        return {"type": kind, "decree": op[1]}
    raise ValueError(kind)


def mutation_to_json(m: tuple[int, int, int, list[tuple[Any, ...]]]) -> dict[str, Any]:
    decree, ts, cluster_id, ops = m
    return {
        "decree": decree,
        "timestamp_us": ts,
        "cluster_id": cluster_id,
        "ops": [op_to_json(o) for o in ops],
    }


def main(out_dir: str) -> None:
    data = bytearray()
    blocks = []
    for mutations in BLOCKS:
        block = _pure.encode_block(mutations)
        writes = _pure.mutation_writes(mutations)
        blocks.append(
            {
                "offset": len(data),
                "length": len(block),
                "mutations": [mutation_to_json(m) for m in mutations],
                "writes": [[k.hex(), None if v is None else v.hex()] for k, v in writes],
            }
        )
        data += block
    with open(os.path.join(out_dir, "wal_golden.bin"), "wb") as f:
        f.write(data)
    with open(os.path.join(out_dir, "wal_golden.json"), "w", encoding="utf-8") as f:
        json.dump({"format": "docs/wal-format.md", "blocks": blocks}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
