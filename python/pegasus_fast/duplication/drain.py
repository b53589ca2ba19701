"""A switchover's catch-up (docs/switchover.md): ship a fenced partition's last decrees to the
follower now, every partition at once, instead of waiting for the driver's turn.

Once a source table is fenced no client write adds to its log, so what is left to ship is a
short, fixed tail per partition. The duplication's driver would ship it partition after
partition; a switchover drains all of them in parallel, next to the driver. Both send whole WAL
blocks as stored (``read_log_blocks``, as shipper.py does) through the same Follower port, and
the follower applies each source decree once (a batch it holds already is skipped; a batch
never starts past the follower's next decree, since a drain starts after the decree the
follower confirmed). The driver meets a follower that moved on as it always does: it carries on
from the decree the follower answers.
"""

from __future__ import annotations

import os

from .. import _backend
from ..errors import DuplicationError, WalGapError
from ..storage.partition import Partition
from .ports import Follower


def drain(
    partition: Partition,
    follower: Follower,
    remote_table: str,
    start: int,
    through: int,
    batch_bytes: int,
    remote_cluster_id: int,
) -> int:
    """Ship source decrees ``start..through`` of ``partition`` (its WAL holds them: they are past
    the decree the duplication confirmed); returns the source decree the follower then holds
    durably (``through`` or more once drained)."""
    applied = start - 1
    nxt = start
    while nxt <= through:
        files = [f for f in partition.wal.snapshot_files() if f.size and f.last_decree >= nxt]
        if not files or files[0].first_decree > nxt:
            raise WalGapError(partition.wal.path, nxt, files[0].first_decree if files else 0)
        relocate = progressed = False
        for f in files:
            path = os.path.join(partition.wal.path, f.name)
            offset = 0
            while nxt <= through:
                blocks, _first, last, _ts, end, _torn, skipped = _backend.impl.read_log_blocks(
                    path, offset, nxt, batch_bytes, through, remote_cluster_id
                )
                if not blocks and skipped < nxt:
                    if end > offset:  # only blocks below nxt here: step past them
                        offset = end
                        continue
                    break  # the rest is in the next file
                got = follower.apply(remote_table, partition.pidx, blocks, skipped)
                if got < nxt:
                    raise DuplicationError(
                        f"the follower of {remote_table!r} partition {partition.pidx} went back to "
                        f"source decree {got} while {nxt} was sent"
                    )
                applied, offset, progressed = got, end, True
                nxt = got + 1
                if got != max(last, skipped):  # the driver shipped past it meanwhile: go on from there
                    relocate = True
                    break
            if relocate or nxt > through:
                break
        if not progressed:
            raise WalGapError(partition.wal.path, nxt, 0)
    return applied


__all__ = ["drain"]
