"""What a follower partition learns from: the adaptive policy and the legacy gating.

adaptive (DESIGN.md §5): an empty partition needs nothing; a small one ships
a logical snapshot read from one RocksDB snapshot and encoded with the WAL
codec; a large one is a RocksDB checkpoint plus a manifest of its files.

legacy (DESIGN.md §1): the pre-#2054 Pegasus gating, kept so the difference
is measured: the needed decree is the highest commit *written to the log*
(one behind), "ready" means a published checkpoint at or past it, a forced
checkpoint only comes when that decree is past the newest checkpoint, and
otherwise the partition waits for the periodic emergency checkpoint.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from .. import _backend
from ..errors import ChecksumMismatchError, DataCorruptionError, UnsafePathError
from ..records import Op
from ..storage import checkpoint as ckpt
from ..storage.partition import Partition
from .ports import Chunk, ManifestEntry

#: bytes of a checkpoint file per chunk (the wire caps a message at a few MiB). Each chunk is
#: read, checksummed and framed by the sending node's Python with the GIL held part of the time:
#: at 1 MiB a primary's get p99 while a secondary learned from it was 2-3x its idle p99, and
#: glibc's heap grew in chunk-sized steps it later gave back in one 30 ms madvise, the GIL
#: held (benches/replica_learn.py); at 256 KiB the copy keeps its pace
CHUNK_BYTES = 1 << 18

EMPTY, SMALL, LARGE = "empty", "small", "large"


@dataclass
class Artifact:
    kind: str
    decree: int
    #: small: one WAL block of RAW_PUT ops
    block: bytes | None = None
    #: large: a published checkpoint directory and its manifest
    directory: str | None = None
    manifest: list[ManifestEntry] = field(default_factory=list)
    duration_ms: float = 0.0

    @property
    def size_bytes(self) -> int:
        if self.block is not None:
            return len(self.block)
        return sum(e[1] for e in self.manifest)


def manifest_of(directory: str) -> list[ManifestEntry]:
    """The manifest a published checkpoint was made with (computed from its files before
    publication, so a file damaged since fails the follower's verification)."""
    return ckpt.read_manifest(directory)


def large(partition: Partition) -> Artifact:
    start = time.perf_counter()
    info = partition.checkpoint()
    return Artifact(
        LARGE,
        info.decree,
        directory=info.path,
        manifest=manifest_of(info.path),
        duration_ms=(time.perf_counter() - start) * 1000.0,
    )


def adaptive(partition: Partition, small_max_bytes: int) -> Artifact:
    """Checkpoint ``partition`` at a decree >= its last applied one, the cheapest way."""
    start = time.perf_counter()
    # its decrees are unknown until it is open (never read as empty)
    partition.open_if_unopened()
    with partition.lock:
        decree = partition.last_committed
        # the follower must never get a write the source could still lose
        partition.sync_wal()
        if decree == 0:
            return Artifact(EMPTY, 0, duration_ms=(time.perf_counter() - start) * 1000.0)
        if partition.data_bytes() > small_max_bytes:
            view = None
        else:
            # an iterator made under the lock reads the records as of ``decree`` however long
            # it is read after (rocksdict's Snapshot.iter() reads the live database instead)
            view = partition.raw_view()
            ts = partition.timestamp_us()
    if view is None:
        return large(partition)
    raw_put = int(Op.RAW_PUT)
    ops = [(raw_put, k, v) for k, v in view]
    del view
    block = _backend.impl.encode_block([(decree, ts, partition.cluster_id, ops)])
    return Artifact(SMALL, decree, block=block, duration_ms=(time.perf_counter() - start) * 1000.0)


def legacy_ready(partition: Partition, needed: int) -> Artifact | None:
    """The newest published checkpoint at or past ``needed``, if any (no new one is made)."""
    decrees = [d for d in ckpt.list_decrees(partition.path) if d >= needed]
    if not decrees:
        return None
    directory = ckpt.dir_for(partition.path, decrees[-1])
    try:
        manifest = ckpt.verify(directory)
    except (DataCorruptionError, UnsafePathError):
        return None  # damaged: not ready; the next checkpoint at that decree is made again
    return Artifact(LARGE, decrees[-1], directory=directory, manifest=manifest)


def legacy_needed_decree(partition: Partition) -> int:
    partition.open_if_unopened()
    # Pegasus piggy-backs a commit on the next write, so the log knows one decree less.
    return max(0, partition.last_committed - 1)


def read_chunks(
    directory: str, manifest: list[ManifestEntry], offsets: dict[str, int], chunk_bytes: int = CHUNK_BYTES
) -> Iterator[Chunk]:
    """The files of a published checkpoint as checksummed chunks, each file from its offset on.

    A source file shorter than its manifest says is a ChecksumMismatchError:
    the checkpoint changed under us, and the follower must not wait for bytes
    that will never come.
    """
    crc32c = _backend.impl.crc32c
    for name, size, _digest in manifest:
        pos = max(0, offsets.get(name, 0))
        if pos >= size:
            continue
        path = os.path.join(directory, name)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            while pos < size:
                data = os.pread(fd, min(chunk_bytes, size - pos), pos)
                if not data:
                    raise ChecksumMismatchError(path, f"{size} bytes", f"{pos} bytes")
                yield Chunk(name, pos, data, crc32c(data))
                pos += len(data)
        finally:
            os.close(fd)
