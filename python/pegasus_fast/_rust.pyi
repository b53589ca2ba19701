"""Contract of the compiled hot path, ``pegasus_fast._rust``.

The pure-Python twin ``pegasus_fast._pure`` exports the same names with the
same signatures and byte-identical results; ``tests/test_contract.py`` checks
it. Byte layouts are in ``docs/wal-format.md``.
"""

from __future__ import annotations

import os
from typing import Any, final

Op = tuple[Any, ...]
#: (decree, timestamp_us, cluster_id, ops)
Mutation = tuple[int, int, int, list[Op]]
#: (file name, first decree, last decree, end of valid data, file size)
LogFileInfo = tuple[str, int, int, int, int]
#: RocksDB key and value; value None means delete
Write = tuple[bytes, bytes | None]
#: (file name, size, blake3 hex digest)
ManifestEntry = tuple[str, int, str]

__all__ = [
    "BLOCK_HEADER_SIZE",
    "CheckpointReceiver",
    "PegasusClientCore",
    "PegasusFrontCore",
    "RecordDigest",
    "StartedSync",
    "bench_served",
    "crc32c",
    "crc64",
    "decode_block",
    "decode_blocks",
    "encode_block",
    "encode_write",
    "fdatasync_all",
    "fdatasync_start",
    "hash_file",
    "incr_step",
    "mutation_writes",
    "pairs_bytes",
    "partition_index",
    "read_log_blocks",
    "replay_log_dir",
    "replay_log_file",
    "scan_batch",
    "scan_log_dir",
    "scan_log_file",
    "scan_range",
    "scan_records",
]

BLOCK_HEADER_SIZE: int

def fdatasync_all(fds: list[int]) -> list[int]:
    """``fdatasync`` each of ``fds`` at once (the GIL released): each one's result, 0 or its errno."""

@final
class StartedSync:
    """An ``fdatasync`` running on a Rust thread (``fdatasync_start``)."""

    def wait(self) -> int:
        """Block (the GIL released) until it has returned: 0, or its errno."""

    @property
    def done(self) -> bool:
        """Whether it has returned."""

def fdatasync_start(fd: int) -> StartedSync:
    """Start ``fdatasync(fd)`` on a Rust thread and return at once; keep ``fd`` open until
    ``wait()`` has returned."""

