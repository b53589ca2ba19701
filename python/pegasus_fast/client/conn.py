"""One connection to a served cluster or node: its channel, stubs, token and deadline.

Calls raise the typed errors the server raised (net/wire.py); a closed
connection raises ClosedError before anything is sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc

from ..errors import ClosedError
from ..net import pegasus_fast_pb2 as pb
from ..net import pegasus_fast_pb2_grpc as rpc
from ..net.table_roles import refusal, role_from_pb
from ..net.wire import Address, auth_metadata, call, open_channel, parse_hostport, replies

#: a call without a timeout of its own gives up after this long
DEFAULT_TIMEOUT = 30.0
#: how long the role that made a table refuse a write is taken as still holding
REFUSAL_KEPT_SECONDS = 0.02


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
        self._data: Any = None
        self._data_asked = False
        self._data_lock = threading.Lock()
        #: table -> (when, its role) of a write refused lately (see _refusal)
        self._refusals: dict[str, tuple[float, Any]] = {}

    @classmethod
    def open(cls, addr: Address, token: str | None, timeout: float, tls: dict[str, str | None]) -> Conn:
        """A connection over a channel of its own, which :meth:`close` closes."""
        return cls(addr.url, open_channel(addr, **tls), token, timeout)

    def close(self) -> None:
        self.closed = True
        self.channel.close()
        if self._data is not None:
            self._data.close()

    # -- the data port (client/native.py): asked once, None when the server has none ----

    def data(self) -> Any:
        """The server's Pegasus-protocol data plane, or None (its Info names no data port)."""
        if self.closed:
            raise ClosedError(f"the connection to {self.url} is closed")
        if not self._data_asked:
            with self._data_lock:
                if not self._data_asked:
                    target = self("Info", pb.Empty()).pegasus_address
                    if target:
                        from .native import DataPlane

                        host, _, port = target.rpartition(":")
                        if host in ("0.0.0.0", "", "[::]", "::"):
                            # a port on every interface is reached where the gRPC one was
                            host = parse_hostport(self.url.split("://", 1)[-1].rstrip("/")).host
                        self._data = DataPlane(host, int(port), self.timeout, self._refusal)
                    self._data_asked = True
        return self._data

    def _refusal(self, table: str) -> BaseException | None:
        """Why ``table`` refuses client writes, from its role (net/table_roles.py). A refusal is
        kept for a moment: clients retrying a write a new primary does not take yet would
        otherwise ask the server again for every try, while it is busy taking over."""
        now = time.monotonic()
        kept = self._refusals.get(table)
        if kept is not None and now - kept[0] < REFUSAL_KEPT_SECONDS:
            return refusal(table, kept[1])
        role = role_from_pb(self("GetTable", pb.TableRef(table=table)).role)
        exc = refusal(table, role)
        if exc is not None:
            self._refusals[table] = (now, role)
        else:
            self._refusals.pop(table, None)
        return exc

    def check_open(self) -> None:
        if self.closed:
            raise ClosedError(f"the connection to {self.url} is closed")

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
