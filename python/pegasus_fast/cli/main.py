"""``pegasus-fast``: the shell verbs of Pegasus over a cluster (embedded, or served with --connect),
serving one, and the demo."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from .. import __version__, backend
from ..bench import runner as bench_runner
from ..client.network import Network
from ..duplication import DupStatus
from ..engine.cluster import Cluster
from ..engine.local_follower import open_cluster_at
from ..errors import ClusterLockedError, PegasusFastError
from ..net import wire
from . import serve as serve_cli
from .format import table
from .progress import wait_for_log


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pegasus-fast", description=__doc__)
    ap.add_argument("--cluster", help="cluster directory (created if missing)")
    ap.add_argument(
        "--connect",
        metavar="URL",
        help="a served cluster, pegasus://HOST:PORT, or a multi-node one, zk://HOST:PORT/CHROOT, in place of --cluster",
    )
    ap.add_argument("--name", help="cluster name when creating it")
    ap.add_argument("--version", action="version", version=f"pegasus-fast {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)

    demo = sub.add_parser("demo", help="the apache/incubator-pegasus#2069 scenario end to end")
    demo.add_argument(
        "--compare-legacy", action="store_true", help="also run the pre-fix gating, timers scaled"
    )
    demo.add_argument("--legacy-seconds", type=float, default=2.0, help="scaled checkpoint_max_interval")

    what = "the native backend against the pure-Python twin, one table"
    p = sub.add_parser("bench", help=what, description=f"{what}: {bench_runner.DESCRIPTION}")
    bench_runner.parser(p)

    p = sub.add_parser("create", help="create a table")
    p.add_argument("table")
    p.add_argument("-p", "--partitions", type=int, default=8)
    p.add_argument("-e", "--envs", action="append", default=[], help="app envs as k1=v1,k2=v2 (repeatable)")
    p = sub.add_parser("ls", help="list tables")
    p.add_argument("-d", "--detailed", action="store_true", help="also each table's envs")
    p = sub.add_parser("drop", help="drop a table")
    p.add_argument("table")
    p = sub.add_parser("app", help="a table's partitions and health")
    p.add_argument("table")
    p = sub.add_parser("set", help="write one record")
    p.add_argument("table")
    p.add_argument("hash_key")
    p.add_argument("sort_key")
    p.add_argument("value")
    p.add_argument("--ttl", type=int, default=None)
    p = sub.add_parser("get", help="read one record")
    p.add_argument("table")
    p.add_argument("hash_key")
    p.add_argument("sort_key")
    p = sub.add_parser("del", help="delete one record")
    p.add_argument("table")
    p.add_argument("hash_key")
    p.add_argument("sort_key")
    p = sub.add_parser("multi_set", help="write several sort keys of one hash key (SORT_KEY=VALUE ...)")
    p.add_argument("table")
    p.add_argument("hash_key")
    p.add_argument("pairs", nargs="+")
    p.add_argument("--ttl", type=int, default=None)
    p = sub.add_parser("multi_get", help="read the sort keys of one hash key")
    p.add_argument("table")
    p.add_argument("hash_key")
    p.add_argument("sort_keys", nargs="*")
    p = sub.add_parser("scan", help="print a table's records, up to --limit")
    p.add_argument("table")
    p.add_argument("--limit", type=int, default=100)
    p = sub.add_parser("count", help="count a table's records")
    p.add_argument("table")
    p = sub.add_parser("checkpoint", help="checkpoint every partition of a table")
    p.add_argument("table")
    p = sub.add_parser("compact", help="manual compaction, in the low-priority lane")
    p.add_argument("table")

    serve_cli.add_parser(sub)

    p = sub.add_parser(
        "add_dup",
        help="duplicate a table to another cluster (pegasus://HOST:PORT or a directory), with copy progress",
    )
    p.add_argument("table")
    p.add_argument("remote")
    p.add_argument("--remote-table")
    p.add_argument("--no-checkpoint", action="store_true")
    p.add_argument("--fail-mode", default="slow", choices=["slow", "skip", "fast"])
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument(
        "--remote-token-file", help="the token shown to a served remote (else $PEGASUS_FAST_TOKEN)"
    )
    p.add_argument("--no-progress", action="store_true", help="no per-partition copy progress on stderr")
    p = sub.add_parser("nodes", help="a multi-node cluster's live nodes and what each owns (--connect zk://)")
    p = sub.add_parser("move", help="move a partition to a node, writes going on (--connect zk://)")
    p.add_argument("table")
    p.add_argument("pidx", type=int)
    p.add_argument("node")
    p = sub.add_parser(
        "balance", help="move partitions until every node owns an even share (--connect zk://)"
    )
    p = sub.add_parser("query_dup", help="a table's duplications (-d: per partition)")
    p.add_argument("table")
    p.add_argument("-d", "--detail", action="store_true")
    for verb, what in (
        ("pause_dup", "pause a duplication"),
        ("start_dup", "resume a paused duplication"),
        ("remove_dup", "remove a duplication"),
    ):
        p = sub.add_parser(verb, help=what)
        p.add_argument("table")
        p.add_argument("dupid", type=int)
    return ap


def _parse_envs(specs: list[str]) -> dict[str, str]:
    envs = {}
    for spec in specs:
        for pair in spec.split(","):
            if "=" not in pair:
                raise SystemExit(f"pegasus-fast: expected KEY=VALUE in --envs, got {pair!r}")
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


@contextlib.contextmanager
def _open(args: argparse.Namespace) -> Iterator[Any]:
    """The cluster, plus the embedded remotes of its duplications so they catch up meanwhile;
    with --connect, the served cluster."""
    if args.connect:
        if args.cluster:
            raise SystemExit("pegasus-fast: give --cluster DIR or --connect URL, not both")
        from ..client.connect import connect

        with connect(args.connect) as rc:
            yield rc
        return
    if not args.cluster:
        raise SystemExit("pegasus-fast: --cluster DIR or --connect URL is required for this command")
    c = Cluster.open(args.cluster, name=args.name, network=Network())
    remotes: list[Cluster] = []
    try:
        for d in c.duplications():
            if d.status != DupStatus.REMOVED and open_cluster_at(d.remote_path) is None:
                if os.path.isdir(d.remote_path):
                    with contextlib.suppress(ClusterLockedError):
                        remotes.append(Cluster.open(d.remote_path))
        for d in c.duplications():
            if d.status not in (DupStatus.REMOVED, DupStatus.PAUSE):
                d.connected.wait(2.0)  # let it reach the remote opened just now
        yield c
        _settle(c)
    finally:
        c.close()
        for r in remotes:
            r.close()


def _settle(c: Cluster, timeout: float = 5.0) -> None:
    """Let shipping duplications drain before the process exits."""
    deadline = time.monotonic() + timeout
    for d in c.duplications():
        while d.status == DupStatus.LOG and time.monotonic() < deadline:
            if all(p.pending_mutations == 0 for p in d.progress()):
                break
            time.sleep(0.01)


def _dup_rows(c: Any, table_name: str) -> list[tuple[object, ...]]:
    return [
        (
            d.dupid,
            d.status,
            getattr(d, "remote_name", "") or "-",
            d.remote,
            d.remote_table,
            d.fail_mode,
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d.create_time)),
        )
        for d in c.duplications(table_name)
    ]


def run(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "demo":
        from .demo import main as demo_main

        print(f"pegasus-fast {__version__} demo (backend: {backend()})\n")
        return demo_main(args.compare_legacy, args.legacy_seconds)
    if args.cmd == "serve":
        return serve_cli.run(args)
    if args.cmd == "bench":
        return bench_runner.main(args)
    with _open(args) as c:
        cmd = args.cmd
        if cmd == "create":
            t = c.create_table(args.table, partition_count=args.partitions, envs=_parse_envs(args.envs))
            print(f"created table {t.name} (app_id {t.app_id}, {t.partition_count} partitions)")
        elif cmd == "ls":
            headers = ["app_id", "name", "partitions", "status", "create_time"]
            rows = [
                (
                    i.app_id,
                    i.name,
                    i.partition_count,
                    i.status,
                    time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(i.create_time)),
                )
                + ((_envs_text(i.envs),) if args.detailed else ())
                for i in c.list_tables()
            ]
            print(table(headers + (["envs"] if args.detailed else []), rows))
        elif cmd == "drop":
            c.drop_table(args.table)
            print(f"dropped table {args.table}")
        elif cmd == "app":
            t = c.table(args.table)
            h = t.health()
            print(f"table {t.name}: app_id {t.app_id}, {t.partition_count} partitions")
            print(f"envs: {_envs_text(c.table_info(t.name).envs)}")
            print(
                f"fully_healthy {h.fully_healthy}  unhealthy {h.unhealthy}  "
                f"write_unhealthy {h.write_unhealthy}  read_unhealthy {h.read_unhealthy}\n"
            )
            print(
                table(
                    ["pidx", "state", "committed", "flushed", "durable", "wal_bytes", "data_bytes"],
                    [
                        (
                            s.pidx,
                            s.state,
                            s.last_committed_decree,
                            s.last_flushed_decree,
                            s.last_durable_decree,
                            s.wal_bytes,
                            s.data_bytes,
                        )
                        for s in t.partition_stats()
                    ],
                )
            )
        elif cmd == "set":
            d = c.table(args.table).set(
                _arg(args.hash_key), _arg(args.sort_key), _arg(args.value), ttl_seconds=args.ttl
            )
            print(f"OK (decree {d})")
        elif cmd == "get":
            print(_text(c.table(args.table).get(_arg(args.hash_key), _arg(args.sort_key))))
        elif cmd == "del":
            d = c.table(args.table).delete(_arg(args.hash_key), _arg(args.sort_key))
            print(f"OK (decree {d})")
        elif cmd == "multi_set":
            values = {}
            for pair in args.pairs:
                if "=" not in pair:
                    raise SystemExit(f"pegasus-fast: expected SORT_KEY=VALUE, got {pair!r}")
                sk, v = pair.split("=", 1)
                values[_arg(sk)] = _arg(v)
            d = c.table(args.table).multi_set(_arg(args.hash_key), values, ttl_seconds=args.ttl)
            print(f"OK (decree {d}, {len(values)} records)")
        elif cmd == "multi_get":
            sort_keys = [_arg(sk) for sk in args.sort_keys] or None
            got = c.table(args.table).multi_get(_arg(args.hash_key), sort_keys)
            print(table(["sort_key", "value"], sorted(got.items())))
        elif cmd == "scan":
            rows = []
            for n, rec in enumerate(c.table(args.table).scan()):
                if n >= args.limit:
                    break
                rows.append(rec)
            print(table(["hash_key", "sort_key", "value"], rows))
        elif cmd == "count":
            print(c.table(args.table).count())
        elif cmd == "checkpoint":
            infos = c.table(args.table).checkpoint()
            print(
                table(
                    ["pidx", "decree", "ms", "bytes"],
                    [(i.pidx, i.decree, i.duration_ms, i.size_bytes) for i in infos],
                )
            )
        elif cmd == "compact":
            start = time.perf_counter()
            done = c.compact(args.table)
            if isinstance(c, Cluster):
                done.result()
            print(f"compacted {args.table} in {(time.perf_counter() - start) * 1000:.1f} ms")
        elif cmd in ("nodes", "move", "balance"):
            if not hasattr(c, "balance"):
                raise SystemExit(
                    f"pegasus-fast: {cmd} needs a multi-node cluster: --connect zk://HOST:PORT/CHROOT"
                )
            if cmd == "move":
                start = time.perf_counter()
                d = c.move_partition(args.table, args.pidx, args.node)
                ms = (time.perf_counter() - start) * 1000
                print(f"moved {args.table}.{args.pidx} to {args.node} at decree {d} in {ms:.1f} ms")
            elif cmd == "balance":
                moves = c.balance()
                for t_name, pidx, node in moves:
                    print(f"moved {t_name}.{pidx} to {node}")
                print(f"{len(moves)} moves")
            else:
                owned: dict[str, list[str]] = {}
                for info in c.list_tables():
                    for pidx, owner in enumerate(c.table(info.name).owners()):
                        owned.setdefault(owner, []).append(f"{info.name}.{pidx}")
                rows = [
                    (n, url, len(owned.get(n, [])), " ".join(owned.get(n, [])))
                    for n, url in c.nodes().items()
                ]
                print(table(["node", "url", "partitions", "owns"], rows))
        elif cmd == "add_dup":
            token = None
            if args.remote_token_file:
                with open(args.remote_token_file, encoding="utf-8") as f:
                    token = f.read().strip() or None
            served = wire.is_url(args.remote) or args.remote.startswith("zk://")
            remote = args.remote if served or not isinstance(c, Cluster) else None
            if remote is None:
                remote = open_cluster_at(args.remote) or Cluster.open(args.remote)
            try:
                d = c.add_duplication(
                    args.table,
                    remote,
                    remote_table=args.remote_table,
                    with_checkpoint=not args.no_checkpoint,
                    fail_mode=args.fail_mode,
                    remote_token=token,
                )
                start = time.perf_counter()
                wait_for_log(d, args.timeout, show=not args.no_progress)
                print(f"duplication {d.dupid}: {d.status} in {(time.perf_counter() - start) * 1000:.1f} ms")
                _print_progress(d)
                if isinstance(c, Cluster):
                    _settle(c)
            finally:
                if isinstance(remote, Cluster) and remote is not c:
                    remote.close()
        elif cmd == "query_dup":
            print(
                table(
                    ["dupid", "status", "remote", "remote_path", "remote_table", "fail_mode", "created"],
                    _dup_rows(c, args.table),
                )
            )
            if args.detail:
                for d in c.duplications(args.table):
                    print(f"\nduplication {d.dupid}:")
                    _print_progress(d)
        elif cmd in ("pause_dup", "start_dup", "remove_dup"):
            d = c.duplication(args.dupid)
            if d.table_name != args.table:
                raise SystemExit(f"pegasus-fast: duplication {args.dupid} is not of table {args.table}")
            {"pause_dup": d.pause, "start_dup": d.resume, "remove_dup": d.remove}[cmd]()
            print(f"duplication {d.dupid}: {d.status}")
    return 0


def _print_progress(d: object) -> None:
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
        )
        for p in d.progress()
    ]  # type: ignore[attr-defined]
    print(
        table(
            [
                "pidx",
                "kind",
                "checkpoint",
                "ckpt_decree",
                "confirmed",
                "committed",
                "pending",
                "lag_ms",
                "reason",
            ],
            rows,
        )
    )


#: what a user or the machine can cause (bad input, a missing table, a full disk):
#: one line, no traceback. Anything else is a bug, and keeps its traceback.
EXPECTED_ERRORS = (PegasusFastError, OSError)


def main(argv: list[str] | None = None) -> int:
    """Run one command; an expected failure prints one ``error:`` line (a traceback with PEGASUS_FAST_DEBUG=1)."""
    try:
        return run(argv)
    except EXPECTED_ERRORS as exc:
        if os.environ.get("PEGASUS_FAST_DEBUG", "").strip() not in ("", "0"):
            raise
        print(f"pegasus-fast: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pegasus-fast: interrupted", file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
