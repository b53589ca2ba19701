"""The embedded store API on both backends: tables, records, TTL, errors, checkpoints, WAL GC."""

from __future__ import annotations

import itertools
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
from conftest import PYTHON, child_env
from pegasus_fast import fileio
from pegasus_fast.engine.scheduler import Lane
from pegasus_fast.records import MAX_VALUE

OpenCluster = Callable[..., pf.Cluster]


def contents(table: pf.Table) -> dict[tuple[bytes, bytes], bytes]:
    return {(hk, sk): v for hk, sk, v in table.scan()}


def decrees(table: pf.Table) -> list[int]:
    return [s.last_committed_decree for s in table.partition_stats()]


def partition_dirs(cluster: pf.Cluster, table: pf.Table) -> list[Path]:
    return [Path(cluster.path) / "tables" / f"{table.app_id}.{i}" for i in range(table.partition_count)]


# -- tables ----------------------------------------------------------------------------------


def test_backend_in_use(backend: ModuleType, backend_name: str) -> None:
    assert pf.backend() == backend_name


def test_tables_lifecycle(open_cluster: OpenCluster, cluster_dir: Path) -> None:
    c = open_cluster(cluster_dir, name="src")
    assert c.name == "src"
    assert c.list_tables() == []
    t1 = c.create_table("t1", partition_count=4)
    t2 = c.create_table("t2", partition_count=1)
    assert (t1.partition_count, t2.partition_count) == (4, 1)
    assert c.table("t1") is t1
    infos = c.list_tables()
    assert [(i.name, i.app_id, i.partition_count, i.status) for i in infos] == [
        ("t1", t1.app_id, 4, "AVAILABLE"),
        ("t2", t2.app_id, 1, "AVAILABLE"),
    ]
    assert t1.app_id != t2.app_id
    with pytest.raises(pf.TableExistsError) as ei:
        c.create_table("t1", partition_count=2)
    assert ei.value.name == "t1"
    assert c.table("t1").partition_count == 4
    t1.set(b"h", b"s", b"v")
    dirs = partition_dirs(c, t1)
    assert all(d.is_dir() for d in dirs)
    c.drop_table("t1")
    assert not any(d.exists() for d in dirs)
    assert [i.name for i in c.list_tables()] == ["t2"]
    for call in (lambda: c.table("t1"), lambda: c.drop_table("t1")):
        with pytest.raises(pf.TableNotFoundError) as ei2:
            call()
        assert ei2.value.name == "t1"
    with pytest.raises(pf.ClosedError):
        t1.get(b"h", b"s")
    t3 = c.create_table("t1", partition_count=2)
    assert t3.app_id not in (t1.app_id, t2.app_id)
    assert t3.get(b"h", b"s") is None
    assert t3.count() == 0


def test_table_not_found_is_a_key_error(open_cluster: OpenCluster, cluster_dir: Path) -> None:
    c = open_cluster(cluster_dir)
    with pytest.raises(KeyError):
        c.table("nope")


# -- records ---------------------------------------------------------------------------------


def test_set_get_delete(open_cluster: OpenCluster, cluster_dir: Path) -> None:
    t = open_cluster(cluster_dir).create_table("t", partition_count=4)
    d1 = t.set(b"h", b"s", b"v1")
    assert t.get(b"h", b"s") == b"v1"
    d2 = t.set(b"h", b"s", b"v2")
    assert d2 == d1 + 1
    assert t.get(b"h", b"s") == b"v2"
    assert t.get(b"h", b"other") is None
    assert t.get(b"other", b"s") is None
    t.delete(b"h", b"s")
    assert t.get(b"h", b"s") is None
    t.delete(b"h", b"never-set")  # deleting what is absent is fine
    assert t.count() == 0


def test_str_and_bytes_keys_are_the_same_record(open_cluster: OpenCluster, cluster_dir: Path) -> None:
    t = open_cluster(cluster_dir).create_table("t", partition_count=4)
    t.set("héllo", "wörld", "välue")
    assert t.get("héllo".encode(), "wörld".encode()) == "välue".encode()
    assert t.get("héllo", "wörld") == "välue".encode()
    t.set(bytearray(b"ba"), memoryview(b"mv"), bytearray(b"x"))
    assert t.get(b"ba", b"mv") == b"x"
    t.delete("héllo", "wörld")
    assert t.get(b"h\xc3\xa9llo", b"w\xc3\xb6rld") is None


