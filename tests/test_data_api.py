"""The whole Pegasus data API (issue #18), one module for every kind of table.

Every test takes ``table``, parametrized over table kinds (``table_kind``): "embedded" (on
both backends), "remote" (a served cluster in this process, with its Pegasus data port, so
plain get/set/multi_* go there and the rest over gRPC) and "routed" (three ``serve --zk``
nodes shared by the module, ZooKeeper from conftest). A test of what only an embedded table
shows (its WAL, the ``clock``) is ``embedded_only``; the long parametrized case lists run
on the served kinds in one test on one table (test_every_case_on_one_table). They assert
results, types and error classes with their fields, never message text. Semantics follow
Pegasus's server (pegasus_server_impl.cpp, pegasus_write_service_impl.h, its base_api
function tests).

Time is the ``clock`` fixture's: it moves Pegasus time (records.now_pegasus_seconds) forward
without sleeping, so TTL edges are exact.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pegasus_fast as pf
import pytest
from conftest import BACKENDS, DEFAULT_BACKEND, load_backend
from multinode import Nodes
from pegasus_fast import _backend, records
from pegasus_fast.records import MAX_VALUE, Op
from pegasus_fast.server.data_service import DataApiHandlers
from served import Fleet

CT, FT = pf.CheckType, pf.FilterType
INT64_MAX, INT64_MIN = (1 << 63) - 1, -(1 << 63)


class Clock:
    """Pegasus time, moved forward by hand (every read and write asks records.time)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch, table_kind: str) -> Clock:
    """Embedded tables only (a served table's clock is its server's): a test taking it is
    marked embedded_only."""
    assert table_kind == "embedded", "a test taking clock is marked embedded_only"
    c = Clock()
    monkeypatch.setattr(records, "time", c)
    return c


#: the kinds of table every test runs on, unless marked embedded_only
KINDS = ["embedded", "remote", "routed"]
_F = TypeVar("_F", bound=Callable[..., Any])


def only(*kinds: str) -> Callable[[_F], _F]:
    """Run the test on these kinds of table alone."""

    def mark(fn: _F) -> _F:
        fn.table_kinds = kinds  # type: ignore[attr-defined]
        return fn

    return mark


#: a test of what only an embedded table can show (its WAL, the ``clock``)
embedded_only = only("embedded")
#: what the embedded kind runs in another form (its parametrized cases one by one)
served_only = only("remote", "routed")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``table_kind`` for every test taking ``table``: the embedded table on both backends, the
    remote and routed ones (their servers on the default backend) once."""
    if "table_kind" not in metafunc.fixturenames:
        return
    kinds = getattr(metafunc.function, "table_kinds", KINDS)
    cases = []
    if "embedded" in kinds:
        cases += [pytest.param("embedded", b, id=f"embedded-{b}") for b in BACKENDS]
    cases += [pytest.param(k, DEFAULT_BACKEND, id=k) for k in kinds if k != "embedded"]
    metafunc.parametrize(("table_kind", "kind_backend"), cases)


@pytest.fixture
def active_backend(kind_backend: str) -> Iterator[ModuleType]:
    """The backend of the test's kind (conftest's ``backend``, chosen per kind here: the
    served kinds run on the default one only)."""
    load_backend(kind_backend)
    with _backend.use(kind_backend) as module:
        yield module


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[pf.Cluster, str]]:
    """One served cluster for the module's remote tests (in this process: its metrics are
    readable), with its Pegasus data port, so plain get/set/multi_* go there."""
    load_backend(DEFAULT_BACKEND)
    with _backend.use(DEFAULT_BACKEND):
        c = pf.Cluster.open(
            tmp_path_factory.mktemp("served") / "c", name="c", config=pf.Config(wal_sync="none")
        )
        try:
            with pf.serve(c, pegasus_listen="127.0.0.1:0") as s:
                with pf.connect(s.url) as rc:
                    rc.create_table("t", partition_count=4)
                yield c, s.url
        finally:
            c.close()


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory, zk_module_chroot: str) -> Iterator[Nodes]:
    """Three ``serve --zk`` nodes of one cluster for the module's routed tests."""
    load_backend(DEFAULT_BACKEND)
    f = Fleet(tmp_path_factory.mktemp("nodes"), DEFAULT_BACKEND)
    try:
        n = Nodes(f, zk_module_chroot, "--config", "wal_sync=none")
        n.start("n1", "n2", "n3")
        yield n
    finally:
        f.close()


@pytest.fixture
def cluster(
    request: pytest.FixtureRequest, table_kind: str, active_backend: ModuleType, tmp_path: Path
) -> Iterator[Any]:
    """The cluster of the test's table: its own embedded one, or a client of the module's
    served cluster or nodes."""
    if table_kind == "embedded":
        c = pf.Cluster.open(tmp_path / "c", name="c", config=pf.Config(wal_sync="none"))
    elif table_kind == "remote":
        c = pf.connect(request.getfixturevalue("served")[1])
    else:
        c = request.getfixturevalue("nodes").client()
    try:
        yield c
    finally:
        c.close()


_table_names = itertools.count()


@pytest.fixture
def table(cluster: Any, table_kind: str) -> Iterator[Any]:
    """A table of 4 partitions; on a served cluster or nodes, a fresh one for each test (a
    tombstone left by an earlier test would count as "records left" to a limit), dropped after."""
    if table_kind == "embedded":
        yield cluster.create_table("t", partition_count=4)
        return
    name = f"t{next(_table_names)}"
    yield cluster.create_table(name, partition_count=4)
    with pf.connect(cluster.url) as c:  # the test's client may be closed
        c.drop_table(name)


def fill(table: Any, hash_key: bytes, sort_keys: list[bytes], value: bytes = b"") -> None:
    table.multi_set(hash_key, {sk: value or b"v-" + sk for sk in sort_keys})


# -- exist, ttl, sort_key_count ---------------------------------------------------------------


@embedded_only  # the clock
def test_exist_and_ttl(table: Any, clock: Clock) -> None:
    table.set(b"h", b"forever", b"v")
    table.set(b"h", b"short", b"v", ttl_seconds=10)
    table.set(b"h", b"empty", b"")
    assert table.exist(b"h", b"forever") is True
    assert table.exist(b"h", b"empty") is True  # an empty value is a record
    assert table.exist(b"h", b"missing") is False
    assert table.ttl(b"h", b"forever") == -1
    assert table.ttl(b"h", b"missing") is None
    left = table.ttl(b"h", b"short")
    assert isinstance(left, int) and 9 <= left <= 10
    clock.advance(5)
    assert 4 <= table.ttl(b"h", b"short") <= 5
    clock.advance(6)
    assert table.ttl(b"h", b"short") is None  # expired: absent to every read
    assert table.exist(b"h", b"short") is False
    table.delete(b"h", b"forever")
    assert table.exist(b"h", b"forever") is False and table.ttl(b"h", b"forever") is None


@embedded_only  # the clock
def test_sort_key_count_sees_live_records_only(table: Any, clock: Clock) -> None:
    fill(table, b"h", [b"a", b"b", b"c", b"d"])
    table.set(b"h", b"ttl", b"v", ttl_seconds=5)
    table.set(b"hh", b"other", b"v")  # a hash key that extends this one
    table.set(b"h\xff", b"x", b"v")
    assert table.sort_key_count(b"h") == 5
    table.delete(b"h", b"a")  # a tombstone is no record
    clock.advance(6)
    assert table.sort_key_count(b"h") == 3
    assert table.sort_key_count(b"nobody") == 0
    assert isinstance(table.sort_key_count(b"h"), int)
    with pytest.raises(pf.InvalidArgumentError):
        table.sort_key_count(b"")


