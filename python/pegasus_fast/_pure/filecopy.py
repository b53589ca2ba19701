"""Checkpoint file copy with hashing, and manifest verification, in Python.

Same rules as the Rust core: names are single plain components, a name that
is a symbolic link is refused (never followed), and a file whose size or mtime
moves while it is read raises ``FileChangedError``.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

from blake3 import blake3

from ..errors import ChecksumMismatchError, FileChangedError, InvalidArgumentError, InvalidTypeError
from ..fileio import fsync_dir

ManifestEntry = tuple[str, int, str]
_CHUNK = 4 << 20


def _check_name(name: str) -> None:
    if not isinstance(name, str):
        raise InvalidTypeError(f"file names are str, not {type(name).__name__}")
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise InvalidArgumentError(f"invalid file name in a manifest: {name!r}")


def _names(names: Any) -> list[str]:
    if not isinstance(names, (list, tuple)):
        raise InvalidTypeError(f"names must be a list, not {type(names).__name__}")
    for name in names:
        _check_name(name)
    return list(names)


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


def _open_regular(path: str, follow: bool) -> int:
    """A read descriptor of the regular file ``path``; a link is refused unless ``follow``.

    O_NONBLOCK keeps a FIFO from blocking the open; regular files ignore it.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
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


def _copy_one(fd_in: int, src: str, dst: str, sync: bool) -> tuple[int, str]:
    before = os.fstat(fd_in)
    hasher = blake3()
    size = 0
    fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        for chunk in _read_chunks(fd_in, before.st_size):
            hasher.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd_out, view) :]
            size += len(chunk)
        _check_unchanged(fd_in, src, before, size)
        if sync:
            os.fsync(fd_out)
    finally:
        os.close(fd_out)
    return size, hasher.hexdigest()


def _copy_entry(src_dir: str, dst_dir: str, name: str, link: bool, sync: bool) -> tuple[int, str]:
    src, dst = os.path.join(src_dir, name), os.path.join(dst_dir, name)
    # a link is refused before anything is made of it (a hard link to a symlink is a symlink)
    fd_in = _open_regular(src, False)
    try:
        if os.path.lexists(dst):  # never write through an old link to the source's inode
            os.unlink(dst)
        try:
            linked = False
            if link:
                try:
                    os.link(src, dst, follow_symlinks=False)
                    linked = True
                except OSError:
                    linked = False
            if linked:
                return _hash_path(dst, False)
            return _copy_one(fd_in, src, dst, sync)
        except BaseException:
            # what is there was not verified: leave nothing that looks like a copy
            try:
                os.unlink(dst)
            except OSError:
                pass
            raise
    finally:
        os.close(fd_in)


def copy_and_hash(
    src_dir: str | os.PathLike[str],
    dst_dir: str | os.PathLike[str],
    names: list[str],
    link: bool = False,
    sync: bool = True,
) -> list[ManifestEntry]:
    src_dir, dst_dir = os.fspath(src_dir), os.fspath(dst_dir)
    names = _names(names)
    os.makedirs(dst_dir, exist_ok=True)
    manifest: list[ManifestEntry] = []
    for name in names:
        size, digest = _copy_entry(src_dir, dst_dir, name, link, sync)
        manifest.append((name, size, digest))
    if sync:
        fsync_dir(dst_dir)
    return manifest


def verify_manifest(directory: str | os.PathLike[str], manifest: list[ManifestEntry]) -> None:
    directory = os.fspath(directory)
    for name, size, digest in _entries(manifest):
        path = os.path.join(directory, name)
        actual_size, actual = _hash_path(path, False)
        if actual_size != size or actual != digest:
            raise ChecksumMismatchError(path, digest, actual)


__all__ = ["copy_and_hash", "hash_file", "verify_manifest"]
