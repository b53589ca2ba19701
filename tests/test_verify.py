"""dup.verify (issue #21 §1): the follower compared with the source live, per partition at one
source decree, on real clusters: equal while writes go on; each kind of difference found and
named at its first key; master–master compared once quiet, and says when it cannot be."""

from __future__ import annotations

import random
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pegasus_fast as pf
import pytest
import rocksdict
from conftest import PYTHON, child_env, load_backend
from dupharness import wait_until
from pegasus_fast.cli.exits import EXIT_NOT_FOUND, EXIT_OK
from pegasus_fast.duplication import verify_views
from pegasus_fast.duplication.verify_report import RecordState, VerifyReport
from pegasus_fast.errors import (
    DuplicationError,
    InvalidArgumentError,
    VerifyPositionError,
    VerifyTimeoutError,
    VerifyViewGoneError,
)
from pegasus_fast.records import now_pegasus_seconds

WAIT = 20.0
PARTS = 4


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[pf.Cluster, pf.Cluster]]:
    a = pf.Cluster.open(tmp_path / "a", name="a", config=pf.Config(cluster_id=1))
    b = pf.Cluster.open(tmp_path / "b", name="b", config=pf.Config(cluster_id=2))
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def fill(t: Any, n: int, prefix: str = "h") -> None:
    for i in range(n):
        t.multi_set(f"{prefix}{i}", {f"s{j}": f"v{i}.{j}" for j in range(3)})


#: a follower made writable, to make it differ from its source as drift or a bug would
WRITABLE = {"duplication.follower_writable": "true"}


def drift(c: pf.Cluster, table: str = "t") -> Any:
    """The follower table ``table`` of ``c``, opened to client writes (followers are read-only)."""
    c.set_table_envs(table, WRITABLE)
    return c.table(table)


def one_difference(r: VerifyReport) -> Any:
    bad = [p for p in r.partitions if not p.equal]
    assert len(bad) == 1, bad
    assert bad[0].first_difference is not None
    return bad[0]


def test_each_kind_of_difference(pair: tuple[pf.Cluster, pf.Cluster], backend: ModuleType) -> None:
    a, b = pair
    ta = a.create_table("t", partition_count=PARTS)
    fill(ta, 200)
    ta.set("ttl", "s", "x", ttl_seconds=3600)
    dup = a.add_duplication("t", b)
    dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    tb = drift(b)
    r = dup.verify(timeout=WAIT)
    assert r.equal and r.quiet and r.reason == ""
    assert [p.pidx for p in r.partitions] == list(range(PARTS))
    assert sum(p.records for p in r.partitions) == 601
    assert all(p.records == p.follower_records and p.first_difference is None for p in r.partitions)
    ttl_expiry = ta.ttl("ttl", "s")
    assert ttl_expiry is not None

    # one changed value on the follower
    tb.set("h7", "s1", "changed")
    p = one_difference(dup.verify(timeout=WAIT))
    d = p.first_difference
    assert (d.hash_key, d.sort_key) == (b"h7", b"s1")
    assert d.source == RecordState(b"v7.1", 0) and d.follower == RecordState(b"changed", 0)
    assert p.records == p.follower_records
    tb.set("h7", "s1", "v7.1")
    assert dup.verify(timeout=WAIT).equal

    # a deleted record
    tb.delete("h9", "s2")
    p = one_difference(dup.verify(timeout=WAIT))
    d = p.first_difference
    assert (d.hash_key, d.sort_key, d.source, d.follower) == (b"h9", b"s2", RecordState(b"v9.2", 0), None)
    assert p.follower_records == p.records - 1
    tb.set("h9", "s2", "v9.2")

    # an extra record
    tb.set("h11", "s0x", "extra")
    p = one_difference(dup.verify(timeout=WAIT))
    d = p.first_difference
    assert (d.hash_key, d.sort_key, d.source, d.follower) == (b"h11", b"s0x", None, RecordState(b"extra", 0))
    tb.delete("h11", "s0x")

    # a differing TTL, same value
    tb.set("ttl", "s", "x", ttl_seconds=7200)
    p = one_difference(dup.verify(timeout=WAIT))
    d = p.first_difference
    assert (d.hash_key, d.sort_key) == (b"ttl", b"s")
    assert d.source is not None and d.follower is not None
    assert d.source.value == d.follower.value == b"x"
    assert d.follower.expire_ts - d.source.expire_ts >= 3500
    tb.set("ttl", "s", "x", ttl_seconds=0)  # no TTL on one side only differs too
    d = one_difference(dup.verify(timeout=WAIT)).first_difference
    assert d.follower == RecordState(b"x", 0) and d.source is not None and d.source.expire_ts > 0


