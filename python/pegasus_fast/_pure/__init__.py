"""Pure-Python twin of ``pegasus_fast._rust``: same names, same signatures, same bytes."""

from __future__ import annotations

from .atomic import incr_step
from .codec import (
    BLOCK_HEADER_SIZE,
    decode_block,
    decode_blocks,
    encode_block,
    encode_write,
    mutation_writes,
    pairs_bytes,
)
from .crc import crc32c, crc64, partition_index
from .digest import RecordDigest
from .filecopy import CheckpointReceiver, hash_file
from .logscan import read_log_blocks, replay_log_dir, replay_log_file, scan_log_dir, scan_log_file
from .scan import scan_batch, scan_range, scan_records
from .syncs import StartedSync, fdatasync_all, fdatasync_start

__all__ = [
    "BLOCK_HEADER_SIZE",
    "CheckpointReceiver",
    "RecordDigest",
    "StartedSync",
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
