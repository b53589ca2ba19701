"""A partition handed to another node: fence/unfence, and WAL blocks taken with their decrees."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pegasus_fast import _backend
from pegasus_fast.config import Config
from pegasus_fast.errors import ClosedError, PartitionUnavailableError, WalCorruptionError, WalGapError
from pegasus_fast.records import Op
from pegasus_fast.storage.partition import LEARNING, MOVING, SERVING, Partition

PUT, DELETE, MULTI_PUT = int(Op.PUT), int(Op.DELETE), int(Op.MULTI_PUT)
#: an expire time far ahead (Pegasus seconds), so the records stay live for the whole test
FAR = 2_000_000_000


def _open(path: Path, cluster_id: int = 1, learning: bool = False) -> Partition:
    return Partition(str(path), "t", 1, 2, Config(), cluster_id, learning=learning)


def _fill(p: Partition, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        hk = b"h%d" % i
        p.write([(PUT, hk, b"s", b"v%d" % i, 0)])
        if i % 3 == 0:
            p.write([(PUT, hk, b"ttl", b"x", FAR)])
        if i % 4 == 0:
            p.write([(DELETE, hk, b"s")])


def _blocks(p: Partition, after: int, through: int) -> bytes:
    """The source's WAL blocks holding decrees after..through, as the shipper reads them."""
    out = []
    for f in p.wal.snapshot_files():
        path = os.path.join(p.wal.path, f.name)
        offset = 0
        while True:
            data, _first, last, _ts, end, _torn, _skipped = _backend.impl.read_log_blocks(
                path, offset, after + 1, 1 << 20, through
            )
            if not data:
                break
            out.append(data)
            offset = end
    return b"".join(out)


def _raw(p: Partition) -> list[tuple[bytes, bytes]]:
    return list(p.raw_view())


def test_fence_refuses_writes_keeps_reads(backend: ModuleType, tmp_path: Path) -> None:
    p = _open(tmp_path / "p")
    try:
        _fill(p, 5)
        before = p.last_committed
        records = list(p.iter_records())
        assert records
        assert p.fence() == before
        assert p.state == MOVING
        assert p.durable_decree == before
        with pytest.raises(PartitionUnavailableError) as err:
            p.write([(PUT, b"new", b"s", b"v", 0)])
        assert (err.value.table, err.value.pidx, err.value.state) == ("t", 2, MOVING)
        with pytest.raises(PartitionUnavailableError):
            p.write_mutations(lambda d: [(d, 1, 1, [(PUT, b"new", b"s", b"v", 0)])])
        assert p.last_committed == before
        assert list(p.iter_records()) == records  # reads go on
        assert p.fence() == before  # again: the same answer
        p.unfence()
        assert p.state == SERVING
        p.unfence()  # serving already: nothing to do
        assert p.write([(PUT, b"new", b"s", b"v", 0)]) == before + 1
    finally:
        p.close()
    with pytest.raises(ClosedError):
        p.fence()


def test_fence_an_untouched_partition(backend: ModuleType, tmp_path: Path) -> None:
    p = _open(tmp_path / "p")
    try:
        assert p.fence() == 0
        with pytest.raises(PartitionUnavailableError):
            p.write([(PUT, b"a", b"s", b"v", 0)])
    finally:
        p.close()


def test_fence_refuses_a_learning_partition(backend: ModuleType, tmp_path: Path) -> None:
    p = _open(tmp_path / "p", learning=True)
    try:
        with pytest.raises(PartitionUnavailableError) as err:
            p.fence()
        assert err.value.state == LEARNING
        assert p.state == LEARNING
    finally:
        p.close()


def test_append_replica_keeps_decrees_and_timetags(backend: ModuleType, tmp_path: Path) -> None:
    src = _open(tmp_path / "a", cluster_id=1)
    dst = _open(tmp_path / "b", cluster_id=2, learning=True)
    try:
        _fill(src, 30)
        src.write([(MULTI_PUT, b"multi", [(b"a", b"1"), (b"b", b"2")], 0)])
        mid = src.last_committed // 2
        assert dst.append_replica(_blocks(src, 0, mid)) == mid
        assert dst.append_replica(_blocks(src, mid, src.last_committed)) == src.last_committed
        assert dst.last_committed == src.last_committed
        assert _raw(dst) == _raw(src)
        assert dst.state == LEARNING
        with pytest.raises(PartitionUnavailableError):
            dst.get(b"x")
        dst.serve_learned()
        assert dst.state == SERVING
        assert list(dst.iter_records()) == list(src.iter_records())
        # the next write of the new owner follows the source's last decree and timetag
        last_ts = max(m[1] for m in _backend.impl.decode_blocks(_blocks(src, 0, src.last_committed)))
        assert dst.write([(PUT, b"after", b"s", b"v", 0)]) == src.last_committed + 1
        assert dst._last_ts > last_ts
    finally:
        src.close()
        dst.close()


