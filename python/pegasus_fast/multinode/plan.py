"""Where partitions go: a new table's owners, and the moves that even out the nodes.

Pure decisions over a configuration read from ZooKeeper; the leader (placement.py)
acts on them, each change a compare-and-set (moves.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..coord.layout import TableConfig


@dataclass(frozen=True)
class Move:
    table: str
    pidx: int
    node: str


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
    """Moves that leave every live node within one partition of the others, in total and
    within each table, moving as few partitions as it can."""
    owners = {(name, p.pidx): p.owner for name, tc in configs.items() for p in tc.partitions}
    moves: list[Move] = []
    live = sorted(nodes)
    if not live:
        return moves
    for name in sorted(configs):
        while True:
            count = {n: 0 for n in live}
            for (t, _), o in owners.items():
                if t == name and o in count:
                    count[o] += 1
            total = {n: sum(1 for o in owners.values() if o == n) for n in live}
            hi = max(live, key=lambda n: (count[n], total[n], n))
            lo = min(live, key=lambda n: (count[n], total[n], n))
            if count[hi] - count[lo] <= 1:
                break
            pidx = min(p for (t, p), o in owners.items() if t == name and o == hi)
            owners[(name, pidx)] = lo
            moves.append(Move(name, pidx, lo))
    while True:
        total = {n: sum(1 for o in owners.values() if o == n) for n in live}
        hi = max(live, key=lambda n: (total[n], n))
        lo = min(live, key=lambda n: (total[n], n))
        if total[hi] - total[lo] <= 1:
            break
        # a table where moving one keeps that table within one too
        done = False
        for (t, p), o in sorted(owners.items()):
            if o != hi:
                continue
            per = {n: sum(1 for (t2, _), o2 in owners.items() if t2 == t and o2 == n) for n in live}
            if per[lo] + 1 - (per[hi] - 1) <= 1:
                owners[(t, p)] = lo
                moves.append(Move(t, p, lo))
                done = True
                break
        if not done:
            break
    return moves


__all__ = ["Move", "plan_balance", "spread", "spread_replicas"]
