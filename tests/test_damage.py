"""Damaged or tampered-with files: typed errors, never silent loss, never reused or shipped.

- a corrupt RocksDB block read by get, a scan, or the open itself;
- a published checkpoint damaged after the fact (verified before reuse, made again);
- symlinks: inside a checkpoint, or in place of a partition's directories.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
import rocksdict
from pegasus_fast.duplication import checkpoints as ckpt_policy
from pegasus_fast.duplication.ports import SourceId
from pegasus_fast.engine.local_follower import LocalFollower
from pegasus_fast.storage import checkpoint as ckpt

OpenCluster = Callable[..., pf.Cluster]
N = 3000


def load(t: pf.Table, n: int = N) -> None:
    for i in range(n):
        t.set(b"k%04d" % i, b"", b"value-%d" % i * 10)


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def damaged_copy(path: Path) -> None:
    """Damage a file in place of its hard links: only this name sees the damage."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, path)


def one_sst(directory: Path) -> Path:
    (sst,) = sorted(directory.glob("*.sst"))
    return sst


def count_checkpoint(path: str) -> int:
    db = rocksdict.Rdict(path, rocksdict.Options(raw_mode=True), access_type=rocksdict.AccessType.read_only())
    try:
        it = db.iter()
        it.seek_to_first()
        n = 0
        while it.valid():
            n += 1
            it.next()
        it.status()
        return n
    finally:
        db.close()


# -- corrupt RocksDB data --------------------------------------------------------------------


def test_scan_over_a_corrupt_block_raises_instead_of_stopping_short(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    with pf.Cluster.open(cluster_dir) as c:
        load(c.create_table("t", partition_count=1))
    rdb = cluster_dir / "tables" / "1.0" / "rdb"
    sst = one_sst(rdb)
    flip(sst, sst.stat().st_size // 2)
    t = open_cluster(cluster_dir).table("t")
    with pytest.raises(pf.DataCorruptionError) as err:
        t.count()  # before: a count short by a thousand records, and no error
    assert err.value.pidx == 0 and err.value.path == str(rdb.parent)
    bad = None
    for i in range(N):
        try:
            t.get(b"k%04d" % i, b"")
        except pf.DataCorruptionError:
            bad = b"k%04d" % i
            break
    assert bad is not None
    with pytest.raises(pf.DataCorruptionError):
        t.multi_get(bad)  # a prefix scan
    with pytest.raises(pf.DataCorruptionError):
        sum(len(b) for b in t.scan_batches(4096))  # the bulk form stops short no more than scan


def test_corrupt_first_block_refuses_the_open_with_a_typed_error(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    with pf.Cluster.open(cluster_dir) as c:
        load(c.create_table("t", partition_count=1), 50)
    flip(one_sst(cluster_dir / "tables" / "1.0" / "rdb"), 100)
    with pytest.raises(pf.DataCorruptionError) as err:
        open_cluster(cluster_dir)
    assert err.value.pidx == 0


# -- damaged checkpoints -----------------------------------------------------------------------


def test_damaged_checkpoint_is_verified_and_made_again(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path
) -> None:
    c = open_cluster(cluster_dir)
    t = c.create_table("t", partition_count=1)
    load(t)
    (first,) = t.checkpoint()
    assert ckpt.verify(first.path) == list(first.manifest)
    damaged_copy(one_sst(Path(first.path)))
    with pytest.raises(pf.DataCorruptionError):
        ckpt.verify(first.path)
    # the same decree asked for again: the damaged directory is not reused
    (again,) = t.checkpoint()
    assert again.decree == first.decree and again.path == first.path
    assert ckpt.verify(again.path) == list(again.manifest) == list(first.manifest)
    assert count_checkpoint(again.path) == N + 1  # the records and the decree key


def test_damaged_checkpoint_is_never_shipped_to_a_follower(
    backend: ModuleType, open_cluster: OpenCluster, tmp_path: Path
) -> None:
    src = open_cluster(tmp_path / "source", name="source")
    dst = open_cluster(tmp_path / "target", name="target")
    t = src.create_table("t", partition_count=1)
    load(t)
    (info,) = t.checkpoint()
    damaged_copy(one_sst(Path(info.path)))
    follower = LocalFollower(dst)
    follower.ensure_table("copy", 1, SourceId("source", "", "t", 1), True)
    # what duplication does for a large partition: checkpoint at the decree, ship with its manifest
    art = ckpt_policy.large(t.partitions[0])
    assert art.decree == info.decree
    assert art.directory is not None
    chunks = ckpt_policy.read_chunks(art.directory, art.manifest, {})
    follower.learn_checkpoint("copy", 0, art.decree, art.manifest, chunks)
    follower.mark_learned("copy", [0])
    copy = dst.table("copy")
    assert copy.health().is_fully_healthy
    assert copy.count() == N  # before: a raw RocksDB "Corruption" Exception here
    assert copy.get(b"k%04d" % (N // 2), b"") == b"value-%d" % (N // 2) * 10


# -- symlinks ----------------------------------------------------------------------------------


def test_symlink_in_a_checkpoint_is_never_listed_or_followed(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"not yours")
    c = open_cluster(cluster_dir)
    t = c.create_table("t", partition_count=1)
    load(t, 10)
    (info,) = t.checkpoint()
    os.symlink(secret, Path(info.path) / "000999.sst")
    with pytest.raises(pf.UnsafePathError) as err:
        ckpt.verify(info.path)
    assert err.value.path == os.path.join(info.path, "000999.sst")
    assert "000999.sst" not in [e[0] for e in ckpt_policy.manifest_of(info.path)]
    (again,) = t.checkpoint()
    assert not os.path.lexists(Path(again.path) / "000999.sst")
    assert "000999.sst" not in [e[0] for e in again.manifest]
    assert secret.read_bytes() == b"not yours"


def test_symlinked_checkpoint_directory_is_not_a_checkpoint(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path, tmp_path: Path
) -> None:
    c = open_cluster(cluster_dir)
    t = c.create_table("t", partition_count=1)
    load(t, 10)
    p = t.partitions[0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, Path(p.path) / "checkpoint.999")
    assert ckpt.list_decrees(p.path) == []


@pytest.mark.parametrize("which", ["tables", "partition", "wal", "rdb"])
def test_symlinked_partition_directories_are_refused_at_open(
    backend: ModuleType, open_cluster: OpenCluster, cluster_dir: Path, tmp_path: Path, which: str
) -> None:
    with pf.Cluster.open(cluster_dir) as c:
        load(c.create_table("t", partition_count=1), 10)
    part = cluster_dir / "tables" / "1.0"
    target = {"tables": cluster_dir / "tables", "partition": part, "wal": part / "wal", "rdb": part / "rdb"}[
        which
    ]
    outside = tmp_path / "outside"
    shutil.move(target, outside)
    os.symlink(outside, target)
    with pytest.raises(pf.UnsafePathError) as err:
        open_cluster(cluster_dir)
    assert err.value.path == str(target)
