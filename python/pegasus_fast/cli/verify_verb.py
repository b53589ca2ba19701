"""``pegasus-fast verify_dup TABLE DUPID``: compare a duplication's follower with its source,
live (docs/verify.md). Exit 0: equal; 1: they differ; 3: master–master and no quiet moment
(nothing concluded)."""

from __future__ import annotations

import argparse
from typing import Any

from ..duplication.verify_report import RecordState, VerifyReport
from ..engine.cluster import Cluster
from ..engine.local_follower import open_cluster_at
from ..errors import InvalidArgumentError
from ..net import wire
from .exits import EXIT_NOT_FOUND, EXIT_OK, EXIT_UNAVAILABLE
from .format import table


def _text(b: bytes) -> str:
    try:
        text = b.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + b.hex()
    return text if text.isprintable() else "0x" + b.hex()


def _side(s: RecordState | None) -> str:
    if s is None:
        return "absent"
    return repr(_text(s.value)) + (f" expire_ts={s.expire_ts}" if s.expire_ts else " no TTL")


def _verify(c: Any, d: Any, timeout: float) -> VerifyReport:
    """An embedded cluster's duplication to another directory: that cluster is opened alongside
    (as add_dup does), so the duplication reaches it and the follower can be compared."""
    remote = d.remote
    if not isinstance(c, Cluster) or wire.is_url(remote) or remote.startswith("zk://"):
        return d.verify(timeout)
    opened = None if open_cluster_at(remote) is not None else Cluster.open(remote)
    try:
        return d.verify(timeout)
    finally:
        if opened is not None:
            opened.close()


def verify_dup(c: Any, args: argparse.Namespace) -> int:
    d = c.duplication(args.dupid)
    if d.table_name != args.table:
        raise InvalidArgumentError(f"duplication {args.dupid} is not of table {args.table}")
    r = _verify(c, d, args.timeout)
    rows = []
    for p in r.partitions:
        diff = p.first_difference
        where = ""
        if diff is not None:
            key = f"{_text(diff.hash_key)}/{_text(diff.sort_key)}"
            where = f"{key}: source {_side(diff.source)}, follower {_side(diff.follower)}"
        state = "equal" if p.equal else ("not quiet" if not p.quiet else "DIFFER")
        rows.append((p.pidx, state, p.decree, p.records, p.follower_records, where or p.reason))
    print(table(["pidx", "state", "decree", "records", "follower", "first difference"], rows))
    verdict = "equal" if r.equal else ("could not be compared: " + r.reason if not r.quiet else "differ")
    print(f"duplication {d.dupid}: {verdict} ({r.seconds:.2f} s)")
    if r.equal:
        return EXIT_OK
    return EXIT_UNAVAILABLE if not r.quiet else EXIT_NOT_FOUND


__all__ = ["verify_dup"]