def test_empty_keys_and_values(open_cluster: OpenCluster, cluster_dir: Path) -> None:
    t = open_cluster(cluster_dir).create_table("t", partition_count=8)
    t.set(b"", b"only-sort", b"a")
    t.set(b"h", b"", b"b")
    t.set(b"h", b"e", b"")
    assert t.get(b"", b"only-sort") == b"a"
    assert t.get(b"h", b"") == b"b"
    assert t.get(b"h", b"e") == b""
    assert t.partition_index(b"", b"only-sort") == t.partition_index(b"only-sort")
    assert contents(t) == {(b"", b"only-sort"): b"a", (b"h", b""): b"b", (b"h", b"e"): b""}


def test_binary_keys_with_prefix_relations(open_cluster: OpenCluster, cluster_dir: Path) -> None:
    t = open_cluster(cluster_dir).create_table("t", partition_count=1)
    # hash keys that are prefixes of each other must not leak into one another's multi_get
    t.multi_set(b"a", {b"1": b"x"})
    t.multi_set(b"ab", {b"2": b"y"})
    t.multi_set(b"a\x00", {b"3": b"z"})
    assert t.multi_get(b"a") == {b"1": b"x"}
    assert t.multi_get(b"ab") == {b"2": b"y"}
    assert t.multi_get(b"a\x00") == {b"3": b"z"}


def test_multi_ops(open_cluster: OpenCluster, cluster_dir: Path) -> None:
    t = open_cluster(cluster_dir).create_table("t", partition_count=4)
    t.multi_set(b"h", {b"a": b"1", b"b": b"2", "c": "3"})
    t.set(b"other", b"a", b"x")
    assert t.multi_get(b"h") == {b"a": b"1", b"b": b"2", b"c": b"3"}
    assert t.multi_get(b"h", [b"a", "c", b"missing"]) == {b"a": b"1", b"c": b"3"}
    assert t.multi_get(b"h", []) == {}
    assert t.multi_get(b"nobody") == {}
    t.multi_delete(b"h", [b"a", "b", b"missing"])
    assert t.multi_get(b"h") == {b"c": b"3"}
    assert t.get(b"other", b"a") == b"x"
    # one multi_set is one mutation: one decree
    before = decrees(t)
    t.multi_set(b"h", {str(i): str(i) for i in range(10)})
    after = decrees(t)
    assert sum(after) - sum(before) == 1


