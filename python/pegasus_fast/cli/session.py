"""The cluster a verb runs over: opened from ``--cluster DIR`` (with the embedded remotes of its
duplications, so they catch up meanwhile) or connected to with ``--connect URL``."""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

from ..client.network import Network
from ..duplication import DupStatus
from ..engine.cluster import Cluster
from ..engine.local_follower import open_cluster_at
from ..errors import ClusterLockedError, InvalidArgumentError


@contextlib.contextmanager
def opened(args: argparse.Namespace) -> Iterator[Any]:
    """The cluster, plus the embedded remotes of its duplications so they catch up meanwhile;
    with --connect, the served cluster."""
    if args.connect:
        if args.cluster:
            raise InvalidArgumentError("give --cluster DIR or --connect URL, not both")
        from ..client.connect import connect

        extra = {"zk_auth_file": args.zk_auth_file} if args.connect.startswith("zk://") else {}
        with connect(args.connect, **extra) as rc:
            yield rc
        return
    if not args.cluster:
        raise InvalidArgumentError("--cluster DIR or --connect URL is required for this command")
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
        settle(c)
    finally:
        c.close()
        for r in remotes:
            r.close()


def settle(c: Cluster, timeout: float = 5.0) -> None:
    """Let shipping duplications drain before the process exits."""
    deadline = time.monotonic() + timeout
    for d in c.duplications():
        while d.status == DupStatus.LOG and time.monotonic() < deadline:
            if all(p.pending_mutations == 0 for p in d.progress()):
                break
            time.sleep(0.01)


__all__ = ["opened", "settle"]
