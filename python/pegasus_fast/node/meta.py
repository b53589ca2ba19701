"""Cluster metadata behind one small interface; the embedded default is a local journal.

A deployment across machines would keep the same document in ZooKeeper, as
Pegasus's meta server does (DESIGN.md §9). Every change is durable before it
takes effect; the local store is ``journal.JournalMetaStore``.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from .journal import MetaStore

FORMAT_VERSION = 1


class ClusterMeta:
    """The cluster's metadata document, changed only through ``update``."""

    def __init__(self, store: MetaStore, name: str, cluster_id: int) -> None:
        self.store = store
        self._lock = threading.RLock()
        state = store.load()
        if state is None:
            state = {
                "format": FORMAT_VERSION,
                "name": name,
                "cluster_id": cluster_id,
                "next_app_id": 1,
                "next_dupid": 1,
                "tables": {},
                "duplications": {},
            }
            store.save(state)
        self._state = state

    def read(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._state)

    def get(self, *path: str) -> Any:
        with self._lock:
            node: Any = self._state
            for p in path:
                node = node[p]
            return copy.deepcopy(node)

    def update(self, fn: Any) -> Any:
        """Apply ``fn(state)`` to a copy, persist it, then make it current."""
        with self._lock:
            state = copy.deepcopy(self._state)
            result = fn(state)
            self.store.save(state)
            self._state = state
            return result

    def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close is not None:
            close()
