"""The shared log (storage/slog.py): a Pegasus-port batch is made durable by one fdatasync of the
cluster's shared log; the partition logs catch up later. A machine crash may take the partition
logs' unsynced tails; the shared log gives them back when the cluster opens again.

The crash is a child process that acknowledges batches and dies without closing anything
(``os._exit``); the page cache a power cut would lose is then cut off by hand: every partition
log file is truncated to what had been fsynced into it (``Wal.file_synced_offset``, reported by
the child). A control run deletes the shared log before opening, and loses writes: the test can
fail."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
from conftest import PYTHON, child_env
from pegasus_fast import fileio
from pegasus_fast.errors import WalCorruptionError
from pegasus_fast.fileio import Fault
from pegasus_fast.net.pegasus import codes
from pegasus_fast.net.pegasus.handler import BatchHandler
from pegasus_fast.records import encode_key
from pegasus_fast.storage import slog, walhead

PARTITIONS = 8

CHILD = r"""
import json, os, sys
import pegasus_fast as pf
from pegasus_fast.net.pegasus import codes
from pegasus_fast.net.pegasus.handler import BatchHandler
from pegasus_fast.records import encode_key

root, out, batches, embedded_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = pf.Cluster.open(root, config=pf.Config(wal_sync="group", log_private_file_size_mb=1))
t = c.create_table("t", partition_count=8)
h = BatchHandler(c)
h.pipeline_depth = 1
acked = {}
for b in range(batches):
    reqs = []
    for i in range(32):
        hk = b"k%d-%d" % (b, i)
        v = b"v%d-%d-" % (b, i) + b"x" * 8000
        reqs.append((codes.OP_PUT, i, t.app_id, t.partition_index(hk), "RPC_RRDB_RRDB_PUT", (encode_key(hk, b""), v, 0)))
    for req, r in zip(reqs, h.begin_batch(reqs).finish()):
        assert r[5] == codes.ERR_OK and r[6][0] == codes.K_OK, r
        acked[req[5][0][2:].decode()] = req[5][1].decode()
    if b == embedded_at:
        # another writer of the same partitions, synced by its own group commit
        for i in range(8):
            t.set(b"e%d" % i, b"", b"embedded")
            acked["e%d" % i] = "embedded"
synced = {p.wal.path: p.wal.file_synced_offset for p in t.partitions}
with open(out, "w") as f:
    json.dump({"acked": acked, "synced": synced}, f)