def test_the_first_difference_in_key_order(pair: tuple[pf.Cluster, pf.Cluster], backend: ModuleType) -> None:
    """Several differences in one partition of many chunks: the first in key order is named,
    from the chunk that differs (later chunks are never read)."""
    a, b = pair
    ta = a.create_table("t", partition_count=1)
    for i in range(60):
        ta.multi_set(f"h{i:03}", {f"s{j:03}": f"v{j}" for j in range(100)})
    dup = a.add_duplication("t", b)
    dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    tb = drift(b)
    tb.set("h050", "s001", "late")
    tb.delete("h020", "s099")
    tb.set("h030", "zz", "extra")
    r = dup.verify(timeout=WAIT)
    (p,) = r.partitions
    assert not p.equal and (p.records, p.follower_records) == (6000, 6000)
    d = p.first_difference
    assert (d.hash_key, d.sort_key, d.source, d.follower) == (b"h020", b"s099", RecordState(b"v99", 0), None)


def test_a_gap_in_the_log(pair: tuple[pf.Cluster, pf.Cluster], backend: ModuleType) -> None:
    """Records written before a duplication without checkpoint never reach the follower: the
    log it ships starts after them. verify names the first one, absent on the follower."""
    a, b = pair
    ta = a.create_table("t", partition_count=PARTS)
    b.create_table("t", partition_count=PARTS)
    ta.set("before", "s", "never shipped")
    dup = a.add_duplication("t", b, with_checkpoint=False)
    dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    fill(ta, 50)
    wait_until(lambda: all(p.pending_mutations == 0 for p in dup.progress()), WAIT, "shipped")
    p = one_difference(dup.verify(timeout=WAIT))
    d = p.first_difference
    assert (d.hash_key, d.sort_key, d.source, d.follower) == (
        b"before",
        b"s",
        RecordState(b"never shipped", 0),
        None,
    )


def test_expired_records_are_not_compared(pair: tuple[pf.Cluster, pf.Cluster], backend: ModuleType) -> None:
    """Both sides judge expiry at the source's one "now": a record expired there counts on
    neither side, whatever compaction has dropped yet."""
    a, b = pair
    ta = a.create_table("t", partition_count=1)
    ta.set("k", "live", "v")
    ta.set("k", "short", "v", ttl_seconds=1)
    dup = a.add_duplication("t", b)
    dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    drift(b).set("k", "short", "other", ttl_seconds=1)  # differs, but expires as well
    start = now_pegasus_seconds()
    wait_until(lambda: now_pegasus_seconds() > start + 1, 5, "the short TTL to pass")
    r = dup.verify(timeout=WAIT)
    assert r.equal and r.partitions[0].records == 1 and r.now > start


class Writer:
    """Writes to a table at about ``rate`` a second until stopped; counts what it wrote."""

    def __init__(self, table: Any, rate: float, prefix: str) -> None:
        self.table, self.rate, self.prefix = table, rate, prefix
        self.count = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            try:
                self.table.set(f"{self.prefix}{self.count % 5000}", "s", f"{self.count}")
            except BaseException as exc:  # noqa: BLE001 - reported by stop()
                self.errors.append(exc)
                return
            self.count += 1
            ahead = self.count / self.rate - (time.monotonic() - start)
            if ahead > 0:
                self._stop.wait(ahead)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        assert not self.errors, self.errors


