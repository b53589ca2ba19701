"""A channel to another node of a multi-node cluster, with its Client, Node, Meta and Follower stubs.

Calls raise the typed errors of :mod:`pegasus_fast.errors` (wire.py); the
token and TLS files are the process's own (a node reaches its peers as its
clients reach it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from ..errors import ClosedError
from . import pegasus_fast_pb2_grpc as rpc
from .channels import Channels
from .wire import auth_metadata, call, open_channel, parse_url, replies, tls_from_env, token_from_env

#: the default deadline of one call to a peer
PEER_TIMEOUT = 30.0


class Peer:
    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = PEER_TIMEOUT,
        channel: grpc.Channel | None = None,
    ) -> None:
        """``channel``: one kept by a :class:`Peers` (else the peer opens its own, and closes it)."""
        addr = parse_url(url)
        self.url = addr.url
        self.timeout = timeout
        self._owns_channel = channel is None
        self.channel = channel if channel is not None else open_channel(addr, **tls_from_env())
        self.client = rpc.ClientStub(self.channel)
        self.node = rpc.NodeStub(self.channel)
        self.meta = rpc.MetaStub(self.channel)
        self.follower = rpc.FollowerStub(self.channel)
        self.md = auth_metadata(token if token is not None else token_from_env())
        self.closed = False

    def __call__(self, stub: Any, method: str, request: object, timeout: float | None = None) -> Any:
        if self.closed:
            raise ClosedError(f"the connection to {self.url} is closed")
        return call(
            self.url, getattr(stub, method), request, timeout=timeout or self.timeout, metadata=self.md
        )

    def stream(self, stub: Any, method: str, request: object) -> Iterator[Any]:
        if self.closed:
            raise ClosedError(f"the connection to {self.url} is closed")
        stream = getattr(stub, method)(request, metadata=self.md)
        yield from replies(self.url, stream)

    def close(self) -> None:
        self.closed = True
        if self._owns_channel:
            self.channel.close()


class Peers:
    """One :class:`Peer` per URL, made on first use and kept, over one channel each (channels.py)."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self._peers: Channels[Peer] = Channels(lambda url, channel: Peer(url, token, channel=channel))

    def get(self, url: str) -> Peer:
        return self._peers.get(url)

    def close(self) -> None:
        for p in self._peers.kept():
            p.closed = True
        self._peers.close()


__all__ = ["PEER_TIMEOUT", "Peer", "Peers"]
