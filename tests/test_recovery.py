"""Recovery at open: unflushed writes replayed from our WAL, torn tails cut, corruption refused."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pegasus_fast as pf
import pytest
from conftest import PYTHON, child_env

OpenCluster = Callable[..., pf.Cluster]

# Runs a list of operations, then dies without closing anything: RocksDB runs with
# its own WAL off, so its memtable is lost and only our WAL holds the writes.
CHILD = """
import json, os, sys
import pegasus_fast as pf
assert pf.backend() == sys.argv[2], pf.backend()
c = pf.Cluster.open(sys.argv[1])
for op in json.loads(sys.argv[3]):
    kind, args = op[0], op[1:]
    if kind == "create":
        c.create_table(args[0], partition_count=args[1])
    else:
        getattr(c.table(args[0]), kind)(*args[1:])
sys.stdout.flush()
os._exit(0)
"""


def run_child(backend_name: str, path: Path, ops: list[list[Any]]) -> None:
    out = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [PYTHON, "-c", CHILD, str(path), backend_name, json.dumps(ops)],
        env=child_env(backend_name),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr


def model(ops: list[list[Any]]) -> dict[str, dict[tuple[bytes, bytes], bytes]]:
    tables: dict[str, dict[tuple[bytes, bytes], bytes]] = {}
    for op in ops:
        kind = op[0]
        if kind == "create":
            tables[op[1]] = {}
            continue
        t, hk = tables[op[1]], op[2].encode()
        if kind == "set":
            t[(hk, op[3].encode())] = op[4].encode()
        elif kind == "delete":
            t.pop((hk, op[3].encode()), None)
        elif kind == "multi_set":
            t.update({(hk, sk.encode()): v.encode() for sk, v in op[3].items()})
        elif kind == "multi_delete":
            for sk in op[3]:
                t.pop((hk, sk.encode()), None)
    return tables


def contents(table: pf.Table) -> dict[tuple[bytes, bytes], bytes]:
    return {(hk, sk): v for hk, sk, v in table.scan()}


def block_starts(data: bytes) -> list[int]:
    starts, pos = [], 0
    while pos < len(data):
        starts.append(pos)
        pos += 28 + struct.unpack_from("<I", data, pos + 4)[0]
    assert pos == len(data)
    return starts


def wal_snapshot(root: Path) -> dict[str, bytes]:
    """Every WAL file below root (RocksDB's own files change whenever it opens)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob("tables/*/wal/*"))}


def test_unflushed_writes_are_replayed(
    backend_name: str, open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    ops: list[list[Any]] = [["create", "t", 4], ["create", "u", 1]]
    for i in range(30):
        ops.append(["set", "t", f"h{i}", "s", f"v{i}"])
    ops += [
        ["multi_set", "t", "m", {"a": "1", "b": "2", "c": "3"}],
        ["delete", "t", "h3", "s"],
        ["multi_delete", "t", "m", ["b"]],
        ["set", "t", "h4", "s", "overwritten"],
        ["set", "u", "", "sort-only", "x"],
    ]
    run_child(backend_name, cluster_dir, ops)
    expected = model(ops)
    c = open_cluster(cluster_dir)
    t, u = c.table("t"), c.table("u")
    stats = t.partition_stats()
    # nothing reached SST files: everything below came back from the WAL
    assert all(s.last_flushed_decree == 0 for s in stats + u.partition_stats())
    assert sum(s.last_committed_decree for s in stats) == len(
        [o for o in ops if o[0] != "create" and o[1] == "t"]
    )
    assert contents(t) == expected["t"]
    assert contents(u) == expected["u"]
    # decrees go on from the replayed ones
    p = t.partition_index(b"new")
    assert t.set(b"new", b"s", b"v") == stats[p].last_committed_decree + 1
    c.close()
    c = open_cluster(cluster_dir)
    expected["t"][(b"new", b"s")] = b"v"
    assert contents(c.table("t")) == expected["t"]


N_WRITES = 5


@pytest.fixture(scope="module")
def unflushed_template(backend: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cluster left by a killed writer: table "a" (clean) and "t", one partition each."""
    from pegasus_fast import _backend

    path = tmp_path_factory.mktemp(f"template-{_backend.name}") / "cluster"
    ops: list[list[Any]] = [["create", "a", 1], ["create", "t", 1], ["set", "a", "x", "y", "z"]]
    ops += [["set", "t", f"k{i}", "s", f"v{i}"] for i in range(N_WRITES)]
    run_child(_backend.name, path, ops)
    return path


def _wal_file(cluster: Path, app_id: int = 2) -> Path:
    (f,) = (cluster / "tables" / f"{app_id}.0" / "wal").iterdir()
    return f


def test_torn_tail_at_every_byte_of_the_last_record(
    backend: ModuleType, unflushed_template: Path, tmp_path: Path
) -> None:
    data = _wal_file(unflushed_template).read_bytes()
    starts = block_starts(data)
    assert len(starts) == N_WRITES
    last = starts[-1]
    expected = {(b"k%d" % i, b"s"): b"v%d" % i for i in range(N_WRITES - 1)}
    for cut in range(last + 1, len(data)):
        work = tmp_path / f"cut{cut}"
        shutil.copytree(unflushed_template, work)
        wal = _wal_file(work)
        with open(wal, "r+b") as f:
            f.truncate(cut)
        c = pf.Cluster.open(work)
        try:
            t = c.table("t")
            assert contents(t) == expected, cut
            assert t.partition_stats()[0].last_committed_decree == N_WRITES - 1, cut
            assert wal.stat().st_size == last, cut  # the torn block is cut off
            assert t.set(b"after", b"s", b"crash") == N_WRITES
            mutations, infos = backend.scan_log_dir(wal.parent)
            assert [m[0] for m in mutations] == list(range(1, N_WRITES + 1)), cut
            assert infos[-1][3] == infos[-1][4], cut  # no torn tail any more
            assert c.table("a").get(b"x", b"y") == b"z"
        finally:
            c.close()
        shutil.rmtree(work)


def test_zero_filled_tail_recovers(
    unflushed_template: Path, tmp_path: Path, open_cluster: OpenCluster
) -> None:
    work = tmp_path / "c"
    shutil.copytree(unflushed_template, work)
    wal = _wal_file(work)
    size = wal.stat().st_size
    with open(wal, "ab") as f:
        f.write(b"\x00" * 4096)
    t = open_cluster(work).table("t")
    assert len(contents(t)) == N_WRITES
    assert wal.stat().st_size == size


@pytest.mark.parametrize("where", ["payload", "header"])
def test_flipped_bit_before_the_tail_refuses_to_open(
    unflushed_template: Path, tmp_path: Path, open_cluster: OpenCluster, where: str
) -> None:
    work = tmp_path / "c"
    shutil.copytree(unflushed_template, work)
    wal = _wal_file(work)
    original = wal.read_bytes()
    starts = block_starts(original)
    bad = bytearray(original)
    bad[starts[2] + (40 if where == "payload" else 9)] ^= 0x04
    wal.write_bytes(bytes(bad))
    before = wal_snapshot(work)
    assert len(before) == 2
    with pytest.raises(pf.WalCorruptionError) as ei:
        pf.Cluster.open(work)
    assert Path(ei.value.path).resolve() == wal.resolve()
    assert ei.value.offset == starts[2]
    del ei
    assert wal_snapshot(work) == before  # nothing truncated or rewritten
    # repaired, the same process can open it: the failed open released everything
    wal.write_bytes(original)
    c = open_cluster(work)
    assert len(contents(c.table("t"))) == N_WRITES
    assert c.table("a").get(b"x", b"y") == b"z"


def test_failed_open_releases_partitions_while_the_error_is_held(
    unflushed_template: Path, tmp_path: Path, open_cluster: OpenCluster
) -> None:
    # A caller that keeps the exception (to log or re-raise it later) keeps its
    # traceback alive; partitions opened before the failure must be closed by the
    # failed open itself, not by the garbage collector.
    work = tmp_path / "c"
    shutil.copytree(unflushed_template, work)
    wal = _wal_file(work)
    original = wal.read_bytes()
    bad = bytearray(original)
    bad[block_starts(original)[1] + 40] ^= 0x04
    wal.write_bytes(bytes(bad))
    try:
        pf.Cluster.open(work)
    except pf.WalCorruptionError as exc:
        held = exc
    else:
        pytest.fail("a corrupt WAL opened")
    wal.write_bytes(original)
    c = open_cluster(work)
    assert c.table("a").get(b"x", b"y") == b"z"
    assert len(contents(c.table("t"))) == N_WRITES
    assert held.offset == block_starts(original)[1]


def test_wal_written_by_the_other_backend_replays(
    backend_name: str, other_backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    writer = "python" if backend_name == "rust" else "rust"
    ops: list[list[Any]] = [["create", "t", 2]]
    ops += [["set", "t", f"h{i}", "s", f"v{i}"] for i in range(10)]
    ops += [
        ["multi_set", "t", "m", {"a": "1", "b": "2"}],
        ["multi_delete", "t", "m", ["a"]],
        ["delete", "t", "h1", "s"],
    ]
    run_child(writer, cluster_dir, ops)
    t = open_cluster(cluster_dir).table("t")
    assert all(s.last_flushed_decree == 0 for s in t.partition_stats())
    assert contents(t) == model(ops)["t"]