def test_no_false_mismatch_under_writes(
    pair: tuple[pf.Cluster, pf.Cluster], default_backend: ModuleType
) -> None:
    a, b = pair
    ta = a.create_table("t", partition_count=8)
    fill(ta, 300)
    dup = a.add_duplication("t", b)
    dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    with Writer(ta, 1000, "w") as w:
        wait_until(lambda: w.count > 300, WAIT, "writes to be going")
        before = w.count
        reports = []
        # verify again and again for a couple of seconds of writes (about 2,000)
        while len(reports) < 5 or w.count - before < 2000:
            reports.append(dup.verify(timeout=WAIT))
        during = w.count - before
    assert during >= 2000, "writes went on while verifying"
    for r in reports:
        assert r.equal, [p for p in r.partitions if not p.equal]
    decrees = [[p.decree for p in r.partitions] for r in reports]
    assert decrees[0] != decrees[-1], "each verification compares at the decree of its moment"


def test_not_in_log_is_refused(pair: tuple[pf.Cluster, pf.Cluster], default_backend: ModuleType) -> None:
    a, b = pair
    a.create_table("t", partition_count=2)
    dup = a.add_duplication("t", b)
    dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    dup.pause()
    with pytest.raises(DuplicationError):
        dup.verify(timeout=1)


def test_master_master_quiet_and_not(
    pair: tuple[pf.Cluster, pf.Cluster], default_backend: ModuleType
) -> None:
    a, b = pair
    ta = a.create_table("t", partition_count=2)
    tb = b.create_table("t", partition_count=2)
    ab = a.add_duplication("t", b, with_checkpoint=False)
    ba = b.add_duplication("t", a, with_checkpoint=False)
    ab.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    ba.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    fill(ta, 30, "a")
    fill(tb, 30, "b")

    def quiet() -> bool:
        return all(p.pending_mutations == 0 for d in (ab, ba) for p in d.progress())

    wait_until(quiet, WAIT, "both directions shipped")
    r = ab.verify(timeout=WAIT)
    assert r.equal and r.quiet, r
    assert sum(p.records for p in r.partitions) == 180
    assert ba.verify(timeout=WAIT).equal
    tb.set("a3", "s0", "b changed it")  # ships back to a: then they agree again
    wait_until(quiet, WAIT, "b's write shipped to a")
    assert ab.verify(timeout=WAIT).equal
    # writes as fast as they go on both sides, a digest longer than the gap between two writes:
    # no moment where neither side writes
    fill(ta, 1000, "more")
    wait_until(quiet, WAIT, "the rest shipped")
    with Writer(ta, 1e6, "wa") as wa, Writer(tb, 1e6, "wb") as wb:
        wait_until(lambda: wa.count > 100 and wb.count > 100, WAIT, "writes on both sides")
        r = ab.verify(timeout=0.5)
    assert not r.quiet and not r.equal
    assert r.reason and all(not p.quiet and p.reason for p in r.partitions if not p.equal)
    wait_until(quiet, WAIT, "both directions shipped, once the writes stopped")
    r = ab.verify(timeout=WAIT)
    assert r.equal and r.quiet