os._exit(0)  # a crash: nothing closed, nothing synced
"""


def _crash(backend_name: str, root: Path, batches: int, embedded_at: int = -1) -> dict:
    out = root.parent / "child.json"
    r = subprocess.run(
        [PYTHON, "-c", CHILD, str(root), str(out), str(batches), str(embedded_at)],
        env=child_env(backend_name), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text())


def _lose_page_cache(synced: dict[str, int]) -> int:
    """Cut every partition log file back to what was fsynced into it; returns the bytes cut."""
    cut = 0
    for wal_dir, durable in synced.items():
        for name in os.listdir(wal_dir):
            if not name.startswith("log."):
                continue
            start = int(name.split(".")[2])
            path = os.path.join(wal_dir, name)
            size = os.path.getsize(path)
            keep = min(size, max(0, durable - start))
            if keep < size:
                os.truncate(path, keep)
                cut += size - keep
    return cut


def _check(root: Path, acked: dict[str, str]) -> list[str]:
    with pf.Cluster.open(root) as c:
        t = c.table("t")
        missing = [k for k, v in acked.items() if t.get(k.encode(), b"") != v.encode()]
    return missing


@pytest.mark.parametrize("embedded_at", [-1, 3])
def test_a_crash_loses_no_acknowledged_write(backend: ModuleType, tmp_path: Path, embedded_at: int) -> None:
    root = tmp_path / "c"
    # 40 batches of 32 writes of 8 KB: each partition log passes 1 MB and rotates once
    got = _crash(backend.__name__.endswith("_pure") and "python" or "rust", root, 40, embedded_at)
    assert len(got["acked"]) == 40 * 32 + (8 if embedded_at >= 0 else 0)
    assert any(len([n for n in os.listdir(d) if n.startswith("log.")]) > 1 for d in got["synced"])
    assert list((root / "slog").iterdir())  # the crash left the shared log behind
    assert _lose_page_cache(got["synced"]) > 0  # the partition logs really lost their tails
    assert _check(root, got["acked"]) == []
    assert list((root / "slog").iterdir()) == []  # replayed, then emptied
    # a second open finds the partition logs whole on their own
    assert _check(root, got["acked"]) == []


def test_without_the_shared_log_the_same_crash_loses_writes(tmp_path: Path) -> None:
    """The control: the test above can fail. The same crash with the shared log deleted before
    the open loses the acknowledged writes the partition logs had only in the page cache."""
    root = tmp_path / "c"
    got = _crash("rust" if "rust" in pf.backend() else "python", root, 6)
    _lose_page_cache(got["synced"])
    for f in (root / "slog").iterdir():
        f.unlink()
    try:
        missing = _check(root, got["acked"])
    except pf.PegasusFastError:
        return  # or the open refuses, having found a gap: either way not silently whole
    assert missing


def test_replay_skips_what_is_there_and_refuses_corruption(backend: ModuleType, tmp_path: Path) -> None:
    root = tmp_path / "c"
    got = _crash("python" if backend.__name__.endswith("_pure") else "rust", root, 4)
    files = sorted((root / "slog").iterdir())
    assert files
    # nothing was lost: every block is in the partition logs already, and none is appended twice
    assert slog.replay(str(root), 1 << 20) == 0
    assert _check(root, got["acked"]) == []
    # a corrupt record in a file that is not the newest is refused, not skipped
    older = root / "slog" / "slog.00000001"
    newer = root / "slog" / "slog.00000002"
    older.write_bytes(slog.encode([("tables/1.0/wal", 0, 1, 1, b"x" * 10)])[:-3] + b"abc")
    newer.write_bytes(b"")
    with pytest.raises(WalCorruptionError):
        slog.replay(str(root), 1 << 20)
    # a torn record at the end of the newest file was never acknowledged: ignored
    older.unlink()
    newer.write_bytes(slog.encode([("tables/1.0/wal", 10**9, 10**9, 10**9, b"y")])[:-2])
    assert slog.replay(str(root), 1 << 20) == 0
    assert not newer.exists()


def test_a_removed_partition_log_takes_its_entries_along(backend: ModuleType, tmp_path: Path) -> None:
    """Before a partition log is removed (a learn, a move), the shared log is checkpointed: no
    entry for it may be replayed into a log made later in its place."""
    with pf.Cluster.open(tmp_path / "c", config=pf.Config(wal_sync="group")) as c:
        t = c.create_table("t", partition_count=PARTITIONS)
        h = BatchHandler(c)
        h.pipeline_depth = 1
        hk = b"k"
        req = (
            codes.OP_PUT,
            1,
            t.app_id,
            t.partition_index(hk),
            "RPC_RRDB_RRDB_PUT",
            (encode_key(hk, b""), b"v", 0),
        )
        assert h.begin_batch([req]).finish()[0][6][0] == codes.K_OK
        part = t.partitions[req[3]]
        assert part.wal.file_synced_offset < part.wal.written_offset  # durable in the shared log only
        before = sorted(p.name for p in (tmp_path / "c" / "slog").iterdir())
        walhead.remove(os.path.join(str(tmp_path), "elsewhere", "wal"))  # not ours: nothing happens
        assert sorted(p.name for p in (tmp_path / "c" / "slog").iterdir()) == before
        part.close()
        walhead.remove(part.wal.path)  # what a learn or a move does before making the log anew
        after = sorted(p.name for p in (tmp_path / "c" / "slog").iterdir())
        assert after != before and before[0] not in after  # the file with its entry is gone
        h.close()


@pytest.mark.parametrize(
    "fault",
    [Fault("fdatasync", 1, errno.EIO, path_part=os.sep + "slog" + os.sep),
     Fault("write", 1, errno.ENOSPC, short=20, path_part=os.sep + "slog" + os.sep)],
    ids=["fdatasync", "torn-write"],
)  # fmt: skip
def test_a_failed_shared_log_falls_back_to_the_partition_logs(
    backend: ModuleType, tmp_path: Path, fault: Fault
) -> None:
    """A shared log whose write or fdatasync fails takes no more writes (fsyncgate; a full disk
    leaves a torn record); the batch, and every later one, is made durable by the partition
    logs' own fsyncs, and is acknowledged; the next open replays what the shared log holds and
    ignores its torn end."""
    root = tmp_path / "c"
    with pf.Cluster.open(root, config=pf.Config(wal_sync="group")) as c:
        t = c.create_table("t", partition_count=PARTITIONS)
        h = BatchHandler(c)
        h.pipeline_depth = 1
        try:
            for n in range(3):
                reqs = []
                for i in range(16):
                    hk = b"k%d-%d" % (n, i)
                    args = (encode_key(hk, b""), b"v", 0)
                    reqs.append((codes.OP_PUT, i, t.app_id, t.partition_index(hk), "RPC_RRDB_RRDB_PUT", args))
                plan = [fault] if n == 1 else []
                with fileio.faults(plan) as calls:
                    out = h.begin_batch(reqs).finish()
                assert [r[6][0] for r in out] == [codes.K_OK] * 16
                if n >= 1:
                    assert c.shared_log.failed is not None
                    assert calls.calls.get("fdatasync", 0) >= len({r[3] for r in reqs})
                    for r in reqs:
                        wal = t.partitions[r[3]].wal
                        assert wal.file_synced_offset == wal.written_offset
        finally:
            h.close()
    with pf.Cluster.open(root) as c:
        assert c.table("t").count() == 48


def test_crafted_shared_log_files_never_reach_a_partition_log(tmp_path: Path) -> None:
    """Garbage, flipped bits, lying lengths and paths out of the directory: a newest file's bad
    end is ignored, an older file's is WalCorruptionError, and nothing is appended anywhere."""
    import random

    rng = random.Random(7)
    good = slog.encode([("tables/1.0/wal", 0, 1, 1, b"block")])
    crafted = [
        rng.randbytes(200),
        good[:-1],
        good[:6] + b"\xff\xff\xff\x7f" + good[10:],  # a length past the file
        bytes([good[0] ^ 1]) + good[1:],
        good[:20] + bytes([good[20] ^ 0x10]) + good[21:],  # a payload bit flipped: the CRC fails
    ]
    for path in ("/etc/passwd", "../../x/wal", "tables/../../x"):
        crafted.append(slog.encode([(path, 0, 1, 1, b"b")]))
    root = tmp_path / "c"
    (root / "slog").mkdir(parents=True)
    for n, data in enumerate(crafted):
        newest = root / "slog" / "slog.00000002"
        newest.write_bytes(data)
        before = sorted(p.name for p in tmp_path.rglob("*"))
        try:
            assert slog.replay(str(root), 1 << 20) == 0, n
        except WalCorruptionError:
            assert n >= 5, n  # only a record whose checksum holds but whose entries do not
        older = root / "slog" / "slog.00000001"
        older.write_bytes(data)
        newest.write_bytes(b"")
        with pytest.raises(WalCorruptionError):
            slog.replay(str(root), 1 << 20)
        older.unlink()
        newest.unlink(missing_ok=True)
        assert sorted(p.name for p in tmp_path.rglob("*")) == [x for x in before if x != "slog.00000002"]


def test_a_begun_record_holds_the_log_until_it_is_finished(backend: ModuleType, tmp_path: Path) -> None:
    """``begin`` writes a record and starts its fdatasync; no other record may be written (nor
    the file rotated under the running fdatasync) until ``finish``."""
    import threading

    log = slog.SharedLog(str(tmp_path))
    try:
        syncing = log.begin([])
        other = threading.Thread(target=log.log_and_sync, args=([],), daemon=True)
        other.start()
        other.join(0.3)
        assert other.is_alive(), "another record went in before the begun one was finished"
        assert log.finish(syncing) == []
        other.join(10)
        assert not other.is_alive()
        assert log.failed is None
        files = sorted((tmp_path / "slog").iterdir())
        assert len(files) == 1 and files[0].stat().st_size == 2 * len(slog.encode([]))
    finally:
        log.close()