def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC32C (Castagnoli); chain with ``crc32c(b, crc32c(a)) == crc32c(a + b)``."""

def crc64(data: bytes, crc: int = 0) -> int:
    """CRC-64/NVME, chained like ``crc32c``."""

def partition_index(hash_key: bytes, partition_count: int, sort_key: bytes = b"") -> int:
    """Pegasus partition of a key: crc64 of hash_key (of sort_key when hash_key is empty) mod count."""

def encode_block(mutations: list[Mutation]) -> bytes:
    """One checksummed WAL block holding ``mutations`` (at least one)."""

def decode_block(data: bytes) -> list[Mutation]:
    """The mutations of exactly one whole block; WalCorruptionError otherwise."""

def decode_blocks(data: bytes) -> list[Mutation]:
    """The mutations of whole blocks back to back (a shipped batch); WalCorruptionError for
    anything else, at the offset of the bad block (a batch has no torn tail)."""

def mutation_writes(mutations: list[Mutation], tombstone_seconds: int = 0) -> list[Write]:
    """RocksDB writes applying ``mutations`` in order, then the decree meta key.

    A hash key over 65534 bytes raises InvalidArgumentError (Pegasus's limit). With
    ``tombstone_seconds`` > 0 a delete writes a tombstone, not a removal: an empty value whose
    timetag has the delete bit set, expiring that long after the delete's timestamp
    (docs/last-writer-wins.md).
    """

def encode_write(mutations: list[Mutation], batch: Any, tombstone_seconds: int = 0) -> bytes:
    """The write path in one call: ``encode_block(mutations)``, with the writes of
    ``mutation_writes(mutations, tombstone_seconds)`` put into ``batch`` in order
    (``batch.put(key, value)``, ``batch.delete(key)``: a rocksdict WriteBatch). Both are made
    before either is used, so an error leaves ``batch`` untouched."""

def scan_log_file(
    path: str | os.PathLike[str], offset: int = 0, start_decree: int = 0, max_bytes: int = 0
) -> tuple[list[Mutation], int, bool]:
    """Blocks from ``offset``: (mutations with decree >= start_decree, end offset, torn tail?)."""

def read_log_blocks(
    path: str | os.PathLike[str],
    offset: int,
    start_decree: int,
    max_bytes: int,
    max_decree: int,
    skip_cluster_id: int = 0,
) -> tuple[bytes, int, int, int, int, bool, int]:
    """Whole verified blocks from ``offset`` as stored, for shipping:
    (data, first decree, last decree, first timestamp_us, end offset, torn tail?, skipped through).

    Blocks wholly below ``start_decree`` are skipped; it stops before a block holding a decree
    past ``max_decree``, and at about ``max_bytes`` (0: no limit, at least one block). With
    ``skip_cluster_id`` (1..127), blocks whose every mutation that cluster wrote are stepped
    over at the start of the run (``skipped through`` is their last decree) and end it elsewhere:
    writes that came from the remote are never shipped back to it.
    """

def scan_log_dir(
    path: str | os.PathLike[str], start_decree: int = 0
) -> tuple[list[Mutation], list[LogFileInfo]]:
    """Every ``log.<index>.<offset>`` file in index order; mutations with decree >= start_decree."""

def replay_log_dir(
    path: str | os.PathLike[str], start_decree: int, batch_size: int = 4096, tombstone_seconds: int = 0
) -> tuple[list[tuple[int, list[Write]]], list[LogFileInfo]]:
    """Like scan_log_dir, as (last decree, writes) batches of at most batch_size mutations.

    A batch's writes are the net effect of its mutations' ``mutation_writes``:
    one write per key (the last), sorted by key.
    """

def replay_log_file(
    path: str | os.PathLike[str], start_decree: int, batch_size: int = 4096, tombstone_seconds: int = 0
) -> tuple[list[tuple[int, list[Write]]], LogFileInfo, bool]:
    """One file of replay_log_dir: (batches, its LogFileInfo, torn tail?); recovery pipelines files."""

def pairs_bytes(pairs: Any) -> int:
    """``sum(len(k) + len(v))`` over a dict whose every key and value is exactly ``bytes``;
    -1 for anything else (another mapping, other types)."""

def incr_step(
    raw: bytes | None, increment: int, expire_ts: int | None = None
) -> tuple[bytes, int, int] | None:
    """The common case of an incr, decided in one call: the stored record ``raw`` (None:
    absent) is absent, a tombstone, or a record without TTL that is empty or a plain decimal,
    and the sum fits an int64. Returns (the new value's ASCII decimal, the new value, the
    expire_ts to store: ``expire_ts``, else 0); None for every other case (a record with a
    TTL among them: the store's clock is Python's), which the caller decides."""

def scan_records(it: Any, now: int, limit: int) -> tuple[list[tuple[bytes, bytes, bytes]], bool]:
    """Up to ``limit`` entries of a positioned RocksDB iterator (a rocksdict ``RdictIter``:
    ``key()``, ``value()``, ``next()``, ``status()``), as the live (hash key, sort key, value)
    records among them at Pegasus time ``now``: meta keys, tombstones and records expired at
    ``now`` are skipped. Returns (records, more); at the end ``status()`` raises an error that
    stopped the iterator early. A value shorter than its header is InvalidArgumentError."""

def scan_batch(it: Any, now: int, max_bytes: int) -> tuple[int, list[bytes], bool]:
    """Like ``scan_records`` until about ``max_bytes`` of live keys and values: (count,
    [hash keys, their offsets, sort keys, their offsets, values, their offsets], more); each
    offsets buffer is count + 1 little-endian u64."""

def scan_range(
    it: Any,
    now: int,
    end: bytes,
    reverse: bool,
    prefix_len: int,
    filter_type: int,
    pattern: bytes,
    max_count: int | None,
    max_bytes: int | None,
    no_value: bool,
    out: dict[bytes, bytes],
) -> bool:
    """Put the records of one sort-key range of a positioned RocksDB iterator (``next``, or
    ``prev`` when ``reverse``) in ``out`` (a dict, or a subclass), in the order read, until a
    key at or past ``end`` (reverse: below it) or the iterator's end: sort key (the key after
    its first ``prefix_len`` bytes) -> user value (b"" with ``no_value``), for records live at
    Pegasus time ``now`` whose sort key passes Pegasus filter ``filter_type`` with
    ``pattern``. Taken while fewer than ``max_count`` were taken and their sort keys and
    values total less than ``max_bytes`` (None: no limit). Returns whether the range was read
    to its end (False: a limit stopped it before). An unknown filter type or a value shorter
    than its header is InvalidArgumentError."""

def hash_file(path: str | os.PathLike[str]) -> tuple[int, str]:
    """(size, blake3 hex digest) of a regular file; FileChangedError if it changes while read."""

@final
class CheckpointReceiver:
    """The follower's receive of a checkpoint's chunks into ``directory`` (which exists).

    ``manifest`` names plain files, each once (InvalidArgumentError otherwise). Every call
    does its I/O with the GIL released.
    """

    def __new__(
        cls, directory: str | os.PathLike[str], manifest: list[ManifestEntry], sync: bool = True
    ) -> CheckpointReceiver: ...
    def write(self, name: str, offset: int, data: bytes, crc32c: int) -> None:
        """Write one chunk at ``offset`` of its file, hashing it as it goes.

        InvalidArgumentError for a name outside the manifest or a chunk leaving a hole after the
        file's bytes; ChecksumMismatchError for a bad crc32c or a chunk ending past the file's
        size. A chunk before the file's end cuts the file there first (sent again); a file never
        written through a link, and a non-regular one is InvalidArgumentError.
        """

    def finish(self) -> None:
        """Verify every file's size and BLAKE3 (an empty one with no chunk is made), then with
        ``sync`` fsync each and the directory. ChecksumMismatchError names the first that differs
        (the caller removes it); a missing file is FileNotFoundError."""

    def close(self) -> None:
        """Close the files still open (finish closes them too)."""

@final
class RecordDigest:
    """The live records of a partition in key order, digested into chunks for verifying a
    duplication (docs/verify.md). A record counts as ``u32 LE len(key) | key | u32 BE expire_ts
    | u32 LE len(value) | value`` (RocksDB key; user value; no timetag); a chunk ends after a
    record whose key's CRC32C has its low ``chunk_bits`` bits zero, and at the end. Meta keys,
    tombstones and records expired at ``now`` are not records. InvalidArgumentError for
    ``chunk_bits`` past 31 or a value shorter than its header."""

    def __new__(cls, chunk_bits: int = 10) -> RecordDigest: ...
    def feed(self, it: Any, now: int, end: bytes | None, max_bytes: int) -> bool:
        """Read ``it`` (a rocksdict iterator) from where it stands up to key ``end`` (exclusive;
        None: its end), stopping once about ``max_bytes`` were read, and digest what was read
        with the GIL released. Returns whether records may remain."""

    def finish(self) -> list[tuple[bytes, int, bytes]]:
        """Every chunk as (last key, record count, 32-byte BLAKE3), the open one closed."""

# -- the served data plane (DESIGN.md §11) ---------------------------------------------
# Not in _pure: their twins are the asyncio front end (server/pegasus_front.py) and
# client/native.PyClientCore, both over net/pegasus/; the load generator is a measuring tool
# and exists in Rust only (it must not measure itself).

@final
class PegasusFrontCore:
    """The tokio front end of the Pegasus port; ``serve`` runs the batch loop on the calling thread."""

    def __new__(
        cls, host: str, port: int, allow: list[str], max_frame: int, max_inflight: int, workers: int
    ) -> PegasusFrontCore: ...
    @property
    def port(self) -> int: ...
    def serve(
        self, handler: Any, max_batch: int, depth: int = 1, poll_us: int = 100, linger_us: int = 0
    ) -> None:
        """``handler.begin_batch(requests).finish() -> responses`` per batch until ``stop()``, up
        to ``depth`` batches begun and not yet answered, answered in order; the GIL is taken once
        per batch and released while waiting and writing; after a batch with writes it lingers up
        to ``linger_us`` for as many requests as that batch and the queue held."""
    def serve_side(self, handler: Any, max_batch: int) -> None:
        """``handler.side_batch(requests) -> responses`` for every OP_REPLICATE request until
        ``stop()``, apart from ``serve``'s batches (from its start those requests wait for it
        alone); run on a thread of its own."""
    def stop(self) -> None: ...
    def stats(self) -> dict[str, int]: ...
    def batch_histogram(self) -> list[tuple[int | None, int]]: ...
    @staticmethod
    def decode_request(body: bytes, app_id: int, pidx: int, base: int = 0) -> tuple[Any, ...]:
        """net.pegasus.requests.decode_request, byte for byte."""
    @staticmethod
    def encode_response(resp: tuple[Any, ...], server: bytes, primary: int) -> bytes | None:
        """net.pegasus.replies.encode_response, byte for byte."""

@final
class PegasusClientCore:
    """The client of pf.connect's data calls; ``call`` waits with the GIL released."""

    def __new__(cls, host: str, port: int, timeout: float | None = None) -> PegasusClientCore: ...
    def call(self, op: int, app_id: int, pidx: int, args: Any) -> tuple[str, Any]: ...
    def close(self) -> None: ...

def bench_served(
    host: str,
    port: int,
    op: str,
    *,
    protocol: str = "pegasus",
    table: str = "bench",
    clients: int = 32,
    seconds: float = 5.0,
    warmup: float = 1.0,
    value_size: int = 100,
    keyspace: int = 10000,
    rate: float = 0.0,
    threads: int = 1,
    prefill: bool = False,
    samples: bool = False,
) -> dict[str, Any]:
    """One phase of the load generator (Pegasus or RESP), with the GIL released; ``samples``:
    also every request's latency, sorted (``latencies_us``)."""
