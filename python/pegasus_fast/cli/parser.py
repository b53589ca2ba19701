"""The ``pegasus-fast`` command line's arguments: one sub-command per verb."""

from __future__ import annotations

import argparse
from typing import Any

from .. import __version__
from ..bench import runner as bench_runner
from . import serve as serve_cli
from .data_verbs import CHECK_TYPES, FILTER_TYPES

DESCRIPTION = """``pegasus-fast``: the shell verbs of Pegasus over a cluster (embedded, or served with --connect),
serving one, and the demo."""


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pegasus-fast", description=DESCRIPTION)
    ap.add_argument("--cluster", help="cluster directory (created if missing)")
    ap.add_argument(
        "--connect",
        metavar="URL",
        help="a served cluster, pegasus://HOST:PORT, or a multi-node one, zk://HOST:PORT/CHROOT, in place of --cluster",
    )
    ap.add_argument(
        "--zk-auth-file",
        metavar="FILE",
        help="with --connect zk://: the cluster's ZooKeeper credentials, one line user:password "
        "(else $PEGASUS_FAST_ZK_AUTH_FILE)",
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
    _data_verbs(sub)
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


def _key(sub: Any, verb: str, what: str, sort_key: bool = True) -> argparse.ArgumentParser:
    p = sub.add_parser(verb, help=what)
    p.add_argument("table")
    p.add_argument("hash_key")
    if sort_key:
        p.add_argument("sort_key")
    return p


def _filter_args(p: argparse.ArgumentParser, which: str, short: str, short_pattern: str) -> None:
    key = which.replace("_", "-")
    p.add_argument(f"-{short}", f"--{key}-filter-type", choices=sorted(FILTER_TYPES), help=f"{which} filter")
    p.add_argument(f"-{short_pattern}", f"--{key}-filter-pattern", help=f"{which} filter pattern")


def _range_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("start_sort_key", nargs="?", default="", help="(default: the first)")
    p.add_argument("stop_sort_key", nargs="?", default="", help="(default: to the last)")
    p.add_argument("-a", "--start-exclusive", action="store_true", help="leave the start key out")
    p.add_argument("-b", "--stop-inclusive", action="store_true", help="take the stop key in")
    _filter_args(p, "sort_key", "s", "y")
    p.add_argument("-n", "--max-count", type=int, default=None, help="at most this many records")
    p.add_argument("-i", "--no-value", action="store_true", help="sort keys without values")


def _check_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("check_sort_key")
    p.add_argument("check_type", choices=list(CHECK_TYPES), metavar="CHECK_TYPE", help=", ".join(CHECK_TYPES))
    p.add_argument("check_operand", nargs="?", default="")
    p.add_argument("-r", "--return-check-value", action="store_true")
    p.add_argument("--ttl", type=int, default=None)


def _data_verbs(sub: Any) -> None:
    """The verbs of data_verbs.py."""
    _key(sub, "exist", "whether a record exists")
    _key(sub, "ttl", "a record's seconds to live (no TTL, or not found)")
    _key(sub, "sortkey_count", "count the sort keys of one hash key", sort_key=False)
    p = _key(sub, "incr", "add to a record's int64 value, printing the new one")
    p.add_argument("increment", nargs="?", type=int, default=1)
    p.add_argument("--ttl", type=int, default=None, help="0 clears the TTL; none keeps it")
    p = _key(sub, "check_and_set", "set a sort key if a check of another passes", sort_key=False)
    _check_args(p)
    p.add_argument("set_sort_key")
    p.add_argument("set_value")
    p = _key(sub, "check_and_mutate", "--set/--del sort keys together if a check passes", sort_key=False)
    _check_args(p)
    p.add_argument(
        "--set",
        dest="mutations",
        action="append",
        type=lambda t: ("set", t),
        default=[],
        metavar="SORT_KEY=VALUE",
    )
    p.add_argument("--del", dest="mutations", action="append", type=lambda t: ("del", t), metavar="SORT_KEY")
    p = _key(sub, "multi_get_range", "records of a sort-key range of one hash key", sort_key=False)
    _range_args(p)
    p.add_argument("-r", "--reverse", action="store_true", help="from the last down")
    _key(sub, "multi_get_sortkeys", "the sort keys of one hash key", sort_key=False)
    p = _key(sub, "hash_scan", "scan a sort-key range of one hash key", sort_key=False)
    _range_args(p)
    p = sub.add_parser("full_scan", help="scan a table's records, with filters")
    p.add_argument("table")
    _filter_args(p, "hash_key", "x", "z")
    _filter_args(p, "sort_key", "s", "y")
    p.add_argument("-n", "--max-count", type=int, default=None, help="at most this many records")
    p.add_argument("-i", "--no-value", action="store_true", help="keys without values")


__all__ = ["parser"]
