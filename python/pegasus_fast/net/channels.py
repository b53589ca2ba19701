"""One gRPC channel per URL, opened on first use and kept (gRPC reconnects it by itself).

The one cache of channels: the duplication's follower connector, a node's
peers (the leader's calls, a move's pulls) and the ``zk://`` client's
per-node connections each keep theirs here. What each user keeps with its
channel (stubs, a connection) is made once, by the ``over`` it gives.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

import grpc

from ..errors import ClosedError
from .wire import open_channel, parse_url, tls_from_env

_T = TypeVar("_T")


class Channels(Generic[_T]):
    def __init__(
        self, over: Callable[[str, grpc.Channel], _T], tls: dict[str, str | None] | None = None
    ) -> None:
        """``over(url, channel)``: what is kept with a new channel. ``tls``: its PEM files (default:
        the process's, read at each use, so a channel is kept per URL and files)."""
        self._over = over
        self._tls = tls
        self._lock = threading.Lock()
        self._kept: dict[tuple[str | None, ...], tuple[grpc.Channel, _T]] = {}
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def get(self, url: str) -> _T:
        """What is kept with the channel to ``url`` (a pegasus:// URL); ClosedError once closed."""
        addr = parse_url(url)
        tls = self._tls if self._tls is not None else tls_from_env()
        key = (addr.url, *tls.values())
        with self._lock:
            if self._closed:
                raise ClosedError(f"the connections to {addr.url} are closed")
            kept = self._kept.get(key)
            if kept is None:
                channel = open_channel(addr, **tls)
                kept = self._kept[key] = (channel, self._over(addr.url, channel))
            return kept[1]

    def kept(self) -> list[_T]:
        with self._lock:
            return [v for _, v in self._kept.values()]

    def close(self, wait: bool = True) -> None:
        """Close every channel, ending the calls in flight; none is opened after this.

        Closing a channel waits until its transport has sent what it queued, which over a slow
        link (megabytes of a checkpoint copy) takes as long as the copy would have: ``wait=False``
        does that in a thread of its own.
        """
        with self._lock:
            self._closed = True
            channels = [c for c, _ in self._kept.values()]
            self._kept = {}
        if not channels:
            return
        if wait:
            for c in channels:
                c.close()
        else:
            threading.Thread(
                target=lambda: [c.close() for c in channels], name="close-channels", daemon=True
            ).start()


__all__ = ["Channels"]
