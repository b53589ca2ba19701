"""The shell verbs, one function each, over an open cluster (embedded, served or multi-node):
``VERBS`` maps each verb of the command line to its function."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from ..engine.cluster import Cluster
from ..errors import InvalidArgumentError, PartitionUnavailableError
from . import dup_verbs
from .backup_verbs import BACKUP_VERBS
from .data_verbs import DATA_VERBS
from .exits import EXIT_NOT_FOUND, EXIT_OK, EXIT_UNAVAILABLE
from .format import table
from .role_verbs import ROLE_VERBS, role_text
from .verify_verb import verify_dup

#: a verb returns its exit code (None: 0)
Verb = Callable[[Any, argparse.Namespace], int | None]


def _parse_envs(specs: list[str]) -> dict[str, str]:
    envs = {}
    for spec in specs:
        for pair in spec.split(","):
            if "=" not in pair:
                raise InvalidArgumentError(f"expected KEY=VALUE in --envs, got {pair!r}")
            key, value = pair.split("=", 1)
            envs[key] = value
    return envs


def _envs_text(envs: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(envs.items())) or "-"


def _arg(text: str) -> bytes:
    """A key or value from the command line, as the bytes the user typed.

    argv is decoded with surrogateescape, so a non-UTF-8 byte arrives as a lone
    surrogate; encoding it back the same way gives the original bytes.
    """
    return os.fsencode(text)


def _text(value: bytes | None) -> str:
    if value is None:
        return "(not found)"
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.hex()


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


# -- tables --------------------------------------------------------------------------------


def create(c: Any, args: argparse.Namespace) -> None:
    kw = {} if args.replicas is None else {"replica_count": args.replicas}
    t = c.create_table(args.table, partition_count=args.partitions, envs=_parse_envs(args.envs), **kw)
    print(f"created table {t.name} (app_id {t.app_id}, {t.partition_count} partitions)")


def ls(c: Any, args: argparse.Namespace) -> None:
    headers = ["app_id", "name", "partitions", "status", "create_time"]
    rows = [
        (i.app_id, i.name, i.partition_count, i.status, _when(i.create_time))
        + ((role_text(i), _envs_text(i.envs)) if args.detailed else ())
        for i in c.list_tables()
    ]
    print(table(headers + (["role", "envs"] if args.detailed else []), rows))


def drop(c: Any, args: argparse.Namespace) -> None:
    c.drop_table(args.table)
    print(f"dropped table {args.table}")


def app(c: Any, args: argparse.Namespace) -> int:
    """Exit 3 if a partition cannot answer (its node down): it is listed as unavailable."""
    t = c.table(args.table)
    gone: dict[int, PartitionUnavailableError] = {}
    partial = hasattr(t, "count_each")  # a multi-node table: some partitions may be down
    h = t.health(gone) if partial else t.health()
    stats = t.partition_stats(gone) if partial else t.partition_stats()
    print(f"table {t.name}: app_id {t.app_id}, {t.partition_count} partitions")
    info = c.table_info(t.name)
    print(f"role: {role_text(info)}")
    print(f"envs: {_envs_text(info.envs)}")
    print(
        f"fully_healthy {h.fully_healthy}  unhealthy {h.unhealthy}  "
        f"write_unhealthy {h.write_unhealthy}  read_unhealthy {h.read_unhealthy}\n"
    )
    rows: list[tuple[object, ...]] = [
        (
            s.pidx,
            s.state,
            s.last_committed_decree,
            s.last_flushed_decree,
            s.last_durable_decree,
            s.wal_bytes,
            s.data_bytes,
        )
        for s in stats
    ]
    rows += [
        (pidx, "unavailable", "-", "-", "-", "-", "-") for pidx in gone if pidx not in {s.pidx for s in stats}
    ]
    headers = ["pidx", "state", "committed", "flushed", "durable", "wal_bytes", "data_bytes"]
    if hasattr(t, "replicas"):
        # a multi-node table: each partition's primary, secondaries and ballot, dead ones marked
        live = c.nodes()
        reps = {r.pidx: r for r in t.replicas()}

        def mark(n: str) -> str:
            return n if n in live else f"{n}(dead)"

        rows = [
            (
                *row,
                mark(reps[row[0]].primary),
                ",".join(mark(n) for n in reps[row[0]].secondaries) or "-",
                reps[row[0]].ballot,
            )
            for row in rows
        ]
        headers += ["primary", "secondaries", "ballot"]
    print(table(headers, sorted(rows)))
    return _unavailable(gone)


def _unavailable(gone: dict[int, PartitionUnavailableError]) -> int:
    """List the partitions that could not answer on stderr; their exit code."""
    for pidx in sorted(gone):
        print(f"unavailable: partition {pidx}: {gone[pidx].state}", file=sys.stderr)
    return EXIT_UNAVAILABLE if gone else EXIT_OK


def checkpoint(c: Any, args: argparse.Namespace) -> None:
    infos = c.table(args.table).checkpoint()
    print(
        table(
            ["pidx", "decree", "ms", "bytes"],
            [(i.pidx, i.decree, i.duration_ms, i.size_bytes) for i in infos],
        )
    )


def compact(c: Any, args: argparse.Namespace) -> None:
    start = time.perf_counter()
    done = c.compact(args.table)
    if isinstance(c, Cluster):
        done.result()
    print(f"compacted {args.table} in {(time.perf_counter() - start) * 1000:.1f} ms")


# -- records --------------------------------------------------------------------------------


def set_(c: Any, args: argparse.Namespace) -> None:
    d = c.table(args.table).set(
        _arg(args.hash_key), _arg(args.sort_key), _arg(args.value), ttl_seconds=args.ttl
    )
    print(f"OK (decree {d})")


def get(c: Any, args: argparse.Namespace) -> int:
    value = c.table(args.table).get(_arg(args.hash_key), _arg(args.sort_key))
    print(_text(value))
    return EXIT_NOT_FOUND if value is None else EXIT_OK


def del_(c: Any, args: argparse.Namespace) -> None:
    d = c.table(args.table).delete(_arg(args.hash_key), _arg(args.sort_key))
    print(f"OK (decree {d})")


def multi_set(c: Any, args: argparse.Namespace) -> None:
    values = {}
    for pair in args.pairs:
        if "=" not in pair:
            raise InvalidArgumentError(f"expected SORT_KEY=VALUE, got {pair!r}")
        sk, v = pair.split("=", 1)
        values[_arg(sk)] = _arg(v)
    d = c.table(args.table).multi_set(_arg(args.hash_key), values, ttl_seconds=args.ttl)
    print(f"OK (decree {d}, {len(values)} records)")


def multi_get(c: Any, args: argparse.Namespace) -> None:
    sort_keys = [_arg(sk) for sk in args.sort_keys] or None
    got = c.table(args.table).multi_get(_arg(args.hash_key), sort_keys)
    print(table(["sort_key", "value"], sorted(got.items())))


def scan(c: Any, args: argparse.Namespace) -> None:
    rows = []
    for n, rec in enumerate(c.table(args.table).scan()):
        if n >= args.limit:
            break
        rows.append(rec)
    print(table(["hash_key", "sort_key", "value"], rows))


def count(c: Any, args: argparse.Namespace) -> int:
    """Exit 3 with a partial count if a partition cannot answer (its node down)."""
    t = c.table(args.table)
    if not hasattr(t, "count_each"):
        print(t.count())
        return EXIT_OK
    each = t.count_each()
    gone = {p: n for p, n in each.items() if isinstance(n, PartitionUnavailableError)}
    total = sum(n for n in each.values() if isinstance(n, int))
    if gone:
        print(f"{total} (partial: {len(gone)} of {len(each)} partitions unavailable)")
    else:
        print(total)
    return _unavailable(gone)


# -- a multi-node cluster --------------------------------------------------------------------


def _multi_node(c: Any, args: argparse.Namespace) -> None:
    if not hasattr(c, "balance"):
        raise InvalidArgumentError(f"{args.cmd} needs a multi-node cluster: --connect zk://HOST:PORT/CHROOT")


def _owned(c: Any, secondaries: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """Node id → the partitions (``table.pidx``) it owns (is the primary of), as ZooKeeper says;
    ``secondaries`` gets node id → the partitions it holds a secondary replica of."""
    owned: dict[str, list[str]] = {}
    for info in c.list_tables():
        for r in c.table(info.name).replicas():
            owned.setdefault(r.primary, []).append(f"{info.name}.{r.pidx}")
            if secondaries is not None:
                for n in r.secondaries:
                    secondaries.setdefault(n, []).append(f"{info.name}.{r.pidx}")
    return owned


def nodes(c: Any, args: argparse.Namespace) -> None:
    """The live nodes, and the dead ones: owners of partitions that are not live."""
    _multi_node(c, args)
    held: dict[str, list[str]] = {}
    owned = _owned(c, held)
    live = c.nodes()

    def row(n: str, state: str, url: str) -> tuple[object, ...]:
        mine, sec = owned.get(n, []), held.get(n, [])
        return (n, state, url, len(mine), len(sec), " ".join(mine) or "-", " ".join(sec) or "-")

    rows = [row(n, "live", url) for n, url in live.items()]
    rows += [row(n, "dead", "-") for n in sorted(set(owned) | set(held)) if n not in live]
    print(table(["node", "state", "url", "primaries", "secondaries", "owns", "replicas"], rows))


def move(c: Any, args: argparse.Namespace) -> None:
    _multi_node(c, args)
    owners = c.table(args.table).owners()
    if not 0 <= args.pidx < len(owners):
        raise InvalidArgumentError(f"table {args.table} has partitions 0..{len(owners) - 1}, not {args.pidx}")
    src = args.from_node
    if src == args.node or (src in (None, owners[args.pidx]) and owners[args.pidx] == args.node):
        print(f"{args.table}.{args.pidx} is already on {args.node}: nothing moved")
        return
    start = time.perf_counter()
    d = c.move_partition(args.table, args.pidx, args.node, from_node=src)
    ms = (time.perf_counter() - start) * 1000
    what = f"{args.table}.{args.pidx}" + ("" if src is None else f"'s replica on {src}")
    print(f"moved {what} to {args.node} at decree {d} in {ms:.1f} ms")


def balance(c: Any, args: argparse.Namespace) -> int:
    """Exit 3 if a partition cannot be placed: its node is dead, its data on that node's disk."""
    _multi_node(c, args)
    moves = c.balance()
    for t_name, pidx, node in moves:
        print(f"moved {t_name}.{pidx} to {node}")
    print(f"{len(moves)} moves")
    live = c.nodes()
    stuck = [(n, p) for n, held in sorted(_owned(c).items()) if n not in live for p in held]
    for node, part in stuck:
        print(
            f"cannot place {part}: its node {node} is dead (its data is on that node's disk)", file=sys.stderr
        )
    return EXIT_UNAVAILABLE if stuck else EXIT_OK


