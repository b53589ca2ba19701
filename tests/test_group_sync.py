"""The fsyncs of several partition logs at once (a Pegasus-port batch spread over partitions):
``fdatasync_all`` (Rust pool, GIL released; a pure twin), ``wal.sync_all`` and
``writes.wait_durable_all``. One log's failed fsync fails that partition and answers its writes
with the failure; the others are durable and acknowledged."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
from pegasus_fast import _backend, fileio
from pegasus_fast.fileio import Fault
from pegasus_fast.net.pegasus import codes
from pegasus_fast.net.pegasus.handler import BatchHandler
from pegasus_fast.records import encode_key
from pegasus_fast.storage.wal import Wal, sync_all
from pegasus_fast.storage.writes import wait_durable_all


def test_fdatasync_all_reports_each_file(backend: ModuleType, tmp_path: Path) -> None:
    fds = []
    try:
        for i in range(5):
            fd = os.open(tmp_path / f"f{i}", os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, b"x" * (i + 1))
            fds.append(fd)
        assert backend.fdatasync_all(fds) == [0] * 5
        assert backend.fdatasync_all([]) == []
        closed = os.open(tmp_path / "closed", os.O_WRONLY | os.O_CREAT, 0o644)
        os.close(closed)
        out = backend.fdatasync_all([fds[0], closed, fds[1]])
        assert out == [0, errno.EBADF, 0]  # one bad descriptor fails alone
        assert backend.fdatasync_all([closed]) == [errno.EBADF]
    finally:
        for fd in fds:
            os.close(fd)


def _wal(path: Path) -> Wal:
    wal = Wal(str(path), "group", 1 << 20)
    wal.recover(1)
    return wal


def _append(wal: Wal, decree: int) -> int:
    block = _backend.impl.encode_block([(decree, decree, 1, [(0, b"h", b"s%d" % decree, b"v", 0)])])
    end = wal.append(block, decree, decree)
    wal.commit(decree)
    return end


def test_sync_all_makes_every_log_durable_and_fails_only_the_faulty_one(
    backend: ModuleType, tmp_path: Path
) -> None:
    wals = [_wal(tmp_path / f"p{i}" / "wal") for i in range(4)]
    try:
        ends = [_append(w, 1) for w in wals]
        with fileio.faults() as calls:
            assert sync_all(list(zip(wals, ends, strict=True))) == [None] * 4
        assert calls.calls == {"fdatasync": 4}
        assert [w.synced_decree for w in wals] == [1] * 4
        # already durable: nothing to do
        with fileio.faults() as calls:
            assert sync_all(list(zip(wals, ends, strict=True))) == [None] * 4
        assert calls.calls == {}
        ends = [_append(w, 2) for w in wals]
        with fileio.faults([Fault("fdatasync", 1, errno.EIO, path_part=f"{os.sep}p2{os.sep}")]):
            out = sync_all(list(zip(wals, ends, strict=True)))
        assert [type(x) for x in out] == [type(None), type(None), OSError, type(None)]
        assert isinstance(out[2], OSError) and out[2].errno == errno.EIO
        assert [w.synced_decree for w in wals] == [2, 2, 1, 2]
        assert wals[2].failed is not None and all(wals[i].failed is None for i in (0, 1, 3))
        # a failed log refuses from now on (fsyncgate: a later fsync must not acknowledge)
        out = sync_all([(wals[2], ends[2])])
        assert isinstance(out[0], pf.PartitionFailedError)
    finally:
        for w in wals:
            w.close()


def test_wait_durable_all_fails_one_partition_and_keeps_the_rest(backend: ModuleType, tmp_path: Path) -> None:
    with pf.Cluster.open(tmp_path / "c", config=pf.Config(wal_sync="group")) as c:
        t = c.create_table("t", partition_count=4)
        keys = {}
        for i in range(64):  # one key for each partition
            keys.setdefault(t.partition_index(b"k%d" % i), b"k%d" % i)
        logged = []
        for pidx in range(4):
            part = t.partitions[pidx]
            decree, offset = part.write_unsynced([(0, keys[pidx], b"", b"v", 0)])
            logged.append((part, decree, offset))
        bad = os.path.join(t.partitions[1].wal.path, "")
        with fileio.faults([Fault("fdatasync", 1, errno.ENOSPC, path_part=bad)]):
            out = wait_durable_all(logged)
        assert [x is None for x in out] == [True, False, True, True]
        assert isinstance(out[1], OSError) and out[1].errno == errno.ENOSPC
        assert [t.partitions[p].durable_decree for p in range(4)] == [1, 0, 1, 1]
        with pytest.raises(pf.PartitionFailedError):
            t.set(keys[1], b"", b"again")
        assert t.set(keys[0], b"", b"w") == 2
    with pf.Cluster.open(tmp_path / "c") as c:
        t = c.table("t")
        for pidx in (0, 2, 3):
            assert t.get(keys[pidx], b"") in (b"v", b"w")


def test_a_batch_answers_the_writes_of_a_failed_fsync_with_an_error(
    backend: ModuleType, tmp_path: Path
) -> None:
    """A Pegasus-port batch over 8 partitions, without the shared log: the partition whose log
    cannot be synced answers its writes with an error; every other write is acknowledged,
    durable, and there after a restart. Both ways a front end calls the handler (at once, and
    pipelined)."""
    for pipelined in (False, True):
        root = tmp_path / f"c{int(pipelined)}"
        with pf.Cluster.open(root, config=pf.Config(wal_sync="group", shared_log=False)) as c:
            t = c.create_table("t", partition_count=8)
            reqs = []
            for i in range(32):
                hk = b"k%d" % i
                args = (encode_key(hk, b""), b"v%d" % i, 0)
                reqs.append((codes.OP_PUT, i, t.app_id, t.partition_index(hk), "RPC_RRDB_RRDB_PUT", args))
            bad = os.path.join(t.partitions[3].wal.path, "")
            h = BatchHandler(c)
            try:
                with fileio.faults([Fault("fdatasync", 1, errno.EIO, path_part=bad)]):
                    out = h.begin_batch(reqs).finish() if pipelined else h.handle_batch(reqs)
            finally:
                h.close()
            for r, req in zip(out, reqs, strict=True):
                assert r[1] == req[1] and r[5] == codes.ERR_OK
                # rocksdb status: IOError for the partition whose log could not be synced
                assert r[6][0] == (codes.K_IO_ERROR if req[3] == 3 else codes.K_OK), r
        with pf.Cluster.open(root) as c:
            t = c.table("t")
            for req in reqs:
                if req[3] != 3:
                    hk = b"k%d" % req[1]
                    assert t.get(hk, b"") == b"v%d" % req[1]
