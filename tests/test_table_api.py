"""The same table-level tests against an embedded Table and a RemoteTable of a served cluster.

A remote table must behave as the embedded one: the same results, and the
same error classes with the same attributes (they travel over the wire, or
are raised by the client's own checks before anything is sent).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pegasus_fast as pf
import pytest
from conftest import BACKENDS, DEFAULT_BACKEND, load_backend
from pegasus_fast import _backend
from pegasus_fast.records import MAX_HASH_KEY, MAX_VALUE

#: the embedded table on each backend; the remote one once, on the default backend: what it adds
#: (the wire, the client's own checks) does not depend on the backend (conftest.py)
KINDS = [("embedded", b) for b in BACKENDS] + [("remote", DEFAULT_BACKEND)]


@pytest.fixture(params=KINDS, ids=[f"{kind}-{b}" for kind, b in KINDS])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    kind, which = request.param
    load_backend(which)
    with _backend.use(which):
        c = pf.Cluster.open(tmp_path / "c", name="c")
        try:
            if kind == "embedded":
                yield c
            else:
                with pf.serve(c) as srv, pf.connect(srv.url, timeout=20) as rc:
                    yield rc
        finally:
            c.close()


@pytest.fixture
def table(cluster: Any) -> Any:
    return cluster.create_table("t", partition_count=4)


def test_set_get_delete(table: Any) -> None:
    d1 = table.set(b"h", b"s", b"v")
    assert d1 >= 1
    assert table.get(b"h", b"s") == b"v"
    assert table.get("h", "s") == b"v"  # str keys are their UTF-8 bytes
    assert table.get(b"h", b"missing") is None
    assert table.set(b"h", b"s", b"w") > d1
    assert table.get(b"h", b"s") == b"w"
    table.delete(b"h", b"s")
    assert table.get(b"h", b"s") is None


def test_empty_keys_and_values(table: Any) -> None:
    table.set(b"", b"", b"")
    table.set(b"h", b"", b"x")
    assert table.get(b"", b"") == b""
    assert table.get(b"h", b"") == b"x"


def test_binary_keys_and_values(table: Any) -> None:
    key, value = bytes(range(256)), bytes(reversed(range(256))) * 10
    table.set(key, key, value)
    assert table.get(key, key) == value


def test_multi_set_get_delete(table: Any) -> None:
    table.multi_set(b"h", {b"a": b"1", b"b": b"2", "c": "3"})
    assert table.multi_get(b"h") == {b"a": b"1", b"b": b"2", b"c": b"3"}
    assert table.multi_get(b"h", [b"a", b"zz", "c"]) == {b"a": b"1", b"c": b"3"}
    table.multi_delete(b"h", [b"a", b"b"])
    assert table.multi_get(b"h") == {b"c": b"3"}


def test_scan_and_count(table: Any) -> None:
    want = set()
    for i in range(300):
        hk, sk, v = b"h%d" % (i % 17), b"s%d" % i, b"v" * (i % 50)
        table.set(hk, sk, v)
        want.add((hk, sk, v))
    got = list(table.scan())
    assert set(got) == want and len(got) == len(want)
    assert table.count() == 300


def test_large_scan_streams_in_batches(table: Any) -> None:
    value = b"x" * 50_000
    for i in range(60):  # ~3 MB: more than one reply of the stream
        table.set(b"h%d" % i, b"s", value)
    assert sum(1 for _ in table.scan()) == 60


def test_ttl(table: Any) -> None:
    # TTLs count whole seconds, as Pegasus's do: a 1 s TTL set late in a second expires at the
    # next one, possibly before a read on a loaded machine; 2 s leave a whole second for it
    table.set(b"h", b"forever", b"v")
    deadline = time.monotonic() + 3.1  # 2 s, and the second the TTLs were set in
    table.set(b"h", b"short", b"v", ttl_seconds=2)
    table.multi_set(b"m", {b"a": b"1"}, ttl_seconds=2)
    assert table.get(b"h", b"short") == b"v"
    assert table.multi_get(b"m") == {b"a": b"1"}
    # gone by the deadline (polled: the test goes on as soon as they are)
    while table.get(b"h", b"short") is not None or table.multi_get(b"m") != {}:
        assert time.monotonic() < deadline, "a 2 s TTL still live after 3.1 s"
        time.sleep(0.05)
    assert table.get(b"h", b"forever") == b"v"


@pytest.mark.parametrize("bad", [None, 1.5, object(), ["x"]])
def test_wrong_key_types(table: Any, bad: object) -> None:
    with pytest.raises(pf.InvalidTypeError):
        table.set(bad, b"s", b"v")
    with pytest.raises(pf.InvalidTypeError):
        table.set(b"h", bad, b"v")
    with pytest.raises(pf.InvalidTypeError):
        table.set(b"h", b"s", bad)
    with pytest.raises(pf.InvalidTypeError):
        table.get(bad, b"s")
    assert table.count() == 0


def test_bad_ttl(table: Any) -> None:
    with pytest.raises((pf.InvalidArgumentError, pf.InvalidTypeError)):
        table.set(b"h", b"s", b"v", ttl_seconds=-1)
    with pytest.raises(pf.InvalidTypeError):
        table.set(b"h", b"s", b"v", ttl_seconds="10")
    assert table.count() == 0


def test_size_limits(table: Any) -> None:
    with pytest.raises(pf.InvalidArgumentError):
        table.set(b"h" * (MAX_HASH_KEY + 1), b"s", b"v")
    with pytest.raises(pf.InvalidArgumentError):
        table.set(b"h", b"s", b"v" * (MAX_VALUE + 1))
    assert table.count() == 0


def test_multi_argument_errors(table: Any) -> None:
    with pytest.raises(pf.InvalidTypeError):
        table.multi_set(b"h", [(b"a", b"1")])
    with pytest.raises(pf.InvalidArgumentError):
        table.multi_set(b"h", {})
    with pytest.raises(pf.InvalidArgumentError):
        table.multi_set(b"", {b"a": b"1"})
    with pytest.raises(pf.InvalidTypeError):
        table.multi_get(b"h", b"one-key")
    with pytest.raises(pf.InvalidArgumentError):
        table.multi_delete(b"h", [])
    with pytest.raises(pf.InvalidArgumentError):
        table.multi_get(b"")


def test_partition_index_matches_the_server(cluster: Any, table: Any) -> None:
    for i in range(50):
        hk = b"key%d" % i
        table.set(hk, b"s", b"v")
        pidx = table.partition_index(hk)
        stats = table.partition_stats()
        assert 0 <= pidx < 4
        assert len(stats) == 4
    # every record is in the partition the client computes
    per = [s.last_committed_decree for s in table.partition_stats()]
    counted = [0] * 4
    for i in range(50):
        counted[table.partition_index(b"key%d" % i)] += 1
    assert per == counted


def test_health_and_stats(table: Any) -> None:
    h = table.health()
    assert h.is_fully_healthy and h.fully_healthy == 4 and len(h.partitions) == 4
    table.set(b"h", b"s", b"v")
    stats = table.partition_stats()
    assert [s.pidx for s in stats] == [0, 1, 2, 3]
    assert sum(s.last_committed_decree for s in stats) == 1


def test_checkpoint(table: Any) -> None:
    table.set(b"h", b"s", b"v")
    infos = table.checkpoint()
    assert len(infos) == 4
    assert sorted(i.pidx for i in infos) == [0, 1, 2, 3]
    assert sum(i.decree for i in infos) == 1


def test_tables(cluster: Any) -> None:
    cluster.create_table("a", partition_count=2, envs={"k": "v"})
    cluster.create_table("b", partition_count=3)
    infos = {i.name: i for i in cluster.list_tables()}
    assert infos["a"].partition_count == 2 and infos["a"].envs == {"k": "v"}
    assert infos["b"].partition_count == 3
    assert cluster.table("a").partition_count == 2
    with pytest.raises(pf.TableExistsError) as e:
        cluster.create_table("a", partition_count=2)
    assert e.value.name == "a"
    cluster.drop_table("a")
    with pytest.raises(pf.TableNotFoundError) as nf:
        cluster.table("a")
    assert nf.value.name == "a"
    with pytest.raises(pf.TableNotFoundError):
        cluster.drop_table("a")
    assert [i.name for i in cluster.list_tables()] == ["b"]


@pytest.mark.parametrize("name", ["", " padded", "x" * 300, "../up", "nul\0"])
def test_bad_table_names(cluster: Any, name: str) -> None:
    with pytest.raises(pf.InvalidArgumentError):
        cluster.create_table(name, partition_count=2)
    assert cluster.list_tables() == []


@pytest.mark.parametrize("count", [0, -1])
def test_bad_partition_counts(cluster: Any, count: int) -> None:
    with pytest.raises(pf.InvalidArgumentError):
        cluster.create_table("t", partition_count=count)


def test_dropped_table_handle(cluster: Any) -> None:
    t = cluster.create_table("t", partition_count=2)
    t.set(b"h", b"s", b"v")
    cluster.drop_table("t")
    with pytest.raises((pf.TableNotFoundError, pf.ClosedError)):
        t.set(b"h", b"s", b"v")
