"""How an embedded cluster finds a duplication's follower (duplication's Connector port).

An embedded remote is a cluster open in this process, found by its path. A remote
behind a URL (``pegasus://``, ``zk://``) needs the network, which the engine does
not import (DESIGN.md §10). Whoever opens the cluster passes it in: ``pf.Cluster.open``
gives the package's (``client/network.py``, which imports grpc or kazoo only when
such a remote is first used), and a cluster opened without one refuses URLs.
"""

from __future__ import annotations

from typing import Protocol

from ..duplication.ports import Follower, SourceId
from ..errors import InvalidArgumentError
from .local_follower import LocalConnector


class Network(Protocol):
    """Remotes behind a URL."""

    def canonical(self, url: str) -> str:
        """The URL in the one form a duplication records; InvalidArgumentError if it is none."""

    def connect(self, url: str, token: str | None = None, source: SourceId | None = None) -> Follower:
        """``token``: what the remote is shown (None: the process's PEGASUS_FAST_TOKEN);
        ``source``: the duplication calling (each call names it)."""

    def close(self) -> None:
        """End every connection; none is made after this."""


def is_url(remote: object) -> bool:
    return isinstance(remote, str) and "://" in remote


class Remotes:
    """duplication's Connector: embedded remotes by path, the others through the network."""

    def __init__(self, network: Network | None) -> None:
        self.local = LocalConnector()
        self.network = network

    def _network(self, url: str) -> Network:
        if self.network is None:
            raise InvalidArgumentError(
                f"{url!r} is reached over the network, and this cluster was opened without one "
                "(pegasus_fast.Cluster.open gives it one)"
            )
        return self.network

    def canonical(self, url: str) -> str:
        return self._network(url).canonical(url)

    def connect(self, remote: str, token: str | None = None, source: SourceId | None = None) -> Follower:
        if is_url(remote):
            return self._network(remote).connect(remote, token, source)
        return self.local.connect(remote)

    def close(self) -> None:
        if self.network is not None:
            self.network.close()


__all__ = ["Network", "Remotes", "is_url"]
