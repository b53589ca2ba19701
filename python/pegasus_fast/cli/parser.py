"""The ``pegasus-fast`` command line's arguments: one sub-command per verb."""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from .. import __version__
from ..bench import runner as bench_runner
from . import role_verbs
from . import serve as serve_cli
from .backup_verbs import add_parsers as backup_parsers
from .data_verbs import CHECK_TYPES, FILTER_TYPES
from .exits import EXIT_ERROR, EXIT_NOT_FOUND, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE

DESCRIPTION = """``pegasus-fast``: the shell verbs of Pegasus over a cluster (embedded with --cluster, or
served or multi-node with --connect), serving one, and the demo. `pegasus-fast VERB --help` explains
a verb. The global options (--cluster, --connect, --name, --zk-auth-file) go before or after the verb."""

EPILOG = f"""exit codes:
  {EXIT_OK}  ok (also when the reader of the output goes away early, as `| head` does)
  {EXIT_NOT_FOUND}  not found or check failed: get/ttl of a missing key, exist false, a failed check of
     check_and_set/check_and_mutate, a missing table or duplication
  {EXIT_USAGE}  usage: bad arguments or an invalid value
  {EXIT_UNAVAILABLE}  unavailable: a remote, node or partition cannot serve now (app and count still
     print what they could, listing the unavailable partitions; balance: partitions it cannot place)
  {EXIT_ERROR}  any other error
errors are one line on stderr: `pegasus-fast: <ErrorClass>: message` (PEGASUS_FAST_DEBUG=1: traceback)"""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Each argument's default after its help (unless none, or a flag's False); descriptions
    and the epilog as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, [], "") or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """A usage error in the one error format of the CLI (exit code 2, as argparse's)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"pegasus-fast: UsageError: {message}\n")


def _globals(p: argparse.ArgumentParser, default: Any) -> None:
    """The options of every verb, before the verb (``default``: None) or after it (SUPPRESS, so
    an option given before the verb is kept)."""
    have = p._option_string_actions
    if "--cluster" not in have:
        p.add_argument(
            "--cluster", metavar="DIR", default=default, help="cluster directory (created if missing)"
        )
    if "--connect" not in have:
        p.add_argument(
            "--connect",
            metavar="URL",
            default=default,
            help="a served cluster, pegasus://HOST:PORT, or a multi-node one, zk://HOST:PORT/CHROOT, "
            "in place of --cluster",
        )
    if "--zk-auth-file" not in have:
        p.add_argument(
            "--zk-auth-file",
            metavar="FILE",
            default=default,
            help="with --connect zk://: the cluster's ZooKeeper credentials, one line user:password "
            "(else $PEGASUS_FAST_ZK_AUTH_FILE)",
        )
    if "--name" not in have:
        p.add_argument("--name", default=default, help="the cluster's name when --cluster creates it")


def parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="pegasus-fast", description=DESCRIPTION, epilog=EPILOG, formatter_class=_Formatter)
    _globals(ap, None)
    ap.add_argument("--version", action="version", version=f"pegasus-fast {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="VERB")

    def verb(name: str, what: str, more: str = "") -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=what, description=what + (f". {more}" if more else ""), formatter_class=_Formatter
        )

    demo = verb("demo", "the apache/incubator-pegasus#2069 scenario end to end, on a temporary cluster")
    demo.add_argument(
        "--compare-legacy", action="store_true", help="also run the pre-fix gating, timers scaled"
    )
    demo.add_argument(
        "--legacy-seconds", type=float, default=2.0, help="scaled checkpoint_max_interval, in seconds"
    )

    what = "the native backend against the pure-Python twin, one table"
    p = sub.add_parser(
        "bench", help=what, description=f"{what}: {bench_runner.DESCRIPTION}", formatter_class=_Formatter
    )
    bench_runner.parser(p)

    p = verb("create", "create a table", "Its partition count is fixed for its life.")
    p.add_argument("table", help="the new table's name")
    p.add_argument("-p", "--partitions", type=int, default=8, help="number of partitions")
    p.add_argument("-e", "--envs", action="append", default=[], help="app envs as k1=v1,k2=v2 (repeatable)")
    p.add_argument(
        "-r",
        "--replicas",
        type=int,
        default=None,
        help="replicas of each partition, each on another node (a zk:// cluster; default: its "
        "leader's default_replica_count, at most the live nodes)",
    )
    p = verb("ls", "list tables: app_id, name, partitions, status, creation time")
    p.add_argument("-d", "--detailed", action="store_true", help="also each table's envs and role")
    p = verb("drop", "drop a table and all its records")
    p.add_argument("table", help="the table's name")
    p = verb(
        "app",
        "a table's partitions and health",
        "Per partition: state, committed/flushed/durable decrees, WAL and data bytes. A partition "
        "that cannot answer (its node is down) is listed as unavailable and the exit code is 3.",
    )
    p.add_argument("table", help="the table's name")
    p = verb("set", "write one record")
    _record(p)
    p.add_argument("value", help="the value (bytes as typed)")
    p.add_argument("--ttl", type=int, default=None, help="seconds to live (none: forever)")
    p = verb("get", "read one record", "Prints its value, or `(not found)` with exit code 1.")
    _record(p)
    p = verb("del", "delete one record (deleting a missing one is not an error)")
    _record(p)
    p = verb("multi_set", "write several sort keys of one hash key at once (one atomic write)")
    p.add_argument("table", help="the table's name")
    p.add_argument("hash_key", help="the hash key (bytes as typed)")
    p.add_argument("pairs", nargs="+", metavar="SORT_KEY=VALUE", help="the records to write")
    p.add_argument("--ttl", type=int, default=None, help="seconds to live (none: forever)")
    p = verb("multi_get", "read the sort keys of one hash key, with their values")
    p.add_argument("table", help="the table's name")
    p.add_argument("hash_key", help="the hash key (bytes as typed)")
    p.add_argument("sort_keys", nargs="*", help="the sort keys to read (none: all of them)")
    p = verb("scan", "print a table's records, up to --limit")
    p.add_argument("table", help="the table's name")
    p.add_argument("--limit", type=int, default=100, help="at most this many records")
    p = verb(
        "count",
        "count a table's records",
        "If a partition cannot answer (its node is down), prints the partial count, says so, lists "
        "the unavailable partitions on stderr and exits with 3.",
    )
    p.add_argument("table", help="the table's name")
    _data_verbs(verb)
    p = verb("checkpoint", "checkpoint every partition of a table: decree, milliseconds and bytes of each")
    p.add_argument("table", help="the table's name")
    p = verb("compact", "manual compaction of a table, in the low-priority lane; waits for it to end")
    p.add_argument("table", help="the table's name")

    backup_parsers(verb)
    serve_cli.add_parser(sub)
    sub.choices["serve"].formatter_class = _Formatter
    sub.choices["serve"].description = sub.choices["serve"].description or (
        "serve the cluster of --cluster DIR over gRPC until SIGTERM/SIGINT"
    )

    p = verb(
        "add_dup",
        "duplicate a table to another cluster (pegasus://HOST:PORT or a directory), with copy progress",
        "Waits until the duplication ships its log (DS_LOG) or --timeout. One that fails before "
        "is removed again (nothing is left behind), and the error names the flag that fixes it "
        "when one does.",
    )
    p.add_argument("table", help="the table to duplicate")
    p.add_argument("remote", help="the follower: pegasus://HOST:PORT, zk://HOST:PORT/CHROOT or a directory")
    p.add_argument("--remote-table", help="the table's name on the remote (default: the same name)")
    p.add_argument(
        "--no-checkpoint", action="store_true", help="ship only the log from now, no checkpoint copy"
    )
    p.add_argument(
        "--fail-mode", default="slow", choices=["slow", "skip", "fast"], help="what a failed shipment does"
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the copy")
    p.add_argument(
        "--remote-token-file",
        help="a file holding the follower's token, which the duplication shows it (kept with the "
        "duplication). With --connect it is the only token the source server shows the follower: "
        "never its own, nor your $PEGASUS_FAST_TOKEN. With --cluster, else $PEGASUS_FAST_TOKEN",
    )
    p.add_argument(
        "--accept-gap",
        action="store_true",
        help="with --no-checkpoint: ship from now on even into a follower that missed writes "
        "(else refused, saying how many decrees it lacks)",
    )
    p.add_argument("--no-progress", action="store_true", help="no per-partition copy progress on stderr")
    verb(
        "nodes",
        "a multi-node cluster's nodes and what each owns (--connect zk://)",
        "Live nodes with their URL; a node that owns partitions but is not live is listed as dead, "
        "with the partitions it held (unavailable until it is back with its disk).",
    )
    p = verb(
        "move",
        "move a partition (or one of its replicas) to a node, writes going on (--connect zk://)",
        "A partition already on that node is left as it is. With --from, the replica on that node "
        "moves: one of the partition's secondaries (the new node learns it from the primary, then "
        "takes its place), or its primary.",
    )
    p.add_argument("table", help="the table's name")
    p.add_argument("pidx", type=int, help="the partition's index")
    p.add_argument("node", help="the node id to move it to")
    p.add_argument(
        "--from",
        dest="from_node",
        metavar="NODE",
        help="the node whose replica moves (default: the primary's)",
    )
    verb(
        "balance",
        "move partitions until every live node owns an even share of primaries and replicas (--connect zk://)",
        "A partition whose node is dead cannot be moved (its data is on that disk): it is reported, "
        "and the exit code is 3.",
    )
    p = verb("query_dup", "a table's duplications (-d: per partition)")
    p.add_argument("table", help="the table's name")
    p.add_argument(
        "-d", "--detail", action="store_true", help="also each duplication's progress per partition"
    )
    for name, what in (
        ("pause_dup", "pause a duplication"),
        ("start_dup", "resume a paused duplication"),
        ("remove_dup", "remove a duplication"),
    ):
        p = verb(name, what)
        p.add_argument("table", help="the duplicated table")
        p.add_argument("dupid", type=int, help="the duplication's id (query_dup shows it)")
    p = verb(
        "verify_dup",
        "compare a duplication's follower with its source, live (docs/verify.md)",
        "Exit 0: equal; 1: they differ (each partition's first differing key is shown); 3: a "
        "master-master table found no quiet moment to compare at.",
    )
    p.add_argument("table", help="the duplicated table")
    p.add_argument("dupid", type=int, help="the duplication's id (query_dup shows it)")
    p.add_argument(
        "--timeout", type=float, default=60.0, help="how long a follower partition may take to catch up (s)"
    )
    p = verb(
        "update_dup",
        "change a running duplication's token for its remote; it resumes where it was",
        "The token is read from the file (mode 0600 or stricter), kept with the duplication, never shown.",
    )
    p.add_argument("table", help="the duplicated table")
    p.add_argument("dupid", type=int, help="the duplication's id (query_dup shows it)")
    p.add_argument("--remote-token-file", required=True, help="the token the remote wants now (a file, 0600)")
    role_verbs.add_parsers(verb)
    for p in sub.choices.values():
        _globals(p, argparse.SUPPRESS)
    return ap


def verb_parser(ap: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The sub-parser of one verb of ``ap``."""
    for action in ap._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]  # type: ignore[no-any-return]
    raise KeyError(name)


