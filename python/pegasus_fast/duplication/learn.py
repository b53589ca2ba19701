"""How a follower partition learns its checkpoint (DESIGN.md §5, APP), whoever drives it.

Every Follower implementation (the embedded one in engine/, a served one over
the wire) calls these on its learning partitions, so the rules live here:

- empty: nothing to take; shipping starts after the source decree given.
- small: one WAL block of RAW_PUT ops, logged (and replayed into RocksDB when
  the partition is first opened).
- large: files arrive as checksummed chunks into ``learn/``, written and hashed
  by the backend's CheckpointReceiver (Rust, the GIL released); a copy that was
  cut off resumes after the bytes already there; every file's BLAKE3 is
  verified against the manifest, the files are made durable, and only then
  are they swapped in. Nothing that failed verification is ever opened.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from .. import _backend, fileio
from ..errors import ChecksumMismatchError, DuplicationError, InvalidArgumentError
from ..records import Op, is_record
from ..storage.partition import FAILED, LEARNING, Partition
from .ports import Chunk, ManifestEntry

LEARN_DIR = "learn"
#: hard links to learn/'s verified files, renamed into rdb/ by the install
INSTALL_DIR = "learn.install"
#: written into learn/ first: which checkpoint the files there belong to
MARKER = ".pegasus_fast_learn"
_RAW_PUT, _SOURCE_DECREE = int(Op.RAW_PUT), int(Op.SOURCE_DECREE)

_locks_guard = threading.Lock()
_locks: weakref.WeakKeyDictionary[Partition, threading.Lock] = weakref.WeakKeyDictionary()


@contextmanager
def _learning(p: Partition) -> Iterator[None]:
    """One learning call at a time on a partition, each seeing what the one before it did.

    Over the wire, a call the source gave up on (its connection was cut) can still be
    decoding or installing on the follower when the source calls again. Side by side, both
    would write the same checkpoint (a source decree applied twice), and one finishing after
    shipping began would put a snapshot's older values back over newer ones.
    """
    with _locks_guard:
        lock = _locks.get(p)
        if lock is None:
            lock = _locks[p] = threading.Lock()
    with lock:
        _fresh(p)
        yield


def _fresh(p: Partition) -> None:
    if p.state == FAILED:
        # a write of an earlier try could not be undone: it learns again once reopened
        p.check_available(True)
    if p.state != LEARNING:
        raise DuplicationError(f"partition {p.table}.{p.pidx} is not learning")


def _start_over(p: Partition, decree: int) -> bool:
    """Make a learning partition ready to take the checkpoint at source ``decree``.

    True when it already holds exactly that checkpoint (a retry: nothing to
    do). A partition holding an earlier checkpoint of the source (the source
    restarted in APP and checkpointed again) is emptied first, so records
    that checkpoint had and the new one lacks do not survive.
    """
    if p.last_committed == 0:
        return False
    if decree and p.source_decree == decree:
        return True
    empty = os.path.join(p.path, "learn.empty")
    fileio.rmtree(empty, ignore_errors=True)
    fileio.makedirs(empty, exist_ok=False)
    p.install_rdb(empty)
    return False


def learn_empty(p: Partition, decree: int) -> None:
    with _learning(p):
        if _start_over(p, decree) or not decree:
            return
        p.write_mutations(
            lambda next_decree: [(next_decree, 0, 0, [(_SOURCE_DECREE, decree)])], defer_apply=True
        )


def learn_snapshot(p: Partition, decree: int, block: bytes) -> None:
    with _learning(p):
        if _start_over(p, decree):
            return
        ((_, ts, cid, ops),) = _backend.impl.decode_block(block)
        if any(op[0] != _RAW_PUT for op in ops):
            raise DuplicationError("a logical snapshot holds RAW_PUT ops only")
        if not all(is_record(op[1], op[2]) for op in ops):
            raise InvalidArgumentError("a logical snapshot holds a malformed record")
        # a fresh partition takes the snapshot into its WAL only; RocksDB replays it when first opened
        p.write_mutations(
            lambda next_decree: [(next_decree, ts, cid, ops + [(_SOURCE_DECREE, decree)])], defer_apply=True
        )


# -- large checkpoints ------------------------------------------------------------------


def check_manifest(manifest: list[ManifestEntry]) -> dict[str, tuple[int, str]]:
    """Every name a plain file name inside learn/, every size and digest well formed."""
    wanted: dict[str, tuple[int, str]] = {}
    for entry in manifest:
        if not isinstance(entry, (tuple, list)) or len(entry) != 3:
            raise InvalidArgumentError("a manifest entry is (name, size, digest)")
        name, size, digest = entry
        if (
            not isinstance(name, str)
            or not name
            or name in (".", "..", MARKER)
            or "/" in name
            or "\0" in name
            or os.sep in name
        ):
            raise InvalidArgumentError(f"manifest names a file outside the partition: {name!r}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidArgumentError(f"manifest size of {name!r} is not a size")
        if not isinstance(digest, str):
            raise InvalidArgumentError(f"manifest digest of {name!r} is not a str")
        if name in wanted:
            raise InvalidArgumentError(f"manifest names {name!r} twice")
        wanted[name] = (size, digest)
    return wanted


def _marker_text(decree: int, manifest: list[ManifestEntry]) -> str:
    # names and sizes identify the checkpoint; each file's digest is checked on its own
    body = json.dumps([[e[0], e[1]] for e in manifest], separators=(",", ":")).encode()
    return f"{decree}\n{_backend.impl.crc64(body):016x}\n"


def _learn_dir(p: Partition, decree: int, manifest: list[ManifestEntry]) -> str:
    """learn/ holding files of this checkpoint only (those of another are removed)."""
    target = os.path.join(p.path, LEARN_DIR)
    expected = _marker_text(decree, manifest)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        fileio.unlink(target)  # a symlink or a file where learn/ belongs: never written through
        st = None
    if st is not None:
        try:
            fd = os.open(os.path.join(target, MARKER), os.O_RDONLY | os.O_NOFOLLOW)
            try:
                same = os.read(fd, 4096).decode("utf-8", "replace") == expected
            finally:
                os.close(fd)
        except OSError:
            same = False
        if same:
            return target
        fileio.rmtree(target)
    fileio.makedirs(target)
    fd = fileio.open(os.path.join(target, MARKER), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW)
    try:
        fileio.write(fd, expected.encode())
    finally:
        fileio.close(fd)
    return target


def checkpoint_offsets(p: Partition, decree: int, manifest: list[ManifestEntry]) -> dict[str, int]:
    """Bytes of each file already in learn/ for this checkpoint; a whole file counts only once its
    hash checks out (a damaged one is removed and copied again)."""
    with _learning(p):
        return _offsets(p, decree, manifest)


def _offsets(p: Partition, decree: int, manifest: list[ManifestEntry]) -> dict[str, int]:
    wanted = check_manifest(manifest)
    if p.last_committed and p.source_decree == decree:
        return {name: size for name, (size, _) in wanted.items()}  # installed already
    target = _learn_dir(p, decree, manifest)
    offsets: dict[str, int] = {}
    for name, (size, digest) in wanted.items():
        path = os.path.join(target, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_size > size:
            fileio.unlink(path)
            continue
        if st.st_size == size and _backend.impl.hash_file(path) != (size, digest):
            fileio.unlink(path)
            continue
        offsets[name] = st.st_size
    return offsets


def learn_checkpoint(
    p: Partition, decree: int, manifest: list[ManifestEntry], chunks: Iterable[Chunk]
) -> None:
    with _learning(p):
        _take_checkpoint(p, decree, manifest, chunks)


def _take_checkpoint(
    p: Partition, decree: int, manifest: list[ManifestEntry], chunks: Iterable[Chunk]
) -> None:
    wanted = check_manifest(manifest)
    if p.last_committed and p.source_decree == decree:
        return  # a retry: this checkpoint is installed already
    target = _learn_dir(p, decree, manifest)
    receive_files(target, manifest, chunks)
    # RocksDB gets a directory of hard links to the verified files (only its own: no marker).
    # learn/ keeps them until the partition is marked learned (discard_learned_files): a
    # follower restarted in between starts a learning partition empty, and then finds them
    # whole here (each checked by its hash again) rather than taking them over the wire again.
    fileio.fsync_tree(target)
    staged = os.path.join(p.path, INSTALL_DIR)
    fileio.rmtree(staged, ignore_errors=True)
    fileio.makedirs(staged, exist_ok=False)
    for name in wanted:
        fileio.link(os.path.join(target, name), os.path.join(staged, name))
    fileio.fsync_tree(staged)
    p.install_rdb(staged)
    p.write_mutations(lambda next_decree: [(next_decree, 0, 0, [(_SOURCE_DECREE, decree)])])


def receive_files(target: str, manifest: list[ManifestEntry], chunks: Iterable[Chunk]) -> None:
    """Write a checkpoint's checksummed ``chunks`` into ``target``, verify every file's BLAKE3
    against ``manifest`` and make the files and ``target`` durable; files it does not name are
    removed (the learn marker stays).

    The backend's CheckpointReceiver does the writing, hashing and fsyncs (Rust: with the GIL
    released, each chunk hashed as it is written, not read back). A chunk naming another file,
    failing its crc32c, reaching past its file's size or leaving a hole is refused typed; a
    file failing verification is removed, so a retry copies it again, and nothing is opened.
    """
    wanted = check_manifest(manifest)
    receiver = _backend.impl.CheckpointReceiver(target, manifest)
    try:
        for chunk in chunks:
            receiver.write(chunk.name, chunk.offset, chunk.data, chunk.crc32c)
        for name in os.listdir(target):
            if name not in wanted and name != MARKER:
                fileio.unlink(os.path.join(target, name))
        receiver.finish()  # never open what failed verification
    except ChecksumMismatchError as exc:
        # the damaged file goes, so the next try copies it again
        try:
            fileio.unlink(exc.path)
        except OSError:
            pass
        raise
    finally:
        receiver.close()


def discard_learned_files(p: Partition) -> None:
    """The partition is marked learned: the copy kept for a restart in between can go."""
    fileio.rmtree(os.path.join(p.path, LEARN_DIR), ignore_errors=True)
    fileio.rmtree(os.path.join(p.path, INSTALL_DIR), ignore_errors=True)


__all__ = [
    "check_manifest",
    "checkpoint_offsets",
    "discard_learned_files",
    "learn_checkpoint",
    "learn_empty",
    "learn_snapshot",
    "receive_files",
]