def test_scan_count_and_partition_routing(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    t = open_cluster(cluster_dir).create_table("t", partition_count=8)
    expected = {}
    for i in range(60):
        hk, sk, v = b"user%d" % i, b"s%d" % (i % 3), b"v%d" % i
        before = decrees(t)
        decree = t.set(hk, sk, v)
        pidx = t.partition_index(hk, sk)
        assert pidx == backend.partition_index(hk, 8, sk)
        after = decrees(t)
        assert [a - b for a, b in zip(after, before)] == [int(p == pidx) for p in range(8)]
        assert after[pidx] == decree
        expected[(hk, sk)] = v
    assert contents(t) == expected
    assert t.count() == 60
    assert sum(decrees(t)) == 60
    # within a partition, scan is in key order
    records = list(t.scan())
    for p in range(8):
        keys = [(hk, sk) for hk, sk, _ in records if t.partition_index(hk) == p]
        encoded = [len(hk).to_bytes(2, "big") + hk + sk for hk, sk in keys]
        assert encoded == sorted(encoded)


def test_partition_stats(open_cluster: OpenCluster, cluster_dir: Path) -> None:
    t = open_cluster(cluster_dir).create_table("t", partition_count=2)
    stats = t.partition_stats()
    assert [s.pidx for s in stats] == [0, 1]
    assert all(s.state == "serving" for s in stats)
    assert all(s.last_committed_decree == 0 and s.last_durable_decree == 0 for s in stats)
    t.set(b"k", b"s", b"v" * 100)
    s = t.partition_stats()[t.partition_index(b"k")]
    assert s.last_committed_decree == s.last_applied_decree == 1
    assert s.last_flushed_decree == 0
    assert s.wal_bytes > 100


def test_ttl_expiry(open_cluster: OpenCluster, cluster_dir: Path) -> None:
    t = open_cluster(cluster_dir).create_table("t", partition_count=2)
    deadline = time.monotonic() + 2.1  # 1 s, and the second the TTLs were set in
    second = int(time.time())
    t.set(b"h", b"short", b"v", ttl_seconds=1)
    t.set(b"h", b"long", b"v", ttl_seconds=3600)
    t.set(b"h", b"forever", b"v")
    t.multi_set(b"m", {b"a": b"1"}, ttl_seconds=1)
    seen = (t.get(b"h", b"short"), t.multi_get(b"m"))
    if int(time.time()) == second:
        # expire_ts has one-second resolution: a 1 s TTL is only sure to be live within its second
        assert seen == (b"v", {b"a": b"1"})
    # gone by the deadline (polled: the test goes on as soon as they are)
    while t.get(b"h", b"short") is not None or t.multi_get(b"m") != {}:
        assert time.monotonic() < deadline, "a 1 s TTL still live after 2.1 s"
        time.sleep(0.05)
    assert t.get(b"h", b"long") == b"v"
    assert t.get(b"h", b"forever") == b"v"
    assert t.multi_get(b"h") == {b"long": b"v", b"forever": b"v"}
    assert contents(t) == {(b"h", b"long"): b"v", (b"h", b"forever"): b"v"}
    assert t.count() == 2
    # a new write over an expired record brings it back
    t.set(b"h", b"short", b"again")
    assert t.get(b"h", b"short") == b"again"


def test_ttl_zero_means_no_ttl(open_cluster: OpenCluster, cluster_dir: Path) -> None:
    # Pegasus's client stores expire_ts 0 for ttl_seconds=0: the record never expires
    t = open_cluster(cluster_dir).create_table("t", partition_count=2)
    t.set(b"h", b"s", b"v", ttl_seconds=0)
    t.multi_set(b"m", {b"a": b"1", b"b": b"2"}, ttl_seconds=0)
    for hk, sk in ((b"h", b"s"), (b"m", b"a"), (b"m", b"b")):
        raw = t.partition_of(hk).get_raw(b"%c%c%s%s" % (0, len(hk), hk, sk))
        assert raw is not None and raw[:4] == b"\0\0\0\0"
    assert contents(t) == {(b"h", b"s"): b"v", (b"m", b"a"): b"1", (b"m", b"b"): b"2"}


def test_reopen_keeps_everything(open_cluster: OpenCluster, cluster_dir: Path) -> None:
    c = pf.Cluster.open(cluster_dir, name="keep")
    t = c.create_table("t", partition_count=4)
    c.create_table("empty", partition_count=3)
    for i in range(40):
        t.set(b"h%d" % i, b"s", b"v%d" % i)
    t.multi_set(b"multi", {b"a": b"1", b"b": b"2"})
    t.delete(b"h0", b"s")
    t.set(b"ttl", b"s", b"v", ttl_seconds=3600)
    before, before_decrees, infos = contents(t), decrees(t), c.list_tables()
    c.close()
    assert c.closed
    c2 = open_cluster(cluster_dir)
    assert c2.name == "keep"
    assert c2.list_tables() == infos
    t2 = c2.table("t")
    assert contents(t2) == before
    assert decrees(t2) == before_decrees
    assert c2.table("empty").count() == 0
    # decrees continue where they stopped
    p = t2.partition_index(b"new")
    assert t2.set(b"new", b"s", b"v") == before_decrees[p] + 1


@pytest.mark.parametrize("wal_sync", ["always", "group", "none"])
def test_wal_sync_modes(open_cluster: OpenCluster, tmp_path: Path, wal_sync: str) -> None:
    """Each mode syncs the WAL as it says: counted at the I/O layer, one writer, 10 writes."""
    config = pf.Config(wal_sync=wal_sync)
    with pf.Cluster.open(tmp_path / "c", config=config) as c:
        t = c.create_table("t", partition_count=1)
        t.set(b"first", b"s", b"v")  # the log file exists and is open from here on
        with fileio.faults() as counted:
            for i in range(10):
                t.set(b"h%d" % i, b"s", b"v")
        wal_syncs = sum(1 for op, path in counted.log if op in ("fsync", "fdatasync") and "/wal/" in path)
        if wal_sync == "always":
            assert wal_syncs >= 10  # one per acknowledged write
        elif wal_sync == "group":
            assert 1 <= wal_syncs <= 10  # a lone writer is its own group; never more than one each
        else:
            assert wal_syncs == 0  # written to the OS only
    t = open_cluster(tmp_path / "c", config=config).table("t")
    assert t.count() == 11


def test_group_commit_shares_syncs_between_writers(tmp_path: Path, backend: ModuleType) -> None:
    """Under group commit one fdatasync covers every writer waiting: with 8 threads writing
    to one partition, acknowledged writes outnumber the syncs that made them durable."""
    with pf.Cluster.open(tmp_path / "c", config=pf.Config(wal_sync="group")) as c:
        t = c.create_table("t", partition_count=1)
        t.set(b"first", b"s", b"v")
        per_thread, threads = 50, 8
        with fileio.faults() as counted:

            def writer(n: int) -> None:
                for i in range(per_thread):
                    t.set(b"w%d-%d" % (n, i), b"s", b"v" * 100)

            workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
        wal_syncs = sum(1 for op, path in counted.log if op in ("fsync", "fdatasync") and "/wal/" in path)
        assert 1 <= wal_syncs < per_thread * threads
        assert t.count() == 1 + per_thread * threads


# -- typed errors, and the data stays intact ---------------------------------------------------------


@pytest.fixture
def loaded(open_cluster: OpenCluster, cluster_dir: Path) -> tuple[pf.Cluster, pf.Table, Callable[[], None]]:
    """A cluster with data, and a check that the data and decrees are what they were."""
    c = open_cluster(cluster_dir)
    t = c.create_table("t", partition_count=4)
    for i in range(10):
        t.set(b"h%d" % i, b"s", b"v%d" % i)
    t.multi_set(b"m", {b"a": b"1"})
    snapshot, snap_decrees, snap_tables = contents(t), decrees(t), c.list_tables()

    def intact() -> None:
        assert contents(t) == snapshot
        assert decrees(t) == snap_decrees
        assert c.list_tables() == snap_tables

    return c, t, intact


BAD_TYPE_CALLS: list[tuple[str, Callable[[pf.Table], object]]] = [
    ("set int hash_key", lambda t: t.set(1, b"s", b"v")),
    ("set None sort_key", lambda t: t.set(b"h", None, b"v")),
    ("set int value", lambda t: t.set(b"h", b"s", 3)),
    ("set list value", lambda t: t.set(b"h", b"s", [b"v"])),
    ("set str ttl", lambda t: t.set(b"h", b"s", b"v", ttl_seconds="1")),
    ("set float ttl", lambda t: t.set(b"h", b"s", b"v", ttl_seconds=1.5)),
    ("get int sort_key", lambda t: t.get(b"h", 5)),
    ("delete float hash_key", lambda t: t.delete(1.0, b"s")),
    ("multi_set not a mapping", lambda t: t.multi_set(b"h", [(b"a", b"1")])),
    ("multi_set int value", lambda t: t.multi_set(b"h", {b"a": 1})),
    ("multi_set int sort_key", lambda t: t.multi_set(b"h", {1: b"v"})),
    ("multi_get one key", lambda t: t.multi_get(b"h", b"abc")),
    ("multi_delete one key", lambda t: t.multi_delete(b"h", "abc")),
    ("multi_delete int sort_key", lambda t: t.multi_delete(b"h", [1])),
    ("multi_delete None", lambda t: t.multi_delete(b"h", None)),
    ("multi_delete int", lambda t: t.multi_delete(b"h", 5)),
    ("multi_get int", lambda t: t.multi_get(b"h", 5)),
    ("multi_get bytearray", lambda t: t.multi_get(b"h", bytearray(b"ab"))),
]


@pytest.mark.parametrize("call", [c[1] for c in BAD_TYPE_CALLS], ids=[c[0] for c in BAD_TYPE_CALLS])
def test_invalid_types(loaded: tuple, call: Callable[[pf.Table], object]) -> None:
    _c, t, intact = loaded
    with pytest.raises(pf.InvalidTypeError):
        call(t)
    intact()


BAD_VALUE_CALLS: list[tuple[str, Callable[[pf.Table], object]]] = [
    ("hash_key 65536 bytes", lambda t: t.set(b"x" * 65536, b"s", b"v")),
    ("hash_key 65536 bytes multi_set", lambda t: t.multi_set(b"x" * 65536, {b"s": b"v"})),
    ("hash_key 65536 bytes get", lambda t: t.get(b"x" * 65536, b"s")),
    # Pegasus refuses 65535 bytes too (CHECK_LT(len, UINT16_MAX)), though the length field holds it
    ("hash_key 65535 bytes", lambda t: t.set(b"x" * 65535, b"s", b"v")),
    ("hash_key 65535 bytes str", lambda t: t.set("x" * 65535, b"s", b"v")),
    ("hash_key 65535 bytes multi_set", lambda t: t.multi_set(b"x" * 65535, {b"s": b"v"})),
    ("hash_key 65535 bytes delete", lambda t: t.delete(b"x" * 65535, b"s")),
    ("ttl negative", lambda t: t.set(b"h", b"s", b"v", ttl_seconds=-5)),
    ("ttl -1", lambda t: t.set(b"h", b"s", b"v", ttl_seconds=-1)),
    ("ttl negative multi_set", lambda t: t.multi_set(b"h", {b"s": b"v"}, ttl_seconds=-1)),
    ("ttl past u32", lambda t: t.set(b"h", b"s", b"v", ttl_seconds=1 << 32)),
    ("multi_set empty", lambda t: t.multi_set(b"h", {})),
    ("multi_set empty hash_key", lambda t: t.multi_set(b"", {b"a": b"1"})),
    ("multi_delete empty", lambda t: t.multi_delete(b"h", [])),
    ("multi_delete empty hash_key", lambda t: t.multi_delete(b"", [b"a"])),
    ("multi_get empty hash_key", lambda t: t.multi_get(b"")),
    ("surrogate hash_key", lambda t: t.set("\ud800", b"s", b"v")),
    ("surrogate sort_key get", lambda t: t.get(b"h", "\udcff")),
    ("surrogate value", lambda t: t.set(b"h", b"s", "x\ud800")),
    ("surrogate multi_set sort_key", lambda t: t.multi_set(b"h", {"\ud800": b"v"})),
    ("surrogate multi_delete sort_key", lambda t: t.multi_delete(b"h", ["\ud800"])),
    ("surrogate multi_get sort_key", lambda t: t.multi_get(b"h", ["\ud800"])),
    ("value over MAX_VALUE", lambda t: t.set(b"h", b"s", b"x" * (MAX_VALUE + 1))),
    ("str value over MAX_VALUE", lambda t: t.set("h", "s", "x" * (MAX_VALUE + 1))),
    ("sort_key over MAX_VALUE", lambda t: t.set(b"h", b"s" * (MAX_VALUE + 1), b"v")),
    ("delete sort_key over MAX_VALUE", lambda t: t.delete(b"h", b"s" * (MAX_VALUE + 1))),
    ("multi_set value over MAX_VALUE", lambda t: t.multi_set(b"h", {b"a": b"x" * (MAX_VALUE + 1)})),
    (
        "multi_set over MAX_WRITE",
        lambda t: t.multi_set(b"h", dict.fromkeys([b"a", b"b", b"c", b"d", b"e"], b"x" * MAX_VALUE)),
    ),
]


@pytest.mark.parametrize("call", [c[1] for c in BAD_VALUE_CALLS], ids=[c[0] for c in BAD_VALUE_CALLS])
def test_invalid_arguments(loaded: tuple, call: Callable[[pf.Table], object]) -> None:
    _c, t, intact = loaded
    with pytest.raises(pf.InvalidArgumentError):
        call(t)
    intact()


def test_longest_hash_key(loaded: tuple) -> None:
    _c, t, _intact = loaded
    hk = b"k" * 65534
    t.set(hk, b"s", b"v")
    t.multi_set(hk, {b"t": b"w"})
    assert t.get(hk, b"s") == b"v"
    assert t.multi_get(hk) == {b"s": b"v", b"t": b"w"}


@pytest.mark.parametrize(
    ("name", "count", "error"),
    [
        ("", 4, pf.InvalidArgumentError),
        (" padded ", 4, pf.InvalidArgumentError),
        ("a/b", 4, pf.InvalidArgumentError),
        ("ok", 0, pf.InvalidArgumentError),
        ("ok", 1025, pf.InvalidArgumentError),
        ("ok", -1, pf.InvalidArgumentError),
        ("ok", "8", pf.InvalidTypeError),
        ("ok", 2.0, pf.InvalidTypeError),
        ("ok", True, pf.InvalidTypeError),
        (b"ok", 4, pf.InvalidTypeError),
        (None, 4, pf.InvalidTypeError),
        ("\ud800", 4, pf.InvalidArgumentError),
    ],
)
def test_create_table_invalid(loaded: tuple, name: object, count: object, error: type) -> None:
    c, _t, intact = loaded
    with pytest.raises(error):
        c.create_table(name, partition_count=count)
    intact()
    assert not (Path(c.path) / "tables" / "2.0").exists()


@pytest.mark.parametrize(
    ("envs", "error"),
    [
        ([("a", "b")], pf.InvalidTypeError),
        ({"a": object()}, pf.InvalidTypeError),
        ({"a": 1}, pf.InvalidTypeError),
        ({1: "a"}, pf.InvalidTypeError),
        ({"a": b"b"}, pf.InvalidTypeError),
        ({"a": "\ud800"}, pf.InvalidArgumentError),
        ({"\udcff": "a"}, pf.InvalidArgumentError),
    ],
)
def test_create_table_invalid_envs(loaded: tuple, envs: object, error: type) -> None:
    c, _t, intact = loaded
    with pytest.raises(error):
        c.create_table("e", partition_count=1, envs=envs)
    intact()
    assert not (Path(c.path) / "tables" / "2.0").exists()
    assert c.create_table("e", partition_count=1, envs={"k": "v"}).app_id == 2
    assert c.table_info("e").envs == {"k": "v"}


def test_largest_value_is_stored(loaded: tuple) -> None:
    c, t, _intact = loaded
    big = bytes(range(256)) * (MAX_VALUE // 256)
    assert len(big) == MAX_VALUE
    t.set(b"big", b"s", big)
    assert t.get(b"big", b"s") == big


def test_closed_errors(loaded: tuple) -> None:
    c, t, _intact = loaded
    c.close()
    c.close()  # closing twice is fine
    assert c.closed
    calls: list[Callable[[], object]] = [
        lambda: t.set(b"h", b"s", b"v"),
        lambda: t.get(b"h0", b"s"),
        lambda: t.delete(b"h0", b"s"),
        lambda: t.multi_set(b"m", {b"a": b"2"}),
        lambda: t.multi_get(b"m"),
        lambda: t.multi_get(b"m", [b"a"]),
        lambda: t.multi_delete(b"m", [b"a"]),
        lambda: next(iter(t.scan())),
        lambda: t.count(),
        lambda: t.checkpoint(),
        lambda: t.partition_stats(),
        lambda: c.table("t"),
        lambda: c.create_table("new"),
        lambda: c.drop_table("t"),
        lambda: c.list_tables(),
    ]
    for call in calls:
        with pytest.raises(pf.ClosedError):
            call()


def test_closed_cluster_data_intact_after_reopen(loaded: tuple, open_cluster: OpenCluster) -> None:
    c, t, _intact = loaded
    expected = contents(t)
    c.close()
    with pytest.raises(pf.ClosedError):
        t.set(b"h0", b"s", b"changed")
    assert contents(open_cluster(c.path).table("t")) == expected


LOCK_CHILD = """
import sys
import pegasus_fast as pf
try:
    pf.Cluster.open(sys.argv[1])
except pf.ClusterLockedError as exc:
    print("locked", exc.path)
else:
    print("opened")
"""


def test_cluster_locked_by_another_process(
    backend_name: str, loaded: tuple, open_cluster: OpenCluster
) -> None:
    c, _t, intact = loaded
    out = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [PYTHON, "-c", LOCK_CHILD, c.path],
        env=child_env(backend_name),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["locked", c.path]
    intact()
    path = c.path
    c.close()
    out = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [PYTHON, "-c", LOCK_CHILD, path],
        env=child_env(backend_name),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.split() == ["opened"], out.stderr


def test_cluster_locked_in_the_same_process(loaded: tuple) -> None:
    c, _t, intact = loaded
    with pytest.raises(pf.ClusterLockedError) as ei:
        pf.Cluster.open(c.path)
    assert ei.value.path == c.path
    intact()


# -- configuration -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"wal_sync": "fsync"},
        {"wal_sync": ""},
        {"checkpoint_policy": "eager"},
        {"log_private_file_size_mb": 0},
        {"duplicate_log_batch_bytes": 0},
        {"background_workers": 0},
        {"checkpoint_reserve_min_count": -1},
        {"checkpoint_reserve_time_seconds": -1},
        {"checkpoint_interval_seconds": -0.5},
    ],
)
def test_config_validation(kwargs: dict) -> None:
    with pytest.raises(pf.InvalidArgumentError):
        pf.Config(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rocksdb_write_buffer_size": "64MB"},
        {"gc_interval_ms": True},
        {"small_partition_max_bytes": None},
        {"log_private_file_size_mb": 1.5},
    ],
)
def test_config_rejects_wrong_types(kwargs: dict) -> None:
    with pytest.raises(pf.InvalidTypeError):
        pf.Config(**kwargs)


