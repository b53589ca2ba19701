"""What the objects of one ``zk://`` client share: the cluster's :class:`Routes` (multinode/routes.py),
one connection per node (net/channels.py), and whether the client is closed."""

from __future__ import annotations

from typing import Any

from kazoo.client import KazooClient

from ..coord.layout import TableConfig
from ..errors import ClosedError, NotLeaderError
from ..multinode.routes import Routes
from ..net.channels import Channels
from .conn import Conn


class Routing:
    def __init__(
        self, zk: KazooClient, spec: str, token: str | None, timeout: float, tls: dict[str, str | None]
    ) -> None:
        self.routes = Routes(zk, spec)
        self.routes.refresh_nodes()
        self.spec = spec
        self.closed = False
        self._conns: Channels[Conn] = Channels(lambda url, channel: Conn(url, channel, token, timeout), tls)

    def check_open(self) -> None:
        if self.closed:
            raise ClosedError(f"the connection to {self.spec} is closed")

    def conn(self, url: str) -> Conn:
        return self._conns.get(url)

    def table(self, name: str, fresh: bool = False) -> TableConfig:
        return self.routes.table(name, fresh)

    def leader(self) -> Conn:
        url = self.routes.leader_url()
        if url is None:
            raise NotLeaderError("", None)
        return self.conn(url)

    def meta(self, method: str, request: object, timeout: float = 3600.0) -> Any:
        """A call of the Meta service, on the leader (placement is the meta leader's)."""
        self.check_open()
        return self.leader().meta_call(method, request, timeout)

    def close(self) -> None:
        self.closed = True
        for c in self._conns.kept():
            c.closed = True
        self._conns.close()


__all__ = ["Routing"]