def test_exist_ttl_and_sort_key_count_without_the_clock(table: Any) -> None:
    """What test_exist_and_ttl and the sort_key_count test show, on every kind of table."""
    table.set(b"h", b"forever", b"v")
    table.set(b"h", b"short", b"v", ttl_seconds=100)
    table.set(b"h", b"empty", b"")
    table.set(b"hh", b"other", b"v")
    assert table.exist(b"h", b"forever") is True and table.exist(b"h", b"empty") is True
    assert table.exist(b"h", b"missing") is False
    assert table.ttl(b"h", b"forever") == -1 and table.ttl(b"h", b"missing") is None
    left = table.ttl(b"h", b"short")
    assert isinstance(left, int) and 98 <= left <= 100
    assert table.sort_key_count(b"h") == 3 and table.sort_key_count(b"nobody") == 0
    table.delete(b"h", b"forever")
    assert table.exist(b"h", b"forever") is False and table.ttl(b"h", b"forever") is None
    assert table.sort_key_count(b"h") == 2
    with pytest.raises(pf.InvalidArgumentError):
        table.sort_key_count(b"")


# -- multi_get ----------------------------------------------------------------------------------


SKS = [b"a", b"b", b"c", b"d", b"e"]


def test_multi_get_of_today_still_works(table: Any) -> None:
    fill(table, b"h", SKS)
    whole = table.multi_get(b"h")
    assert isinstance(whole, pf.MultiGetResult) and isinstance(whole, dict)
    assert whole == {sk: b"v-" + sk for sk in SKS} and whole.complete is True
    assert list(whole) == SKS  # ordered by sort key
    some = table.multi_get(b"h", [b"e", b"a", "c", b"zz", b"a"])
    assert some == {b"a": b"v-a", b"c": b"v-c", b"e": b"v-e"} and list(some) == [b"a", b"c", b"e"]
    assert some.complete is True
    assert table.multi_get(b"h", []) == {}
    assert table.multi_get(b"nobody") == {}


@embedded_only  # its cases run on the served kinds in test_every_case_on_one_table
@pytest.mark.parametrize(
    ("start", "stop", "start_in", "stop_in", "want"),
    [
        (b"", b"", True, False, SKS),  # whole hash key: an empty stop reads to its end
        (b"b", b"d", True, False, [b"b", b"c"]),
        (b"b", b"d", False, False, [b"c"]),
        (b"b", b"d", True, True, [b"b", b"c", b"d"]),
        (b"b", b"d", False, True, [b"c", b"d"]),
        (b"b", b"", False, True, [b"c", b"d", b"e"]),  # stop_inclusive means nothing without a stop
        (b"c", b"c", True, True, [b"c"]),
        (b"c", b"c", True, False, []),
        (b"c", b"c", False, True, []),
        (b"bb", b"dd", True, False, [b"c", b"d"]),  # bounds need not be stored keys
        (b"0", b"z", False, False, SKS),
        (b"f", b"", True, False, []),
    ],
)
def test_multi_get_ranges(
    table: Any, start: bytes, stop: bytes, start_in: bool, stop_in: bool, want: list[bytes]
) -> None:
    fill(table, b"h", SKS)
    fill(table, b"g", SKS)  # neighbours on either side stay out
    fill(table, b"i", SKS)
    got = table.multi_get(
        b"h", start_sort_key=start, stop_sort_key=stop, start_inclusive=start_in, stop_inclusive=stop_in
    )
    assert list(got.items()) == [(sk, b"v-" + sk) for sk in want]
    assert got.complete is True
    rev = table.multi_get(
        b"h",
        start_sort_key=start,
        stop_sort_key=stop,
        start_inclusive=start_in,
        stop_inclusive=stop_in,
        reverse=True,
    )
    assert list(rev) == want[::-1] and rev.complete is True


def test_multi_get_hash_keys_that_prefix_each_other_or_end_in_ff(table: Any) -> None:
    for hk in (b"a", b"ab", b"a\x00", b"a\xff", b"a\xff\xff", b"b"):
        table.set(hk, b"s", hk)
    for hk in (b"a", b"ab", b"a\x00", b"a\xff", b"a\xff\xff", b"b"):
        assert table.multi_get(hk) == {b"s": hk}
        assert table.multi_get(hk, reverse=True) == {b"s": hk}
        assert table.sort_key_count(hk) == 1
        assert list(table.get_scanner(hk)) == [(hk, b"s", hk)]


def test_multi_get_limits_and_reverse(table: Any) -> None:
    fill(table, b"h", SKS, b"123456789")  # each record: 1 + 9 = 10 bytes
    first = table.multi_get(b"h", max_kv_count=2)
    assert list(first) == [b"a", b"b"] and first.complete is False
    last = table.multi_get(b"h", max_kv_count=2, reverse=True)
    assert list(last) == [b"e", b"d"] and last.complete is False
    # the limit equal to what is there cuts nothing
    exact = table.multi_get(b"h", max_kv_count=5)
    assert len(exact) == 5 and exact.complete is True
    assert table.multi_get(b"h", max_kv_count=5, reverse=True).complete is True
    # max_kv_size: the record that reaches the size is still taken (Pegasus's limiter)
    assert list(table.multi_get(b"h", max_kv_size=25)) == [b"a", b"b", b"c"]
    assert list(table.multi_get(b"h", max_kv_size=30)) == [b"a", b"b", b"c"]
    assert list(table.multi_get(b"h", max_kv_size=31)) == [b"a", b"b", b"c", b"d"]
    assert table.multi_get(b"h", max_kv_size=1).complete is False
    assert list(table.multi_get(b"h", max_kv_size=1)) == [b"a"]
    # no_value: values count as empty
    nv = table.multi_get(b"h", max_kv_size=3, no_value=True)
    assert nv == {b"a": b"", b"b": b"", b"c": b""} and nv.complete is False
    # both limits: the first reached stops it
    assert list(table.multi_get(b"h", max_kv_count=4, max_kv_size=15, reverse=True)) == [b"e", b"d"]
    # in a range, reverse takes from the top of the range down
    got = table.multi_get(
        b"h", start_sort_key=b"b", stop_sort_key=b"d", stop_inclusive=True, reverse=True, max_kv_count=2
    )
    assert list(got) == [b"d", b"c"] and got.complete is False


def test_multi_get_of_sort_keys_with_limits(table: Any) -> None:
    fill(table, b"h", SKS, b"123456789")
    got = table.multi_get(b"h", [b"e", b"zz", b"c", b"a"], max_kv_count=2)
    assert list(got) == [b"a", b"c"] and got.complete is False  # in sort key order
    got = table.multi_get(b"h", [b"e", b"zz", b"c", b"a"], max_kv_count=3)
    assert list(got) == [b"a", b"c", b"e"] and got.complete is True
    got = table.multi_get(b"h", [b"a", b"b", b"c"], max_kv_size=15, no_value=False)
    assert list(got) == [b"a", b"b"] and got.complete is False
    assert table.multi_get(b"h", [b"a"], no_value=True) == {b"a": b""}