def test_config_int_fields_reject_fractions() -> None:
    # a fractional file size or worker count cannot be honoured (``size_mb << 20`` fails at open)
    for field in ("log_private_file_size_mb", "background_workers", "checkpoint_reserve_min_count"):
        with pytest.raises((pf.InvalidArgumentError, pf.InvalidTypeError)):
            pf.Config(**{field: 1.5})


def test_config_defaults_and_fractional_float_fields() -> None:
    c = pf.Config(checkpoint_max_interval_hours=0.001, checkpoint_interval_seconds=0.5)
    assert c.to_dict()["checkpoint_max_interval_hours"] == 0.001
    d = pf.Config().to_dict()
    assert (d["wal_sync"], d["checkpoint_reserve_min_count"], d["checkpoint_reserve_time_seconds"]) == (
        "group",
        2,
        1800,
    )


def test_cluster_open_invalid(backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path) -> None:
    with pytest.raises(pf.InvalidTypeError):
        pf.Cluster.open(cluster_dir, config={"wal_sync": "none"})
    with pytest.raises(pf.InvalidArgumentError):
        pf.Cluster.open(cluster_dir, name="")
    for cid in (0, 128, -1):
        with pytest.raises(pf.InvalidArgumentError):
            pf.Cluster.open(cluster_dir, cluster_id=cid)
    # a failed open releases the directory
    c = open_cluster(cluster_dir, name="first", cluster_id=5)
    assert c.cluster_id == 5
    c.create_table("t", partition_count=1).set(b"h", b"s", b"v")
    c.close()
    with pytest.raises(pf.InvalidArgumentError):
        pf.Cluster.open(cluster_dir, name="second")
    c2 = open_cluster(cluster_dir, name="first")
    assert c2.cluster_id == 5
    assert c2.table("t").get(b"h", b"s") == b"v"


