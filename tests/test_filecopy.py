"""Checkpoint copy and hashing under hostile conditions, on both backends.

A file truncated while it is hashed; and the follower's CheckpointReceiver
given names that are not plain file names, chunks that do not fit, files
that fail verification, links and FIFOs planted where a file goes, a write the
disk refuses: each gives a typed error, never a crash, never a link target's
bytes, and never a file passed that does not match its manifest.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import threading
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
from blake3 import blake3
from conftest import PYTHON, child_env
from pegasus_fast._pure.crc import crc32c

# Hashes a big file in a loop while the test truncates it to nothing and back.
# Exits 0 when every outcome was a whole digest or FileChangedError; a
# memory-mapped hash dies of SIGBUS instead.
HASH_IN_A_LOOP = r"""
import sys
import pegasus_fast as pf
from pegasus_fast import _backend
from blake3 import blake3

path, size = sys.argv[1], int(sys.argv[2])
whole = (size, blake3(bytes(size)).hexdigest())
empty = (0, blake3(b"").hexdigest())
changed = 0
for _ in range(2000):
    try:
        got = _backend.impl.hash_file(path)
    except pf.FileChangedError as exc:
        assert exc.path == path and exc.expected_size in (0, size), vars(exc)
        changed += 1
        if changed == 5:
            break
    else:
        assert got in (whole, empty), got
print(_backend.name, changed)
"""


def test_truncating_a_file_while_hashing_is_a_typed_error(backend_name: str, tmp_path: Path) -> None:
    path = tmp_path / "big.sst"
    size = 32 << 20
    with open(path, "wb") as f:
        f.write(bytes(size))  # zeros: every whole read of any state hashes alike
    stop = threading.Event()

    def truncate() -> None:
        fd = os.open(path, os.O_WRONLY)
        try:
            while not stop.is_set():
                os.ftruncate(fd, 0)
                os.ftruncate(fd, size)
        finally:
            os.close(fd)

    truncator = threading.Thread(target=truncate)
    truncator.start()
    try:
        child = subprocess.run(
            [PYTHON, "-c", HASH_IN_A_LOOP, str(path), str(size)],
            env=child_env(backend_name),
            capture_output=True,
            text=True,
        )
    finally:
        stop.set()
        truncator.join()
    assert child.returncode != -signal.SIGBUS, "SIGBUS: the file was hashed memory-mapped"
    assert child.returncode == 0, child.stderr
    name, changed = child.stdout.split()
    assert name == backend_name
    assert int(changed) >= 1


def _entry(name: str, data: bytes) -> tuple[str, int, str]:
    return (name, len(data), blake3(data).hexdigest())


def _send(r: object, name: str, data: bytes, offset: int = 0, step: int = 1000) -> None:
    for at in range(offset, len(data), step):
        piece = data[at : at + step]
        r.write(name, at, piece, crc32c(piece))  # type: ignore[attr-defined]


A = bytes(range(256)) * 40  # 10,240 bytes


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/abs", "../a.sst", "a\0b", "a\\b"])
def test_names_that_are_not_plain_file_names_are_refused(
    backend: ModuleType, tmp_path: Path, name: str
) -> None:
    with pytest.raises(pf.InvalidArgumentError):
        backend.CheckpointReceiver(str(tmp_path), [_entry("a.sst", A), (name, 0, "0" * 64)])
    assert os.listdir(tmp_path) == []  # names are all checked before anything is made


def test_a_name_that_is_not_a_str_is_a_type_error(backend: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(pf.InvalidTypeError):
        backend.CheckpointReceiver(str(tmp_path), [(7, 100, "0" * 64)])  # type: ignore[list-item]
    r = backend.CheckpointReceiver(str(tmp_path), [_entry("a.sst", A)])
    with pytest.raises(pf.InvalidTypeError):
        r.write(b"a.sst", 0, A, crc32c(A))  # type: ignore[arg-type]
    with pytest.raises(pf.InvalidTypeError):
        r.write("a.sst", 0, "text", crc32c(A))  # type: ignore[arg-type]
    with pytest.raises(pf.InvalidArgumentError):
        r.write("a.sst", 0, A, -1)
    r.close()
    assert os.listdir(tmp_path) == []


def test_a_checkpoint_arrives_in_order_resent_and_resumed(backend: ModuleType, tmp_path: Path) -> None:
    b = os.urandom(5000)
    manifest = [_entry("a.sst", A), _entry("b.sst", b), _entry("empty", b"")]
    # b.sst holds the first 1,200 bytes of an earlier try that was cut off
    (tmp_path / "b.sst").write_bytes(b[:1200])
    r = backend.CheckpointReceiver(str(tmp_path), manifest)
    _send(r, "a.sst", A[:6000])
    _send(r, "a.sst", A, offset=3000)  # sent again from an earlier offset
    _send(r, "b.sst", b, offset=1200)
    r.finish()
    assert (tmp_path / "a.sst").read_bytes() == A
    assert (tmp_path / "b.sst").read_bytes() == b
    assert (tmp_path / "empty").read_bytes() == b""
    # every file already whole (a retry): nothing sent, each verified from disk
    backend.CheckpointReceiver(str(tmp_path), manifest, sync=False).finish()


@pytest.mark.parametrize("damage", ["truncated", "changed byte", "longer", "missing"])
def test_a_file_that_fails_verification_is_a_typed_error(
    backend: ModuleType, tmp_path: Path, damage: str
) -> None:
    manifest = [_entry("a.sst", A)]
    r = backend.CheckpointReceiver(str(tmp_path), manifest)
    if damage == "truncated":
        _send(r, "a.sst", A[:5000])
    elif damage == "changed byte":
        bad = bytearray(A)
        bad[4321] ^= 1
        _send(r, "a.sst", bytes(bad))
    elif damage == "longer":  # whole in memory, a longer file on disk (sent by no chunk)
        (tmp_path / "a.sst").write_bytes(A + b"x")
    if damage == "missing":
        with pytest.raises(FileNotFoundError):
            r.finish()
        return
    with pytest.raises(pf.ChecksumMismatchError) as ei:
        r.finish()
    assert ei.value.path == str(tmp_path / "a.sst")
    assert ei.value.expected == manifest[0][2]
    assert ei.value.actual == backend.hash_file(tmp_path / "a.sst")[1]


def test_chunks_that_do_not_fit_are_refused(backend: ModuleType, tmp_path: Path) -> None:
    r = backend.CheckpointReceiver(str(tmp_path), [_entry("a.sst", A)])
    with pytest.raises(pf.InvalidArgumentError):
        r.write("victim", 0, b"x", crc32c(b"x"))
    with pytest.raises(pf.ChecksumMismatchError) as ei:
        r.write("a.sst", 0, A, crc32c(A) ^ 1)
    assert (ei.value.expected, ei.value.actual) == (f"crc32c {crc32c(A) ^ 1:08x}", f"crc32c {crc32c(A):08x}")
    with pytest.raises(pf.ChecksumMismatchError) as ei:
        r.write("a.sst", len(A), b"x", crc32c(b"x"))
    assert ei.value.actual == f"a chunk ending at {len(A) + 1}"
    with pytest.raises(pf.ChecksumMismatchError):
        r.write("a.sst", -1, b"x", crc32c(b"x"))
    with pytest.raises(pf.InvalidArgumentError):
        r.write("a.sst", 5, b"x", crc32c(b"x"))  # a hole after 0 bytes
    r.close()
    assert not (tmp_path / "victim").exists()


@pytest.mark.parametrize("kind", ["symlink", "dangling", "fifo"])
def test_a_link_or_fifo_planted_where_a_file_goes_is_never_used(
    backend: ModuleType, tmp_path: Path, kind: str
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"not for shipping")
    dst = tmp_path / "dst"
    dst.mkdir()
    if kind == "symlink":
        os.symlink(secret, dst / "a.sst")
    elif kind == "dangling":
        os.symlink(tmp_path / "missing", dst / "a.sst")
    else:
        os.mkfifo(dst / "a.sst")
    # written to: refused (a link: O_NOFOLLOW's ELOOP; a FIFO: not a regular file), never blocking
    r = backend.CheckpointReceiver(str(dst), [_entry("a.sst", A)])
    if kind == "fifo":
        with pytest.raises(pf.InvalidArgumentError):
            r.write("a.sst", 0, A, crc32c(A))
    else:
        with pytest.raises(OSError) as ei:
            r.write("a.sst", 0, A, crc32c(A))
        assert ei.value.errno == errno.ELOOP and ei.value.filename == str(dst / "a.sst")
    r.close()
    # verified without a chunk (a retry): refused, never followed
    manifest = [("a.sst", 16, blake3(b"not for shipping").hexdigest())]
    with pytest.raises(pf.InvalidArgumentError):
        backend.CheckpointReceiver(str(dst), manifest).finish()
    assert secret.read_bytes() == b"not for shipping"
    assert not (tmp_path / "missing").exists()


# Receives one chunk with the file size limit (RLIMIT_FSIZE) below it: a write the kernel
# refuses (EFBIG), as a full disk refuses one (ENOSPC). A real failure of the Rust backend's own
# I/O, which the fileio fault layer cannot reach; the twin meets it too.
FULL_DISK = r"""
import errno, os, resource, signal, sys
from blake3 import blake3
from pegasus_fast import _backend
from pegasus_fast._pure.crc import crc32c

