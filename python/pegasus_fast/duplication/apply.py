"""How a follower partition applies shipped mutations: idempotently, under last-writer-wins.

Used by every Follower implementation (embedded here, served over the wire),
so the rules live in one place (DESIGN.md §5, "LOG").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import _backend
from ..errors import DuplicationGapError, InvalidArgumentError
from ..records import (
    Op,
    decode_key,
    encode_key,
    hash_key_prefix,
    is_expired,
    is_meta_key,
    is_record,
    now_pegasus_seconds,
    timetag,
    timetag_of,
)
from ..storage.partition import Partition

Mutation = tuple[int, int, int, list]

_PUT, _DELETE, _MULTI_PUT, _MULTI_DELETE = (
    int(Op.PUT),
    int(Op.DELETE),
    int(Op.MULTI_PUT),
    int(Op.MULTI_DELETE),
)
_RAW_PUT, _SOURCE_DECREE = int(Op.RAW_PUT), int(Op.SOURCE_DECREE)


def _lww_ops(partition: Partition, ops: list[tuple], tag: int, pending: dict[bytes, int]) -> list[tuple]:
    """The ops of a duplicated mutation that win last-writer-wins against what is stored.

    An expired record counts as absent, as in Pegasus (rocksdb_wrapper compares
    timetags only for a record found and not expired): whether compaction has
    dropped it yet must not change the outcome.
    """
    now = now_pegasus_seconds()

    def wins(key: bytes) -> bool:
        if key in pending:
            return tag >= pending[key]
        raw = partition.db.get(key)
        return raw is None or tag >= timetag_of(raw) or is_expired(raw, now)

    kept: list[tuple] = []
    for op in ops:
        kind = op[0]
        if kind == _PUT or kind == _DELETE:
            key = encode_key(op[1], op[2])
            if wins(key):
                pending[key] = tag
                kept.append(op)
        elif kind == _MULTI_PUT:
            prefix = hash_key_prefix(op[1])
            pairs = [(sk, v) for sk, v in op[2] if wins(prefix + sk)]
            for sk, _ in pairs:
                pending[prefix + sk] = tag
            if pairs:
                kept.append((_MULTI_PUT, op[1], pairs, op[3]))
        elif kind == _MULTI_DELETE:
            prefix = hash_key_prefix(op[1])
            sks = [sk for sk in op[2] if wins(prefix + sk)]
            for sk in sks:
                pending[prefix + sk] = tag
            if sks:
                kept.append((_MULTI_DELETE, op[1], sks))
        elif kind == _RAW_PUT:
            own = timetag_of(op[2])
            if op[1] in pending and own < pending[op[1]]:
                continue
            raw = None if op[1] in pending else partition.db.get(op[1])
            if raw is None or own >= timetag_of(raw) or is_expired(raw, now):
                pending[op[1]] = own
                kept.append(op)
        # EMPTY changes nothing; a SOURCE_DECREE of the source's own source is not ours
    return kept


def _all_win(partition: Partition, mutations: list[Mutation]) -> bool:
    """Whether every op of ``mutations`` wins last-writer-wins outright: nothing stored
    under their keys is newer than the oldest of them. The usual case (a follower
    nobody else writes to), checked with one multi-get instead of a get per op."""
    oldest = min(timetag(ts, cid) for _, ts, cid, ops in mutations)
    for _, _, _, ops in mutations:
        for op in ops:
            if op[0] == _RAW_PUT:  # carries its own timetag
                return False
    keys = [k for k, _ in _backend.impl.mutation_writes(mutations) if len(k) >= 2]
    if not keys:
        return True
    limit = oldest.to_bytes(8, "big")
    now = now_pegasus_seconds()
    return all(raw is None or raw[4:12] <= limit or is_expired(raw, now) for raw in partition.db.get(keys))


_DATA_OPS = frozenset({_PUT, _DELETE, _MULTI_PUT, _MULTI_DELETE, _RAW_PUT})


def _is_data(op: tuple[Any, ...]) -> bool:
    """A record op (a RAW_PUT of a bookkeeping key never is: it must not move between clusters)."""
    return op[0] in _DATA_OPS and not (op[0] == _RAW_PUT and is_meta_key(op[1]))


def _shipped(mutations: list[Mutation], seen: int, own_cluster_id: int) -> list[Mutation]:
    """The mutations past ``seen`` that this follower must apply: contiguous (else a gap),
    not its own writes coming back, holding record ops only."""
    todo = [m for m in mutations if m[0] > seen]
    for i, m in enumerate(todo):
        if m[0] != seen + 1 + i:
            raise DuplicationGapError(seen + 1 + i, m[0])
    out = []
    for decree, ts, cid, ops in todo:
        if cid == own_cluster_id:
            continue
        data = [op for op in ops if _is_data(op)]
        for op in data:
            if op[0] == _RAW_PUT and not is_record(op[1], op[2]):
                # checksummed, yet no writer makes it: refuse it rather than store what reads trip on
                raise InvalidArgumentError(f"source decree {decree} holds a malformed RAW_PUT record")
        if data:
            out.append((decree, ts, cid, data))
    return out


#: how far past what a follower holds (and what it is sent) a source may say it stepped over or
#: lost in one call: more decrees than a source writes in years, far below what would look complete
MAX_DECREE_STEP = 1 << 32


def check_step(held: int, shipped: int, claimed: int) -> None:
    """Refuse a skipped or advanced source decree that no source could have: past what the follower
    holds and the last decree it is sent by more than :data:`MAX_DECREE_STEP` (or negative)."""
    if claimed < 0 or claimed > max(held, shipped) + MAX_DECREE_STEP:
        raise InvalidArgumentError(
            f"source decree {claimed} is out of reach: the follower holds {held}, was sent up to {shipped}"
        )


def apply_shipped(partition: Partition, blocks: bytes, skipped_through: int = 0) -> int:
    """Apply shipped WAL blocks to a follower partition; returns the source decree it now
    holds durably (applied, or seen and needing nothing). See :func:`begin_shipped`."""
    return begin_shipped(partition, blocks, skipped_through)()


def begin_shipped(partition: Partition, blocks: bytes, skipped_through: int = 0) -> Callable[[], int]:
    """Apply shipped WAL blocks to a follower partition up to durability: once it returns,
    the mutations are logged and readable; the call it returns waits until they are durable
    and returns the source decree then held durably (applied, or seen and needing nothing).
    A stream applies the next batch while the one before is made durable; its acknowledgements
    go in order, each after its own wait.

    - A source decree already seen is skipped (a batch shipped twice is harmless); one past
      the next needed is a DuplicationGapError.
    - ``skipped_through``: the source stepped over decrees up to it (this cluster's own
      writes, which it never ships back): they count as seen.
    - A mutation this cluster first wrote (its cluster id) is its own write coming back
      through a master-master peer; one without data ops is the peer's bookkeeping. Neither
      is applied: it is noted as seen, outside the log, so nothing moves back again.
    - Any other mutation becomes one follower mutation that keeps the source's timestamp
      and cluster id (its timetag), holds the ops that win last-writer-wins, and records
      the source decree with the data.
    """
    mutations = _backend.impl.decode_blocks(blocks) if blocks else []
    p = partition
    own = p.cluster_id
    check_step(max(p.source_decree, p.source_seen), max([0] + [m[0] for m in mutations]), skipped_through)

    def build(next_decree: int) -> list[Mutation]:
        todo = _shipped(mutations, max(p.source_decree, p.source_seen, skipped_through), own)
        if not todo:
            return []
        if _all_win(p, todo):
            return [
                (next_decree + i, ts, cid, ops + [(_SOURCE_DECREE, decree)])
                for i, (decree, ts, cid, ops) in enumerate(todo)
            ]
        out = []
        pending: dict[bytes, int] = {}
        for decree, ts, cid, ops in todo:
            kept = _lww_ops(p, ops, timetag(ts, cid), pending)
            out.append((next_decree, ts, cid, kept + [(_SOURCE_DECREE, decree)]))
            next_decree += 1
        return out

    last, offset = p.write_mutations_unsynced(build)
    p.note_applied(mutations[-1][1] if mutations else 0)  # timestamps rise with decrees
    through = max([skipped_through] + [m[0] for m in mutations])
    if through > p.source_seen:
        # noted outside the WAL: only once what the WAL holds up to here is durable (and so
        # before the next batch is begun, which would move source_seen past what is durable)
        if offset is not None:
            p.wait_durable(last, offset)
            offset = None
        p.record_source_seen(through)
    held = p.source_seen

    def durable() -> int:
        if offset is not None:
            p.wait_durable(last, offset)
        return held

    return durable


def advance_to(partition: Partition, source_decree: int) -> None:
    """fail_mode=skip: record that source decrees up to ``source_decree`` are lost."""
    p = partition
    check_step(max(p.source_decree, p.source_seen), 0, source_decree)

    def build(next_decree: int) -> list[Mutation]:
        if source_decree <= p.source_decree:
            return []
        return [(next_decree, 0, 0, [(_SOURCE_DECREE, source_decree)])]

    p.write_mutations(build)


def _route(op: tuple[Any, ...], partition_count: int) -> dict[int, tuple[Any, ...]]:
    """The op split by the follower partition each of its keys belongs to (Pegasus's hash)."""
    index = _backend.impl.partition_index
    kind = op[0]
    if kind == _PUT or kind == _DELETE:
        return {index(op[1], partition_count, op[2]): op}
    if kind == _RAW_PUT:
        hk, sk = decode_key(op[1])
        return {index(hk, partition_count, sk): op}
    # MULTI_PUT / MULTI_DELETE: every sort key shares the hash key (never empty in a multi op),
    # so one partition takes all of them; an empty one still routes each sort key on its own
    pairs = op[2]
    if op[1]:
        return {index(op[1], partition_count, b""): op}
    out: dict[int, list[Any]] = {}
    for item in pairs:
        sk = item[0] if kind == _MULTI_PUT else item
        out.setdefault(index(b"", partition_count, sk), []).append(item)
    if kind == _MULTI_PUT:
        return {j: (kind, op[1], items, op[3]) for j, items in out.items()}
    return {j: (kind, op[1], items) for j, items in out.items()}


def apply_rerouted(
    partitions: list[Partition], source_pidx: int, blocks: bytes, skipped_through: int = 0
) -> int:
    """Apply shipped WAL blocks of one source partition to a follower table of another
    partition count: each op goes to the follower partition its key hashes to, as a Pegasus
    client would send it. Returns the source decree now held durably for that source partition.

    Its progress lives in one "home" follower partition (``source_pidx % count``), written
    once the data it covers is durable everywhere it landed; a crash in between re-applies a
    few mutations on restart, which last-writer-wins makes harmless (equal timetags rewrite
    the same bytes, older ones lose).
    """
    mutations = _backend.impl.decode_blocks(blocks) if blocks else []
    count = len(partitions)
    home = partitions[source_pidx % count]
    held = home.rerouted_progress().get(source_pidx, 0)
    check_step(held, max([0] + [m[0] for m in mutations]), skipped_through)
    seen = max(held, skipped_through)
    todo = _shipped(mutations, seen, home.cluster_id)
    routed: dict[int, list[Mutation]] = {}
    for decree, ts, cid, ops in todo:
        per: dict[int, list[tuple[Any, ...]]] = {}
        for op in ops:
            for j, part in _route(op, count).items():
                per.setdefault(j, []).append(part)
        for j, part_ops in per.items():
            routed.setdefault(j, []).append((decree, ts, cid, part_ops))
    for j, muts in sorted(routed.items()):
        p = partitions[j]

        def build(next_decree: int, p: Partition = p, muts: list[Mutation] = muts) -> list[Mutation]:
            out = []
            pending: dict[bytes, int] = {}
            for _decree, ts, cid, ops in muts:
                kept = _lww_ops(p, ops, timetag(ts, cid), pending)
                if kept:
                    out.append((next_decree, ts, cid, kept))
                    next_decree += 1
            return out

        p.write_mutations(build)
    through = max([seen] + [m[0] for m in mutations])
    if through > home.rerouted_progress().get(source_pidx, 0):
        home.record_rerouted(source_pidx, through)
    return max(through, home.rerouted_progress().get(source_pidx, 0))
