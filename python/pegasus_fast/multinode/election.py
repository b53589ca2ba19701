"""The meta leader's election: kazoo's Election among the nodes, and ``/meta/leader``.

Every node runs the election; the winner writes the ephemeral ``/meta/leader``
(its id and URL, which clients and the other nodes read) and leads until it
stops, or its ZooKeeper connection is suspended or lost (:meth:`lost`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError
from kazoo.recipe.election import Election

from ..coord.layout import ELECTION, LEADER, NodeDoc
from ..logs import event, get

log = get(__name__)


class Leadership:
    def __init__(self, zk: KazooClient, node_id: str, url: Callable[[], str], stop: threading.Event) -> None:
        """``url()``: this node's URL, once it serves; ``stop``: set when the node leaves."""
        self.zk = zk
        self.node_id = node_id
        self._url = url
        self._stop = stop
        self._leading = threading.Event()

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    def lost(self) -> None:
        """The ZooKeeper connection is suspended or lost: stop leading at once (the session may
        expire, and another node be elected, before it is back)."""
        if self._leading.is_set():
            log.warning(
                "node %s stops leading: its ZooKeeper connection is suspended or lost",
                self.node_id,
                extra=event(node=self.node_id, leader=False, reason="zookeeper connection"),
            )
        self._leading.clear()

    def run(self) -> None:
        """Stand for election until the node stops (a thread of its own)."""
        while not self._stop.is_set():
            try:
                Election(self.zk, ELECTION, identifier=self.node_id).run(self._lead)
            except Exception as exc:  # noqa: BLE001 - a lost session ends a term; run again
                log.info("node %s: election ended: %s", self.node_id, exc)
            self._leading.clear()
            self._stop.wait(0.5)

    def _lead(self) -> None:
        doc = NodeDoc(self.node_id, self._url()).encode()
        while not self._stop.is_set():
            try:
                self.zk.create(LEADER, doc, ephemeral=True)
                break
            except NodeExistsError:
                # the last leader's session has not expired yet; its lock is gone, so it is dead
                raw, _ = self.zk.get(LEADER)
                if raw == doc:
                    break
                self._stop.wait(0.2)
        self._leading.set()
        started = time.monotonic()
        log.info("node %s leads the cluster", self.node_id, extra=event(node=self.node_id, leader=True))
        try:
            while not self._stop.is_set() and self._leading.is_set() and self.zk.connected:
                self._stop.wait(0.2)
        finally:
            self._leading.clear()
            log.info(
                "node %s no longer leads (after %.1f s)%s",
                self.node_id,
                time.monotonic() - started,
                ": it is stopping" if self._stop.is_set() else "",
                extra=event(node=self.node_id, leader=False, seconds=round(time.monotonic() - started, 3)),
            )
            with contextlib.suppress(Exception):
                raw, _ = self.zk.get(LEADER)
                if raw == doc:
                    self.zk.delete(LEADER)


class LeaderCollector:
    """``node_is_leader{node}``: 1 while this node leads, for a dashboard of who leads when."""

    def __init__(self, leadership: Leadership) -> None:
        self._leadership = leadership

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        g = GaugeMetricFamily(
            "node_is_leader", "1 while this node is the cluster's meta leader", labels=["node"]
        )
        g.add_metric([self._leadership.node_id], 1 if self._leadership.is_leader else 0)
        yield g


__all__ = ["LeaderCollector", "Leadership"]
