"""A partition's WAL blocks read back for another node, with their own decrees: a move's
target (multinode/transfer.py) and a replicated partition's secondaries (multinode/replication.py)
take them as they are stored."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from .. import _backend
from ..errors import InvalidArgumentError, WalCorruptionError, WalGapError
from .partition import Partition

#: WAL bytes one batch carries, about (one block always goes whole; the wire takes MAX_WRITE + 4 MiB)
LOG_BATCH_BYTES = 4 << 20


@dataclass
class LogCursor:
    """Where the last pull of a partition's log ended: the next pull of the move (CatchUp after
    Learn) starts there rather than scanning its WAL file from the start. Only a hint: a
    position that does not hold ``next_decree`` is found again from the file list."""

    name: str = ""
    offset: int = 0
    next_decree: int = 0


def _first_file(p: Partition, nxt: int) -> str:
    files = [f for f in p.wal.snapshot_files() if f.size and f.last_decree >= nxt]
    if not files or files[0].first_decree > nxt:
        raise WalGapError(p.wal.path, nxt, files[0].first_decree if files else 0)
    return files[0].name


def log_batches(
    p: Partition,
    after: int,
    through: int,
    batch_bytes: int = LOG_BATCH_BYTES,
    cursor: LogCursor | None = None,
) -> Iterator[tuple[bytes, int]]:
    """``p``'s WAL blocks holding decrees after..through (0: the durable decree) as (blocks, last decree).

    WalGapError when the WAL no longer holds ``after + 1`` (or loses a file while it is read).
    ``cursor`` is read as a hint and moved past each batch sent.
    """
    if through > p.last_committed:
        raise InvalidArgumentError(f"decree {through} is past {p.table}.{p.pidx}'s last, {p.last_committed}")
    if through > p.durable_decree:
        p.sync_wal()
    limit = through or min(p.last_committed, p.durable_decree)
    nxt = after + 1
    if nxt > limit:
        return
    wal = p.wal.path
    hinted = (
        cursor is not None and cursor.next_decree == nxt and os.path.isfile(os.path.join(wal, cursor.name))
    )
    name, offset = (cursor.name, cursor.offset) if cursor is not None and hinted else (_first_file(p, nxt), 0)
    read = _backend.impl.read_log_blocks
    while nxt <= limit:
        try:
            blocks, first, last, _ts, end, _torn, _skipped = read(
                os.path.join(wal, name), offset, nxt, batch_bytes, limit
            )
            if blocks and first > nxt:
                raise WalGapError(wal, nxt, first)
        except (WalGapError, WalCorruptionError, FileNotFoundError) as exc:
            if hinted:  # the hint was wrong: find the decree from the file list
                hinted, name, offset = False, _first_file(p, nxt), 0
                continue
            if isinstance(exc, FileNotFoundError):
                raise WalGapError(wal, nxt, 0) from None
            raise
        if blocks:
            yield blocks, last
            hinted, nxt, offset = False, last + 1, end
            if cursor is not None:
                cursor.name, cursor.offset, cursor.next_decree = name, offset, nxt
        elif end > offset:
            offset = end  # blocks below nxt only
        else:
            # the end of this file: the next one (the list is taken again: the WAL may have rotated)
            names = [f.name for f in p.wal.snapshot_files()]
            if name not in names or names.index(name) + 1 >= len(names):
                if hinted:
                    hinted, name, offset = False, _first_file(p, nxt), 0
                    continue
                raise WalGapError(wal, nxt, 0)
            name, offset = names[names.index(name) + 1], 0


__all__ = ["LOG_BATCH_BYTES", "LogCursor", "log_batches"]
