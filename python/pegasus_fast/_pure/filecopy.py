"""Checkpoint file copy with hashing, and manifest verification, in Python."""

from __future__ import annotations

import os

from blake3 import blake3

from ..errors import ChecksumMismatchError, InvalidArgumentError
from ..fileio import fsync_dir

ManifestEntry = tuple[str, int, str]
_CHUNK = 4 << 20


def _check_name(name: str) -> None:
    if not isinstance(name, str):
        raise TypeError("file names are str")
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        raise InvalidArgumentError(f"invalid file name in a manifest: {name!r}")


def hash_file(path: str | os.PathLike[str]) -> tuple[int, str]:
    hasher = blake3()
    size = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return size, hasher.hexdigest()


def _copy_one(src: str, dst: str, sync: bool) -> tuple[int, str]:
    hasher = blake3()
    size = 0
    with open(src, "rb", buffering=0) as fin, open(dst, "wb", buffering=0) as fout:
        while chunk := fin.read(_CHUNK):
            hasher.update(chunk)
            fout.write(chunk)
            size += len(chunk)
        if sync:
            os.fsync(fout.fileno())
    return size, hasher.hexdigest()


def copy_and_hash(
    src_dir: str | os.PathLike[str],
    dst_dir: str | os.PathLike[str],
    names: list[str],
    link: bool = False,
    sync: bool = True,
) -> list[ManifestEntry]:
    src_dir, dst_dir = os.fspath(src_dir), os.fspath(dst_dir)
    for name in names:
        _check_name(name)
    os.makedirs(dst_dir, exist_ok=True)
    manifest: list[ManifestEntry] = []
    for name in names:
        src, dst = os.path.join(src_dir, name), os.path.join(dst_dir, name)
        if os.path.lexists(dst):
            os.unlink(dst)
        linked = False
        if link:
            try:
                os.link(src, dst)
                linked = True
            except OSError:
                linked = False
        if linked:
            size, digest = hash_file(dst)
        else:
            size, digest = _copy_one(src, dst, sync)
        manifest.append((name, size, digest))
    if sync:
        fsync_dir(dst_dir)
    return manifest


def verify_manifest(directory: str | os.PathLike[str], manifest: list[ManifestEntry]) -> None:
    directory = os.fspath(directory)
    for name, size, digest in manifest:
        _check_name(name)
        path = os.path.join(directory, name)
        actual_size, actual = hash_file(path)
        if actual_size != size or actual != digest:
            raise ChecksumMismatchError(path, digest, actual)


__all__ = ["copy_and_hash", "hash_file", "verify_manifest"]
