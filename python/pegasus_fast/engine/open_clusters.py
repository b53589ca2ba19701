"""The clusters open in this process, by real path: embedded duplication remotes find each
other here (engine/local_follower.py), and a duplication waiting for one goes on as it opens."""

from __future__ import annotations

import threading
from typing import Any, Protocol

from .followers import FollowerTables
from .table import Table


class UidHolder(Protocol):
    @property
    def uid(self) -> str: ...


class OpenCluster(Protocol):
    """An embedded cluster, as a duplication's embedded follower uses it (engine/cluster.py)."""

    @property
    def path(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def cluster_id(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    @property
    def followers(self) -> FollowerTables: ...

    def info(self) -> UidHolder: ...

    def table(self, name: str) -> Table: ...

    def take_over(
        self,
        table: str,
        source: Any,
        decrees: dict[int, int],
        back_remote: str,
        back_token: str | None = None,
    ) -> tuple[int, dict[int, int]]: ...

    def wake_duplications_to(self, remote: str) -> None:
        """The cluster at ``remote`` opened: duplications to it go on now."""


_open_clusters: dict[str, OpenCluster] = {}
_open_lock = threading.Lock()


def open_cluster_at(path: str) -> OpenCluster | None:
    with _open_lock:
        return _open_clusters.get(path)


def register(cluster: OpenCluster) -> None:
    """A cluster opened: duplications anywhere in the process waiting for it go on."""
    with _open_lock:
        _open_clusters[cluster.path] = cluster
        others = list(_open_clusters.values())
    for c in others:
        c.wake_duplications_to(cluster.path)


def unregister(cluster: OpenCluster) -> None:
    with _open_lock:
        if _open_clusters.get(cluster.path) is cluster:
            del _open_clusters[cluster.path]


__all__ = ["OpenCluster", "UidHolder", "open_cluster_at", "register", "unregister"]
