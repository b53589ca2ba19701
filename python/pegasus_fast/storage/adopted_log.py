"""Another node's WAL blocks taken as they are: the data plane of a partition move.

A moved partition must end with the source's decrees and timetags (later
duplication progress is counted in them), so unlike a duplication follower's
apply nothing is renumbered or filtered: only what is already here is skipped,
and a hole is refused.
"""

from __future__ import annotations

from .. import _backend
from ..errors import WalGapError

#: (decree, timestamp_us, cluster_id, ops)
Mutation = tuple[int, int, int, list]


def decode(blocks: bytes) -> list[Mutation]:
    """The mutations of whole WAL blocks (WalCorruptionError on damaged or cut-short bytes)."""
    if not blocks:
        return []
    return list(_backend.impl.decode_blocks(blocks))


def after(mutations: list[Mutation], next_decree: int, wal_path: str) -> list[Mutation]:
    """The mutations from ``next_decree`` on, which must follow one another without a hole."""
    new = [m for m in mutations if m[0] >= next_decree]
    expected = next_decree
    for m in new:
        if m[0] != expected:
            raise WalGapError(wal_path, expected, m[0])
        expected += 1
    return new


__all__ = ["Mutation", "after", "decode"]
