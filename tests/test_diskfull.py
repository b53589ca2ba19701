"""A real full disk: a small tmpfs filled to the last byte, then freed.

No fault injection here: the kernel refuses the bytes (a short write, then
ENOSPC), and RocksDB meets the same full disk when it first creates its files.
Needs permission to mount a tmpfs (root in the CI container); skipped otherwise.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest

SIZE = "8m"
CONFIG = pf.Config(wal_sync="always")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "fs"
    mnt.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as exc:
        pytest.skip(f"no mount command: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        # lazily if something (a failed test's cluster) still holds it: never left mounted
        if subprocess.run(["umount", str(mnt)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=True)


def fill(path: Path) -> None:
    """Write ``path`` until the file system refuses another byte."""
    chunk = b"\xff" * (64 << 10)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while True:
            try:
                if os.write(fd, chunk) < len(chunk):
                    chunk = chunk[: max(1, len(chunk) // 2)]
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                if len(chunk) == 1:
                    return
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)


def contents(table: pf.Table) -> dict[bytes, bytes]:
    return {hk: v for hk, _sk, v in table.scan()}


FIVE = {b"k%d" % i: b"value %d" % i for i in range(5)}


def test_full_disk_fails_one_write_and_keeps_the_next(backend: ModuleType, small_fs: Path) -> None:
    root = small_fs / "cluster"
    c = pf.Cluster.open(root, config=CONFIG)
    try:
        t = c.create_table("t", partition_count=1)
        t.set(b"first", b"", b"1")
        filler = small_fs / "filler"
        fill(filler)
        with pytest.raises(OSError) as err:
            t.set(b"too-big", b"", b"x" * (40 << 10))
        assert err.value.errno == errno.ENOSPC
        assert t.get(b"too-big", b"") is None
        filler.unlink()
        for k, v in FIVE.items():
            t.set(k, b"", v)  # acknowledged
    finally:
        c.close()
    with pf.Cluster.open(root, config=CONFIG) as c:
        assert contents(c.table("t")) == {b"first": b"1", **FIVE}


def test_full_disk_at_the_first_rocksdb_open(backend: ModuleType, small_fs: Path) -> None:
    root = small_fs / "cluster"
    c = pf.Cluster.open(root, config=CONFIG)
    try:
        t = c.create_table("t", partition_count=1)  # its RocksDB is created on first use
        filler = small_fs / "filler"
        fill(filler)
        with pytest.raises(OSError) as err:
            t.set(b"never", b"", b"x")
        assert err.value.errno == errno.ENOSPC
        filler.unlink()
        for k, v in FIVE.items():
            t.set(k, b"", v)
        assert contents(t) == FIVE
    finally:
        c.close()
    with pf.Cluster.open(root, config=CONFIG) as c:
        assert contents(c.table("t")) == FIVE
