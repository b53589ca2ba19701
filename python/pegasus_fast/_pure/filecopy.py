"""Checkpoint file hashing, and the follower's receive of a checkpoint's chunks, in Python.

Same rules as the Rust core: names are single plain components, a name that
is a symbolic link is refused (never followed), and a file whose size or mtime
moves while it is read raises ``FileChangedError``. The receiver's file
operations go through ``fileio``, so tests can make them fail on this backend;
the Rust one's are tested with real failures (tests/test_filecopy.py).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from typing import Any

from blake3 import blake3

from .. import fileio
from ..errors import ChecksumMismatchError, FileChangedError, InvalidArgumentError, InvalidTypeError
from .crc import crc32c as crc32c_of

ManifestEntry = tuple[str, int, str]
_CHUNK = 4 << 20


def _check_name(name: str) -> None:
    if not isinstance(name, str):
        raise InvalidTypeError(f"file names are str, not {type(name).__name__}")
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise InvalidArgumentError(f"invalid file name in a manifest: {name!r}")


def _entries(manifest: Any) -> list[ManifestEntry]:
    """Manifest entries checked as the Rust glue checks them, names included."""
    if not isinstance(manifest, (list, tuple)):
        raise InvalidTypeError(f"manifest must be a list, not {type(manifest).__name__}")
    out: list[ManifestEntry] = []
    for entry in manifest:
        if not isinstance(entry, (list, tuple)):
            raise InvalidTypeError(f"a manifest entry must be a tuple, not {type(entry).__name__}")
        if len(entry) != 3:
            raise InvalidArgumentError(f"a manifest entry takes 3 fields, got {len(entry)}")
        name, size, digest = entry
        _check_name(name)
        if not isinstance(size, int) or not isinstance(digest, str):
            raise InvalidTypeError("a manifest entry is (str, int, str)")
        if not 0 <= size < 1 << 64:
            raise InvalidArgumentError(f"size out of range: {size}")
        out.append((name, size, digest))
    return out


def _open_regular(path: str, follow: bool, opener: Callable[[str, int], int] = os.open) -> int:
    """A read descriptor of the regular file ``path``; a link is refused unless ``follow``.

    O_NONBLOCK keeps a FIFO from blocking the open; regular files ignore it.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = opener(path, flags)
    except OSError as exc:
        if not follow and exc.errno == errno.ELOOP and os.path.islink(path):
            raise InvalidArgumentError(f"{path} is a symbolic link, not a file") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if not stat.S_ISREG(mode):
            raise InvalidArgumentError(f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_unchanged(fd: int, path: str, before: os.stat_result, read: int) -> None:
    after = os.fstat(fd)
    if read != before.st_size:
        raise FileChangedError(path, before.st_size, read)
    if after.st_size != before.st_size or after.st_mtime_ns != before.st_mtime_ns:
        raise FileChangedError(path, before.st_size, after.st_size)


def _read_chunks(fd: int, size: int):  # noqa: ANN202 - a private generator
    """Chunks from offset 0 with pread, stopping one byte past ``size`` (growth is caught cheaply)."""
    offset, limit = 0, size + 1
    while offset < limit:
        chunk = os.pread(fd, min(_CHUNK, limit - offset), offset)
        if not chunk:
            return
        offset += len(chunk)
        yield chunk


def _hash_fd(fd: int, path: str) -> tuple[int, str]:
    before = os.fstat(fd)
    hasher = blake3()
    size = 0
    for chunk in _read_chunks(fd, before.st_size):
        hasher.update(chunk)
        size += len(chunk)
    _check_unchanged(fd, path, before, size)
    return size, hasher.hexdigest()


def _hash_path(path: str, follow: bool) -> tuple[int, str]:
    fd = _open_regular(path, follow)
    try:
        return _hash_fd(fd, path)
    finally:
        os.close(fd)


def hash_file(path: str | os.PathLike[str]) -> tuple[int, str]:
    return _hash_path(os.fspath(path), True)


class _Incoming:
    __slots__ = ("fd", "hashed", "hasher", "held", "path")

    def __init__(self, fd: int, path: str, held: int) -> None:
        self.fd, self.path, self.held = fd, path, held
        self.hasher = blake3()
        self.hashed = 0

    def catch_up(self, end: int) -> None:
        """Hash the file's bytes on disk from ``hashed`` up to ``end``."""
        while self.hashed < end:
            data = os.pread(self.fd, min(_CHUNK, end - self.hashed), self.hashed)
            if not data:
                raise FileChangedError(self.path, end, self.hashed)
            self.hasher.update(data)
            self.hashed += len(data)


def _open_for_write(path: str) -> tuple[int, int]:
    # O_NONBLOCK: a FIFO planted there fails the open (ENXIO) instead of blocking it
    fd = fileio.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidArgumentError(f"{path} is not a regular file")
    except BaseException:
        fileio.close(fd)
        raise
    return fd, st.st_size


def _int(value: Any, lo: int, hi: int) -> int:
    """As the Rust glue takes an int: InvalidTypeError for a non-int, InvalidArgumentError out of range."""
    if not isinstance(value, int):
        raise InvalidTypeError(f"argument must be an int, not {type(value).__name__}")
    if not lo <= value < hi:
        raise InvalidArgumentError(f"argument out of range: {value}")
    return value


class CheckpointReceiver:
    def __init__(
        self, directory: str | os.PathLike[str], manifest: list[ManifestEntry], sync: bool = True
    ) -> None:
        self._dir = os.fspath(directory)
        self._entries = _entries(manifest)
        self._index: dict[str, int] = {}
        for i, (name, _size, _digest) in enumerate(self._entries):
            if name in self._index:
                raise InvalidArgumentError(f"manifest names {name!r} twice")
            self._index[name] = i
        self._open: dict[int, _Incoming] = {}
        self._sync = bool(sync)

    def write(self, name: str, offset: int, data: bytes, crc32c: int) -> None:
        # converted in the Rust glue's order
        if not isinstance(name, str):
            raise InvalidTypeError(f"name must be a str, not {type(name).__name__}")
        offset = _int(offset, -(1 << 127), 1 << 127)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidTypeError(f"data must be bytes, not {type(data).__name__}")
        data = bytes(data)
        expected_crc = _int(crc32c, 0, 1 << 32)
        i = self._index.get(name)
        if i is None:
            raise InvalidArgumentError(f"a chunk names a file outside the manifest: {name!r}")
        path = os.path.join(self._dir, name)
        size = self._entries[i][1]
        actual = crc32c_of(data)
        if actual != expected_crc:
            raise ChecksumMismatchError(path, f"crc32c {expected_crc:08x}", f"crc32c {actual:08x}")
        end = offset + len(data)
        if offset < 0 or end > size:
            raise ChecksumMismatchError(path, f"{size} bytes", f"a chunk ending at {end}")
        f = self._open.get(i)
        if f is None:
            fd, held = _open_for_write(path)
            f = self._open[i] = _Incoming(fd, path, held)
        if offset > f.held:
            raise InvalidArgumentError(f"a chunk of {name!r} at {offset} leaves a hole after {f.held}")
        if offset < f.held:
            fileio.truncate(f.fd, offset)  # sent again from an earlier offset: take it from there
            f.held = offset
        if f.hashed > offset:
            f.hasher = blake3()
            f.hashed = 0
        f.catch_up(offset)
        os.lseek(f.fd, offset, os.SEEK_SET)
        fileio.write(f.fd, data)
        f.held = end
        f.hasher.update(data)
        f.hashed = end

    def finish(self) -> None:
        opened, self._open = self._open, {}
        durable: list[int] = []
        try:
            for i, (name, size, digest) in enumerate(self._entries):
                path = os.path.join(self._dir, name)
                f = opened.pop(i, None)
                if f is not None and f.held == size:
                    f.catch_up(f.held)
                    actual_size, actual, fd = f.held, f.hasher.hexdigest(), f.fd
                else:
                    if f is not None:
                        fileio.close(f.fd)
                    elif size == 0:
                        fileio.close(_open_for_write(path)[0])
                    fd = _open_regular(path, False, fileio.open)
                    try:
                        actual_size, actual = _hash_fd(fd, path)
                    except BaseException:
                        fileio.close(fd)
                        raise
                durable.append(fd)
                if actual_size != size or actual != digest:
                    raise ChecksumMismatchError(path, digest, actual)
            if self._sync:
                for fd in durable:
                    fileio.fsync(fd)
                fileio.fsync_dir(self._dir)
        finally:
            for fd in durable:
                fileio.close(fd)
            for f in opened.values():
                fileio.close(f.fd)

    def close(self) -> None:
        opened, self._open = self._open, {}
        for f in opened.values():
            fileio.close(f.fd)


__all__ = ["CheckpointReceiver", "hash_file"]
