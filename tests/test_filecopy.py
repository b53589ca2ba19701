"""Checkpoint copy and hashing under hostile conditions, on both backends.

A file truncated while it is hashed, names that are not plain file names, and
symbolic links in a checkpoint directory: each gives a typed error, never a
crash and never a link target's bytes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
from conftest import PYTHON, child_env

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


def _files(src: Path) -> None:
    src.mkdir()
    (src / "a.sst").write_bytes(b"a" * 100)
    (src / "secret").write_bytes(b"not for shipping")


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/abs", "../a.sst", "a\0b", "a\\b"])
def test_names_that_are_not_plain_file_names_are_refused(
    backend: ModuleType, tmp_path: Path, name: str
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _files(src)
    with pytest.raises(pf.InvalidArgumentError):
        backend.copy_and_hash(str(src), str(dst), ["a.sst", name])
    assert not dst.exists()  # names are all checked before anything is made
    with pytest.raises(pf.InvalidArgumentError):
        backend.verify_manifest(str(src), [("a.sst", 100, "0" * 64), (name, 0, "0" * 64)])


def test_a_name_that_is_not_a_str_is_a_type_error(backend: ModuleType, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _files(src)
    with pytest.raises(pf.InvalidTypeError):
        backend.copy_and_hash(str(src), str(tmp_path / "dst"), [b"a.sst"])  # type: ignore[list-item]
    with pytest.raises(pf.InvalidTypeError):
        backend.verify_manifest(str(src), [(7, 100, "0" * 64)])  # type: ignore[list-item]


@pytest.mark.parametrize("link", [False, True])
@pytest.mark.parametrize("kind", ["symlink", "dangling", "fifo"])
def test_links_and_special_files_in_a_checkpoint_are_refused(
    backend: ModuleType, tmp_path: Path, kind: str, link: bool
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _files(src)
    if kind == "symlink":
        os.symlink(src / "secret", src / "x.sst")
    elif kind == "dangling":
        os.symlink(src / "missing", src / "x.sst")
    else:
        os.mkfifo(src / "x.sst")
    with pytest.raises(pf.InvalidArgumentError):
        backend.copy_and_hash(str(src), str(dst), ["a.sst", "x.sst"], link=link)
    assert not os.path.lexists(dst / "x.sst")
    manifest = [("x.sst", 16, backend.hash_file(src / "secret")[1])]
    with pytest.raises(pf.InvalidArgumentError):
        backend.verify_manifest(str(src), manifest)


def test_a_link_planted_in_the_destination_is_replaced_not_written_through(
    backend: ModuleType, tmp_path: Path
) -> None:
    src, dst, elsewhere = tmp_path / "src", tmp_path / "dst", tmp_path / "elsewhere"
    _files(src)
    dst.mkdir()
    elsewhere.write_bytes(b"keep me")
    os.symlink(elsewhere, dst / "a.sst")
    manifest = backend.copy_and_hash(str(src), str(dst), ["a.sst"])
    assert elsewhere.read_bytes() == b"keep me"
    assert not os.path.islink(dst / "a.sst")
    assert (dst / "a.sst").read_bytes() == b"a" * 100
    backend.verify_manifest(str(dst), manifest)


def test_hash_file_refuses_a_fifo_and_a_directory(backend: ModuleType, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(pf.InvalidArgumentError):
        backend.hash_file(tmp_path / "fifo")
    with pytest.raises(IsADirectoryError):
        backend.hash_file(tmp_path)
