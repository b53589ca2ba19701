"""RocksDB checkpoints of a partition: publish atomically, verify, list, garbage-collect.

Each published ``checkpoint.<decree>`` holds a manifest, ``MANIFEST.blake3``:
the name, size and hash of every file, computed from the files RocksDB has
just written, before the directory is published. A directory reused later
(the same decree asked for again) is checked against it first, and one that
fails is made again: a damaged checkpoint is never reused, and never shipped
with a manifest computed from the damaged files. Only regular files are ever
listed or hashed: a symlink in a checkpoint directory fails verification.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import stat
import time
from dataclasses import dataclass, field

import rocksdict

from .. import _backend, fileio
from ..config import Config
from ..errors import DataCorruptionError, UnsafePathError
from .rdb import rdb_error

_NAME = re.compile(r"checkpoint\.(\d+)")
TMP_PREFIX = "checkpoint.tmp."
_counter = itertools.count()
MANIFEST_NAME = "MANIFEST.blake3"
_MANIFEST_FORMAT = 1

#: (file name, size, blake3 hex digest)
ManifestEntry = tuple[str, int, str]


@dataclass(frozen=True)
class CheckpointInfo:
    pidx: int
    decree: int
    path: str
    duration_ms: float
    size_bytes: int
    #: every file of the checkpoint, as published (the manifest file itself excluded)
    manifest: tuple[ManifestEntry, ...] = field(default=(), repr=False)


def list_decrees(path: str) -> list[int]:
    """Decrees of the published checkpoints under a partition directory, oldest first.

    A ``checkpoint.<decree>`` that is a symlink is not a checkpoint of ours.
    """
    found = []
    with os.scandir(path) as entries:
        for entry in entries:
            m = _NAME.fullmatch(entry.name)
            if m and entry.is_dir(follow_symlinks=False):
                found.append(int(m.group(1)))
    return sorted(found)


def newest_decree(path: str) -> int:
    decrees = list_decrees(path)
    return decrees[-1] if decrees else 0


def dir_for(path: str, decree: int) -> str:
    return os.path.join(path, f"checkpoint.{decree}")


def remove_tmp_dirs(path: str) -> None:
    """Checkpoints that never got published (a crash mid-way) are removed at open."""
    if not os.path.isdir(path):
        return
    for name in os.listdir(path):
        if name.startswith(TMP_PREFIX):
            fileio.rmtree(os.path.join(path, name), ignore_errors=True)


def regular_files(directory: str) -> list[str]:
    """Names of the files in a checkpoint directory, sorted; refuses anything but regular files."""
    names = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name == MANIFEST_NAME:
                continue
            mode = entry.stat(follow_symlinks=False).st_mode
            if not stat.S_ISREG(mode):
                kind = "a symlink" if stat.S_ISLNK(mode) else "not a regular file"
                raise UnsafePathError(entry.path, f"{kind} in a checkpoint")
            names.append(entry.name)
    return sorted(names)


def build_manifest(directory: str) -> list[ManifestEntry]:
    impl = _backend.impl
    out = []
    for name in regular_files(directory):
        size, digest = impl.hash_file(os.path.join(directory, name))
        out.append((name, size, digest))
    return out


def read_manifest(directory: str) -> list[ManifestEntry]:
    """The manifest stored in a published checkpoint (DataCorruptionError when unreadable)."""
    path = os.path.join(directory, MANIFEST_NAME)
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise UnsafePathError(path, "a checkpoint manifest that is not a regular file")
        with open(path, "rb") as f:
            doc = json.loads(f.read())
        if doc.get("format") != _MANIFEST_FORMAT:
            raise ValueError(f"manifest format {doc.get('format')!r}")
        return [(str(n), int(s), str(d)) for n, s, d in doc["files"]]
    except FileNotFoundError:
        raise DataCorruptionError(path, -1, "the checkpoint has no manifest") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise DataCorruptionError(path, -1, f"unreadable manifest: {exc}") from None


def verify(directory: str) -> list[ManifestEntry]:
    """Check every file of a published checkpoint against its manifest; returns the manifest.

    DataCorruptionError when a file is missing, extra, or differs; UnsafePathError
    when the directory holds a symlink.
    """
    if not stat.S_ISDIR(os.lstat(directory).st_mode):
        raise UnsafePathError(directory, "a checkpoint that is not a directory (a symlink?)")
    manifest = read_manifest(directory)
    names = regular_files(directory)
    if names != sorted(e[0] for e in manifest):
        raise DataCorruptionError(directory, -1, "files differ from the manifest")
    impl = _backend.impl
    for name, size, digest in manifest:
        path = os.path.join(directory, name)
        if impl.hash_file(path) != (size, digest):
            raise DataCorruptionError(path, -1, "size or hash differs from the manifest")
    return manifest


def _write_manifest(directory: str, decree: int, manifest: list[ManifestEntry]) -> None:
    body = json.dumps({"format": _MANIFEST_FORMAT, "decree": decree, "files": manifest}).encode()
    fd = fileio.open(
        os.path.join(directory, MANIFEST_NAME), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    )
    try:
        fileio.write(fd, body)
    finally:
        fileio.close(fd)


def stage(
    path: str, db: rocksdict.Rdict, pidx: int, decree: int
) -> tuple[float, str, list[ManifestEntry] | None]:
    """The part of a checkpoint of the partition at ``path`` that needs its lock (so that
    ``decree`` is what ``db`` contains): a verified ``checkpoint.<decree>`` already there, or
    RocksDB's checkpoint into a temporary directory (the memtable flushed, the SST files
    hard-linked).

    Returns (start time, directory, manifest: None for a temporary directory, which
    :func:`publish` hashes, syncs and renames, without the lock).
    """
    start = time.perf_counter()
    final = dir_for(path, decree)
    if os.path.lexists(final):
        try:
            return start, final, verify(final)
        except (DataCorruptionError, UnsafePathError, OSError):
            # damaged, half-removed or tampered with: made again below, never reused
            if os.path.islink(final):
                fileio.unlink(final)
            else:
                fileio.rmtree(final)
            fileio.fsync_dir(path)
    tmp = os.path.join(path, f"{TMP_PREFIX}{os.getpid()}.{next(_counter)}")
    try:
        fileio.point("rdb_checkpoint", tmp)
        try:
            rocksdict.Checkpoint(db).create_checkpoint(tmp)
        except Exception as exc:
            raise rdb_error(exc, tmp, pidx) from exc
    except BaseException:
        # not left for the next open: on a full disk, each retry would leave another
        fileio.rmtree(tmp, ignore_errors=True)
        raise
    return start, tmp, None


def publish(
    path: str, pidx: int, decree: int, start: float, directory: str, manifest: list[ManifestEntry] | None
) -> CheckpointInfo:
    """Hash, sync and publish a staged checkpoint as ``checkpoint.<decree>``. Its files are
    hard links nothing writes again, so this needs no partition lock: the hashing and the
    fsyncs of a large checkpoint do not hold up the partition's writes."""
    final = dir_for(path, decree)
    if manifest is None:
        try:
            manifest = build_manifest(directory)
            _write_manifest(directory, decree, manifest)
            fileio.fsync_tree(directory)
            fileio.rename(directory, final)
        except BaseException:
            fileio.rmtree(directory, ignore_errors=True)
            raise
        fileio.fsync_dir(path)
    size = sum(e[1] for e in manifest)
    return CheckpointInfo(pidx, decree, final, (time.perf_counter() - start) * 1000.0, size, tuple(manifest))


def gc(path: str, config: Config, protect: frozenset[int] = frozenset()) -> list[int]:
    """Keep the newest ``checkpoint_reserve_min_count``; drop older ones past the reserve time."""
    decrees = list_decrees(path)
    removable = decrees[: max(0, len(decrees) - config.checkpoint_reserve_min_count)]
    now = time.time()
    removed = []
    for decree in removable:
        d = dir_for(path, decree)
        if decree in protect:
            continue
        try:
            age = os.lstat(d).st_mtime
        except FileNotFoundError:
            continue
        if now - age >= config.checkpoint_reserve_time_seconds:
            fileio.rmtree(d, ignore_errors=True)
            removed.append(decree)
    return removed