target, limit = sys.argv[1], int(sys.argv[2])
data = bytes(range(256)) * 400
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
r = _backend.impl.CheckpointReceiver(target, [("a.sst", len(data), blake3(data).hexdigest())])
try:
    r.write("a.sst", 0, data, crc32c(data))
except OSError as exc:
    assert exc.errno == errno.EFBIG, exc
    print(_backend.name, "EFBIG")
else:
    print(_backend.name, "written")
"""


def test_a_write_the_disk_refuses_is_an_os_error(backend_name: str, tmp_path: Path) -> None:
    child = subprocess.run(
        [PYTHON, "-c", FULL_DISK, str(tmp_path), str(4096)],
        env=child_env(backend_name),
        capture_output=True,
        text=True,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == [backend_name, "EFBIG"]
    assert os.path.getsize(tmp_path / "a.sst") <= 4096


def test_the_twin_receiver_goes_through_the_fault_layer(tmp_path: Path) -> None:
    """On the pure backend a full disk is injected (the fault walks of tests/test_faults_*.py reach
    the learn/ writes there); the torn file fails verification on the next try's finish."""
    from pegasus_fast import _pure, fileio

    manifest = [_entry("a.sst", A)]
    r = _pure.CheckpointReceiver(str(tmp_path), manifest)
    with fileio.faults([fileio.Fault("write", 1, errno.ENOSPC, short=7, path_part="a.sst")]) as plan:
        with pytest.raises(OSError) as ei:
            r.write("a.sst", 0, A, crc32c(A))
    r.close()
    assert ei.value.errno == errno.ENOSPC and plan.fired
    assert (tmp_path / "a.sst").read_bytes() == A[:7]
    with pytest.raises(pf.ChecksumMismatchError):
        _pure.CheckpointReceiver(str(tmp_path), manifest).finish()


def test_hash_file_refuses_a_fifo_and_a_directory(backend: ModuleType, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(pf.InvalidArgumentError):
        backend.hash_file(tmp_path / "fifo")
    with pytest.raises(IsADirectoryError):
        backend.hash_file(tmp_path)
