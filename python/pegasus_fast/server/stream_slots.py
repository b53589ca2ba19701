"""How many server-side streams (scans) each client of a served cluster has running: bounded
by ``Config.max_streams_per_client``, so one client cannot hold every worker thread.

A client is the host it calls from (``context.peer()`` without its port): a client that
opens more connections is still one client. Clients behind one address share its bound.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..errors import ResourceExhaustedError

#: the resource a stream past the bound reports
STREAMS = "max_streams_per_client"


def client_of(peer: str) -> str:
    """``ipv4:127.0.0.1:5000`` -> ``ipv4:127.0.0.1``; ``ipv6:[::1]:5000`` -> ``ipv6:[::1]``;
    anything else (a unix socket) as it is."""
    kind, sep, rest = peer.partition(":")
    if sep and kind in ("ipv4", "ipv6") and ":" in rest:
        return f"{kind}:{rest.rsplit(':', 1)[0]}"
    return peer


class StreamSlots:
    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self._running: dict[str, int] = {}
        self._lock = threading.Lock()

    def running(self, client: str) -> int:
        return self._running.get(client, 0)

    def take(self, client: str) -> Callable[[], None]:
        """One stream for ``client`` (ResourceExhaustedError past the bound); returns its
        release, which gives it back once however often it is called."""
        with self._lock:
            n = self._running.get(client, 0)
            if n >= self.limit:
                raise ResourceExhaustedError(STREAMS, self.limit, n + 1)
            self._running[client] = n + 1
        done = threading.Lock()

        def release() -> None:
            if not done.acquire(blocking=False):
                return
            with self._lock:
                left = self._running.get(client, 0) - 1
                if left > 0:
                    self._running[client] = left
                else:
                    self._running.pop(client, None)

        return release


__all__ = ["STREAMS", "StreamSlots", "client_of"]