def test_cli_verify_dup_on_cluster_directories(tmp_path: Path, default_backend_name: str) -> None:
    """``pegasus-fast --cluster SRC verify_dup TABLE DUPID``: the follower directory is opened
    alongside; exit 0 when equal, 1 with the first difference printed, 1 for an unknown dupid."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    with pf.Cluster.open(src, name="a") as a, pf.Cluster.open(dst, name="b") as b:
        ta = a.create_table("t", partition_count=2)
        fill(ta, 20)
        dup = a.add_duplication("t", b)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        dupid = dup.dupid
        ta.set("late", "s", "written before the close")  # shipped once the CLI opens both

    def verify(*extra: str) -> subprocess.CompletedProcess[str]:
        argv = [PYTHON, "-m", "pegasus_fast", "--cluster", str(src), "verify_dup", "t", *extra]
        return subprocess.run(
            argv, env=child_env(default_backend_name), capture_output=True, text=True, timeout=120
        )

    r = verify(str(dupid))
    assert r.returncode == EXIT_OK, r.stdout + r.stderr
    assert "equal" in r.stdout
    with pf.Cluster.open(dst, name="b") as b:
        drift(b).set("h3", "s2", "changed")
    r = verify(str(dupid))
    assert r.returncode == EXIT_NOT_FOUND, r.stdout + r.stderr
    assert "h3/s2" in r.stdout and "'changed'" in r.stdout and "'v3.2'" in r.stdout
    r = verify(str(dupid + 1))
    assert r.returncode == EXIT_NOT_FOUND, r.stdout + r.stderr


def test_a_rerouted_follower_cannot_be_compared(
    pair: tuple[pf.Cluster, pf.Cluster], default_backend: ModuleType
) -> None:
    """A follower table of another partition count holds each key where its hash puts it:
    partition i of one side is not partition i of the other."""
    a, b = pair
    a.create_table("t", partition_count=4)
    b.create_table("t", partition_count=2)
    dup = a.add_duplication("t", b, with_checkpoint=False)
    dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    with pytest.raises(DuplicationError):
        dup.verify(timeout=WAIT)


def test_a_follower_short_of_the_decree_times_out(
    pair: tuple[pf.Cluster, pf.Cluster], default_backend: ModuleType
) -> None:
    """The follower's half waits for exactly the source decree asked for, up to its timeout;
    one already past it is refused (it cannot be compared there)."""
    a, b = pair
    ta = a.create_table("t", partition_count=1)
    ta.set("k", "s", "v")
    dup = a.add_duplication("t", b)
    dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    p = b.table("t").partitions[0]
    held = max(p.source_decree, p.source_seen)
    started = time.monotonic()
    with pytest.raises(VerifyTimeoutError) as e:
        verify_views.view_at(p, "t", held + 5, 0.2)
    assert time.monotonic() - started >= 0.2
    assert (e.value.table, e.value.pidx, e.value.decree, e.value.held) == ("t", 0, held + 5, held)
    assert held >= 1  # the record learned from the checkpoint
    with pytest.raises(VerifyPositionError) as e2:
        verify_views.view_at(p, "t", held - 1, 0.2)
    assert (e2.value.decree, e2.value.held) == (held - 1, held)
    vid, _, got = verify_views.view_at(p, "t", held, 0.2)
    assert got == held
    verify_views.release(vid)
    with pytest.raises(VerifyViewGoneError):
        verify_views.digest(vid, now_pegasus_seconds(), b"", None)


def test_record_digest_is_the_same_bytes_on_both_backends(tmp_path: Path) -> None:
    """RecordDigest: Rust and the pure-Python twin cut the same chunks and hash the same bytes
    over one real RocksDB: binary keys, meta keys, tombstones, records expired or not at ``now``,
    fed in pieces of any size and from any start key; both refuse what the other refuses."""
    rust, python = load_backend("rust"), load_backend("python")
    opts = rocksdict.Options(raw_mode=True)
    opts.create_if_missing(True)
    db = rocksdict.Rdict(str(tmp_path / "db"), opts)
    rng = random.Random(7)
    now = 1000
    db[b"\x00"] = b"meta"
    for i in range(5000):
        hk = rng.randbytes(rng.randrange(0, 6))
        key = len(hk).to_bytes(2, "big") + hk + rng.randbytes(rng.randrange(0, 8)) + i.to_bytes(4, "big")
        expire = rng.choice([0, 0, 0, now - 1, now, now + 1, now + 1000])
        tag = rng.randrange(1 << 62) << 1 | (rng.random() < 0.1)  # one in ten a tombstone
        db[key] = expire.to_bytes(4, "big") + tag.to_bytes(8, "big") + rng.randbytes(rng.randrange(0, 300))
    starts = [b"", b"\x00\x02", b"\x00\x03\xff"]
    for chunk_bits, max_bytes, start in [
        (0, 1, b""),
        (4, 700, starts[1]),
        (10, 1 << 20, starts[2]),
        (31, 64, b""),
    ]:
        out = []
        for m in (rust, python):
            d = m.RecordDigest(chunk_bits)
            it = db.iter()
            it.seek(start) if start else it.seek_to_first()
            while d.feed(it, now, b"\x00\x04", max_bytes):
                pass
            out.append(d.finish())
        assert out[0] == out[1]
        assert sum(c[1] for c in out[0]) > 0 and all(len(c[2]) == 32 for c in out[0])
    for m in (rust, python):
        with pytest.raises(InvalidArgumentError):
            m.RecordDigest(32)
        db[b"\x00\x01ab"] = b"short"
        d = m.RecordDigest()
        it = db.iter()
        it.seek(b"\x00\x01ab")
        with pytest.raises(InvalidArgumentError):
            d.feed(it, now, None, 1 << 20)
        del db[b"\x00\x01ab"]
    db.close()
