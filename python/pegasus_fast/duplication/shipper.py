"""Per-partition log shipping: tail the source WAL from the follower's next decree.

A batch is whole WAL blocks exactly as stored (read and checksum-verified by the
backend): the follower decodes them itself, so their checksums hold end to end.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from .. import _backend
from ..errors import FollowerDecreeError, WalGapError
from ..storage.partition import Partition
from ..storage.state import PartitionState
from .ports import Follower

#: a backlog of at least this many decrees goes over the follower's apply stream, if it has one
#: (opening a stream costs more than a call: a steady trickle of writes goes a call a batch)
STREAM_MIN_BACKLOG = 32
#: WAL bytes one stream carries before it ends and its acknowledgements are all in
STREAM_BYTES = 64 << 20


@dataclass
class Cursor:
    name: str
    offset: int


@dataclass(frozen=True)
class _Sent:
    """A batch in flight on a stream: what its acknowledgement moves."""

    through: int
    name: str
    end: int
    first: int
    last: int
    first_ts: int
    nbytes: int
    has_blocks: bool


class PartitionShipper:
    """Ships one partition's mutations past ``next_decree`` to the follower, a batch a call."""

    def __init__(self, partition: Partition, remote_table: str, batch_bytes: int) -> None:
        self.partition = partition
        self.remote_table = remote_table
        self.batch_bytes = batch_bytes
        self.next_decree = 1
        #: the follower cluster's id: blocks it wrote are stepped over, never shipped back
        self.remote_cluster_id = 0
        self.cursor: Cursor | None = None
        self.time_lag_ms = 0.0
        self.shipped_bytes = 0
        self.shipped_mutations = 0
        #: a follower decree taken while this partition was unopened (its last decree unknown
        #: until it opens): checked against it once it is open, before anything ships
        self._unverified: int | None = None
        #: set by a verification (verify.py): nothing past this decree ships while it is set,
        #: so the follower stops at exactly the decree the two sides are compared at
        self.hold: int | None = None

    @property
    def confirmed(self) -> int:
        return self.next_decree - 1

    def pending(self) -> int:
        return max(0, self.partition.last_committed - self.confirmed)

    def _shippable(self) -> int:
        limit = min(self.partition.last_committed, self.partition.durable_decree)
        # read after the decrees: a hold set since was set at a decree >= the ones read
        hold = self.hold
        return limit if hold is None else min(limit, hold)

    def restart_at(self, next_decree: int) -> None:
        self.next_decree = next_decree
        self.cursor = None

    def follower_at(self, decree: int) -> None:
        """Carry on after the source decree the follower says it holds; never past this
        partition's own last decree (a follower cannot hold what was never written)."""
        self.check_follower(decree)
        self.restart_at(decree + 1)

    def check_follower(self, decree: int) -> int:
        p = self.partition
        if p.state == PartitionState.UNOPENED:
            # not opened past the open-partition bound: its last decree is not known yet
            self._unverified = decree
            return decree
        last = p.last_committed
        if decree > last:
            raise FollowerDecreeError(self.remote_table, self.partition.pidx, decree, last)
        return decree

    def _locate(self) -> Cursor:
        files = [
            f for f in self.partition.wal.snapshot_files() if f.size and f.last_decree >= self.next_decree
        ]
        if not files:
            raise WalGapError(self.partition.wal.path, self.next_decree, 0)
        if files[0].first_decree > self.next_decree:
            raise WalGapError(self.partition.wal.path, self.next_decree, files[0].first_decree)
        return Cursor(files[0].name, 0)

    def _advance_file(self) -> bool:
        names = [f.name for f in self.partition.wal.snapshot_files()]
        assert self.cursor is not None
        if self.cursor.name in names:
            i = names.index(self.cursor.name)
            if i + 1 < len(names):
                self.cursor = Cursor(names[i + 1], 0)
                return True
            return False
        self.cursor = None  # our file was collected: find our decree again
        return True

    def ship_once(self, follower: Follower) -> bool:
        """Ship one batch if anything is pending (a stream of them to a follower across a network
        when there is a backlog); True when something moved."""
        if self._unverified is not None and self.partition.state != PartitionState.UNOPENED:
            decree, self._unverified = self._unverified, None
            self.check_follower(decree)
        limit = self._shippable()
        if self.next_decree > limit:
            if self.next_decree > self.partition.last_committed:
                self.time_lag_ms = 0.0
            return False
        if self.cursor is None:
            self.cursor = self._locate()
        if limit - self.next_decree + 1 >= STREAM_MIN_BACKLOG and hasattr(follower, "apply_stream"):
            return self._ship_stream(follower, limit)
        return self._ship_one(follower, limit)

    def _ship_one(self, follower: Follower, limit: int) -> bool:
        assert self.cursor is not None
        path = os.path.join(self.partition.wal.path, self.cursor.name)
        offset = self.cursor.offset
        try:
            blocks, first, last, first_ts, end, _torn, skipped = _backend.impl.read_log_blocks(
                path, offset, self.next_decree, self.batch_bytes, limit, self.remote_cluster_id
            )
        except FileNotFoundError:
            self.cursor = None
            return True
        if not blocks and skipped < self.next_decree:
            if end > offset:  # only blocks below next_decree: skip past them
                self.cursor.offset = end
                return True
            return self._advance_file()
        # writes that came from the remote are not shipped back: they only count as seen
        applied = self.check_follower(follower.apply(self.remote_table, self.partition.pidx, blocks, skipped))
        through = max(last, skipped)
        if blocks:
            now_us = time.time_ns() // 1000
            self.time_lag_ms = max(0.0, (now_us - first_ts) / 1000.0)
            self.shipped_mutations += last - max(first, self.next_decree) + 1
            self.shipped_bytes += end - offset
        self.cursor.offset = end
        if applied != through:  # the follower is elsewhere: find its next decree again
            self.restart_at(applied + 1)
        else:
            self.next_decree = applied + 1
        return True

    def _account(self, s: _Sent) -> None:
        if s.has_blocks:
            self.time_lag_ms = max(0.0, (time.time_ns() // 1000 - s.first_ts) / 1000.0)
            self.shipped_mutations += s.last - max(s.first, self.next_decree) + 1
            self.shipped_bytes += s.nbytes

    def _batches(
        self, limit: int, sent: deque[_Sent], failed: list[BaseException]
    ) -> Iterator[tuple[bytes, int]]:
        """The batches after the cursor, read ahead of their acknowledgements (the stream's
        sending side runs this; an error ends the stream and is raised by the shipper)."""
        assert self.cursor is not None
        name, offset, nxt, total = self.cursor.name, self.cursor.offset, self.next_decree, 0
        try:
            while nxt <= limit and total < STREAM_BYTES:
                path = os.path.join(self.partition.wal.path, name)
                try:
                    blocks, first, last, first_ts, end, _torn, skipped = _backend.impl.read_log_blocks(
                        path, offset, nxt, self.batch_bytes, limit, self.remote_cluster_id
                    )
                except FileNotFoundError:
                    return  # collected under us: the shipper finds its decree again
                if not blocks and skipped < nxt:
                    if end > offset:
                        offset = end
                        continue
                    names = [f.name for f in self.partition.wal.snapshot_files()]
                    if name not in names or names.index(name) + 1 >= len(names):
                        return
                    name, offset = names[names.index(name) + 1], 0
                    continue
                through = max(last, skipped)
                sent.append(_Sent(through, name, end, first, last, first_ts, end - offset, bool(blocks)))
                yield blocks, skipped
                offset, nxt, total = end, through + 1, total + len(blocks)
        except Exception as exc:  # noqa: BLE001 - raised again in the shipper's thread
            failed.append(exc)

    def _ship_stream(self, follower: Follower, limit: int) -> bool:
        sent: deque[_Sent] = deque()
        failed: list[BaseException] = []
        acks = follower.apply_stream(  # type: ignore[attr-defined]
            self.remote_table, self.partition.pidx, self._batches(limit, sent, failed)
        )
        moved = False
        try:
            for applied in acks:
                self.check_follower(applied)
                s = sent.popleft()
                self._account(s)
                moved = True
                if applied != s.through:  # the follower is elsewhere: find its next decree again
                    self.restart_at(applied + 1)
                    return True
                self.cursor = Cursor(s.name, s.end)
                self.next_decree = applied + 1
        except BaseException:
            self.cursor = None  # read ahead of what was acknowledged: locate the next decree again
            raise
        finally:
            acks.close()
        if failed:
            self.cursor = None
            raise failed[0]
        if not sent:  # nothing to send from the cursor on: step past it as one call does
            return self._ship_one(follower, limit)
        return moved

    def skip_to_available(self) -> int:
        """fail_mode=skip: jump past what the WAL no longer has; returns how many were lost."""
        files = [f for f in self.partition.wal.snapshot_files() if f.size and f.first_decree]
        first = files[0].first_decree if files else self.partition.last_committed + 1
        lost = max(0, first - self.next_decree)
        self.restart_at(max(self.next_decree, first))
        return lost
