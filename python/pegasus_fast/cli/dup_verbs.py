"""``add_dup``: add a duplication and wait for it to ship its log; one that fails before that is
removed again, so nothing is left to find and remove by hand, and the error says what to change
(the flag that fixes it) when that is known."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from typing import Any

from ..duplication.status import STUCK_AUTH, STUCK_PERMISSION
from ..engine.cluster import Cluster
from ..engine.local_follower import open_cluster_at
from ..errors import (
    FIX_MARK,
    AddDuplicationFailedError,
    DuplicationStuckError,
    InvalidArgumentError,
    fix_of,
    with_fix,
)
from ..net import wire
from ..net.follower import token_advice
from .progress import wait_for_log
from .session import settle

#: the fix of an add_dup that ran out of time
TIMEOUT_FIX = (
    "add_dup --timeout SECONDS, longer (a large checkpoint copy takes time; the partitions' "
    "reasons above say what held it, a remote down or unreachable among them)"
)


def add_dup(c: Any, args: argparse.Namespace, print_progress: Any) -> None:
    token = None
    if args.remote_token_file:
        token = wire.read_token_file(args.remote_token_file)
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
            **({"accept_gap": True} if args.accept_gap else {}),
        )
        start = time.perf_counter()
        try:
            wait_for_log(d, args.timeout, show=not args.no_progress, give_up=lambda: _setup_fatal(d))
        except BaseException as exc:
            raise _undo(d, exc) from exc
        print(f"duplication {d.dupid}: {d.status} in {(time.perf_counter() - start) * 1000:.1f} ms")
        print_progress(d)
        if isinstance(c, Cluster):
            settle(c)
    finally:
        if isinstance(remote, Cluster) and remote is not c:
            remote.close()


def _undo(d: Any, exc: BaseException) -> BaseException:
    """Remove a duplication that did not reach DS_LOG; the error to raise in ``exc``'s place."""
    try:
        status = str(d.status)
    except Exception:  # noqa: BLE001 - the source itself may be what failed
        status = "an unknown state"
    removed = False
    with contextlib.suppress(Exception):
        d.remove()
        removed = True
    if isinstance(exc, KeyboardInterrupt):
        if removed:
            print(f"pegasus-fast: duplication {d.dupid} removed", file=sys.stderr)
        return exc
    cause = exc.__cause__ if isinstance(exc.__cause__, Exception) and fix_of(exc.__cause__) else exc
    fix = (
        fix_of(cause)
        or fix_of(exc)
        or _stuck_fix(exc, d.remote)
        or (TIMEOUT_FIX if isinstance(exc, TimeoutError) else "")
    )
    text = str(exc).split(FIX_MARK)[0]
    err = AddDuplicationFailedError(d.dupid, d.table_name, d.remote, status, text, removed)
    return with_fix(err, fix) if fix else err


def _setup_fatal(d: Any) -> str | None:
    """A duplication being added that the remote refuses (its token) will not get past that by
    waiting: add_dup gives up at once (a running one keeps trying, stuck, until updated)."""
    reason = d.stuck_reason
    return reason if reason in (STUCK_AUTH, STUCK_PERMISSION) else None


def _stuck_fix(exc: BaseException, remote: str) -> str:
    if not isinstance(exc, DuplicationStuckError) or exc.reason not in (STUCK_AUTH, STUCK_PERMISSION):
        return ""
    # whether the duplication showed a token is the source's to know, not this client's
    return token_advice(remote, None, exc.reason == STUCK_PERMISSION)


def update_dup(c: Any, args: argparse.Namespace) -> None:
    """update_dup: the token a running duplication presents to its remote, from a 0600 file."""
    token = wire.read_token_file(args.remote_token_file)
    d = c.duplication(args.dupid)
    if d.table_name != args.table:
        raise InvalidArgumentError(f"duplication {args.dupid} is not of table {args.table}")
    d.update(remote_token=token)
    print(f"duplication {d.dupid}: {d.status}, token updated")


__all__ = ["TIMEOUT_FIX", "add_dup", "update_dup"]
