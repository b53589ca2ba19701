"""The balance's plan (multinode/plan.py), over configurations made here: primaries even per
table and in total, then every replica even in total; a replicated primary moved by a switch
of roles where one of its secondaries sits on the lighter node; one-replica tables planned as
before replicas existed."""

from __future__ import annotations

import itertools

from pegasus_fast.coord.layout import AppDoc, PartitionConfig, TableConfig
from pegasus_fast.multinode.plan import Move, plan_balance


def table(name: str, parts: list[tuple[str, ...]]) -> TableConfig:
    app = AppDoc(app_id=1, partition_count=len(parts), create_time=0.0, replica_count=len(parts[0]))
    return TableConfig(
        name, app, tuple(PartitionConfig(i, r[0], 1, 0, 0, "", tuple(r[1:])) for i, r in enumerate(parts))
    )


def apply(configs: dict[str, TableConfig], moves: list[Move]) -> dict[tuple[str, int], list[str]]:
    """Each partition's replicas (primary first) once the moves are made, as the leader makes
    them: a secondary replaced, or the primary moved (a switch of roles with a secondary)."""
    reps = {(n, p.pidx): [p.owner, *p.secondaries] for n, tc in configs.items() for p in tc.partitions}
    for mv in moves:
        r = reps[(mv.table, mv.pidx)]
        if mv.from_node:
            assert mv.from_node in r[1:] and mv.node not in r, mv
            r[r.index(mv.from_node)] = mv.node
        else:
            if mv.node in r:
                r[r.index(mv.node)] = r[0]
            r[0] = mv.node
    return reps


def spread_of(
    reps: dict[tuple[str, int], list[str]], nodes: list[str]
) -> tuple[dict[str, int], dict[str, int]]:
    primaries = {n: sum(1 for r in reps.values() if r[0] == n) for n in nodes}
    held = {n: sum(1 for r in reps.values() if n in r) for n in nodes}
    return primaries, held


def test_one_replica_tables_are_planned_as_before() -> None:
    configs = {"t": table("t", [("n1",)] * 6 + [("n2",)] * 2)}
    moves = plan_balance(configs, ["n1", "n2", "n3"])
    assert all(not m.from_node for m in moves)
    primaries, _ = spread_of(apply(configs, moves), ["n1", "n2", "n3"])
    assert max(primaries.values()) - min(primaries.values()) <= 1
    assert len(moves) == 3  # as few as it can: 6/2/0 -> 3/3/2


def test_a_new_node_gets_its_share_of_replicas_and_primaries_by_switches_where_it_can() -> None:
    nodes3 = ["n1", "n2", "n3"]
    parts = [tuple(nodes3[(i + k) % 3] for k in range(3)) for i in range(8)]
    configs = {"r": table("r", parts)}
    nodes = [*nodes3, "n4"]
    moves = plan_balance(configs, nodes)
    reps = apply(configs, moves)
    primaries, held = spread_of(reps, nodes)
    assert max(primaries.values()) - min(primaries.values()) <= 1, primaries
    assert max(held.values()) - min(held.values()) <= 1, held
    assert all(len(set(r)) == 3 for r in reps.values())  # still 3 replicas on distinct nodes
    # n4 held nothing: its primaries are copies; none of the 3 old nodes lost a primary to
    # another old node by a copy
    for mv in moves:
        if not mv.from_node:
            assert mv.node == "n4"


def test_primaries_even_out_by_switching_roles_without_copies() -> None:
    # every primary on n1, each partition on all three nodes: switches alone even it out
    configs = {"r": table("r", [("n1", "n2", "n3")] * 6)}
    moves = plan_balance(configs, ["n1", "n2", "n3"])
    reps = apply(configs, moves)
    primaries, held = spread_of(reps, ["n1", "n2", "n3"])
    assert primaries == {"n1": 2, "n2": 2, "n3": 2}
    assert held == {"n1": 6, "n2": 6, "n3": 6}
    assert all(not m.from_node for m in moves) and len(moves) == 4


def test_any_placement_ends_even_with_replicas_on_distinct_nodes() -> None:
    nodes = ["a", "b", "c", "d", "e"]
    for seed, (count, rc) in enumerate(itertools.product((1, 5, 12), (1, 2, 3))):
        # every replica on the first three nodes, distinct within a partition
        parts = [tuple(nodes[(seed * 7 + i + k) % 3] for k in range(rc)) for i in range(count)]
        configs = {"x": table("x", parts), "y": table("y", parts[: max(1, count // 2)])}
        reps = apply(configs, plan_balance(configs, nodes))
        primaries, held = spread_of(reps, nodes)
        assert max(primaries.values()) - min(primaries.values()) <= 1, (count, rc, primaries)
        assert max(held.values()) - min(held.values()) <= 1, (count, rc, held)
        assert all(len(set(r)) == len(r) for r in reps.values())


def test_dead_nodes_are_not_planned_onto() -> None:
    configs = {"r": table("r", [("n1", "n2")] * 4)}
    moves = plan_balance(configs, ["n1", "n3"])  # n2 dead
    assert all(m.node != "n2" for m in moves)
