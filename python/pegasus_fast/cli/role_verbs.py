"""The verbs of table roles and switchover (issue #21 §2, §3): switchover, set_app_envs,
del_app_envs; and how a table's role reads in ls -d and app."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import InvalidArgumentError


def role_text(info: Any) -> str:
    """A table's role as ls -d and app show it ("-" where the cluster says nothing of roles)."""
    role = getattr(info, "role", None)
    return "-" if role is None else role.describe()


def switchover(c: Any, args: argparse.Namespace) -> None:
    d = c.duplication(args.dupid)
    if d.table_name != args.table:
        raise InvalidArgumentError(f"duplication {args.dupid} is not of table {args.table}")
    kwargs: dict[str, Any] = {"timeout": args.timeout}
    if args.reverse_remote:
        kwargs["reverse_remote"] = args.reverse_remote
    r = d.switchover(**kwargs)
    print(
        f"table {r.table}: switched over to {r.new_primary}; write unavailable "
        f"{r.write_unavailable_ms:.1f} ms (catch-up {r.catch_up_ms:.1f} ms), rpo_mutations "
        f"{r.rpo_mutations}; duplication {r.old_dupid} removed, the new primary duplicates back "
        f"as {r.new_dupid}"
    )


def _pairs(specs: list[str]) -> dict[str, str]:
    out = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not key:
            raise InvalidArgumentError(f"an env is KEY=VALUE, not {spec!r}")
        out[key] = value
    return out


def set_app_envs(c: Any, args: argparse.Namespace) -> None:
    info = c.set_table_envs(args.table, _pairs(args.envs))
    print(f"table {args.table}: role {role_text(info)}")


def del_app_envs(c: Any, args: argparse.Namespace) -> None:
    info = c.set_table_envs(args.table, {}, delete=tuple(args.keys))
    print(f"table {args.table}: role {role_text(info)}")


def add_parsers(verb: Any) -> None:
    p = verb(
        "switchover",
        "hand a table's writes to its duplication's follower, nothing lost (docs/switchover.md)",
        "The source is fenced (writes get TableMovedError), the follower confirms its last decree, "
        "takes client writes and duplicates back; a switchover that cannot finish unfences the source.",
    )
    p.add_argument("table", help="the duplicated table")
    p.add_argument("dupid", type=int, help="the duplication's id (query_dup shows it)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the follower")
    p.add_argument(
        "--reverse-remote", help="how the follower reaches this cluster (default: the --connect URL)"
    )
    p = verb("set_app_envs", "set table envs (duplication.follower_writable=true, ...)")
    p.add_argument("table", help="the table's name")
    p.add_argument("envs", nargs="+", metavar="KEY=VALUE", help="the envs to set")
    p = verb("del_app_envs", "delete table envs")
    p.add_argument("table", help="the table's name")
    p.add_argument("keys", nargs="+", metavar="KEY", help="the envs to delete")


ROLE_VERBS = {"switchover": switchover, "set_app_envs": set_app_envs, "del_app_envs": del_app_envs}

__all__ = ["ROLE_VERBS", "add_parsers", "role_text"]
