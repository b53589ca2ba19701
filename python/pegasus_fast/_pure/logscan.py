"""WAL file and directory scanning, and replay batches, in pure Python."""

from __future__ import annotations

import os
from typing import BinaryIO

from ..errors import InvalidArgumentError, WalCorruptionError
from ..records import list_log_files
from .codec import (
    _HEADER as _HEADER_FIELDS,
)
from .codec import (
    _U32,
    _U64,
    BLOCK_HEADER_SIZE,
    Mutation,
    Write,
    _int,
    _Malformed,
    check_header,
    crc32c,
    decode_payload,
    replay_writes,
)

LogFileInfo = tuple[str, int, int, int, int]


def _scan_open_file(
    path: str, f: BinaryIO, size: int, offset: int, start_decree: int, max_bytes: int
) -> tuple[list[Mutation], int, bool, int, int]:
    """(mutations, end, torn, first_decree, last_decree) of the blocks from offset.

    Reads block by block, so tailing a long live file costs only what is new.
    """
    pos = offset
    out: list[Mutation] = []
    first = last = 0
    f.seek(pos)
    while True:
        if max_bytes and pos - offset >= max_bytes:
            return out, pos, False, first, last
        if pos == size:
            return out, pos, False, first, last
        if size - pos < BLOCK_HEADER_SIZE:
            return out, pos, True, first, last
        header = f.read(BLOCK_HEADER_SIZE)
        valid, payload_len, count, reason = check_header(header)
        if not valid:
            if not any(header) and not any(f.read(size - pos - BLOCK_HEADER_SIZE)):
                return out, pos, True, first, last  # zero-filled tail
            raise WalCorruptionError(path, pos, reason)
        if pos + BLOCK_HEADER_SIZE + payload_len > size:
            return out, pos, True, first, last
        end = pos + BLOCK_HEADER_SIZE + payload_len
        payload = f.read(payload_len)
        if len(payload) != payload_len:  # the file shrank under us
            return out, pos, True, first, last
        if crc32c(payload) != _U32.unpack_from(header, 20)[0]:
            if end == size:
                return out, pos, True, first, last
            raise WalCorruptionError(path, pos, "payload checksum mismatch")
        try:
            mutations = decode_payload(payload, 0, payload_len, count, _U64.unpack_from(header, 8)[0])
        except _Malformed as exc:
            raise WalCorruptionError(path, pos, str(exc)) from None
        if mutations:
            if not first:
                first = _U64.unpack_from(header, 8)[0]
            last = mutations[-1][0]
            if last >= start_decree:
                out.extend(m for m in mutations if m[0] >= start_decree)
        pos = end


def scan_log_file(
    path: str | os.PathLike[str], offset: int = 0, start_decree: int = 0, max_bytes: int = 0
) -> tuple[list[Mutation], int, bool]:
    offset = _int(offset, 64, "argument")
    start_decree = _int(start_decree, 64, "argument")
    max_bytes = _int(max_bytes, 64, "argument")
    path = os.fspath(path)
    with open(path, "rb", buffering=1 << 20) as f:
        size = os.fstat(f.fileno()).st_size
        if offset > size:
            raise InvalidArgumentError(f"offset {offset} is outside {path} ({size} bytes)")
        mutations, end, torn, _first, _last = _scan_open_file(path, f, size, offset, start_decree, max_bytes)
    return mutations, end, torn


