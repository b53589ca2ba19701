"""Cluster metadata behind one small interface; the embedded default is a local JSON file.

A deployment across machines would keep the same document in ZooKeeper, as
Pegasus's meta server does (DESIGN.md §9). Every change is written durably
before it takes effect.
"""

from __future__ import annotations

import copy
import os
import threading
from typing import Any, Protocol

from .fsutil import read_json, write_json_atomic

FORMAT_VERSION = 1


class MetaStore(Protocol):
    def load(self) -> dict[str, Any] | None: ...
    def save(self, state: dict[str, Any]) -> None: ...


class FileMetaStore:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, "cluster.json")
        os.makedirs(directory, exist_ok=True)

    def load(self) -> dict[str, Any] | None:
        if not os.path.exists(self.path):
            return None
        return read_json(self.path)

    def save(self, state: dict[str, Any]) -> None:
        write_json_atomic(self.path, state)


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