def test_a_batch_sent_again_is_idempotent(backend: ModuleType, tmp_path: Path) -> None:
    src = _open(tmp_path / "a")
    dst = _open(tmp_path / "b", cluster_id=2, learning=True)
    try:
        _fill(src, 10)
        blocks = _blocks(src, 0, src.last_committed)
        assert dst.append_replica(blocks) == src.last_committed
        wal_bytes = dst.wal.total_bytes()
        assert dst.append_replica(blocks) == src.last_committed
        assert dst.append_replica(b"") == src.last_committed
        assert dst.wal.total_bytes() == wal_bytes
        # an overlapping batch: its new part only
        _fill(src, 5, start=100)
        assert dst.append_replica(_blocks(src, 0, src.last_committed)) == src.last_committed
        assert _raw(dst) == _raw(src)
    finally:
        src.close()
        dst.close()


def test_a_gap_stores_nothing(backend: ModuleType, tmp_path: Path) -> None:
    src = _open(tmp_path / "a")
    dst = _open(tmp_path / "b", cluster_id=2, learning=True)
    try:
        _fill(src, 10)
        last = src.last_committed
        assert dst.append_replica(_blocks(src, 0, 3)) == 3
        held = _raw(dst)
        with pytest.raises(WalGapError) as err:
            dst.append_replica(_blocks(src, 5, last))
        assert (err.value.expected_decree, err.value.found_decree) == (4, 6)
        assert dst.last_committed == 3
        assert _raw(dst) == held
        with pytest.raises(WalCorruptionError):
            dst.append_replica(b"garbage" * 10)
        assert dst.last_committed == 3
        assert dst.append_replica(_blocks(src, 3, last)) == last
        assert _raw(dst) == _raw(src)
    finally:
        src.close()
        dst.close()


def test_a_serving_partition_takes_no_replica_blocks(backend: ModuleType, tmp_path: Path) -> None:
    src = _open(tmp_path / "a")
    dst = _open(tmp_path / "b", cluster_id=2)
    try:
        _fill(src, 3)
        with pytest.raises(PartitionUnavailableError) as err:
            dst.append_replica(_blocks(src, 0, src.last_committed))
        assert err.value.state == SERVING
        assert dst.last_committed == 0
    finally:
        src.close()
        dst.close()


def test_replica_survives_a_reopen(backend: ModuleType, tmp_path: Path) -> None:
    src = _open(tmp_path / "a")
    dst = _open(tmp_path / "b", cluster_id=2, learning=True)
    try:
        _fill(src, 20)
        dst.append_replica(_blocks(src, 0, src.last_committed))
        dst.close(flush=False)  # recovery replays the WAL
        dst = _open(tmp_path / "b", cluster_id=2)
        assert dst.last_committed == src.last_committed
        assert _raw(dst) == _raw(src)
    finally:
        src.close()
        dst.close()


def test_blocks_of_one_backend_applied_by_the_other(
    backend: ModuleType, other_backend: ModuleType, tmp_path: Path
) -> None:
    with _backend.use("python" if _backend.name == "rust" else "rust"):
        src = _open(tmp_path / "a")
        try:
            _fill(src, 15)
            blocks = _blocks(src, 0, src.last_committed)
            want, last = _raw(src), src.last_committed
        finally:
            src.close()
    dst = _open(tmp_path / "b", cluster_id=2, learning=True)
    try:
        assert dst.append_replica(blocks) == last
        assert _raw(dst) == want
    finally:
        dst.close()


def test_clear_drops_a_stale_copy_and_it_can_learn_again(backend: ModuleType, tmp_path: Path) -> None:
    """A partition moved away: its copy goes, disk and all, and what remains is as new."""
    src = _open(tmp_path / "src")
    _fill(src, 30)
    p = _open(tmp_path / "p", learning=True)
    p.append_replica(_blocks(src, 0, src.last_committed))
    p.serve_learned()
    p.checkpoint()
    p.fence()
    p.clear()
    assert (p.state, p.last_committed, p.source_decree) == (SERVING, 0, 0)
    assert p.holds_nothing
    assert not os.path.exists(tmp_path / "p" / "rdb")
    assert not [n for n in os.listdir(tmp_path / "p") if n.startswith("checkpoint.")]
    assert _raw(p) == []
    p.close()
    p = _open(tmp_path / "p")  # reopened: still nothing
    assert p.last_committed == 0 and _raw(p) == []
    # moved back: it learns the partition again from its start
    p.restart_learning()
    assert p.append_replica(_blocks(src, 0, src.last_committed)) == src.last_committed
    assert _raw(p) == _raw(src)
    p.close()
    with pytest.raises(ClosedError):
        p.clear()
    src.close()