# -- checkpoints and WAL GC -----------------------------------------------------------------------------


def checkpoint_decrees(part_dir: Path) -> list[int]:
    return sorted(
        int(p.name.split(".")[1]) for p in part_dir.glob("checkpoint.*") if p.name.split(".")[1].isdigit()
    )


def test_checkpoint_dirs_match_last_committed(open_cluster: OpenCluster, cluster_dir: Path) -> None:
    c = open_cluster(cluster_dir)
    t = c.create_table("t", partition_count=3)
    for i in range(20):
        t.set(b"h%d" % i, b"s", b"v%d" % i)
    infos = t.checkpoint()
    stats = t.partition_stats()
    dirs = partition_dirs(c, t)
    assert [i.pidx for i in infos] == [0, 1, 2]
    for info, s, d in zip(infos, stats, dirs):
        assert info.decree == s.last_committed_decree
        assert s.last_durable_decree == s.last_flushed_decree == s.last_committed_decree
        assert Path(info.path) == d / f"checkpoint.{s.last_committed_decree}"
        assert Path(info.path).is_dir()
        assert info.size_bytes > 0 or s.last_committed_decree == 0
        assert checkpoint_decrees(d) == [s.last_committed_decree]
        assert not list(d.glob("checkpoint.tmp.*"))


