"""The shell verbs of Pegasus's data API beyond get/set (issue #18), one function each, over an
open cluster (embedded, served or multi-node): exist, ttl, sortkey_count, incr,
check_and_set, check_and_mutate, multi_get_range, multi_get_sortkeys, hash_scan, full_scan.
Their arguments are parser.py's."""

from __future__ import annotations

import argparse
import itertools
import os
from collections.abc import Iterable
from typing import Any

from ..data_api import CheckType, FilterType, Mutation
from ..errors import InvalidArgumentError
from .exits import EXIT_NOT_FOUND
from .format import table

#: the filter types the command line names (Pegasus shell's ``anywhere|prefix|postfix``)
FILTER_TYPES = {
    "anywhere": FilterType.MATCH_ANYWHERE,
    "prefix": FilterType.MATCH_PREFIX,
    "postfix": FilterType.MATCH_POSTFIX,
}
#: the check types the command line names: CheckType's, lower case (Pegasus's without ``ct_``)
CHECK_TYPES = {c.name.lower(): c for c in CheckType}


def _arg(text: str) -> bytes:
    return os.fsencode(text)  # as verbs.py: the bytes the user typed


def _filter(kind: str | None, pattern: str | None) -> tuple[FilterType, bytes] | None:
    if kind is None:
        if pattern is not None:
            raise InvalidArgumentError("a filter pattern needs its filter type")
        return None
    return FILTER_TYPES[kind], _arg(pattern or "")


def _records(rows: Iterable[tuple[bytes, bytes, bytes]], max_count: int | None) -> None:
    got = list(itertools.islice(rows, max_count))
    print(table(["hash_key", "sort_key", "value"], got))
    print(f"{len(got)} records")


def exist(c: Any, args: argparse.Namespace) -> int:
    there = c.table(args.table).exist(_arg(args.hash_key), _arg(args.sort_key))
    print(there)
    return 0 if there else EXIT_NOT_FOUND


def ttl(c: Any, args: argparse.Namespace) -> int:
    left = c.table(args.table).ttl(_arg(args.hash_key), _arg(args.sort_key))
    print("(not found)" if left is None else "no TTL" if left == -1 else left)
    return EXIT_NOT_FOUND if left is None else 0


def sortkey_count(c: Any, args: argparse.Namespace) -> None:
    print(c.table(args.table).sort_key_count(_arg(args.hash_key)))


def incr(c: Any, args: argparse.Namespace) -> None:
    print(c.table(args.table).incr(_arg(args.hash_key), _arg(args.sort_key), args.increment, args.ttl))


def _check_result(what: str, succeed: bool, returned: bool, exists: bool, value: bytes | None) -> int:
    print(f"{what} {'succeed' if succeed else 'failed'}")
    if returned:
        print(table(["check_value_exist", "check_value"], [(exists, b"" if value is None else value)]))
    return 0 if succeed else EXIT_NOT_FOUND


def check_and_set(c: Any, args: argparse.Namespace) -> int:
    res = c.table(args.table).check_and_set(
        _arg(args.hash_key),
        _arg(args.check_sort_key),
        CHECK_TYPES[args.check_type],
        _arg(args.check_operand),
        _arg(args.set_sort_key),
        _arg(args.set_value),
        args.ttl,
        args.return_check_value,
    )
    return _check_result("set", *res)


def check_and_mutate(c: Any, args: argparse.Namespace) -> int:
    muts = []
    for op, text in args.mutations:
        if op == "set":
            sk, eq, value = text.partition("=")
            if not eq:
                raise InvalidArgumentError(f"expected SORT_KEY=VALUE after --set, got {text!r}")
            muts.append(Mutation.set(_arg(sk), _arg(value), args.ttl))
        else:
            muts.append(Mutation.delete(_arg(text)))
    if not muts:
        raise InvalidArgumentError("check_and_mutate needs at least one --set or --del")
    res = c.table(args.table).check_and_mutate(
        _arg(args.hash_key),
        _arg(args.check_sort_key),
        CHECK_TYPES[args.check_type],
        _arg(args.check_operand),
        muts,
        args.return_check_value,
    )
    return _check_result("mutate", *res)


def _range(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "start_sort_key": _arg(args.start_sort_key),
        "stop_sort_key": _arg(args.stop_sort_key),
        "start_inclusive": not args.start_exclusive,
        "stop_inclusive": args.stop_inclusive,
        "sort_key_filter": _filter(args.sort_key_filter_type, args.sort_key_filter_pattern),
        "no_value": args.no_value,
    }


def multi_get_range(c: Any, args: argparse.Namespace) -> None:
    got = c.table(args.table).multi_get(
        _arg(args.hash_key), max_kv_count=args.max_count, reverse=args.reverse, **_range(args)
    )
    print(table(["sort_key", "value"], list(got.items())))
    print(f"{len(got)} records{'' if got.complete else ' (incomplete: more in the range)'}")


def multi_get_sortkeys(c: Any, args: argparse.Namespace) -> None:
    got = c.table(args.table).multi_get(_arg(args.hash_key), no_value=True)
    print(table(["sort_key"], [(sk,) for sk in got]))
    print(f"{len(got)} sort keys")


def hash_scan(c: Any, args: argparse.Namespace) -> None:
    scanner = c.table(args.table).get_scanner(_arg(args.hash_key), **_range(args))
    _records(scanner, args.max_count)


def full_scan(c: Any, args: argparse.Namespace) -> None:
    records = c.table(args.table).scan(
        hash_key_filter=_filter(args.hash_key_filter_type, args.hash_key_filter_pattern),
        sort_key_filter=_filter(args.sort_key_filter_type, args.sort_key_filter_pattern),
        no_value=args.no_value,
    )
    _records(records, args.max_count)


DATA_VERBS = {
    "exist": exist,
    "ttl": ttl,
    "sortkey_count": sortkey_count,
    "incr": incr,
    "check_and_set": check_and_set,
    "check_and_mutate": check_and_mutate,
    "multi_get_range": multi_get_range,
    "multi_get_sortkeys": multi_get_sortkeys,
    "hash_scan": hash_scan,
    "full_scan": full_scan,
}


__all__ = ["CHECK_TYPES", "DATA_VERBS", "FILTER_TYPES"]
