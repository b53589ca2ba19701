"""The follower side of a duplication, behind an interface a network client can implement.

``Follower`` is what a source drives; ``LocalFollower`` implements it for an
embedded cluster open in this process. A served cluster would implement the
same methods over the wire (DESIGN.md §8).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .. import _backend
from ..errors import (
    ChecksumMismatchError,
    DuplicationError,
    PartitionUnavailableError,
)
from ..fileio import fsync_tree
from ..records import VALUE_HEADER, live_value, now_pegasus_seconds
from ..storage.partition import LEARNING, SERVING, Partition

if TYPE_CHECKING:
    from ..node.cluster import Cluster

PUT, DELETE, MULTI_PUT, MULTI_DELETE, EMPTY, RAW_PUT, SOURCE_DECREE = range(7)


class DuplicationGapError(DuplicationError):
    """The follower was sent a source decree past the next one it needs."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"follower needs source decree {expected}, was sent {got}")
        self.expected = expected
        self.got = got


class Follower(Protocol):
    def ensure_table(self, table: str, partition_count: int, source: dict[str, Any]) -> None: ...
    def partition_status(self, table: str, pidx: int) -> tuple[bool, int]: ...
    def learn_empty(self, table: str, decrees: dict[int, int]) -> None: ...
    def learn_snapshot(self, table: str, pidx: int, decree: int, block: bytes) -> None: ...
    def learn_checkpoint(
        self,
        table: str,
        pidx: int,
        decree: int,
        src_dir: str,
        manifest: list[tuple[str, int, str]],
        on_progress: Callable[[int, int], None],
    ) -> None: ...
    def mark_learned(self, table: str, pidxs: list[int]) -> None: ...
    def apply(self, table: str, pidx: int, mutations: list[tuple[int, int, int, list]]) -> int: ...
    def advance(self, table: str, pidx: int, source_decree: int) -> None: ...


def _lww_ops(partition: Partition, ops: list[tuple], timetag: int, pending: dict[bytes, int]) -> list[tuple]:
    """The ops of a duplicated mutation that win last-writer-wins against what is stored.

    An expired record counts as absent, as in Pegasus (rocksdb_wrapper: compare
    timetags only when the record is found and not expired): whether
    compaction has dropped it yet must not change the outcome.
    """
    now = now_pegasus_seconds()

    def wins(key: bytes) -> bool:
        if key in pending:
            return timetag >= pending[key]
        raw = partition.db.get(key)
        return raw is None or timetag >= VALUE_HEADER.unpack_from(raw)[1] or live_value(raw, now) is None

    kept: list[tuple] = []
    for op in ops:
        kind = op[0]
        if kind in (PUT, DELETE):
            key = len(op[1]).to_bytes(2, "big") + op[1] + op[2]
            if wins(key):
                pending[key] = timetag
                kept.append(op)
        elif kind == MULTI_PUT:
            prefix = len(op[1]).to_bytes(2, "big") + op[1]
            pairs = [(sk, v) for sk, v in op[2] if wins(prefix + sk)]
            for sk, _ in pairs:
                pending[prefix + sk] = timetag
            if pairs:
                kept.append((MULTI_PUT, op[1], pairs, op[3]))
        elif kind == MULTI_DELETE:
            prefix = len(op[1]).to_bytes(2, "big") + op[1]
            sks = [sk for sk in op[2] if wins(prefix + sk)]
            for sk in sks:
                pending[prefix + sk] = timetag
            if sks:
                kept.append((MULTI_DELETE, op[1], sks))
        elif kind == RAW_PUT:
            own = VALUE_HEADER.unpack_from(op[2])[1]
            if op[1] in pending and own < pending[op[1]]:
                continue
            raw = None if op[1] in pending else partition.db.get(op[1])
            if raw is None or own >= VALUE_HEADER.unpack_from(raw)[1] or live_value(raw, now) is None:
                pending[op[1]] = own
                kept.append(op)
        # EMPTY changes nothing; a SOURCE_DECREE of the source's own source is not ours
    return kept


def _all_win(partition: Partition, mutations: list[tuple[int, int, int, list]]) -> bool:
    """Whether every op of ``mutations`` wins last-writer-wins outright: nothing stored
    under their keys is newer than the oldest of them. The usual case (a follower
    nobody else writes to), checked with one multi-get instead of a get per op."""
    oldest = min((ts << 8) | (cid << 1) for _, ts, cid, ops in mutations)
    for _, _, _, ops in mutations:
        for op in ops:
            if op[0] == RAW_PUT:  # carries its own timetag
                return False
    keys = [k for k, _ in _backend.impl.mutation_writes(mutations) if len(k) >= 2]
    if not keys:
        return True
    limit = oldest.to_bytes(8, "big")
    now = now_pegasus_seconds()
    return all(
        raw is None or raw[4:12] <= limit or live_value(raw, now) is None for raw in partition.db.get(keys)
    )