def test_checkpoint_opens_as_the_data_it_names(tmp_path: Path, open_cluster: OpenCluster) -> None:
    import rocksdict

    c = open_cluster(tmp_path / "c")
    t = c.create_table("t", partition_count=1)
    t.set(b"h", b"s", b"before")
    (info,) = t.checkpoint()
    t.set(b"h", b"s", b"after")
    db = rocksdict.Rdict(
        info.path, rocksdict.Options(raw_mode=True), access_type=rocksdict.AccessType.read_only()
    )
    try:
        assert db.get(b"\x00") == info.decree.to_bytes(8, "little")
        assert db.get(b"\x00\x01hs")[12:] == b"before"
    finally:
        db.close()


def test_leftover_tmp_checkpoints_removed_at_open(cluster_dir: Path, open_cluster: OpenCluster) -> None:
    with pf.Cluster.open(cluster_dir) as c:
        t = c.create_table("t", partition_count=2)
        t.set(b"h", b"s", b"v")
        dirs = partition_dirs(c, t)
    leftovers = []
    for d in dirs:
        tmp = d / "checkpoint.tmp.12345.0"
        tmp.mkdir()
        (tmp / "000001.sst").write_bytes(b"partial")
        leftovers.append(tmp)
    t = open_cluster(cluster_dir).table("t")
    assert not any(p.exists() for p in leftovers)
    assert t.get(b"h", b"s") == b"v"


