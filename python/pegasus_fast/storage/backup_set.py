"""A backup on disk: one verified checkpoint per partition of a table, and its manifest.

    DIR/BACKUP.json        written last (atomically): the table, its partition count and
                           envs, and per partition its decree and every file's name, size
                           and BLAKE3
    DIR/<pidx>/<file>      the files of partition <pidx>'s checkpoint, as RocksDB wrote them

A backup is made from checkpoints whose own manifest (checkpoint.py) was computed when they
were published; every file is copied through the backend's CheckpointReceiver, which hashes
what it writes and refuses a file whose BLAKE3 is not the manifest's, then fsyncs it. A
directory without BACKUP.json is no backup (a copy cut short).

:func:`verify` checks a backup before anything is restored from it: the manifest parses, every
name is one plain component (no ``..``, no ``/``), every partition appears once, every file is
there, a regular file, of its size and hash, and there is nothing else. What fails is a
:class:`BackupError` naming the file (relative to the backup) and the reason.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from .. import _backend, fileio
from ..errors import BackupError, ChecksumMismatchError, FileChangedError
from .checkpoint import ManifestEntry

MANIFEST = "BACKUP.json"
FORMAT = 1
_CHUNK = 4 << 20
_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class BackupPartition:
    pidx: int
    #: the decree the checkpoint holds: the partition's last decree once restored
    decree: int
    files: tuple[ManifestEntry, ...]


@dataclass(frozen=True)
class BackupSummary:
    """What a backup holds, per partition (pidx, decree, files, bytes): what a served cluster's
    Backup replies, and what the CLI prints."""

    table: str
    partition_count: int
    partitions: tuple[tuple[int, int, int, int], ...]

    @property
    def file_count(self) -> int:
        return sum(p[2] for p in self.partitions)

    @property
    def size_bytes(self) -> int:
        return sum(p[3] for p in self.partitions)


@dataclass(frozen=True)
class BackupManifest:
    table: str
    partition_count: int
    partitions: tuple[BackupPartition, ...]
    envs: dict[str, str] = field(default_factory=dict)
    #: the cluster it was taken from, and when (seconds since the epoch)
    cluster: str = ""
    created: float = 0.0

    @property
    def size_bytes(self) -> int:
        return sum(size for p in self.partitions for _, size, _ in p.files)

    @property
    def file_count(self) -> int:
        return sum(len(p.files) for p in self.partitions)

    def summary(self) -> BackupSummary:
        rows = tuple((p.pidx, p.decree, len(p.files), sum(f[1] for f in p.files)) for p in self.partitions)
        return BackupSummary(self.table, self.partition_count, rows)

    def to_json(self) -> bytes:
        doc = {
            "format": FORMAT,
            "table": self.table,
            "partition_count": self.partition_count,
            "envs": self.envs,
            "cluster": self.cluster,
            "created": self.created,
            "partitions": [
                {"pidx": p.pidx, "decree": p.decree, "files": [list(e) for e in p.files]}
                for p in self.partitions
            ],
        }
        return json.dumps(doc, indent=1, sort_keys=True).encode()


def _plain_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and not any(c in name for c in ("/", "\\", "\0"))
    )


def _int(value: object, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{value!r} is not an integer >= {low}")
    return value


def _partition(directory: str, doc: object, count: int) -> BackupPartition:
    if not isinstance(doc, dict):
        raise ValueError("a partition is an object")
    pidx = _int(doc["pidx"])
    if pidx >= count:
        raise ValueError(f"partition {pidx} of a table of {count}")
    files: list[ManifestEntry] = []
    for entry in doc["files"]:
        if not isinstance(entry, list) or len(entry) != 3:
            raise ValueError("a file is [name, size, blake3]")
        name, size, digest = entry
        if not _plain_name(name):
            raise BackupError(
                directory, f"{pidx}/{name}", "unsafe_path", "a file name is one plain component"
            )
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise ValueError(f"the hash of {pidx}/{name} is no BLAKE3 hex digest")
        files.append((name, _int(size), digest))
    if len({n for n, _, _ in files}) != len(files):
        raise ValueError(f"partition {pidx} names a file twice")
    return BackupPartition(pidx, _int(doc["decree"]), tuple(sorted(files)))


def read_manifest(directory: str) -> BackupManifest:
    """The manifest of a backup, every field checked (BackupError: bad_manifest, unsafe_path)."""
    path = os.path.join(directory, MANIFEST)
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise BackupError(directory, MANIFEST, "unsafe_path", "not a regular file")
        with open(path, "rb") as f:
            doc = json.loads(f.read())
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"format {doc.get('format') if isinstance(doc, dict) else doc!r}")
        count = _int(doc["partition_count"], 1)
        parts = sorted((_partition(directory, p, count) for p in doc["partitions"]), key=lambda p: p.pidx)
        if [p.pidx for p in parts] != list(range(count)):
            raise ValueError(f"partitions {[p.pidx for p in parts]} for a table of {count}")
        envs = doc.get("envs", {})
        if not isinstance(envs, dict) or not all(isinstance(v, str) for kv in envs.items() for v in kv):
            raise ValueError("envs are strings")
        table = doc["table"]
        if not isinstance(table, str) or not table:
            raise ValueError("no table name")
        created = doc.get("created", 0.0)
        cluster = doc.get("cluster", "")
        if isinstance(created, bool) or not isinstance(created, (int, float)) or not isinstance(cluster, str):
            raise ValueError("created is a number, cluster a string")
        return BackupManifest(table, count, tuple(parts), dict(envs), cluster, float(created))
    except FileNotFoundError:
        raise BackupError(directory, MANIFEST, "missing", "no backup here, or one cut short") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(directory, MANIFEST, "bad_manifest", str(exc)) from None


def _entries(path: str) -> Iterator[os.DirEntry[str]]:
    with os.scandir(path) as it:
        yield from it


def verify(directory: str) -> BackupManifest:
    """Every file of the backup against its manifest (BackupError names the first that fails)."""
    if not os.path.isdir(directory) or os.path.islink(directory):
        raise BackupError(directory, None, "missing", "not a directory")
    manifest = read_manifest(directory)
    tops = {str(p.pidx) for p in manifest.partitions} | {MANIFEST}
    for entry in _entries(directory):
        if entry.name not in tops:
            raise BackupError(directory, entry.name, "extra", "not in the manifest")
    impl = _backend.impl
    for part in manifest.partitions:
        sub = os.path.join(directory, str(part.pidx))
        try:
            mode = os.lstat(sub).st_mode
        except FileNotFoundError:
            raise BackupError(directory, str(part.pidx), "missing") from None
        if not stat.S_ISDIR(mode):
            raise BackupError(directory, str(part.pidx), "unsafe_path", "not a directory")
        names = {n for n, _, _ in part.files}
        for entry in _entries(sub):
            if entry.name not in names:
                raise BackupError(directory, f"{part.pidx}/{entry.name}", "extra", "not in the manifest")
        for name, size, digest in part.files:
            rel, path = f"{part.pidx}/{name}", os.path.join(sub, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                raise BackupError(directory, rel, "missing") from None
            if not stat.S_ISREG(st.st_mode):
                raise BackupError(directory, rel, "unsafe_path", "not a regular file")
            if st.st_size != size:
                raise BackupError(directory, rel, "size", f"{st.st_size} bytes, the manifest says {size}")
            try:
                got = impl.hash_file(path)
            except FileChangedError:
                raise BackupError(directory, rel, "size", "it changed while it was read") from None
            if got != (size, digest):
                raise BackupError(directory, rel, "hash", "its BLAKE3 is not the manifest's")
    return manifest


def copy_files(src: str, dst: str, files: tuple[ManifestEntry, ...] | list[ManifestEntry]) -> None:
    """Copy ``files`` from ``src`` into the existing directory ``dst``: each hashed as it is
    written and checked against its entry, then fsynced (ChecksumMismatchError names the copy
    that differs; FileChangedError a source that moved while read)."""
    manifest = [tuple(e) for e in files]
    receiver = _backend.impl.CheckpointReceiver(dst, manifest)
    crc32c = _backend.impl.crc32c
    try:
        for name, size, _ in manifest:
            fd = os.open(os.path.join(src, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                offset = 0
                while offset < size:
                    data = os.pread(fd, min(_CHUNK, size - offset), offset)
                    if not data:
                        raise FileChangedError(os.path.join(src, name), size, offset)
                    receiver.write(name, offset, data, crc32c(data))
                    offset += len(data)
            finally:
                os.close(fd)
        receiver.finish()
    finally:
        receiver.close()


def create(
    directory: str,
    table: str,
    partition_count: int,
    envs: dict[str, str],
    cluster: str,
    checkpoints: list[tuple[int, int, str, tuple[ManifestEntry, ...]]],
) -> BackupManifest:
    """Write a backup of ``checkpoints`` (pidx, decree, checkpoint directory, its manifest)
    into ``directory`` (made if missing; BackupError not_empty if it holds anything). On a
    failure, what was written is removed again."""
    made = not os.path.lexists(directory)
    if not made:
        if not os.path.isdir(directory) or os.path.islink(directory):
            raise BackupError(directory, None, "unsafe_path", "not a directory")
        if any(True for _ in _entries(directory)):
            raise BackupError(directory, None, "not_empty", "a backup goes into a new or empty directory")
    manifest = BackupManifest(
        table,
        partition_count,
        tuple(BackupPartition(p, d, tuple(sorted(f))) for p, d, _, f in sorted(checkpoints)),
        dict(envs),
        cluster,
        time.time(),
    )
    fileio.makedirs(directory)
    try:
        for pidx, _decree, src, files in sorted(checkpoints):
            dst = os.path.join(directory, str(pidx))
            fileio.makedirs(dst, exist_ok=False)
            try:
                copy_files(src, dst, files)
            except ChecksumMismatchError as exc:
                raise BackupError(
                    directory, f"{pidx}/{os.path.basename(exc.path)}", "hash", str(exc)
                ) from None
        fileio.fsync_tree(directory)
        # last, and atomically: a directory without it is no backup
        fileio.write_file(os.path.join(directory, MANIFEST), manifest.to_json())
    except BaseException:
        for entry in list(_entries(directory)):
            if entry.is_dir(follow_symlinks=False):
                fileio.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        if made:
            os.rmdir(directory)
        raise
    return manifest


__all__ = [
    "FORMAT",
    "MANIFEST",
    "BackupManifest",
    "BackupPartition",
    "copy_files",
    "create",
    "read_manifest",
    "verify",
]