def given(argv: list[str] | None) -> set[str]:
    """The dests of the options given on this command line (not a default): every default of a
    fresh parser suppressed, what is left in the namespace was typed."""
    ap = parser()
    parsers = [ap] + [
        p for a in ap._actions if isinstance(a, argparse._SubParsersAction) for p in a.choices.values()
    ]
    for p in parsers:
        for action in p._actions:
            if action.dest != "cmd":
                action.default = argparse.SUPPRESS
    return set(vars(ap.parse_args(argv)))


def _record(p: argparse.ArgumentParser) -> None:
    p.add_argument("table", help="the table's name")
    p.add_argument("hash_key", help="the hash key (bytes as typed)")
    p.add_argument("sort_key", help="the sort key (bytes as typed)")


def _key(verb: Any, name: str, what: str, more: str = "", sort_key: bool = True) -> argparse.ArgumentParser:
    p = verb(name, what, more)
    p.add_argument("table", help="the table's name")
    p.add_argument("hash_key", help="the hash key (bytes as typed)")
    if sort_key:
        p.add_argument("sort_key", help="the sort key (bytes as typed)")
    return p


def _filter_args(p: argparse.ArgumentParser, which: str, short: str, short_pattern: str) -> None:
    key = which.replace("_", "-")
    p.add_argument(
        f"-{short}",
        f"--{key}-filter-type",
        choices=sorted(FILTER_TYPES),
        help=f"keep the records whose {which} matches the pattern here (none: all)",
    )
    p.add_argument(f"-{short_pattern}", f"--{key}-filter-pattern", help=f"the {which} filter's pattern")


