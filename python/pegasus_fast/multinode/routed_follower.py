"""The Follower port over a multi-node cluster (``zk://``): each partition's calls go to its owner.

A duplication whose remote is ``zk://HOST:PORT/CHROOT`` learns and ships each
partition to the node that owns it, as the cluster's configuration in
ZooKeeper says (coord/); the calls themselves are :class:`RemoteFollower`'s.
A node that does not own a partition (a move happened) answers
``NotOwnerError``: the configuration is read again and the error goes to the
duplication, whose retry finds the new owner, from the follower's durable
decree as always. Table creation goes through any node to the meta leader.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from kazoo.client import KazooClient

from ..coord.auth import auth_of
from ..coord.zk import connect as zk_connect
from ..coord.zk import parse_zk
from ..duplication.ports import Chunk, ManifestEntry, SourceId
from ..errors import NotOwnerError, RemoteUnavailableError, TableNotFoundError
from ..net.follower import RemoteConnector, RemoteFollower
from .routes import Routes

_R = TypeVar("_R")


class RoutedFollower:
    """A Follower (and PipelinedFollower) over the nodes of a multi-node cluster."""

    def __init__(
        self, routes: Routes, connector: RemoteConnector, token: str | None, source: SourceId | None = None
    ) -> None:
        self.url = routes.url
        self._source = source
        #: this connection's: a duplication connects again to retry, and reads the owners anew
        self._routes = routes
        self._connector = connector
        self._token = token
        #: the followers of the calls in flight, for cancel()
        self._in_flight: set[RemoteFollower] = set()
        self._lock = threading.Lock()
        #: the smallest message limit of the nodes, as :meth:`identity` last asked them
        self._batch_bytes: int | None = None

    # -- routing -------------------------------------------------------------------------

    @contextmanager
    def _node(self, url: str) -> Iterator[RemoteFollower]:
        """The follower at ``url`` for one call, which :meth:`cancel` reaches while it runs.

        Only calls in flight are kept: a duplication makes one call per shipped batch, and
        keeping every follower it was handed would hold one object per batch until it stops.
        """
        f: RemoteFollower = self._connector.connect(url, self._token, self._source)  # type: ignore[assignment]
        with self._lock:
            self._in_flight.add(f)
        try:
            yield f
        finally:
            with self._lock:
                self._in_flight.discard(f)

    def _at(self, url: str, fn: Callable[[RemoteFollower], _R]) -> _R:
        with self._node(url) as f:
            return fn(f)

    def _any_url(self) -> str:
        leader = self._routes.leader_url()
        if leader is not None:
            return leader
        self._routes.refresh_nodes()
        nodes = self._routes.nodes
        if not nodes:
            raise RemoteUnavailableError(self.url, "no live node")
        return min(nodes.values(), key=lambda d: d.node_id).url

    def _any(self, fn: Callable[[RemoteFollower], _R]) -> _R:
        return self._at(self._any_url(), fn)

    def _on(self, table: str, pidx: int, fn: Callable[[RemoteFollower], _R]) -> _R:
        ((url, _),) = self._routes.owner_urls(table, [pidx]).items()
        return self._routed(table, lambda: self._at(url, fn))

    def _each_owner(
        self, table: str, pidxs: Iterable[int], fn: Callable[[RemoteFollower, list[int]], _R]
    ) -> dict[str, _R]:
        """``fn`` on every owner of ``pidxs`` with the partitions it owns, the owners at once (a
        duplication's start makes several such calls while a switchover waits for it)."""
        groups = self._routes.owner_urls(table, pidxs)

        def one(url: str, mine: list[int]) -> _R:
            return self._routed(table, lambda: self._at(url, lambda f: fn(f, mine)))

        if len(groups) <= 1:
            return {url: one(url, mine) for url, mine in groups.items()}
        with ThreadPoolExecutor(max_workers=len(groups), thread_name_prefix="routed-follower") as pool:
            futures = {url: pool.submit(one, url, mine) for url, mine in groups.items()}
            return {url: fut.result() for url, fut in futures.items()}

    def _routed(self, table: str, call: Callable[[], _R]) -> _R:
        try:
            return call()
        except (NotOwnerError, RemoteUnavailableError, TableNotFoundError):
            # moved, or the node is down: read the configuration again for the retry
            self._routes.forget(table)
            raise

    # -- the Follower port -----------------------------------------------------------------

    def identity(self) -> tuple[int, str]:
        """The cluster's identity, asked of every live node at once: their smallest message
        limit is kept for :meth:`max_batch_bytes`, which a duplication asks next."""
        self._routes.refresh_nodes()
        urls = sorted({d.url for d in self._routes.nodes.values()})
        if not urls:
            raise RemoteUnavailableError(self.url, "no live node")

        def one(url: str) -> tuple[tuple[int, str], int]:
            return self._at(url, lambda f: (f.identity(), f.max_batch_bytes()))

        with ThreadPoolExecutor(max_workers=len(urls), thread_name_prefix="routed-follower") as pool:
            got = list(pool.map(one, urls))
        self._batch_bytes = min(limit for _, limit in got)
        return got[0][0]

    def max_batch_bytes(self) -> int:
        if self._batch_bytes is None:
            self.identity()
        assert self._batch_bytes is not None
        return self._batch_bytes

    def ensure_table(self, table: str, partition_count: int, source: SourceId, with_checkpoint: bool) -> None:
        self._any(lambda f: f.ensure_table(table, partition_count, source, with_checkpoint))
        self._routes.forget(table)

    def partition_statuses(self, table: str, count: int) -> list[tuple[bool, int]]:
        cfg = self._routes.table(table, fresh=True)
        if len(cfg.partitions) != count:
            return self._any(lambda f: f.partition_statuses(table, count))  # raises the typed mismatch
        rows: list[tuple[bool, int]] = [(False, 0)] * count
        got = self._each_owner(
            table, range(count), lambda f, mine: (mine, f.partition_statuses(table, count))
        )
        for mine, statuses in got.values():
            for pidx in mine:
                rows[pidx] = statuses[pidx]
        return rows

    def learn_empty(self, table: str, decrees: dict[int, int]) -> None:
        self._each_owner(table, decrees, lambda f, mine: f.learn_empty(table, {p: decrees[p] for p in mine}))

    def learn_snapshot(self, table: str, pidx: int, decree: int, block: bytes) -> None:
        self._on(table, pidx, lambda f: f.learn_snapshot(table, pidx, decree, block))

    def checkpoint_offsets(
        self, table: str, pidx: int, decree: int, manifest: list[ManifestEntry]
    ) -> dict[str, int]:
        return self._on(table, pidx, lambda f: f.checkpoint_offsets(table, pidx, decree, manifest))

    def learn_checkpoint(
        self, table: str, pidx: int, decree: int, manifest: list[ManifestEntry], chunks: Iterator[Chunk]
    ) -> None:
        self._on(table, pidx, lambda f: f.learn_checkpoint(table, pidx, decree, manifest, chunks))

    def mark_learned(self, table: str, pidxs: list[int]) -> None:
        self._each_owner(table, pidxs, lambda f, mine: f.mark_learned(table, mine))

    def restart_learning(self, table: str, pidxs: list[int]) -> None:
        self._each_owner(table, pidxs, lambda f, mine: f.restart_learning(table, mine))

    def apply(self, table: str, pidx: int, blocks: bytes, skipped_through: int = 0) -> int:
        return self._on(table, pidx, lambda f: f.apply(table, pidx, blocks, skipped_through))

    def apply_stream(self, table: str, pidx: int, batches: Iterable[tuple[bytes, int]]) -> Iterator[int]:
        ((url, _),) = self._routes.owner_urls(table, [pidx]).items()
        with self._node(url) as f:
            try:
                yield from f.apply_stream(table, pidx, batches)
            except (NotOwnerError, RemoteUnavailableError):
                self._routes.forget(table)
                raise

    def advance(self, table: str, pidx: int, source_decree: int) -> None:
        self._on(table, pidx, lambda f: f.advance(table, pidx, source_decree))

    # a view is held by the partition's owner: its id carries that node's URL
    def verify_view(self, table: str, pidx: int, decree: int, timeout: float | None) -> tuple[str, int, int]:
        ((url, _),) = self._routes.owner_urls(table, [pidx]).items()
        vid, committed, held = self._routed(
            table, lambda: self._at(url, lambda f: f.verify_view(table, pidx, decree, timeout))
        )
        return f"{url} {vid}", committed, held

    def verify_digest(
        self, view: str, now: int, start: bytes, end: bytes | None
    ) -> list[tuple[bytes, int, bytes]]:
        url, vid = view.split(" ", 1)
        return self._at(url, lambda f: f.verify_digest(vid, now, start, end))

    def verify_records(
        self, view: str, now: int, start: bytes, end: bytes | None, limit: int
    ) -> list[tuple[bytes, int, bytes]]:
        url, vid = view.split(" ", 1)
        return self._at(url, lambda f: f.verify_records(vid, now, start, end, limit))

    def verify_release(self, view: str) -> None:
        url, vid = view.split(" ", 1)
        self._at(url, lambda f: f.verify_release(vid))

    def take_over(
        self,
        table: str,
        source: SourceId,
        decrees: dict[int, int],
        back_remote: str,
        back_token: str | None = None,
    ) -> tuple[int, dict[int, int]]:
        # any node passes it to the meta leader, which makes the change (multinode/takeover.py)
        return self._any(lambda f: f.take_over(table, source, decrees, back_remote, back_token))

    def cancel(self) -> None:
        with self._lock:
            calls = list(self._in_flight)
        for f in calls:
            f.cancel()


class RoutedConnector:
    """Finds the follower at a ``zk://`` URL: one ZooKeeper session per cluster, kept."""

    def __init__(self, remote: RemoteConnector) -> None:
        self._remote = remote
        self._lock = threading.Lock()
        self._zks: dict[str, KazooClient] = {}
        self._closed = False

    def connect(self, url: str, token: str | None = None, source: SourceId | None = None) -> RoutedFollower:
        addr = parse_zk(url)
        with self._lock:
            if self._closed:
                raise RemoteUnavailableError(url, "the cluster is closing")
            zk = self._zks.get(addr.spec)
        if zk is None:
            try:
                zk = zk_connect(addr, auth=auth_of(None))
            except Exception as exc:  # noqa: BLE001 - a duplication retries an unreachable remote
                raise RemoteUnavailableError(url, str(exc)) from None
            with self._lock:
                kept = self._zks.setdefault(addr.spec, zk)
            if kept is not zk:  # another thread connected first: keep one session per cluster
                zk.stop()
                zk.close()
                zk = kept
        return RoutedFollower(Routes(zk, addr.spec, watch=False), self._remote, token, source)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            zks, self._zks = list(self._zks.values()), {}
        for zk in zks:
            try:
                zk.stop()
                zk.close()
            except Exception:  # noqa: BLE001, S112 - closing: nothing left to do with it
                continue


def is_zk_url(remote: Any) -> bool:
    return isinstance(remote, str) and remote.startswith("zk://")


__all__ = ["RoutedConnector", "RoutedFollower", "is_zk_url"]
