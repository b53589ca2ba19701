"""The embedded implementation of duplication's Follower port: a cluster open in this process.

A served cluster implements the same port over the wire; both hand the
learning and applying itself to duplication/learn.py and duplication/apply.py.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from ..duplication import apply, learn, verify_views
from ..duplication.ports import Chunk, Follower, ManifestEntry, SourceId
from ..errors import (
    ClosedError,
    DuplicationError,
    FollowerTableNotFoundError,
    InvalidArgumentError,
    PartitionUnavailableError,
    RemoteUnavailableError,
    TableExistsError,
    TableNotFoundError,
    with_fix,
)
from ..storage.partition import LEARNING, SERVING, Partition
from .open_clusters import OpenCluster, open_cluster_at


def same_source(a: SourceId, b: SourceId) -> bool:
    """The same duplication of the same source table (a uid decides when both sides have one)."""
    if a.cluster_uid and b.cluster_uid and a.cluster_uid != b.cluster_uid:
        return False
    return (a.cluster, a.table, a.dupid) == (b.cluster, b.table, b.dupid)


class LocalConnector:
    """Finds the follower of an embedded remote: the cluster open at that path in this process."""

    def connect(self, remote: str, token: str | None = None, source: SourceId | None = None) -> Follower:
        c = open_cluster_at(remote)
        if c is None or c.closed:
            raise RemoteUnavailableError(remote, f"waiting for remote cluster at {remote} to open")
        return LocalFollower(c)


_F = TypeVar("_F", bound=Callable[..., Any])


def _closed_is_unavailable(fn: _F) -> _F:
    """The follower closing under a call makes it unavailable until it opens again (TRANSIENT),
    never a ClosedError that would stop the duplication for good."""

    @functools.wraps(fn)
    def call(self: LocalFollower, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except ClosedError:
            raise RemoteUnavailableError(self.cluster.path, "the cluster closed") from None

    return call  # type: ignore[return-value]


class LocalFollower:
    """A follower cluster open in this process."""

    def __init__(self, cluster: OpenCluster) -> None:
        self.cluster = cluster

    @_closed_is_unavailable
    def identity(self) -> tuple[int, str]:
        return self.cluster.cluster_id, self.cluster.info().uid

    def max_batch_bytes(self) -> int:
        return 1 << 62  # nothing crosses a wire

    def _followed(self, table: str) -> None:
        """Only a duplication's follower table takes a duplication's calls: an ordinary table is
        never written, re-learned or wiped through the follower port (EnsureTable adopts one)."""
        try:
            rec = self.cluster.followers.record(table)
        except ClosedError:
            raise RemoteUnavailableError(self.cluster.path, "the cluster closed") from None
        if rec is None:
            raise FollowerTableNotFoundError(self.cluster.path, table)
        if rec.follower_of is None:
            raise DuplicationError(
                f"table {table!r} of cluster {self.cluster.name!r} is not a duplication's follower"
            )

    def check_source(self, table: str, source: SourceId) -> None:
        """A served follower's calls come from a duplication that names itself: ``table`` must
        follow that very one (its source cluster, with its uid when the table has one, table and
        dupid), or the call is refused (DuplicationError) — a holder of the replication token
        cannot touch a table another source feeds by naming a source it made up."""
        self._followed(table)
        rec = self.cluster.followers.record(table)
        assert rec is not None and rec.follower_of is not None
        mine = rec.follower_of.source
        if mine.cluster_uid and source.cluster_uid != mine.cluster_uid or not same_source(mine, source):
            raise DuplicationError(
                f"table {table!r} of cluster {self.cluster.name!r} follows another duplication "
                f"than {source.cluster}.{source.table} (dup {source.dupid})"
            )

    def _partition(self, table: str, pidx: int) -> Partition:
        self._followed(table)
        try:
            t = self.cluster.table(table)
        except ClosedError:
            raise RemoteUnavailableError(self.cluster.path, "the cluster closed") from None
        except TableNotFoundError:
            raise FollowerTableNotFoundError(self.cluster.path, table) from None
        if isinstance(pidx, bool) or not isinstance(pidx, int) or not 0 <= pidx < t.partition_count:
            raise InvalidArgumentError(f"table {table!r} has no partition {pidx!r}")
        return t.partitions[pidx]

    @_closed_is_unavailable
    def ensure_table(self, table: str, partition_count: int, source: SourceId, with_checkpoint: bool) -> None:
        c = self.cluster
        rec = c.followers.record(table)
        if rec is None:
            try:
                c.followers.create(table, partition_count, source)
                return
            except TableExistsError:
                # made meanwhile by another call (the nodes of a multi-node source each
                # ensure the table): judge the one that exists like any other
                rec = c.followers.record(table)
                if rec is None:
                    raise
        mine = rec.follower_of
        other_name = "add_dup --remote-table NAME (remote_table= in the API): a table of another name"
        if mine is not None and same_source(mine.source, source):
            if (mine.source_partitions or rec.partition_count) != partition_count:
                raise with_fix(
                    DuplicationError(f"follower table {table!r} has another partition count"), other_name
                )
            return
        same_table = mine is not None and (mine.source.cluster_uid, mine.source.table) == (
            source.cluster_uid,
            source.table,
        )
        # (an adopted table keeps its own data: one whose start was never set, a duplication
        # refused or removed before, may be taken over again)
        if mine is not None and not mine.adopted and not all(mine.learned):
            if (
                same_table
                and with_checkpoint
                and not mine.adopted
                and not mine.rerouted
                and rec.partition_count == partition_count
                and source.cluster_uid
            ):
                # half-made by an earlier duplication of this same source table that failed and
                # was removed (a failed add_dup leaves nothing in the way): learned afresh
                c.followers.retarget(table, source)
                return
            raise with_fix(
                DuplicationError(
                    f"table {table!r} of cluster {c.name!r} is still learning a checkpoint of "
                    f"{mine.source.cluster}.{mine.source.table}"
                ),
                other_name,
            )
        taking_over = same_table
        if mine is not None and not taking_over:
            raise with_fix(
                DuplicationError(
                    f"table {table!r} of cluster {c.name!r} already follows "
                    f"{mine.source.cluster}.{mine.source.table}"
                ),
                other_name,
            )
        if with_checkpoint:
            # a checkpoint would replace what the table holds
            raise with_fix(
                DuplicationError(
                    f"cluster {c.name!r} already has a table {table!r} that is not this duplication's follower"
                ),
                f"{other_name}, or add_dup --no-checkpoint (with_checkpoint=False) to ship into "
                "that table as it is, from now on",
            )
        # Pegasus's original workflow: ship from now on into the table as it is (with another
        # partition count, each op goes where its key hashes, as through Pegasus's client)
        c.followers.adopt(table, source, partition_count, continues=taking_over)

    def _rerouted(self, table: str) -> list[Partition] | None:
        """The table's partitions when it is fed by a source of another partition count."""
        self._followed(table)
        rec = self.cluster.followers.record(table)
        if rec is None or rec.follower_of is None or not rec.follower_of.rerouted:
            return None
        try:
            return self.cluster.table(table).partitions
        except ClosedError:
            raise RemoteUnavailableError(self.cluster.path, "the cluster closed") from None

    def _source_pidx(self, table: str, pidx: int) -> int:
        rec = self.cluster.followers.record(table)
        assert rec is not None and rec.follower_of is not None
        if (
            isinstance(pidx, bool)
            or not isinstance(pidx, int)
            or not 0 <= pidx < rec.follower_of.source_partitions
        ):
            raise InvalidArgumentError(f"the source of {table!r} has no partition {pidx!r}")
        return pidx

    def partition_statuses(self, table: str, count: int) -> list[tuple[bool, int]]:
        return [self.partition_status(table, i) for i in range(count)]

    @_closed_is_unavailable
    def partition_status(self, table: str, pidx: int) -> tuple[bool, int]:
        parts = self._rerouted(table)
        if parts is not None:
            pidx = self._source_pidx(table, pidx)
            fo = self.cluster.followers.record(table).follower_of  # type: ignore[union-attr]
            learned = fo.learned[pidx]  # type: ignore[union-attr]
            if not learned and not fo.continues:  # type: ignore[union-attr]
                return False, 0
            home = parts[pidx % len(parts)]
            return learned, home.rerouted_progress().get(pidx, 0)  # not learned: held from before
        p = self._partition(table, pidx)
        rec = self.cluster.followers.record(table)
        learned = p.state != LEARNING
        if rec is not None and rec.follower_of is not None:
            learned = learned and rec.follower_of.learned[pidx]
        if p.state == LEARNING:
            return False, 0  # it holds nothing yet, or a prefix it will not serve
        if not learned:
            if rec is None or rec.follower_of is None or not rec.follower_of.continues:
                return False, 0  # its source decrees, if any, are not this source's
            # adopted from a follower of this source table, its start not set yet: what it
            # holds of it (a duplication without checkpoint is refused if it would skip some)
            p.open_now()
        return learned, max(p.source_decree, p.source_seen)

    @_closed_is_unavailable
    def learn_empty(self, table: str, decrees: dict[int, int]) -> None:
        parts = self._rerouted(table)
        if parts is not None:
            for pidx, decree in decrees.items():
                parts[self._source_pidx(table, pidx) % len(parts)].record_rerouted(pidx, decree)
            return
        for pidx, decree in decrees.items():
            p = self._partition(table, pidx)
            if p.state == SERVING:
                p.reset_source(decree)  # an adopted table: its data stays, shipping starts after decree
            else:
                learn.learn_empty(p, decree)

    @_closed_is_unavailable
    def learn_snapshot(self, table: str, pidx: int, decree: int, block: bytes) -> None:
        # durable in the WAL; RocksDB replays it when it opens (FollowerTables.mark_learned)
        learn.learn_snapshot(self._partition(table, pidx), decree, block)

    @_closed_is_unavailable
    def checkpoint_offsets(
        self, table: str, pidx: int, decree: int, manifest: list[ManifestEntry]
    ) -> dict[str, int]:
        return learn.checkpoint_offsets(self._partition(table, pidx), decree, manifest)

    @_closed_is_unavailable
    def learn_checkpoint(
        self, table: str, pidx: int, decree: int, manifest: list[ManifestEntry], chunks: Iterable[Chunk]
    ) -> None:
        learn.learn_checkpoint(self._partition(table, pidx), decree, manifest, chunks)

    @_closed_is_unavailable
    def mark_learned(self, table: str, pidxs: list[int]) -> None:
        rerouted = self._rerouted(table) is not None
        for pidx in pidxs:
            self._source_pidx(table, pidx) if rerouted else self._partition(table, pidx)  # each one exists
        self.cluster.followers.mark_learned(table, pidxs)
        if not rerouted:
            for pidx in pidxs:
                learn.discard_learned_files(self._partition(table, pidx))

    @_closed_is_unavailable
    def restart_learning(self, table: str, pidxs: list[int]) -> None:
        if self._rerouted(table) is not None:
            raise DuplicationError(f"table {table!r} is re-routed from its source: it cannot learn again")
        for pidx in pidxs:
            self._partition(table, pidx)  # each one exists
        self.cluster.followers.restart_learning(table, pidxs)

    def apply(self, table: str, pidx: int, blocks: bytes, skipped_through: int = 0) -> int:
        return self.begin_apply(table, pidx, blocks, skipped_through)()

    @_closed_is_unavailable
    def begin_apply(
        self, table: str, pidx: int, blocks: bytes, skipped_through: int = 0
    ) -> Callable[[], int]:
        """:meth:`apply` up to durability (apply.begin_shipped): the batch is applied when this
        returns; the call it returns waits until it is durable and returns the durable decree."""
        parts = self._rerouted(table)
        if parts is not None:
            held = apply.apply_rerouted(parts, self._source_pidx(table, pidx), blocks, skipped_through)
            return lambda: held
        p = self._partition(table, pidx)
        if p.state != SERVING:
            raise PartitionUnavailableError(table, pidx, p.state.value)
        durable = apply.begin_shipped(p, blocks, skipped_through)

        def wait() -> int:
            try:
                return durable()
            except ClosedError:
                raise RemoteUnavailableError(self.cluster.path, "the cluster closed") from None

        return wait

    @_closed_is_unavailable
    def verify_view(self, table: str, pidx: int, decree: int, timeout: float | None) -> tuple[str, int, int]:
        if self._rerouted(table) is not None:
            raise DuplicationError(f"table {table!r} is re-routed from its source: partitions do not compare")
        return verify_views.view_at(self._partition(table, pidx), table, decree, timeout)

    @_closed_is_unavailable
    def verify_digest(
        self, view: str, now: int, start: bytes, end: bytes | None
    ) -> list[tuple[bytes, int, bytes]]:
        return verify_views.digest(view, now, start, end)

    @_closed_is_unavailable
    def verify_records(
        self, view: str, now: int, start: bytes, end: bytes | None, limit: int
    ) -> list[tuple[bytes, int, bytes]]:
        return verify_views.records(view, now, start, end, limit)

    def verify_release(self, view: str) -> None:
        verify_views.release(view)

    def cancel(self) -> None:
        """Nothing to give up: a call into a cluster of this process does not wait on a network."""

    @_closed_is_unavailable
    def take_over(
        self,
        table: str,
        source: SourceId,
        decrees: dict[int, int],
        back_remote: str,
        back_token: str | None = None,
    ) -> tuple[int, dict[int, int]]:
        return self.cluster.take_over(table, source, decrees, back_remote, back_token)

    @_closed_is_unavailable
    def advance(self, table: str, pidx: int, source_decree: int) -> None:
        parts = self._rerouted(table)
        if parts is not None:
            home = parts[self._source_pidx(table, pidx) % len(parts)]
            apply.check_step(home.rerouted_progress().get(pidx, 0), 0, source_decree)
            home.record_rerouted(pidx, source_decree)
            return
        apply.advance_to(self._partition(table, pidx), source_decree)


__all__ = ["LocalConnector", "LocalFollower", "open_cluster_at"]