@embedded_only  # its cases run on the served kinds in test_every_case_on_one_table
@pytest.mark.parametrize(
    ("kind", "pattern", "want"),
    [
        (FT.NO_FILTER, b"whatever", [b"apple", b"apricot", b"banana", b"cherry", b"grape"]),
        (FT.MATCH_PREFIX, b"ap", [b"apple", b"apricot"]),
        (FT.MATCH_PREFIX, b"b", [b"banana"]),
        (FT.MATCH_PREFIX, b"zz", []),
        (FT.MATCH_POSTFIX, b"e", [b"apple", b"grape"]),
        (FT.MATCH_ANYWHERE, b"an", [b"banana"]),
        (FT.MATCH_ANYWHERE, b"r", [b"apricot", b"cherry", b"grape"]),
        (FT.MATCH_ANYWHERE, b"too long for any key", []),
        # an empty pattern matches everything (Pegasus's validate_filter)
        (FT.MATCH_PREFIX, b"", [b"apple", b"apricot", b"banana", b"cherry", b"grape"]),
        (FT.MATCH_POSTFIX, b"", [b"apple", b"apricot", b"banana", b"cherry", b"grape"]),
        (FT.MATCH_ANYWHERE, b"", [b"apple", b"apricot", b"banana", b"cherry", b"grape"]),
    ],
)
def test_sort_key_filters(table: Any, kind: pf.FilterType, pattern: bytes, want: list[bytes]) -> None:
    fill(table, b"h", [b"apple", b"apricot", b"banana", b"cherry", b"grape"])
    fill(table, b"ap", [b"apple"])
    assert list(table.multi_get(b"h", sort_key_filter=(kind, pattern))) == want
    assert list(table.multi_get(b"h", sort_key_filter=(int(kind), pattern), reverse=True)) == want[::-1]
    assert [sk for _hk, sk, _v in table.get_scanner(b"h", sort_key_filter=(kind, pattern))] == want
    assert sorted(sk for hk, sk, _v in table.scan(sort_key_filter=(kind, pattern)) if hk == b"h") == want


def test_prefix_filter_within_a_range(table: Any) -> None:
    fill(table, b"h", [b"a1", b"a2", b"a3", b"b1", b"b2"])
    f = (FT.MATCH_PREFIX, b"a")
    assert list(table.multi_get(b"h", start_sort_key=b"a2", sort_key_filter=f)) == [b"a2", b"a3"]
    assert list(table.multi_get(b"h", start_sort_key=b"a2", start_inclusive=False, sort_key_filter=f)) == [
        b"a3"
    ]
    assert list(table.multi_get(b"h", stop_sort_key=b"a2", stop_inclusive=True, sort_key_filter=f)) == [
        b"a1",
        b"a2",
    ]
    assert list(table.multi_get(b"h", start_sort_key=b"b", sort_key_filter=f)) == []
    got = table.multi_get(b"h", sort_key_filter=f, max_kv_count=3)
    assert list(got) == [b"a1", b"a2", b"a3"] and got.complete is True  # b1 is past the prefix
    got = table.multi_get(b"h", sort_key_filter=(FT.MATCH_POSTFIX, b"1"), max_kv_count=1)
    assert list(got) == [b"a1"] and got.complete is False


@embedded_only  # the clock
def test_expired_records_are_invisible_to_every_read(table: Any, clock: Clock) -> None:
    fill(table, b"h", [b"a", b"c", b"e"])
    table.multi_set(b"h", {b"b": b"v-b", b"d": b"v-d"}, ttl_seconds=5)
    table.set(b"h", b"f", b"v-f")
    table.delete(b"h", b"f")
    assert list(table.multi_get(b"h")) == [b"a", b"b", b"c", b"d", b"e"]
    clock.advance(6)
    want = [b"a", b"c", b"e"]
    assert list(table.multi_get(b"h")) == want
    assert list(table.multi_get(b"h", reverse=True)) == want[::-1]
    assert list(table.multi_get(b"h", [b"a", b"b", b"d", b"f"])) == [b"a"]
    # expired records do not count toward a limit
    got = table.multi_get(b"h", max_kv_count=2)
    assert list(got) == [b"a", b"c"]
    assert [sk for _h, sk, _v in table.get_scanner(b"h", batch_size=1)] == want
    assert sorted(sk for _h, sk, _v in table.scan()) == want
    assert table.sort_key_count(b"h") == 3
    assert table.batch_get([(b"h", b"b"), (b"h", b"a")]) == [None, b"v-a"]
    assert not table.exist(b"h", b"d") and table.ttl(b"h", b"d") is None


# -- batch_get ----------------------------------------------------------------------------------


def test_batch_get_in_order(table: Any) -> None:
    for i in range(20):
        table.set(b"h%d" % i, b"s", b"v%d" % i)
    table.set(b"", b"only sort key", b"e")
    keys = [(b"h%d" % i, b"s") for i in reversed(range(20))] + [
        (b"nope", b"s"),
        (b"h3", b"s"),
        (b"", "only sort key"),
    ]
    want = [b"v%d" % i for i in reversed(range(20))] + [None, b"v3", b"e"]
    assert table.batch_get(keys) == want
    assert table.batch_get(iter(keys)) == want
    assert table.batch_get([]) == []


# -- scanners -----------------------------------------------------------------------------------


def test_get_scanner(table: Any) -> None:
    sks = [b"%03d" % i for i in range(25)]
    fill(table, b"h", sks)
    fill(table, b"hh", sks)
    for batch_size in (1, 2, 7, 25, 1000):
        got = list(table.get_scanner(b"h", batch_size=batch_size))
        assert got == [(b"h", sk, b"v-" + sk) for sk in sks]
    got = list(table.get_scanner(b"h", b"005", b"010", batch_size=2))
    assert [sk for _h, sk, _v in got] == sks[5:10]
    got = list(
        table.get_scanner(b"h", b"005", b"010", start_inclusive=False, stop_inclusive=True, batch_size=3)
    )
    assert [sk for _h, sk, _v in got] == sks[6:11]
    got = list(table.get_scanner(b"h", sort_key_filter=(FT.MATCH_POSTFIX, b"3"), no_value=True, batch_size=1))
    assert got == [(b"h", b"003", b""), (b"h", b"013", b""), (b"h", b"023", b"")]
    assert list(table.get_scanner(b"nobody")) == []


@embedded_only  # a served scanner's stream reads ahead of its reader by what the stream buffers
def test_a_scanner_reads_in_batches_and_sees_writes_ahead_of_it(table: Any) -> None:
    fill(table, b"h", [b"a", b"b", b"c", b"d"])
    it = table.get_scanner(b"h", batch_size=2)
    assert next(it)[1] == b"a"
    table.set(b"h", b"e", b"new")  # ahead of the scanner: seen
    table.set(b"h", b"0", b"behind")  # behind it: not seen
    assert [sk for _h, sk, _v in it] == [b"b", b"c", b"d", b"e"]


def test_scan_with_filters(table: Any) -> None:
    want = set()
    for i in range(60):
        hk, sk = b"user%02d" % i, b"item%d" % (i % 7)
        table.set(hk, sk, b"v%d" % i)
        want.add((hk, sk, b"v%d" % i))
    assert set(table.scan()) == want and len(list(table.scan())) == 60
    got = set(table.scan(hash_key_filter=(FT.MATCH_POSTFIX, b"5")))
    assert got == {r for r in want if r[0].endswith(b"5")}
    got = set(
        table.scan(hash_key_filter=(FT.MATCH_PREFIX, b"user1"), sort_key_filter=(FT.MATCH_ANYWHERE, b"3"))
    )
    assert got == {r for r in want if r[0].startswith(b"user1") and b"3" in r[1]}
    got = list(table.scan(no_value=True, batch_size=1))
    assert sorted(got) == sorted((hk, sk, b"") for hk, sk, _v in want)
    assert set(table.scan(batch_size=7)) == want


