"""A node's ephemeral ``/nodes/<node_id>``: claimed once per directory, kept while the node lives.

The znode carries the node's URL and its directory's identity (``uid``,
join.py's ``NODE_UID``). Whoever holds it is that node for the whole cluster:
the leader places partitions on it, clients send it their calls and token.

* **Claim.** A znode of another session with another ``uid`` is a live node
  of another directory: :class:`NodeIdInUseError`, and this process serves
  nothing. One with this directory's ``uid`` is this node's previous process
  (killed before its session expired; the directory's lock proves no other
  process is this node now): it is replaced.
* **Kept.** The node watches its znode; deleted while its session lives (by
  an operator, or anything else), it is made again at the next sync round.
* **Left.** A stopping node deletes the znode only if its own session holds it.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from ..coord.layout import NodeDoc, node_path
from ..errors import CoordinationError, NodeIdInUseError


class Registration:
    def __init__(self, zk: KazooClient, spec: str, node_id: str, uid: str) -> None:
        self.zk = zk
        self.spec = spec
        self.node_id = node_id
        self.uid = uid
        self.path = node_path(node_id)
        #: the znode is to be made again (deleted, or the session was lost)
        self.wanted = threading.Event()
        self._stopping = False

    def _session(self) -> int:
        return int(self.zk.client_id[0]) if self.zk.client_id else -1

    def check(self) -> None:
        """Refuse, before anything is served, an id a live node of another directory holds."""
        self._holder()

    def _holder(self) -> tuple[int, int] | None:
        """``(version, ephemeral owner)`` of a znode this directory may take over, None if
        there is none; NodeIdInUseError if another directory's node holds it."""
        try:
            raw, stat = self.zk.get(self.path)
        except NoNodeError:
            return None
        if stat.ephemeralOwner == self._session():
            return stat.version, stat.ephemeralOwner
        try:
            held = NodeDoc.decode(raw, self.path)
        except CoordinationError:
            held = None
        if held is None or held.uid != self.uid or stat.ephemeralOwner == 0:
            raise NodeIdInUseError(self.spec, self.node_id, held.url if held else "?")
        return stat.version, stat.ephemeralOwner

    def register(self, url: str, pegasus: str = "") -> None:
        """Make (or take back) this node's znode with ``url`` (and its Pegasus address)."""
        doc = NodeDoc(self.node_id, url, self.uid, pegasus).encode()
        for _ in range(10):
            try:
                self.zk.create(self.path, doc, ephemeral=True)
                self.wanted.clear()
                return
            except NodeExistsError:
                pass
            held = self._holder()
            if held is None:
                continue
            version, owner = held
            try:
                if owner == self._session():
                    self.zk.set(self.path, doc, version=version)
                    self.wanted.clear()
                    return
            except (NoNodeError, BadVersionError):
                continue
            # this directory's previous process: its session has not expired yet. Replaced in
            # one transaction: deleted, then made again apart, the node was missing from
            # /nodes in between, and the leader's failover could take it out of every
            # partition's configuration (a ballot and a re-replication for nothing)
            tx = self.zk.transaction()
            tx.delete(self.path, version=version)
            tx.create(self.path, doc, ephemeral=True)
            if not any(isinstance(r, Exception) for r in tx.commit()):
                self.wanted.clear()
                return
        raise CoordinationError(self.spec, f"cannot register {self.path}: it keeps changing")

    def watch(self, on_change: Any) -> None:
        """Watch the znode: when it is gone while the node lives, :attr:`wanted` is set and
        ``on_change()`` called (kazoo's thread: it must not block)."""

        def changed(data: Any, stat: Any) -> None:
            if data is None and not self._stopping:
                self.wanted.set()
                on_change()

        self.zk.DataWatch(self.path, changed)

    def leave(self, timeout: float) -> None:
        """Delete the znode if this session holds it (bounded: ZooKeeper may be gone)."""
        self._stopping = True
        with contextlib.suppress(Exception):
            stat = self.zk.exists_async(self.path).get(timeout=timeout)
            if stat is not None and stat.ephemeralOwner == self._session():
                self.zk.delete_async(self.path, version=stat.version).get(timeout=timeout)


__all__ = ["Registration"]
