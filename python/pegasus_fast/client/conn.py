"""One connection to a served cluster or node: its channel, stubs, token and deadline.

Calls raise the typed errors the server raised (net/wire.py); a closed
connection raises ClosedError before anything is sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from ..errors import ClosedError
from ..net import pegasus_fast_pb2_grpc as rpc
from ..net.wire import Address, auth_metadata, call, open_channel, replies

#: a call without a timeout of its own gives up after this long
DEFAULT_TIMEOUT = 30.0


class Conn:
    def __init__(self, url: str, channel: grpc.Channel, token: str | None, timeout: float) -> None:
        """Calls over ``channel`` (the caller's: :meth:`open` makes one of its own)."""
        self.url = url
        self.timeout = timeout
        self.channel = channel
        self.stub = rpc.ClientStub(channel)
        self.meta = rpc.MetaStub(channel)
        self.md = auth_metadata(token)
        self.closed = False

    @classmethod
    def open(cls, addr: Address, token: str | None, timeout: float, tls: dict[str, str | None]) -> Conn:
        """A connection over a channel of its own, which :meth:`close` closes."""
        return cls(addr.url, open_channel(addr, **tls), token, timeout)

    def close(self) -> None:
        self.closed = True
        self.channel.close()

    def __call__(self, method: str, request: object, timeout: float | None = None) -> Any:
        if self.closed:
            raise ClosedError(f"the connection to {self.url} is closed")
        fn = getattr(self.stub, method)
        return call(self.url, fn, request, timeout=timeout or self.timeout, metadata=self.md)

    def meta_call(self, method: str, request: object, timeout: float) -> Any:
        """A call of the Meta service (a node of a multi-node cluster)."""
        if self.closed:
            raise ClosedError(f"the connection to {self.url} is closed")
        return call(self.url, getattr(self.meta, method), request, timeout=timeout, metadata=self.md)

    def stream(self, method: str, request: object) -> Iterator[Any]:
        if self.closed:
            raise ClosedError(f"the connection to {self.url} is closed")
        stream = getattr(self.stub, method)(request, metadata=self.md)
        yield from replies(self.url, stream)


__all__ = ["DEFAULT_TIMEOUT", "Conn"]