def test_unordered_scanners_cover_the_table_once(table: Any) -> None:
    want = {(b"k%d" % i, b"s", b"v%d" % i) for i in range(200)}
    for hk, sk, v in want:
        table.set(hk, sk, v)
    for split in (1, 2, 3, 4, 10):
        scanners = table.unordered_scanners(split)
        assert 1 <= len(scanners) <= min(split, 4)
        parts = [set(s) for s in scanners]
        assert set().union(*parts) == want
        assert sum(len(p) for p in parts) == len(want)  # disjoint
    # each consumable on its own thread
    scanners = table.unordered_scanners(4)
    out: list[list[tuple[bytes, bytes, bytes]]] = [[] for _ in scanners]
    threads = [threading.Thread(target=lambda i=i: out[i].extend(scanners[i])) for i in range(len(scanners))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert {r for part in out for r in part} == want
    filtered = table.unordered_scanners(2, hash_key_filter=(FT.MATCH_POSTFIX, b"7"), no_value=True)
    assert {r for s in filtered for r in s} == {(hk, sk, b"") for hk, sk, _v in want if hk.endswith(b"7")}


# -- incr ---------------------------------------------------------------------------------------


def test_incr_basics(table: Any) -> None:
    assert table.incr(b"h", b"n") == 1
    assert table.incr(b"h", b"n", 41) == 42
    assert table.incr(b"h", b"n", -50) == -8
    assert table.get(b"h", b"n") == b"-8"
    assert table.incr(b"h", b"n", 0) == -8
    assert isinstance(table.incr(b"", b"n"), int)  # a single key needs no hash key
    table.set(b"h", b"empty", b"")
    assert table.incr(b"h", b"empty", 5) == 5  # an empty value counts as 0
    table.set(b"h", b"gone", b"7")
    table.delete(b"h", b"gone")
    assert table.incr(b"h", b"gone", 2) == 2  # a deleted one too


@embedded_only  # its cases run on the served kinds in test_every_case_on_one_table
@pytest.mark.parametrize(
    ("stored", "after"),
    [
        (b"12", 13),
        (b"  12", 13),  # strtoll skips leading white space
        (b"\t\n 12", 13),
        (b"+3", 4),
        (b"-3", -2),
        (b"0", 1),
        (b"0x10", 17),  # base 0: hex
        (b"0X1f", 32),
        (b"010", 9),  # base 0: a leading 0 is octal
        (b"-0", 1),
        (b"9223372036854775806", INT64_MAX),
        (b"-9223372036854775808", INT64_MIN + 1),
    ],
)
def test_incr_reads_values_as_pegasus_does(table: Any, stored: bytes, after: int) -> None:
    table.set(b"h", b"n", stored)
    assert table.incr(b"h", b"n") == after
    assert table.get(b"h", b"n") == str(after).encode()


@embedded_only  # its cases run on the served kinds in test_every_case_on_one_table
@pytest.mark.parametrize(
    "stored",
    [
        b"12 ",
        b"1.5",
        b"abc",
        b"12abc",
        b"0x",
        b"08",
        b"--1",
        b"+",
        b" ",
        b"1\x00",
        b"9223372036854775808",
        b"\xff",
    ],
)
def test_incr_of_a_value_that_is_not_an_int64_changes_nothing(table: Any, stored: bytes) -> None:
    table.set(b"h", b"n", stored, ttl_seconds=100)
    decrees = [s.last_committed_decree for s in table.partition_stats()]
    with pytest.raises(pf.InvalidArgumentError):
        table.incr(b"h", b"n")
    assert table.get(b"h", b"n") == stored
    assert [s.last_committed_decree for s in table.partition_stats()] == decrees


def test_incr_overflow_at_the_int64_bounds(table: Any) -> None:
    table.set(b"h", b"max", str(INT64_MAX).encode())
    table.set(b"h", b"min", str(INT64_MIN).encode())
    with pytest.raises(pf.InvalidArgumentError):
        table.incr(b"h", b"max", 1)
    with pytest.raises(pf.InvalidArgumentError):
        table.incr(b"h", b"min", -1)
    assert table.get(b"h", b"max") == str(INT64_MAX).encode()
    assert table.get(b"h", b"min") == str(INT64_MIN).encode()
    assert table.incr(b"h", b"max", INT64_MIN) == -1
    assert table.incr(b"h", b"fresh", INT64_MAX) == INT64_MAX
    assert table.incr(b"h", b"fresh2", INT64_MIN) == INT64_MIN
    with pytest.raises(pf.InvalidArgumentError):
        table.incr(b"h", b"n", INT64_MAX + 1)
    with pytest.raises(pf.InvalidArgumentError):
        table.incr(b"h", b"n", INT64_MIN - 1)
    assert table.exist(b"h", b"n") is False


@embedded_only  # the clock
def test_incr_ttl_rules(table: Any, clock: Clock) -> None:
    table.set(b"h", b"n", b"1", ttl_seconds=100)
    assert table.incr(b"h", b"n") == 2
    assert 99 <= table.ttl(b"h", b"n") <= 100  # None keeps the record's TTL
    assert table.incr(b"h", b"n", ttl_seconds=50) == 3
    assert 49 <= table.ttl(b"h", b"n") <= 50  # > 0 sets it
    assert table.incr(b"h", b"n", ttl_seconds=0) == 4
    assert table.ttl(b"h", b"n") == -1  # 0 clears it
    assert table.incr(b"h", b"new") == 1
    assert table.ttl(b"h", b"new") == -1  # a new record gets no TTL unless one is set
    assert table.incr(b"h", b"new2", ttl_seconds=0) == 1
    assert table.ttl(b"h", b"new2") == -1
    assert table.incr(b"h", b"new3", ttl_seconds=30) == 1
    assert 29 <= table.ttl(b"h", b"new3") <= 30
    table.set(b"h", b"old", b"41", ttl_seconds=5)
    clock.advance(6)
    assert table.incr(b"h", b"old") == 1  # expired: counts as absent, and its TTL is gone
    assert table.ttl(b"h", b"old") == -1


@embedded_only  # its WAL
def test_incr_is_one_mutation_of_a_put(table: Any) -> None:
    p = table.partition_of(b"h", b"n")
    before = p.last_committed
    table.incr(b"h", b"n", 5)
    assert p.last_committed == before + 1
    mutations, _ = _backend.impl.scan_log_dir(p.wal.path, before + 1)
    assert [(m[0], [op for op in m[3]]) for m in mutations] == [
        (before + 1, [(int(Op.PUT), b"h", b"n", b"5", 0)])
    ]


# -- check_and_set ------------------------------------------------------------------------------

ABSENT = None
CHECKS: list[tuple[pf.CheckType, bytes | None, bytes, bool]] = [
    (CT.NO_CHECK, ABSENT, b"", True),
    (CT.NO_CHECK, b"x", b"", True),
    (CT.VALUE_NOT_EXIST, ABSENT, b"", True),
    (CT.VALUE_NOT_EXIST, b"", b"", False),
    (CT.VALUE_NOT_EXIST_OR_EMPTY, ABSENT, b"", True),
    (CT.VALUE_NOT_EXIST_OR_EMPTY, b"", b"", True),
    (CT.VALUE_NOT_EXIST_OR_EMPTY, b"x", b"", False),
    (CT.VALUE_EXIST, ABSENT, b"", False),
    (CT.VALUE_EXIST, b"", b"", True),
    (CT.VALUE_NOT_EMPTY, b"", b"", False),
    (CT.VALUE_NOT_EMPTY, b"x", b"", True),
    (CT.VALUE_NOT_EMPTY, ABSENT, b"", False),
    (CT.VALUE_MATCH_ANYWHERE, b"v111v", b"111", True),
    (CT.VALUE_MATCH_ANYWHERE, b"v111v", b"", True),
    (CT.VALUE_MATCH_ANYWHERE, ABSENT, b"", False),
    (CT.VALUE_MATCH_ANYWHERE, b"v1", b"2", False),
    (CT.VALUE_MATCH_PREFIX, b"v111v", b"v1", True),
    (CT.VALUE_MATCH_PREFIX, b"v111v", b"1", False),
    (CT.VALUE_MATCH_PREFIX, b"v", b"v111v", False),
    (CT.VALUE_MATCH_POSTFIX, b"v111v", b"1v", True),
    (CT.VALUE_MATCH_POSTFIX, b"v111v", b"v1", False),
    (CT.VALUE_MATCH_POSTFIX, b"", b"", True),
    (CT.VALUE_BYTES_LESS, b"v1", b"v2", True),
    (CT.VALUE_BYTES_LESS, b"v2", b"v2", False),
    (CT.VALUE_BYTES_LESS, ABSENT, b"v2", False),
    (CT.VALUE_BYTES_LESS, b"", b"a", True),
    (CT.VALUE_BYTES_LESS_OR_EQUAL, b"v2", b"v2", True),
    (CT.VALUE_BYTES_LESS_OR_EQUAL, b"v3", b"v2", False),
    (CT.VALUE_BYTES_EQUAL, b"v2", b"v2", True),
    (CT.VALUE_BYTES_EQUAL, b"v2", b"v22", False),
    (CT.VALUE_BYTES_EQUAL, b"", b"", True),
    (CT.VALUE_BYTES_GREATER_OR_EQUAL, b"v2", b"v2", True),
    (CT.VALUE_BYTES_GREATER_OR_EQUAL, b"v1", b"v2", False),
    (CT.VALUE_BYTES_GREATER, b"v3", b"v2", True),
    (CT.VALUE_BYTES_GREATER, b"v2", b"v2", False),
    (CT.VALUE_BYTES_GREATER, b"\xff", b"\x00", True),  # unsigned bytes
    (CT.VALUE_INT_LESS, b"1", b"2", True),
    (CT.VALUE_INT_LESS, b"2", b"2", False),
    (CT.VALUE_INT_LESS, b"9", b"10", True),  # as ints, not as bytes
    (CT.VALUE_INT_LESS_OR_EQUAL, b"2", b"2", True),
    (CT.VALUE_INT_LESS_OR_EQUAL, b"-1", b"-2", False),
    (CT.VALUE_INT_EQUAL, b"0x10", b"16", True),
    (CT.VALUE_INT_EQUAL, b" 7", b"+7", True),
    (CT.VALUE_INT_EQUAL, ABSENT, b"1", False),  # absent: the check fails, no error (Pegasus)
    (CT.VALUE_INT_EQUAL, ABSENT, b"not a number", False),
    (CT.VALUE_INT_GREATER_OR_EQUAL, b"2", b"2", True),
    (CT.VALUE_INT_GREATER_OR_EQUAL, b"1", b"2", False),
    (CT.VALUE_INT_GREATER, b"10", b"9", True),
    (CT.VALUE_INT_GREATER, b"-9223372036854775808", b"9223372036854775807", False),
]


@embedded_only  # its cases run on the served kinds in test_every_case_on_one_table
@pytest.mark.parametrize(
    ("check", "stored", "operand", "passes"), CHECKS, ids=[f"{c[0].name}-{c[1]!r}-{c[2]!r}" for c in CHECKS]
)
def test_check_and_set_checks(
    table: Any, check: pf.CheckType, stored: bytes | None, operand: bytes, passes: bool
) -> None:
    if stored is not None:
        table.set(b"h", b"k", stored)
    res = table.check_and_set(b"h", b"k", check, operand, b"target", b"new", return_check_value=True)
    assert isinstance(res, pf.CheckAndSetResult)
    assert res == pf.CheckAndSetResult(
        set_succeed=passes,
        check_value_returned=True,
        check_value_exist=stored is not None,
        check_value=stored,
    )
    assert table.get(b"h", b"target") == (b"new" if passes else None)
    assert table.get(b"h", b"k") == stored
    # the same check of check_and_mutate
    res2 = table.check_and_mutate(b"h", b"k", check, operand, [pf.Mutation.set(b"target2", b"m")])
    assert res2 == pf.CheckAndMutateResult(passes, False, False, None)
    assert table.get(b"h", b"target2") == (b"m" if passes else None)


def test_check_type_numbers_are_pegasus_cas_check_type() -> None:
    assert [(c.name, int(c)) for c in pf.CheckType] == [
        ("NO_CHECK", 0),
        ("VALUE_NOT_EXIST", 1),
        ("VALUE_NOT_EXIST_OR_EMPTY", 2),
        ("VALUE_EXIST", 3),
        ("VALUE_NOT_EMPTY", 4),
        ("VALUE_MATCH_ANYWHERE", 5),
        ("VALUE_MATCH_PREFIX", 6),
        ("VALUE_MATCH_POSTFIX", 7),
        ("VALUE_BYTES_LESS", 8),
        ("VALUE_BYTES_LESS_OR_EQUAL", 9),
        ("VALUE_BYTES_EQUAL", 10),
        ("VALUE_BYTES_GREATER_OR_EQUAL", 11),
        ("VALUE_BYTES_GREATER", 12),
        ("VALUE_INT_LESS", 13),
        ("VALUE_INT_LESS_OR_EQUAL", 14),
        ("VALUE_INT_EQUAL", 15),
        ("VALUE_INT_GREATER_OR_EQUAL", 16),
        ("VALUE_INT_GREATER", 17),
    ]
    assert [(f.name, int(f)) for f in pf.FilterType] == [
        ("NO_FILTER", 0),
        ("MATCH_ANYWHERE", 1),
        ("MATCH_PREFIX", 2),
        ("MATCH_POSTFIX", 3),
    ]


@embedded_only  # its cases run on the served kinds in test_every_case_on_one_table
@pytest.mark.parametrize(
    ("stored", "operand"), [(b"", b"1"), (b"v1", b"1"), (b"1", b""), (b"1", b"v1"), (b"1", b"8" * 40)]
)
def test_an_int_check_of_what_is_not_an_int64_raises_and_changes_nothing(
    table: Any, stored: bytes, operand: bytes
) -> None:
    table.set(b"h", b"k", stored)
    decrees = [s.last_committed_decree for s in table.partition_stats()]
    with pytest.raises(pf.InvalidArgumentError):
        table.check_and_set(b"h", b"k", CT.VALUE_INT_EQUAL, operand, b"k", b"2")
    with pytest.raises(pf.InvalidArgumentError):
        table.check_and_mutate(b"h", b"k", CT.VALUE_INT_LESS, operand, [pf.Mutation.delete(b"k")])
    assert table.get(b"h", b"k") == stored
    assert [s.last_committed_decree for s in table.partition_stats()] == decrees


@embedded_only  # the clock
def test_check_and_set_results_and_ttl(table: Any, clock: Clock) -> None:
    res = table.check_and_set(b"h", b"k", CT.VALUE_NOT_EXIST, b"", b"k", b"v1", ttl_seconds=10)
    assert res == pf.CheckAndSetResult(True, False, False, None)
    assert 9 <= table.ttl(b"h", b"k") <= 10
    res = table.check_and_set(b"h", b"k", CT.VALUE_NOT_EXIST, b"", b"k", b"v2", return_check_value=True)
    assert res == pf.CheckAndSetResult(False, True, True, b"v1")
    assert table.get(b"h", b"k") == b"v1"
    res = table.check_and_set(b"h", b"k", CT.VALUE_BYTES_EQUAL, b"v1", b"k", b"v2")
    assert res.set_succeed and table.ttl(b"h", b"k") == -1  # the set's own TTL: none
    clock.advance(1)
    table.set(b"h", b"t", b"x", ttl_seconds=3)
    clock.advance(4)
    # an expired record does not exist to a check
    res = table.check_and_set(b"h", b"t", CT.VALUE_NOT_EXIST, b"", b"t", b"back", return_check_value=True)
    assert res == pf.CheckAndSetResult(True, True, False, None)
    assert table.get(b"h", b"t") == b"back"


def test_a_failed_check_logs_nothing(table: Any) -> None:
    table.set(b"h", b"k", b"v")
    before = [s.last_committed_decree for s in table.partition_stats()]
    assert not table.check_and_set(b"h", b"k", CT.VALUE_NOT_EXIST, b"", b"k", b"x").set_succeed
    assert not table.check_and_mutate(
        b"h", b"k", CT.VALUE_NOT_EXIST, b"", [pf.Mutation.delete(b"k")]
    ).mutate_succeed
    assert [s.last_committed_decree for s in table.partition_stats()] == before
    assert table.get(b"h", b"k") == b"v"


# -- check_and_mutate ---------------------------------------------------------------------------


@embedded_only  # the clock
def test_check_and_mutate_applies_all_or_nothing(table: Any, clock: Clock) -> None:
    fill(table, b"h", [b"a", b"b", b"c"])
    p = table.partition_of(b"h")
    before = p.last_committed
    muts = [
        pf.Mutation.set(b"a", b"A"),
        pf.Mutation.delete(b"b"),
        pf.Mutation.set("d", "D", ttl_seconds=20),
        pf.Mutation.set(b"c", b"first"),
        pf.Mutation.set(b"c", b"last"),  # the last mutation of a key wins
        pf.Mutation.set(b"e", b"E"),
        pf.Mutation.delete(b"e"),
    ]
    res = table.check_and_mutate(b"h", b"a", CT.VALUE_BYTES_EQUAL, b"v-a", muts, return_check_value=True)
    assert res == pf.CheckAndMutateResult(True, True, True, b"v-a")
    assert table.multi_get(b"h") == {b"a": b"A", b"c": b"last", b"d": b"D"}
    assert 19 <= table.ttl(b"h", b"d") <= 20 and table.ttl(b"h", b"a") == -1
    assert p.last_committed == before + 1  # one mutation
    mutations, _ = _backend.impl.scan_log_dir(p.wal.path, before + 1)
    kinds = {op[0] for m in mutations for op in m[3]}
    assert kinds <= {int(Op.PUT), int(Op.DELETE)}
    res = table.check_and_mutate(b"h", b"a", CT.VALUE_BYTES_EQUAL, b"v-a", [pf.Mutation.delete(b"a")])
    assert res == pf.CheckAndMutateResult(False, False, False, None)
    assert table.get(b"h", b"a") == b"A"


def test_check_and_mutate_all_or_nothing_on_every_kind(table: Any) -> None:
    """test_check_and_mutate_applies_all_or_nothing's results, without its WAL and clock."""
    fill(table, b"h", [b"a", b"b", b"c"])
    before = [s.last_committed_decree for s in table.partition_stats()]
    muts = [
        pf.Mutation.set(b"a", b"A"),
        pf.Mutation.delete(b"b"),
        pf.Mutation.set("d", "D", ttl_seconds=20),
        pf.Mutation.set(b"c", b"first"),
        pf.Mutation.set(b"c", b"last"),
        pf.Mutation.set(b"e", b"E"),
        pf.Mutation.delete(b"e"),
    ]
    res = table.check_and_mutate(b"h", b"a", CT.VALUE_BYTES_EQUAL, b"v-a", muts, return_check_value=True)
    assert res == pf.CheckAndMutateResult(True, True, True, b"v-a")
    assert table.multi_get(b"h") == {b"a": b"A", b"c": b"last", b"d": b"D"}
    assert 19 <= table.ttl(b"h", b"d") <= 20 and table.ttl(b"h", b"a") == -1
    after = [s.last_committed_decree for s in table.partition_stats()]
    assert sum(after) == sum(before) + 1  # one mutation
    res = table.check_and_mutate(
        b"h", b"x", CT.VALUE_EXIST, b"", [pf.Mutation.delete(b"a")], return_check_value=True
    )
    assert res == pf.CheckAndMutateResult(False, True, False, None)
    assert table.get(b"h", b"a") == b"A"


def test_mutation_type() -> None:
    m = pf.Mutation.set("s", "v", ttl_seconds=5)
    assert (m.operation, m.sort_key, m.value, m.ttl_seconds) == (pf.MutateOperation.PUT, b"s", b"v", 5)
    d = pf.Mutation.delete(b"s")
    assert (d.operation, d.sort_key, d.value, d.ttl_seconds) == (pf.MutateOperation.DELETE, b"s", b"", None)
    with pytest.raises(pf.InvalidTypeError):
        pf.Mutation.set(1, b"v")
    with pytest.raises(pf.InvalidTypeError):
        pf.Mutation.set(b"s", None)
    with pytest.raises(pf.InvalidArgumentError):
        pf.Mutation.set(b"s", b"v", ttl_seconds=-1)
    with pytest.raises(pf.InvalidTypeError):
        pf.Mutation.set(b"s", b"v", ttl_seconds="5")
    with pytest.raises(pf.InvalidArgumentError):
        pf.Mutation.set(b"s" * (MAX_VALUE + 1), b"v")
    with pytest.raises(pf.InvalidTypeError):
        pf.Mutation(1, b"s")  # type: ignore[arg-type]
    with pytest.raises(pf.InvalidArgumentError):
        pf.Mutation(pf.MutateOperation.DELETE, b"s", b"value")


def test_atomic_writes_of_an_empty_hash_key_touch_the_checked_key_only(table: Any) -> None:
    assert table.check_and_set(b"", b"k", CT.NO_CHECK, b"", b"k", b"v").set_succeed
    assert table.get(b"", b"k") == b"v"
    assert table.check_and_mutate(b"", b"k", CT.VALUE_EXIST, b"", [pf.Mutation.delete(b"k")]).mutate_succeed
    assert table.get(b"", b"k") is None
    with pytest.raises(pf.InvalidArgumentError):
        table.check_and_set(b"", b"k", CT.NO_CHECK, b"", b"other", b"v")
    with pytest.raises(pf.InvalidArgumentError):
        table.check_and_mutate(b"", b"k", CT.NO_CHECK, b"", [pf.Mutation.set(b"other", b"v")])
    assert table.count() == 0


# -- atomic under concurrency ---------------------------------------------------------------


def test_concurrent_incr_and_cas_lose_nothing(table: Any) -> None:
    threads, each = 4, 150

    def incr_worker() -> None:
        for _ in range(each):
            table.incr(b"h", b"counter")

    def cas_worker() -> None:
        done = 0
        while done < each:  # optimistic increments: read, check it is unchanged, set
            old = table.get(b"h", b"cas") or b"0"
            res = table.check_and_set(b"h", b"cas", CT.VALUE_INT_EQUAL, old, b"cas", b"%d" % (int(old) + 1))
            if res.set_succeed:
                done += 1

    table.set(b"h", b"cas", b"0")
    workers = [threading.Thread(target=incr_worker) for _ in range(threads)]
    workers += [threading.Thread(target=cas_worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert table.get(b"h", b"counter") == b"%d" % (threads * each)
    assert table.get(b"h", b"cas") == b"%d" % (threads * each)


# -- bad input ----------------------------------------------------------------------------------

BAD_TYPES: list[tuple[str, Any]] = [
    ("exist int key", lambda t: t.exist(1, b"s")),
    ("ttl float key", lambda t: t.ttl(b"h", 1.5)),
    ("sort_key_count None", lambda t: t.sort_key_count(None)),
    ("multi_get start int", lambda t: t.multi_get(b"h", start_sort_key=1)),
    ("multi_get start_inclusive int", lambda t: t.multi_get(b"h", start_inclusive=1)),
    ("multi_get reverse str", lambda t: t.multi_get(b"h", reverse="yes")),
    ("multi_get no_value None", lambda t: t.multi_get(b"h", no_value=None)),
    ("multi_get max_kv_count float", lambda t: t.multi_get(b"h", max_kv_count=1.0)),
    ("multi_get max_kv_size bool", lambda t: t.multi_get(b"h", max_kv_size=True)),
    ("multi_get filter not a pair", lambda t: t.multi_get(b"h", sort_key_filter=FT.MATCH_PREFIX)),
    ("multi_get filter list", lambda t: t.multi_get(b"h", sort_key_filter=[FT.MATCH_PREFIX, b"a"])),
    ("multi_get filter str type", lambda t: t.multi_get(b"h", sort_key_filter=("prefix", b"a"))),
    ("multi_get filter int pattern", lambda t: t.multi_get(b"h", sort_key_filter=(FT.MATCH_PREFIX, 1))),
    ("batch_get one pair", lambda t: t.batch_get((b"h", b"s"))),
    ("batch_get bytes", lambda t: t.batch_get(b"hs")),
    ("batch_get triple", lambda t: t.batch_get([(b"h", b"s", b"x")])),
    ("batch_get int", lambda t: t.batch_get(5)),
    ("get_scanner batch_size str", lambda t: t.get_scanner(b"h", batch_size="10")),
    ("scan batch_size float", lambda t: t.scan(batch_size=1.5)),
    ("scan hash_key_filter str", lambda t: t.scan(hash_key_filter="a")),
    ("unordered_scanners str", lambda t: t.unordered_scanners("2")),
    ("incr float", lambda t: t.incr(b"h", b"n", 1.5)),
    ("incr bool", lambda t: t.incr(b"h", b"n", True)),
    ("incr str", lambda t: t.incr(b"h", b"n", "1")),
    ("incr ttl str", lambda t: t.incr(b"h", b"n", 1, ttl_seconds="1")),
    ("incr int key", lambda t: t.incr(b"h", 5)),
    ("cas check type str", lambda t: t.check_and_set(b"h", b"k", "VALUE_EXIST", b"", b"k", b"v")),
    ("cas check type bool", lambda t: t.check_and_set(b"h", b"k", True, b"", b"k", b"v")),
    ("cas check type float", lambda t: t.check_and_set(b"h", b"k", 3.0, b"", b"k", b"v")),
    ("cas operand int", lambda t: t.check_and_set(b"h", b"k", CT.VALUE_INT_EQUAL, 1, b"k", b"v")),
    ("cas value None", lambda t: t.check_and_set(b"h", b"k", CT.NO_CHECK, b"", b"k", None)),
    (
        "cas return_check_value int",
        lambda t: t.check_and_set(b"h", b"k", CT.NO_CHECK, b"", b"k", b"v", None, 1),
    ),
    ("cam mutations not a list", lambda t: t.check_and_mutate(b"h", b"k", CT.NO_CHECK, b"", 5)),
    (
        "cam one mutation",
        lambda t: t.check_and_mutate(b"h", b"k", CT.NO_CHECK, b"", pf.Mutation.delete(b"a")),
    ),
    ("cam tuples", lambda t: t.check_and_mutate(b"h", b"k", CT.NO_CHECK, b"", [(0, b"a", b"v")])),
]


@embedded_only  # its cases run on the served kinds in test_every_case_on_one_table
@pytest.mark.parametrize("call", [c[1] for c in BAD_TYPES], ids=[c[0] for c in BAD_TYPES])
def test_bad_types(table: Any, call: Any) -> None:
    table.set(b"h", b"k", b"v")
    with pytest.raises(pf.InvalidTypeError):
        call(table)
    assert sorted(table.scan()) == [(b"h", b"k", b"v")] and table.get(b"h", b"n") is None


BAD_VALUES: list[tuple[str, Any]] = [
    ("multi_get sort_keys and a range", lambda t: t.multi_get(b"h", [b"a"], start_sort_key=b"a")),
    ("multi_get sort_keys and stop_inclusive", lambda t: t.multi_get(b"h", [b"a"], stop_inclusive=True)),
    (
        "multi_get sort_keys and a filter",
        lambda t: t.multi_get(b"h", [b"a"], sort_key_filter=(FT.NO_FILTER, b"")),
    ),
    ("multi_get sort_keys and reverse", lambda t: t.multi_get(b"h", [b"a"], reverse=True)),
    ("multi_get start after stop", lambda t: t.multi_get(b"h", start_sort_key=b"b", stop_sort_key=b"a")),
    ("multi_get max_kv_count 0", lambda t: t.multi_get(b"h", max_kv_count=0)),
    ("multi_get max_kv_count -1", lambda t: t.multi_get(b"h", max_kv_count=-1)),
    ("multi_get max_kv_size -5", lambda t: t.multi_get(b"h", max_kv_size=-5)),
    ("multi_get keys max_kv_size -5", lambda t: t.multi_get(b"h", [b"a"], max_kv_size=-5)),
    ("multi_get unknown filter type", lambda t: t.multi_get(b"h", sort_key_filter=(4, b"a"))),
    ("multi_get filter -1", lambda t: t.multi_get(b"h", sort_key_filter=(-1, b"a"))),
    ("multi_get empty hash_key range", lambda t: t.multi_get(b"", start_sort_key=b"a")),
    ("get_scanner start after stop", lambda t: t.get_scanner(b"h", b"z", b"a")),
    ("get_scanner batch_size 0", lambda t: t.get_scanner(b"h", batch_size=0)),
    ("get_scanner batch_size -1", lambda t: t.get_scanner(b"h", batch_size=-1)),
    ("get_scanner empty hash_key", lambda t: t.get_scanner(b"")),
    ("get_scanner unknown filter", lambda t: t.get_scanner(b"h", sort_key_filter=(9, b""))),
    ("scan batch_size -1", lambda t: t.scan(batch_size=-1)),
    ("scan unknown hash_key filter", lambda t: t.scan(hash_key_filter=(7, b"x"))),
    ("unordered_scanners 0", lambda t: t.unordered_scanners(0)),
    ("unordered_scanners -3", lambda t: t.unordered_scanners(-3)),
    ("incr ttl -1", lambda t: t.incr(b"h", b"n", 1, ttl_seconds=-1)),
    ("incr hash_key too long", lambda t: t.incr(b"x" * 65535, b"n")),
    ("incr sort_key over MAX_VALUE", lambda t: t.incr(b"h", b"s" * (MAX_VALUE + 1))),
    ("cas unknown check type", lambda t: t.check_and_set(b"h", b"k", 18, b"", b"k", b"v")),
    ("cas check type -1", lambda t: t.check_and_set(b"h", b"k", -1, b"", b"k", b"v")),
    (
        "cas huge operand",
        lambda t: t.check_and_set(b"h", b"k", CT.NO_CHECK, b"x" * (MAX_VALUE + 1), b"k", b"v"),
    ),
    ("cas huge value", lambda t: t.check_and_set(b"h", b"k", CT.NO_CHECK, b"", b"k", b"x" * (MAX_VALUE + 1))),
    ("cas ttl -1", lambda t: t.check_and_set(b"h", b"k", CT.NO_CHECK, b"", b"k", b"v", -1)),
    ("cam no mutations", lambda t: t.check_and_mutate(b"h", b"k", CT.NO_CHECK, b"", [])),
    (
        "cam unknown check type",
        lambda t: t.check_and_mutate(b"h", b"k", 100, b"", [pf.Mutation.delete(b"k")]),
    ),
    (
        "cam over MAX_WRITE",
        lambda t: t.check_and_mutate(
            b"h", b"k", CT.NO_CHECK, b"", [pf.Mutation.set(b"%d" % i, b"x" * MAX_VALUE) for i in range(5)]
        ),
    ),
]


@embedded_only  # its cases run on the served kinds in test_every_case_on_one_table
@pytest.mark.parametrize("call", [c[1] for c in BAD_VALUES], ids=[c[0] for c in BAD_VALUES])
def test_bad_values(table: Any, call: Any) -> None:
    table.set(b"h", b"k", b"v")
    with pytest.raises(pf.InvalidArgumentError):
        call(table)
    assert sorted(table.scan()) == [(b"h", b"k", b"v")]


def test_a_closed_table_refuses_the_data_api(cluster: Any, table: Any) -> None:
    table.set(b"h", b"k", b"1")
    scanner = table.get_scanner(b"h", batch_size=1)
    cluster.close()
    for call in (
        lambda: table.exist(b"h", b"k"),
        lambda: table.multi_get(b"h"),
        lambda: table.multi_get(b"h", [b"k"]),
        lambda: table.incr(b"h", b"k"),
        lambda: table.check_and_set(b"h", b"k", CT.NO_CHECK, b"", b"k", b"v"),
        lambda: table.scan(),
        lambda: list(scanner),
    ):
        with pytest.raises(pf.ClosedError):
            call()


# -- the parametrized cases on the served kinds ---------------------------------------------------


def _each_case(test: Any, table: Any, reset: list[bytes]) -> None:
    """Every case of the parametrized (embedded_only) ``test`` on this one table, the sort keys
    ``reset`` of hash key b"h" deleted before each: a served table per case would cost more
    than the case."""
    mark = next(m for m in test.pytestmark if m.name == "parametrize")
    single = "," not in mark.args[0] if isinstance(mark.args[0], str) else len(mark.args[0]) == 1
    for case in mark.args[1]:
        table.multi_delete(b"h", reset)
        test(table, case) if single else test(table, *case)


@served_only
def test_every_case_on_one_table(table: Any) -> None:
    _each_case(test_multi_get_ranges, table, [b"x"])
    _each_case(test_sort_key_filters, table, SKS)
    _each_case(test_incr_reads_values_as_pegasus_does, table, [b"n"])
    _each_case(test_incr_of_a_value_that_is_not_an_int64_changes_nothing, table, [b"n"])
    _each_case(test_check_and_set_checks, table, [b"k", b"target", b"target2"])
    _each_case(test_an_int_check_of_what_is_not_an_int64_raises_and_changes_nothing, table, [b"k"])
    for hk, sks in ((b"g", SKS), (b"h", SKS + [b"apple", b"apricot", b"banana", b"cherry", b"grape"])):
        table.multi_delete(hk, sks)
    for hk in (b"i", b"ap"):
        table.multi_delete(hk, SKS + [b"apple"])
    _each_case(test_bad_types, table, [b"n", b"k", b"target", b"target2"])
    _each_case(test_bad_values, table, [b"n"])


def _open_scanners(c: pf.Cluster) -> float:
    return c.metrics()["open_scanners"]


@only("remote")  # its server runs in this process: the gauge is readable
def test_an_abandoned_remote_scanner_frees_the_server(
    served: Any, table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scanner dropped part way cancels its stream, and the server's side of it (the
    partition iterator it reads from) goes; one read to its end goes too.

    A stream this small fits in gRPC's flow-control window (several MiB), so the server could
    push one to its end before the gauge is read; each stream's records therefore wait, after
    its first batch, until the scanners are dropped: the streams are part way for certain."""
    server_cluster = served[0]
    fill(table, b"h", [b"%04d" % i for i in range(500)])
    for i in range(40):  # records in every partition, for each unordered scanner
        fill(table, b"k%d" % i, [b"%02d" % j for j in range(20)])
    assert _open_scanners(server_cluster) == 0
    dropped = threading.Event()
    stream = DataApiHandlers._stream

    def held(self: Any, records: Iterator[Any], batch_size: int, context: Any) -> Iterator[Any]:
        def after_first_batch() -> Iterator[Any]:
            for n, r in enumerate(records):
                if n == batch_size:
                    dropped.wait(10)
                yield r

        return stream(self, after_first_batch(), batch_size, context)

    monkeypatch.setattr(DataApiHandlers, "_stream", held)
    scanners = [table.get_scanner(b"h", batch_size=10), table.scan(batch_size=10)]
    scanners += table.unordered_scanners(2, batch_size=10)
    for s in scanners:
        next(s)
    assert _open_scanners(server_cluster) == len(scanners)
    del s
    scanners.pop().close()  # closed explicitly
    scanners.clear()  # the others dropped
    dropped.set()
    monkeypatch.undo()
    deadline = time.monotonic() + 10
    while _open_scanners(server_cluster) != 0:
        assert time.monotonic() < deadline, _open_scanners(server_cluster)
        time.sleep(0.01)
    assert len(list(table.get_scanner(b"h", batch_size=7))) == 500
    deadline = time.monotonic() + 10
    while _open_scanners(server_cluster) != 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)


@only("routed")
def test_a_node_answers_the_data_api_only_for_partitions_it_owns(nodes: Nodes, table: Any) -> None:
    """Each new call checks ownership as Get and Set do: sent straight to a node that does not
    own the key's partition (no routing), it is refused with NotOwnerError and changes nothing."""
    table.set(b"h", b"n", b"1")
    every = {(b"k%d" % i, b"s", b"v") for i in range(20)} | {(b"h", b"n", b"1")}
    for hk, sk, v in every:
        table.set(hk, sk, v)
    owner = table.owners()[table.partition_index(b"h")]
    other = next(n for n in ("n1", "n2", "n3") if n != owner)
    with pf.connect(nodes[other].url) as direct:
        t = direct.table(table.name)
        for call in (
            lambda: t.ttl(b"h", b"n"),
            lambda: t.sort_key_count(b"h"),
            lambda: t.multi_get(b"h", max_kv_count=1),
            lambda: t.multi_get(b"h", [b"n"], no_value=True),
            lambda: t.batch_get([(b"h", b"n")]),
            lambda: list(t.get_scanner(b"h")),
            lambda: t.incr(b"h", b"n"),
            lambda: t.check_and_set(b"h", b"n", CT.NO_CHECK, b"", b"n", b"x"),
            lambda: t.check_and_mutate(b"h", b"n", CT.NO_CHECK, b"", [pf.Mutation.delete(b"n")]),
        ):
            with pytest.raises(pf.NotOwnerError) as err:
                call()
            assert err.value.node == other
        # a scan of the whole table there reads the partitions it owns, and no other
        mine = {p for p, o in enumerate(table.owners()) if o == other}
        assert set(t.scan()) == {r for r in every if table.partition_index(r[0], r[1]) in mine}
    assert table.get(b"h", b"n") == b"1"