# -- duplications --------------------------------------------------------------------------


def print_progress(d: Any) -> None:
    rows = [
        (
            p.pidx,
            p.checkpoint_kind,
            p.checkpoint_state,
            p.checkpoint_decree,
            p.confirmed_decree,
            p.last_committed_decree,
            p.pending_mutations,
            p.time_lag_ms,
            p.reason or "-",
            p.stuck_reason or "-",
        )
        for p in d.progress()
    ]
    headers = [
        "pidx",
        "kind",
        "checkpoint",
        "ckpt_decree",
        "confirmed",
        "committed",
        "pending",
        "lag_ms",
        "reason",
        "stuck",
    ]
    print(table(headers, rows))


def add_dup(c: Any, args: argparse.Namespace) -> None:
    dup_verbs.add_dup(c, args, print_progress)


def query_dup(c: Any, args: argparse.Namespace) -> None:
    rows = [
        (
            d.dupid,
            d.status,
            getattr(d, "remote_name", "") or "-",
            d.remote,
            d.remote_table,
            d.fail_mode,
            _when(d.create_time),
            d.stuck_reason or "-",
        )
        for d in c.duplications(args.table)
    ]
    headers = ["dupid", "status", "remote", "remote_path", "remote_table", "fail_mode", "created", "stuck"]
    print(table(headers, rows))
    if args.detail:
        for d in c.duplications(args.table):
            print(f"\nduplication {d.dupid}:")
            print_progress(d)