def test_writes_go_on_while_a_checkpoint_is_hashed_and_synced(
    backend: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock a checkpoint holds covers RocksDB's part only: a move's source checkpoint of a
    large partition (hashing every file, fsyncs) must not stall the partition's writes."""
    import threading

    from pegasus_fast.storage import checkpoint

    p = _open(tmp_path / "p")
    _fill(p, 20)
    hashing, release = threading.Event(), threading.Event()
    real = checkpoint.build_manifest

    def slow_manifest(directory: str) -> list[tuple[str, int, str]]:
        hashing.set()
        assert release.wait(30)
        return real(directory)

    monkeypatch.setattr(checkpoint, "build_manifest", slow_manifest)
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(p.checkpoint()))
    t.start()
    try:
        assert hashing.wait(30)
        before = p.last_committed
        _fill(p, 5, start=100)  # would wait for the checkpoint if it held the partition's lock
        assert p.last_committed > before
    finally:
        release.set()
        t.join(30)
    (info,) = result
    assert info.decree == before  # what the checkpoint holds is what was there when it began
    assert checkpoint.verify(info.path) == list(info.manifest)
    p.close()


def test_a_fence_outlives_a_restart(backend: ModuleType, tmp_path: Path) -> None:
    """A node killed after fencing, back before the switch, must not take writes the switch
    would leave behind: the partition reopens moving, until it is unfenced or cleared."""
    p = _open(tmp_path / "p")
    _fill(p, 5)
    decree = p.fence()
    p.close()
    p = _open(tmp_path / "p")
    assert (p.state, p.last_committed) == (MOVING, decree)
    with pytest.raises(PartitionUnavailableError):
        p.write([(PUT, b"h", b"s", b"late", 0)])
    assert _raw(p)  # reads go on
    p.unfence()
    p.write([(PUT, b"h", b"s", b"now", 0)])
    p.close()
    p = _open(tmp_path / "p")
    assert p.state == SERVING
    p.fence()
    p.clear()
    p.close()
    assert _open(tmp_path / "p").state == SERVING


def _log_one(dst: Partition, src: Partition, ops: list[tuple[Any, ...]]) -> int:
    """``ops`` written on ``src`` (the primary) and logged by ``dst`` (an open secondary)."""
    decree = src.write(ops)
    dst.log_replica(_blocks(src, decree - 1, decree), defer_apply=True)
    return decree


def _records(p: Partition) -> dict[tuple[bytes, bytes], bytes]:
    return {(hk, sk): v for hk, sk, v in p.iter_records()}


def test_a_secondary_knows_whether_it_logged_records(backend: ModuleType, tmp_path: Path) -> None:
    """Source positions alone (a new follower table's partitions, learned empty) do not make a
    secondary open its RocksDB (replication.py asks ``logged_records``); a record does."""
    src = _open(tmp_path / "a")
    dst = _open(tmp_path / "b")
    try:
        src.write_mutations(lambda d: [(d, 0, 0, [(int(Op.SOURCE_DECREE), 7)])], defer_apply=True)
        dst.log_replica(_blocks(src, 0, 1), defer_apply=True)
        assert dst.source_decree == 7 and not dst.logged_records
        _log_one(dst, src, [(PUT, b"k", b"s", b"v", 0)])
        assert dst.logged_records
        assert _records(dst) == {(b"k", b"s"): b"v"}
    finally:
        src.close()
        dst.close()


def test_the_cyclic_collector_is_back_only_once_every_concurrent_replay_ended() -> None:
    """Partitions opened in several threads at once: the collector stays off until the last
    replay ends, then is on again; one the user turned off stays off."""
    import gc
    import threading

    from pegasus_fast.storage.partition import _no_cyclic_gc

    assert gc.isenabled()
    first, second = _no_cyclic_gc(), _no_cyclic_gc()
    try:
        first.__enter__()
        t = threading.Thread(target=second.__enter__)
        t.start()
        t.join()
        first.__exit__(None, None, None)
        assert not gc.isenabled(), "re-enabled while another replay still runs"
        second.__exit__(None, None, None)
        assert gc.isenabled()
        gc.disable()
        with _no_cyclic_gc():
            pass
        assert not gc.isenabled(), "the user's choice was overridden"
    finally:
        gc.enable()
