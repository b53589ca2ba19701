"""Where partitions go: a new table's owners, and the moves that even out the nodes.

Pure decisions over a configuration read from ZooKeeper; the leader (placement.py)
acts on them, each change a compare-and-set (moves.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..coord.layout import TableConfig


@dataclass(frozen=True)
class Move:
    """The partition's primary to ``node``; with ``from_node``, its secondary there instead."""

    table: str
    pidx: int
    node: str
    from_node: str = ""


def spread(partition_count: int, nodes: list[str], load: dict[str, int]) -> list[str]:
    """Owners for a new table's partitions: round robin over the live nodes, the least
    loaded first, so no two nodes differ by more than one partition of this table."""
    order = sorted(nodes, key=lambda n: (load.get(n, 0), n))
    return [order[i % len(order)] for i in range(partition_count)]


def spread_replicas(
    partition_count: int, replica_count: int, nodes: list[str], load: dict[str, int]
) -> list[tuple[str, tuple[str, ...]]]:
    """Each new partition's primary and secondaries, on ``replica_count`` different nodes: the
    primaries as :func:`spread` places owners, each partition's secondaries on the nodes after
    its primary in that order, so replicas too spread evenly."""
    order = sorted(nodes, key=lambda n: (load.get(n, 0), n))
    n = len(order)
    if not 1 <= replica_count <= n:
        raise ValueError(f"{replica_count} replicas need as many live nodes, not {n}")
    return [
        (order[i % n], tuple(order[(i + k) % n] for k in range(1, replica_count)))
        for i in range(partition_count)
    ]


def plan_balance(configs: dict[str, TableConfig], nodes: list[str]) -> list[Move]:
    """Moves that leave every live node within one primary of the others, in total and within
    each table, then within one replica (primary or secondary) of the others in total, moving
    as few as it can. A replicated partition's primary goes, where it can, to a node that holds
    a secondary of it already (a switch of roles, no copy); replicas then even out by moving
    secondaries to nodes without a replica of the partition."""
    # (table, pidx) -> [primary, *secondaries], changed as the moves are planned
    reps = {(name, p.pidx): [p.owner, *p.secondaries] for name, tc in configs.items() for p in tc.partitions}
    moves: list[Move] = []
    live = sorted(nodes)
    if not live:
        return moves

    def primaries(table: str | None = None) -> dict[str, int]:
        count = {n: 0 for n in live}
        for (t, _), r in reps.items():
            if (table is None or t == table) and r[0] in count:
                count[r[0]] += 1
        return count

    def move_primary(key: tuple[str, int], to: str) -> None:
        r = reps[key]
        if to in r:  # a switch of roles: the old primary a secondary in the new one's place
            r[r.index(to)] = r[0]
        r[0] = to
        moves.append(Move(key[0], key[1], to))

    def pick(candidates: list[tuple[str, int]], to: str) -> tuple[str, int]:
        # one whose secondary is there already first (no copy), then the lowest pidx
        return min(candidates, key=lambda k: (to not in reps[k][1:], k))

    for name in sorted(configs):
        while True:
            count, total = primaries(name), primaries()
            hi = max(live, key=lambda n: (count[n], total[n], n))
            lo = min(live, key=lambda n: (count[n], total[n], n))
            if count[hi] - count[lo] <= 1:
                break
            move_primary(pick([k for k, r in reps.items() if k[0] == name and r[0] == hi], lo), lo)
    while True:
        total = primaries()
        hi = max(live, key=lambda n: (total[n], n))
        lo = min(live, key=lambda n: (total[n], n))
        if total[hi] - total[lo] <= 1:
            break
        # a table where moving one keeps that table within one too
        fits = []
        for key, r in sorted(reps.items()):
            if r[0] == hi:
                per = primaries(key[0])
                if per[lo] + 1 - (per[hi] - 1) <= 1:
                    fits.append(key)
        if not fits:
            break
        move_primary(pick(fits, lo), lo)
    # then every replica: a secondary from the node holding most to one holding fewest
    while True:
        held = {n: 0 for n in live}
        for r in reps.values():
            for n in r:
                if n in held:
                    held[n] += 1
        hi = max(live, key=lambda n: (held[n], n))
        lo = min(live, key=lambda n: (held[n], n))
        if held[hi] - held[lo] <= 1:
            break
        keys = sorted(k for k, r in reps.items() if hi in r[1:] and lo not in r)
        if not keys:
            break
        r = reps[keys[0]]
        r[r.index(hi)] = lo
        moves.append(Move(keys[0][0], keys[0][1], lo, hi))
    return moves


__all__ = ["Move", "plan_balance", "spread", "spread_replicas"]
