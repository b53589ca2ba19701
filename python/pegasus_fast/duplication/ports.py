"""The interfaces (ports) duplication depends on; the node layer supplies their implementations.

Duplication never reaches up to a cluster or down to a network module: it is
given a :class:`Follower` (an embedded cluster in this process, or a served one
over the wire), a place to persist its records, a way to run work in the
scheduler's lanes and the source tables' partitions.

The follower interface is shaped for the wire (DESIGN.md §8): only ids, bytes
and iterators of chunks cross it, never a filesystem path or a callback.
Shipped batches are WAL blocks as stored (docs/wal-format.md): the WAL codec
is the wire format, checksummed end to end, and the follower decodes them in
the backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from ..storage.partition import Partition

#: (file name, size, blake3 hex digest) of one checkpoint file
ManifestEntry = tuple[str, int, str]


@dataclass(frozen=True)
class SourceId:
    """Who a follower table follows: checked before a follower takes anything from a source."""

    cluster: str
    #: a random id made when the source cluster was created (names can repeat)
    cluster_uid: str
    table: str
    dupid: int

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "cluster_uid": self.cluster_uid,
            "table": self.table,
            "dupid": self.dupid,
        }


@dataclass(frozen=True)
class Chunk:
    """A piece of one checkpoint file; ``crc32c`` covers ``data`` (checked on arrival)."""

    name: str
    offset: int
    data: bytes
    crc32c: int


class Follower(Protocol):
    """The follower cluster of a duplication, as the source drives it."""

    def identity(self) -> tuple[int, str]:
        """(cluster id, cluster uid) of the follower cluster."""

    def max_batch_bytes(self) -> int:
        """The most WAL bytes one ``apply`` may carry (a served follower's message limit)."""

    def ensure_table(self, table: str, partition_count: int, source: SourceId, with_checkpoint: bool) -> None:
        """Create the follower table (every partition learning), or find the one this source made.
        Without a checkpoint, a table of the same partition count that no other source owns is
        adopted as it is (Pegasus's original workflow, and how two masters duplicate both ways)."""

    def partition_statuses(self, table: str, count: int) -> list[tuple[bool, int]]:
        """For partitions 0..count-1: (learned, the last source decree it has applied); one call.
        A partition still learning says 0; one of an adopted table not learned yet says what it
        holds of this source table from before (a duplication without checkpoint compares it
        with where it would start)."""

    def learn_empty(self, table: str, decrees: dict[int, int]) -> None:
        """Partitions with nothing to learn; shipping starts after the given source decrees."""

    def learn_snapshot(self, table: str, pidx: int, decree: int, block: bytes) -> None:
        """A small partition's logical snapshot: one WAL block of RAW_PUT ops, at source ``decree``."""

    def checkpoint_offsets(
        self, table: str, pidx: int, decree: int, manifest: list[ManifestEntry]
    ) -> dict[str, int]:
        """Bytes of each file of this checkpoint already held, so a copy resumes after them."""

    def learn_checkpoint(
        self, table: str, pidx: int, decree: int, manifest: list[ManifestEntry], chunks: Iterable[Chunk]
    ) -> None:
        """Take the files as chunks, verify every hash, then swap them in (DESIGN.md §5, APP)."""

    def mark_learned(self, table: str, pidxs: list[int]) -> None:
        """Persist that these partitions hold their checkpoints, then let them serve."""

    def restart_learning(self, table: str, pidxs: list[int]) -> None:
        """Learned partitions go back to learning: persist that they are not learned first,
        then refuse their reads and writes (PartitionUnavailableError) until a later
        ``mark_learned``. The source calls it when it freed WAL the follower had not confirmed
        (the retention cap): what they hold is a prefix with a gap after it. Idempotent
        (partitions already learning stay as they are, keeping a checkpoint copy in progress);
        the next learn_* replaces their data. A table fed by another partition count
        (re-routed, no checkpoint) is a DuplicationError."""

    def apply(self, table: str, pidx: int, blocks: bytes, skipped_through: int = 0) -> int:
        """Apply shipped WAL blocks idempotently under last-writer-wins (source decrees up to
        ``skipped_through`` were the follower's own writes, not sent back); returns the source
        decree it now holds durably."""

    def advance(self, table: str, pidx: int, source_decree: int) -> None:
        """fail_mode=skip: accept that source decrees up to ``source_decree`` are lost."""

    def verify_view(self, table: str, pidx: int, decree: int, timeout: float | None) -> tuple[str, int, int]:
        """Hold a view of follower partition ``pidx`` once it holds exactly source decree
        ``decree`` (-1: as it is now): (view id, its own last decree, source decree held).
        VerifyTimeoutError when it does not reach it in ``timeout``; VerifyPositionError when
        it is past it (docs/verify.md)."""

    def verify_digest(
        self, view: str, now: int, start: bytes, end: bytes | None
    ) -> list[tuple[bytes, int, bytes]]:
        """The digest chunks of the view's live records (at Pegasus time ``now``) in [start, end)."""

    def verify_records(
        self, view: str, now: int, start: bytes, end: bytes | None, limit: int
    ) -> list[tuple[bytes, int, bytes]]:
        """Up to ``limit`` live records (RocksDB key, expire_ts, value) of the view in [start, end)."""

    def verify_release(self, view: str) -> None:
        """Let the view go (idempotent)."""

    def cancel(self) -> None:
        """The duplication is stopping: give up the calls in flight (a checkpoint copy over a slow
        link can take minutes); they and any later call raise RemoteUnavailableError."""

    def take_over(
        self,
        table: str,
        source: SourceId,
        decrees: dict[int, int],
        back_remote: str,
        back_token: str | None = None,
    ) -> tuple[int, dict[int, int]]:
        """A switchover's last step on the follower (docs/switchover.md): check that every
        partition holds source decree ``decrees[pidx]`` (else SwitchoverError, nothing changed),
        add the reverse duplication, no checkpoint, of the table to ``back_remote`` (its start
        taken while client writes are still refused), then take client writes. Returns the
        reverse duplication's dupid and the source decree each partition holds. Idempotent: a
        table this source already handed over answers the same."""


class PipelinedFollower(Follower, Protocol):
    """A follower across a network: ships a backlog over one stream, batches in flight."""

    def apply_stream(self, table: str, pidx: int, batches: Iterable[tuple[bytes, int]]) -> Iterator[int]:
        """``apply`` of each (blocks, skipped_through) in order; yields each one's durable source
        decree as it is acknowledged. Closing the iterator ends the stream."""


class Connector(Protocol):
    """Finds the follower of a remote; raises RemoteUnavailableError while it cannot be reached."""

    def connect(self, remote: str, token: str | None = None, source: SourceId | None = None) -> Follower:
        """``token``: what a served remote is shown (None: the process's PEGASUS_FAST_TOKEN).
        ``source``: the duplication calling; a served follower takes a table's calls only from
        the duplication it follows."""


class Tasks(Protocol):
    """The scheduler, as duplication uses it."""

    def high(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn`` in the high-priority lane (checkpoints and learning, DESIGN.md §6)."""

    def later(self, delay: float, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn`` in the normal lane after ``delay`` seconds."""


class SourceTables(Protocol):
    """The source cluster's tables, as duplication reads them."""

    def partitions(self, table: str) -> list[Partition]:
        """A table's partitions; TableNotFoundError when it is gone."""

    def has(self, table: str) -> bool: ...


__all__ = [
    "Chunk",
    "Connector",
    "Follower",
    "ManifestEntry",
    "PipelinedFollower",
    "SourceId",
    "SourceTables",
    "Tasks",
]