def test_checkpoint_gc_keeps_newest_when_reserve_time_is_zero(
    open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    config = pf.Config(checkpoint_reserve_min_count=2, checkpoint_reserve_time_seconds=0)
    c = open_cluster(cluster_dir, config=config)
    t = c.create_table("t", partition_count=1)
    (d,) = partition_dirs(c, t)
    made = []
    for i in range(4):
        t.set(b"h", b"s%d" % i, b"v")
        made.append(t.checkpoint()[0].decree)
    assert made == [1, 2, 3, 4]
    assert checkpoint_decrees(d) == [3, 4]
    assert t.partition_stats()[0].last_durable_decree == 4


def test_checkpoint_gc_keeps_young_checkpoints(open_cluster: OpenCluster, cluster_dir: Path) -> None:
    config = pf.Config(checkpoint_reserve_min_count=1, checkpoint_reserve_time_seconds=3600)
    c = open_cluster(cluster_dir, config=config)
    t = c.create_table("t", partition_count=1)
    (d,) = partition_dirs(c, t)
    for i in range(3):
        t.set(b"h", b"s%d" % i, b"v")
        t.checkpoint()
    assert checkpoint_decrees(d) == [1, 2, 3]


def test_checkpoint_of_unchanged_partition_is_reused(open_cluster: OpenCluster, cluster_dir: Path) -> None:
    c = open_cluster(cluster_dir)
    t = c.create_table("t", partition_count=1)
    t.set(b"h", b"s", b"v")
    first = t.checkpoint()[0]
    again = t.checkpoint()[0]
    assert (first.decree, first.path) == (again.decree, again.path)
    assert checkpoint_decrees(partition_dirs(c, t)[0]) == [1]


def wal_files(part_dir: Path) -> list[str]:
    return sorted((p.name for p in (part_dir / "wal").iterdir()), key=lambda n: int(n.split(".")[1]))


def test_wal_files_removed_only_when_flushed(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    config = pf.Config(log_private_file_size_mb=1)
    c = open_cluster(cluster_dir, config=config)
    t = c.create_table("t", partition_count=1)
    (d,) = partition_dirs(c, t)
    value = b"x" * (200 << 10)
    for i in range(16):  # ~3.2 MB: at least 4 files of at most 1 MB
        t.set(b"h", b"s%d" % i, value)
    names = wal_files(d)
    assert len(names) >= 4
    _m, infos = backend.scan_log_dir(d / "wal")
    assert [i[0] for i in infos] == names
    assert all(i[4] <= (1 << 20) for i in infos)
    assert infos[0][1] == 1 and infos[-1][2] == 16
    assert all(a[2] + 1 == b[1] for a, b in itertools.pairwise(infos))  # contiguous decrees
    # every file name's start offset is the sum of the sizes before it
    starts = [int(n.split(".")[2]) for n in names]
    assert starts == [sum(i[4] for i in infos[:k]) for k in range(len(infos))]
    assert t.partition_stats()[0].wal_bytes == sum(i[4] for i in infos)

    (info,) = t.checkpoint()
    assert info.decree == 16
    remaining = wal_files(d)
    assert remaining == names[-1:]  # everything flushed; the tail file stays
    for i in range(16, 24):
        t.set(b"h", b"s%d" % i, value)
    after = wal_files(d)
    assert after[0] == names[-1] and len(after) >= 2
    c.close()
    t = open_cluster(cluster_dir, config=config).table("t")
    assert t.count() == 24
    assert all(v == value for _h, _s, v in t.scan())
    assert t.partition_stats()[0].last_committed_decree == 24


def test_compaction_runs_in_the_low_lane_and_keeps_every_record(
    open_cluster: Callable[..., pf.Cluster], cluster_dir: Path
) -> None:
    c = open_cluster(cluster_dir)
    t = c.create_table("t", partition_count=2)
    for i in range(200):
        t.set(b"k%03d" % i, b"s", b"v1")
    for i in range(0, 200, 2):
        t.set(b"k%03d" % i, b"s", b"v2")  # overwritten: compaction drops the old versions
    t.checkpoint()
    before = sorted(t.scan())
    low_before = c.scheduler.started[Lane.LOW]
    c.compact("t").result(timeout=30)
    assert c.scheduler.started[Lane.LOW] == low_before + 1
    assert sorted(t.scan()) == before
    with pytest.raises(pf.TableNotFoundError):
        c.compact("missing")


def test_metadata_journal_torn_tail_recovers_and_damage_is_typed(
    open_cluster: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    path = tmp_path / "c"
    c = open_cluster(path)
    c.create_table("a", partition_count=1)
    c.create_table("b", partition_count=1)
    c.close()
    journal = path / "meta" / "journal"
    good = journal.read_bytes()
    # a crash mid-append leaves a torn last record: the previous state loads
    journal.write_bytes(good + b'0badc0de {"tables"')
    c = open_cluster(path)
    assert [t.name for t in c.list_tables()] == ["a", "b"]
    c.close()
    # damage before the last record is an error, never a silent rollback
    lines = good.split(b"\n")
    assert len(lines) >= 3
    lines[0] = lines[0][:10] + bytes([lines[0][10] ^ 1]) + lines[0][11:]
    journal.write_bytes(b"\n".join(lines))
    with pytest.raises(pf.MetaCorruptionError) as err:
        pf.Cluster.open(path)
    assert err.value.path == str(journal) and err.value.offset == 0


def test_user_checkpoints_run_in_the_high_lane(
    open_cluster: Callable[..., pf.Cluster], cluster_dir: Path
) -> None:
    c = open_cluster(cluster_dir)
    t = c.create_table("t", partition_count=2)
    t.set(b"a", b"b", b"c")
    high_before = c.scheduler.started[Lane.HIGH]
    infos = t.checkpoint()
    assert c.scheduler.started[Lane.HIGH] == high_before + 1
    assert sorted(i.decree for i in infos) == sorted(p.last_committed for p in t.partitions)