def _range_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("start_sort_key", nargs="?", default="", help="where the range starts ('': the first)")
    p.add_argument("stop_sort_key", nargs="?", default="", help="where it stops ('': to the last)")
    p.add_argument("-a", "--start-exclusive", action="store_true", help="leave the start key out")
    p.add_argument("-b", "--stop-inclusive", action="store_true", help="take the stop key in")
    _filter_args(p, "sort_key", "s", "y")
    p.add_argument("-n", "--max-count", type=int, default=None, help="at most this many records (none: all)")
    p.add_argument("-i", "--no-value", action="store_true", help="sort keys without values")


def _check_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("check_sort_key", help="the sort key whose value is checked")
    p.add_argument("check_type", choices=list(CHECK_TYPES), metavar="CHECK_TYPE", help=", ".join(CHECK_TYPES))
    p.add_argument("check_operand", nargs="?", default="", help="what the check compares the value with")
    p.add_argument("-r", "--return-check-value", action="store_true", help="also print the checked value")
    p.add_argument("--ttl", type=int, default=None, help="seconds to live of what is set (none: forever)")


FAILED_CHECK = "A failed check prints `failed` and exits with 1."


def _data_verbs(verb: Any) -> None:
    """The verbs of data_verbs.py."""
    _key(verb, "exist", "whether a record exists", "Prints True, or False with exit code 1.")
    _key(verb, "ttl", "a record's seconds to live", "`no TTL`, or `(not found)` with exit code 1.")
    _key(verb, "sortkey_count", "count the sort keys of one hash key", sort_key=False)
    p = _key(
        verb, "incr", "add to a record's int64 value, printing the new one", "A missing record counts as 0."
    )
    p.add_argument(
        "increment", nargs="?", type=int, default=1, help="what to add (may be negative, after --)"
    )
    p.add_argument("--ttl", type=int, default=None, help="seconds to live: 0 clears the TTL; none keeps it")
    p = _key(
        verb, "check_and_set", "set a sort key if a check of another passes", FAILED_CHECK, sort_key=False
    )
    _check_args(p)
    p.add_argument("set_sort_key", help="the sort key to set")
    p.add_argument("set_value", help="its new value")
    p = _key(
        verb,
        "check_and_mutate",
        "--set/--del sort keys together if a check passes",
        FAILED_CHECK,
        sort_key=False,
    )
    _check_args(p)
    p.add_argument(
        "--set",
        dest="mutations",
        action="append",
        type=lambda t: ("set", t),
        default=[],
        metavar="SORT_KEY=VALUE",
        help="a sort key to set (repeatable)",
    )
    p.add_argument(
        "--del",
        dest="mutations",
        action="append",
        type=lambda t: ("del", t),
        metavar="SORT_KEY",
        help="a sort key to delete (repeatable)",
    )
    p = _key(verb, "multi_get_range", "records of a sort-key range of one hash key", sort_key=False)
    _range_args(p)
    p.add_argument("-r", "--reverse", action="store_true", help="from the last down")
    _key(verb, "multi_get_sortkeys", "the sort keys of one hash key", sort_key=False)
    p = _key(verb, "hash_scan", "scan a sort-key range of one hash key", sort_key=False)
    _range_args(p)
    p = verb("full_scan", "scan a table's records, with filters")
    p.add_argument("table", help="the table's name")
    _filter_args(p, "hash_key", "x", "z")
    _filter_args(p, "sort_key", "s", "y")
    p.add_argument("-n", "--max-count", type=int, default=None, help="at most this many records (none: all)")
    p.add_argument("-i", "--no-value", action="store_true", help="keys without values")


__all__ = ["EPILOG", "given", "parser", "verb_parser"]