def _dup_verb(act: Callable[[Any], None]) -> Verb:
    def verb(c: Any, args: argparse.Namespace) -> None:
        d = c.duplication(args.dupid)
        if d.table_name != args.table:
            raise InvalidArgumentError(f"duplication {args.dupid} is not of table {args.table}")
        act(d)
        print(f"duplication {d.dupid}: {d.status}")

    return verb


#: every verb run over an open cluster (demo, serve and bench open nothing: main.py runs them)
VERBS: dict[str, Verb] = {
    "create": create,
    "ls": ls,
    "drop": drop,
    "app": app,
    "set": set_,
    "get": get,
    "del": del_,
    "multi_set": multi_set,
    "multi_get": multi_get,
    "scan": scan,
    "count": count,
    "checkpoint": checkpoint,
    "compact": compact,
    "nodes": nodes,
    "move": move,
    "balance": balance,
    "add_dup": add_dup,
    "query_dup": query_dup,
    "pause_dup": _dup_verb(lambda d: d.pause()),
    "start_dup": _dup_verb(lambda d: d.resume()),
    "remove_dup": _dup_verb(lambda d: d.remove()),
    "verify_dup": verify_dup,
    "update_dup": dup_verbs.update_dup,
    **DATA_VERBS,
    **BACKUP_VERBS,
    **ROLE_VERBS,
}


__all__ = ["VERBS", "Verb", "print_progress"]