def read_log_blocks(
    path: str | os.PathLike[str],
    offset: int,
    start_decree: int,
    max_bytes: int,
    max_decree: int,
    skip_cluster_id: int = 0,
) -> tuple[bytes, int, int, int, int, bool, int]:
    """Whole verified blocks for shipping:
    (data, first decree, last decree, first timestamp, end, torn, skipped through)."""
    path = os.fspath(path)
    # verify the same blocks a scan would (checksums, payload parse, torn-tail rules), then read
    # just those bytes: the file may grow meanwhile, and what the scan passed does not change
    _, scan_end, torn = scan_log_file(path, offset, 0, max_bytes)
    with open(path, "rb", buffering=0) as f:
        f.seek(offset)
        buf = f.read(scan_end - offset)
    pos, end = offset, offset
    first = last = first_ts = skipped = 0
    taken_start = taken_end = -1
    while pos < scan_end:
        rel = pos - offset
        _magic, payload_len, block_first, count, _crc = _HEADER_FIELDS.unpack_from(buf, rel)
        block_end = pos + BLOCK_HEADER_SIZE + payload_len
        mutations = decode_payload(
            buf, rel + BLOCK_HEADER_SIZE, rel + BLOCK_HEADER_SIZE + payload_len, count, block_first
        )
        if not mutations:
            if taken_start < 0:
                end = block_end
            pos = block_end
            continue
        block_last = max(m[0] for m in mutations)
        if block_last > max_decree:
            torn = False
            break
        if block_last < start_decree and taken_start < 0:
            end = pos = block_end
            continue
        if skip_cluster_id and all(m[2] == skip_cluster_id for m in mutations):
            if taken_start >= 0:
                torn = False
                break
            skipped = block_last
            end = pos = block_end
            continue
        if taken_start < 0:
            taken_start, first, first_ts = pos, block_first, mutations[0][1]
        taken_end = block_end
        last = block_last
        end = pos = block_end
    data = buf[taken_start - offset : taken_end - offset] if taken_start >= 0 else b""
    return data, first, last, first_ts, end, torn, skipped


def scan_log_dir(
    path: str | os.PathLike[str], start_decree: int = 0
) -> tuple[list[Mutation], list[LogFileInfo]]:
    start_decree = _int(start_decree, 64, "argument")
    path = os.fspath(path)
    files = list_log_files(path)
    out: list[Mutation] = []
    infos: list[LogFileInfo] = []
    for i, (_index, _offset, name) in enumerate(files):
        full = os.path.join(path, name)
        with open(full, "rb", buffering=1 << 20) as f:
            size = os.fstat(f.fileno()).st_size
            mutations, end, torn, first, last = _scan_open_file(full, f, size, 0, start_decree, 0)
        if torn and i != len(files) - 1:
            raise WalCorruptionError(full, end, "torn block in a log file that is not the newest")
        out.extend(mutations)
        infos.append((name, first, last, end, size))
    return out, infos


def _batches(
    mutations: list[Mutation], batch_size: int, tombstone_seconds: int = 0
) -> list[tuple[int, list[Write]]]:
    batches = []
    for i in range(0, len(mutations), batch_size):
        chunk = mutations[i : i + batch_size]
        net = dict(replay_writes(chunk, tombstone_seconds))  # the last write of each key wins
        batches.append((chunk[-1][0], sorted(net.items())))
    return batches


def replay_log_dir(
    path: str | os.PathLike[str], start_decree: int, batch_size: int = 4096, tombstone_seconds: int = 0
) -> tuple[list[tuple[int, list[Write]]], list[LogFileInfo]]:
    start_decree = _int(start_decree, 64, "argument")
    if _int(batch_size, 63, "argument") <= 0:  # the Rust glue takes an i64
        raise InvalidArgumentError("batch_size must be positive")
    mutations, infos = scan_log_dir(path, start_decree)
    return _batches(mutations, batch_size, tombstone_seconds), infos


def replay_log_file(
    path: str | os.PathLike[str], start_decree: int, batch_size: int = 4096, tombstone_seconds: int = 0
) -> tuple[list[tuple[int, list[Write]]], LogFileInfo, bool]:
    start_decree = _int(start_decree, 64, "argument")
    if _int(batch_size, 63, "argument") <= 0:  # the Rust glue takes an i64
        raise InvalidArgumentError("batch_size must be positive")
    path = os.fspath(path)
    with open(path, "rb", buffering=1 << 20) as f:
        size = os.fstat(f.fileno()).st_size
        mutations, end, torn, first, last = _scan_open_file(path, f, size, 0, start_decree, 0)
    info = (os.path.basename(path), first, last, end, size)
    return _batches(mutations, batch_size, tombstone_seconds), info, torn
