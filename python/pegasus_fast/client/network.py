"""The network an embedded cluster reaches its served remotes through (engine/remotes.Network).

``pegasus://`` URLs go to a served cluster over gRPC, ``zk://`` ones to a cluster of
several nodes through ZooKeeper. Neither grpc nor kazoo is imported until a remote
of that kind is first used: an embedded user who never names one does not load them.
"""

from __future__ import annotations

import threading
from typing import Any

from ..duplication.ports import Follower, SourceId
from ..errors import InvalidArgumentError, RemoteUnavailableError


class Network:
    """``env_token=False`` (a served cluster): a remote given no token is shown none, never this
    process's $PEGASUS_FAST_TOKEN (net/follower.py).

    ``remote_tokens``: remote URL -> the token configured for it (``serve --remote-token-file
    URL=FILE``), shown to that remote (the URL as a duplication records it: the same host, port
    and, for zk://, chroot) by a duplication given no ``remote_token`` of its own; any other
    remote is shown no token from it."""

    def __init__(self, env_token: bool = True, remote_tokens: dict[str, str] | None = None) -> None:
        self._env_token = env_token
        self._remote_tokens = {self.canonical(url): t for url, t in (remote_tokens or {}).items()}
        self._lock = threading.Lock()
        self._served: Any = None
        self._routed: Any = None
        self._closed = False

    def canonical(self, url: str) -> str:
        if url.startswith("pegasus://"):
            from ..net import wire

            return wire.parse_url(url).url
        if url.startswith("zk://"):
            from ..coord.zk import parse_zk

            return parse_zk(url).url
        raise InvalidArgumentError(f"a remote URL starts with pegasus:// or zk://: {url!r}")

    def _served_connector(self, url: str) -> Any:
        from ..net.follower import RemoteConnector

        with self._lock:
            if self._closed:
                raise RemoteUnavailableError(url, "the cluster is closing")
            if self._served is None:
                self._served = RemoteConnector(self._env_token)
            return self._served

    def token_for(self, url: str) -> str | None:
        """The token configured for the remote at ``url``, if any."""
        if not self._remote_tokens:
            return None
        return self._remote_tokens.get(self.canonical(url))

    def connect(self, url: str, token: str | None = None, source: SourceId | None = None) -> Follower:
        if token is None:
            token = self.token_for(url)
        served = self._served_connector(url)
        if not url.startswith("zk://"):
            return served.connect(url, token, source)
        with self._lock:
            if self._routed is None:
                from ..multinode.routed_follower import RoutedConnector

                self._routed = RoutedConnector(served)
            routed = self._routed
        return routed.connect(url, token, source)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            served, routed = self._served, self._routed
        if served is not None:
            served.close()
        if routed is not None:
            routed.close()


__all__ = ["Network"]
