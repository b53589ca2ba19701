"""The follower's half of a switchover (docs/switchover.md): take the table over from its
source once it holds every decree the fenced source wrote, nothing lost.

Order matters. The reverse duplication (this table back to the old source, no checkpoint) is
added while client writes are still refused: it starts after the decrees each partition has
now, so every client write the table takes afterwards is shipped back. Only then does the
table stop being a follower (persisted) and take client writes.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ..duplication.ports import SourceId
from ..errors import (
    DuplicationError,
    PegasusFastError,
    RemoteUnavailableError,
    SwitchoverError,
    TableNotFoundError,
)
from .local_follower import same_source
from .open_clusters import open_cluster_at
from .remotes import is_url
from .roles import MOVED_TO_ENV

#: how long the take-over tries to reach the old source back before it gives up (nothing changed)
BACK_CHECK_SECONDS = 3.0

#: the embedded cluster (engine/cluster.py), which calls in here: typed loosely, not imported back
Cluster = Any


def _held(cluster: Cluster, table: str) -> dict[int, int]:
    """The source decree each partition holds durably."""
    return {p.pidx: max(p.source_decree, p.source_seen) for p in cluster.table(table).partitions}


def _back_to(cluster: Cluster, table: str, back_remote: str) -> list[int]:
    """Live duplications of ``table`` to ``back_remote`` (a repeated take-over finds its own)."""
    target = cluster.remotes.canonical(back_remote) if is_url(back_remote) else os.path.realpath(back_remote)
    return [d.dupid for d in cluster.duplications(table) if d.remote == target and d.error is None]


def check_held(table: str, dupid: int, decrees: dict[int, int], held: dict[int, int], learned: bool) -> None:
    """SwitchoverError unless the follower has learned and each partition holds the source's
    fenced decree (``held``: each partition's source decree on the follower)."""
    behind = {i: d for i, d in decrees.items() if held.get(i, -1) < d}
    if behind or not learned:
        raise SwitchoverError(
            table,
            dupid,
            "take_over",
            f"partitions {sorted(behind)} hold fewer source decrees than the source wrote"
            if behind
            else "the follower is still learning",
        )


def check_back(cluster: Cluster, table: str, source: SourceId, back_remote: str, token: str | None) -> None:
    """The old source must be reachable back (its address, its token) before anything changes
    here: a take-over whose reverse duplication could never connect would leave it following no
    one. ``cluster``: what reaches it (its ``remotes``; a node's, for a multi-node follower)."""
    deadline = time.monotonic() + BACK_CHECK_SECONDS
    while True:
        try:
            uid = cluster.remotes.connect(back_remote, token).identity()[1]
            break
        except RemoteUnavailableError as exc:
            # a first connection under load can miss its handshake deadline: try again a while
            if time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            raise SwitchoverError(
                table, source.dupid, "take_over", f"the old source cannot be reached at {back_remote}: {exc}"
            ) from exc
        except PegasusFastError as exc:  # its token refused, say: no retry helps
            raise SwitchoverError(
                table,
                source.dupid,
                "take_over",
                f"the old source refused the way back at {back_remote}: {exc}",
            ) from exc
    if source.cluster_uid and uid != source.cluster_uid:
        raise SwitchoverError(
            table, source.dupid, "take_over", f"{back_remote} is not the cluster switching over"
        )


def take_over(
    cluster: Cluster,
    table: str,
    source: SourceId,
    decrees: dict[int, int],
    back_remote: str,
    back_token: str | None = None,
) -> tuple[int, dict[int, int]]:
    """See duplication/ports.py ``Follower.take_over``."""
    with cluster.switch_lock:
        rec = cluster.followers.record(table)
        if rec is None:
            raise TableNotFoundError(table)
        fo = rec.follower_of
        if fo is None:
            done = _back_to(cluster, table, back_remote)
            if done:  # taken over already: the answer to a retried call
                return done[0], _held(cluster, table)
            raise DuplicationError(f"table {table!r} of cluster {cluster.name!r} follows no one")
        if not same_source(fo.source, source):
            raise DuplicationError(
                f"table {table!r} of cluster {cluster.name!r} follows "
                f"{fo.source.cluster}.{fo.source.table}#{fo.source.dupid}, not this duplication"
            )
        if fo.rerouted:
            raise SwitchoverError(
                table, source.dupid, "take_over", "the follower has another partition count than its source"
            )
        if not is_url(back_remote) and open_cluster_at(os.path.realpath(back_remote)) is None:
            raise SwitchoverError(
                table,
                source.dupid,
                "take_over",
                f"no cluster at {back_remote} is open in the follower's process",
            )
        held = _held(cluster, table)
        check_held(table, source.dupid, decrees, held, all(fo.learned))
        existing = _back_to(cluster, table, back_remote)
        if not existing:
            check_back(cluster, table, source, back_remote, back_token)
        dup = None
        if existing:
            dupid = existing[0]
        else:
            dup = cluster.add_duplication(
                table, back_remote, remote_table=source.table, with_checkpoint=False, remote_token=back_token
            )
            dupid = dup.dupid
        try:
            cluster.followers.promote(table, MOVED_TO_ENV)
        except BaseException:
            if dup is not None:
                dup.remove()
            raise
        return dupid, held


__all__ = ["check_back", "check_held", "take_over"]