class LocalFollower:
    """A follower cluster open in this process."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def _partition(self, table: str, pidx: int) -> Partition:
        return self.cluster.table(table).partitions[pidx]

    def ensure_table(self, table: str, partition_count: int, source: dict[str, Any]) -> None:
        c = self.cluster
        if c.has_table(table):
            mine = c.table_meta(table).get("follower_of")
            same = mine is not None and all(mine.get(k) == v for k, v in source.items())
            if not same:
                raise DuplicationError(
                    f"cluster {c.name!r} already has a table {table!r} that is not this duplication's follower"
                )
            if c.table(table).partition_count != partition_count:
                raise DuplicationError(f"follower table {table!r} has another partition count")
            return
        c.create_table(table, partition_count, follower_of=source)

    def partition_status(self, table: str, pidx: int) -> tuple[bool, int]:
        p = self._partition(table, pidx)
        if p.state == LEARNING:
            return False, 0
        return True, p.source_decree

    def _fresh(self, p: Partition) -> None:
        if p.state != LEARNING:
            raise DuplicationError(f"partition {p.table}.{p.pidx} is not learning")

    def _start_over(self, p: Partition, decree: int) -> bool:
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
        shutil.rmtree(empty, ignore_errors=True)
        os.makedirs(empty)
        p.install_rdb(empty)
        return False

    def learn_empty(self, table: str, decrees: dict[int, int]) -> None:
        """Partitions with nothing to learn; shipping starts after the given source decree."""
        for pidx, decree in decrees.items():
            p = self._partition(table, pidx)
            self._fresh(p)
            if self._start_over(p, decree):
                continue
            if decree:
                p.write_mutations(
                    lambda next_decree, d=decree: [(next_decree, 0, 0, [(SOURCE_DECREE, d)])],
                    defer_apply=True,
                )

    def learn_snapshot(self, table: str, pidx: int, decree: int, block: bytes) -> None:
        p = self._partition(table, pidx)
        self._fresh(p)
        if self._start_over(p, decree):
            return
        ((_, ts, cid, ops),) = _backend.impl.decode_block(block)
        if any(op[0] != RAW_PUT for op in ops):
            raise DuplicationError("a logical snapshot holds RAW_PUT ops only")
        # a fresh partition takes the snapshot into its WAL only; RocksDB replays it when first opened
        p.write_mutations(
            lambda next_decree: [(next_decree, ts, cid, ops + [(SOURCE_DECREE, decree)])], defer_apply=True
        )

    def learn_checkpoint(
        self,
        table: str,
        pidx: int,
        decree: int,
        src_dir: str,
        manifest: list[tuple[str, int, str]],
        on_progress: Callable[[int, int], None],
    ) -> None:
        impl = _backend.impl
        p = self._partition(table, pidx)
        self._fresh(p)
        if p.last_committed and p.source_decree == decree:
            return  # a retry: this checkpoint is installed already
        target = os.path.join(p.path, "learn")
        marker = os.path.join(target, ".pegasus_fast_learn")
        expected_marker = f"{src_dir}\n{decree}\n"
        if os.path.isdir(target):
            try:
                with open(marker, encoding="utf-8") as f:
                    same_source = f.read() == expected_marker
            except FileNotFoundError:
                same_source = False
            if not same_source:  # files of another checkpoint: start over
                shutil.rmtree(target)
        os.makedirs(target, exist_ok=True)
        with open(marker, "w", encoding="utf-8") as f:
            f.write(expected_marker)
        total = sum(e[1] for e in manifest)
        done = 0
        wanted = {e[0]: e for e in manifest}
        to_copy = []
        for name, size, digest in manifest:
            path = os.path.join(target, name)
            # an interrupted copy resumes: files already here and verified stay
            if os.path.exists(path) and impl.hash_file(path) == (size, digest):
                done += size
            else:
                to_copy.append(name)
        on_progress(done, total)
        for name in to_copy:
            # not synced file by file: the kernel writes back while later files copy,
            # and one fsync pass below makes them all durable before they are opened
            (entry,) = impl.copy_and_hash(src_dir, target, [name], False, False)
            if entry != wanted[name]:
                os.unlink(os.path.join(target, name))
                raise ChecksumMismatchError(os.path.join(target, name), wanted[name][2], entry[2])
            done += entry[1]
            on_progress(done, total)
        os.unlink(marker)
        extra = set(os.listdir(target)) - set(wanted)
        for name in extra:
            os.unlink(os.path.join(target, name))
        impl.verify_manifest(target, manifest)  # never open what failed verification
        fsync_tree(target)
        p.install_rdb(target)
        p.write_mutations(lambda next_decree: [(next_decree, 0, 0, [(SOURCE_DECREE, decree)])])

    def mark_learned(self, table: str, pidxs: list[int]) -> None:
        self.cluster.mark_learned(table, pidxs)

    def apply(self, table: str, pidx: int, mutations: list[tuple[int, int, int, list]]) -> int:
        p = self._partition(table, pidx)
        if p.state != SERVING:
            raise PartitionUnavailableError(table, pidx, p.state)

        def build(next_decree: int) -> list[tuple[int, int, int, list]]:
            applied = p.source_decree
            todo = [m for m in mutations if m[0] > applied]  # already applied: skipped (idempotent)
            for i, m in enumerate(todo):
                if m[0] != applied + 1 + i:
                    raise DuplicationGapError(applied + 1 + i, m[0])
            if not todo:
                return []
            if _all_win(p, todo):
                return [
                    (next_decree + i, ts, cid, ops + [(SOURCE_DECREE, decree)])
                    for i, (decree, ts, cid, ops) in enumerate(todo)
                ]
            out = []
            pending: dict[bytes, int] = {}
            for decree, ts, cid, ops in todo:
                kept = _lww_ops(p, ops, (ts << 8) | (cid << 1), pending)
                out.append((next_decree, ts, cid, kept + [(SOURCE_DECREE, decree)]))
                next_decree += 1
            return out

        p.write_mutations(build)
        return p.source_decree

    def advance(self, table: str, pidx: int, source_decree: int) -> None:
        """fail_mode=skip: accept that source decrees up to ``source_decree`` are lost."""
        p = self._partition(table, pidx)

        def build(next_decree: int) -> list[tuple[int, int, int, list]]:
            if source_decree <= p.source_decree:
                return []
            return [(next_decree, 0, 0, [(SOURCE_DECREE, source_decree)])]

        p.write_mutations(build)


__all__ = ["DuplicationGapError", "Follower", "LocalFollower"]
