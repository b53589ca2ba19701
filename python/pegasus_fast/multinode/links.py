"""A primary's transport to one secondary node (:class:`Link`): one thread, one request in
flight carrying every partition the two nodes share that has something to send; a secondary
too far behind learns the partition anew from this node.

The requests go to the secondary's Pegasus port when it has one (OP_REPLICATE, answered by
its Rust front end's batch loop: no gRPC on either side, the wait with the GIL released),
carrying the node token in the request; else, or with TLS (the token would cross that port in
the clear), or once that port refused them, over a ``Node.ReplicateStream`` kept open.
``PEGASUS_FAST_REPLICATION=grpc`` keeps a node's replication on gRPC, both ways: its links
send none on a Pegasus port, and its own port refuses it."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from google.protobuf.message import DecodeError

from ..errors import PegasusFastError, PermissionDeniedError, RemoteUnavailableError, WalGapError
from ..logs import Outage, get
from ..net import pegasus_fast_pb2 as pb
from ..net.peer import Peers
from ..net.pegasus import codes
from ..net.pegasus.call_client import client_core
from ..net.wire import parse_hostport, tls_from_env, token_from_env
from .replica_set import ReplicaSet

log = get(__name__)

#: a request's deadline (seconds): a later reply ends the stream
CALL_TIMEOUT = 10.0
#: how long a link waits before it asks again a secondary that has not read its ballot yet (s)
BEHIND_WAIT = 0.005
#: a secondary's Learn from its primary (a checkpoint copy): its deadline (seconds)
LEARN_TIMEOUT = 3600.0


class _Stream:
    """One ``Node.ReplicateStream`` call kept open to a secondary node: a request sent, its reply
    awaited (one in flight). Any failure ends it; the link opens another for its next request."""

    def __init__(self, peer: Any) -> None:
        self._q: queue.SimpleQueue[pb.ReplicateRequest | None] = queue.SimpleQueue()
        self._call = peer.node.ReplicateStream(self._requests(), metadata=peer.md)
        self._replies = iter(self._call)
        #: when the request awaiting its reply was sent (None: none awaited)
        self.sent_at: float | None = None

    def _requests(self) -> Iterator[pb.ReplicateRequest]:
        while True:
            request = self._q.get()
            if request is None:
                return
            yield request

    def call(self, request: pb.ReplicateRequest) -> pb.ReplicateReply:
        self.sent_at = time.monotonic()
        self._q.put(request)
        try:
            return next(self._replies)
        except StopIteration:
            raise RemoteUnavailableError("", "the replication stream ended") from None
        finally:
            self.sent_at = None

    def close(self) -> None:
        self._q.put(None)
        self._call.cancel()


class _PortStream:
    """Requests to a secondary node's Pegasus port (OP_REPLICATE), one at a time on a pooled
    socket; a reply later than CALL_TIMEOUT fails the call (the socket's own timeout)."""

    #: never awaited for the watchdog: the socket times out by itself
    sent_at = None

    def __init__(self, target: str, token: str | None) -> None:
        addr = parse_hostport(target)
        self.target = target
        self._token = token or ""
        self._core = client_core(addr.host, addr.port, CALL_TIMEOUT)

    def call(self, request: pb.ReplicateRequest) -> pb.ReplicateReply:
        request.token = self._token
        try:
            error, result = self._core.call(codes.OP_REPLICATE, 0, 0, (request.SerializeToString(),))
        except (PegasusFastError, OSError) as exc:
            raise RemoteUnavailableError(self.target, f"replication over the Pegasus port: {exc}") from None
        if error == codes.ERR_ACL_DENY or error == codes.ERR_HANDLER_NOT_FOUND:
            raise PermissionDeniedError(self.target, f"replication over the Pegasus port refused ({error})")
        if error != codes.ERR_OK or result[0] != codes.K_OK:
            raise RemoteUnavailableError(
                self.target, f"replication over the Pegasus port: {error}, status {result and result[0]}"
            )
        try:
            return pb.ReplicateReply.FromString(result[1])
        except DecodeError as exc:
            raise RemoteUnavailableError(
                self.target, f"a replication reply that does not decode: {exc}"
            ) from None

    def close(self) -> None:
        self._core.close()


#: "grpc": this node neither sends nor takes replication on a Pegasus port
REPLICATION_ENV = "PEGASUS_FAST_REPLICATION"


def grpc_only() -> bool:
    """Whether this node keeps replication to gRPC (REPLICATION_ENV)."""
    return os.environ.get(REPLICATION_ENV, "") == "grpc"


def _port_allowed() -> bool:
    """Whether links may use a secondary's Pegasus port: not with TLS configured for this
    node's peers, nor when told to keep to gRPC."""
    return not grpc_only() and not any(tls_from_env().values())


class Link:
    """This primary's calls to one secondary node, for every partition they share: one thread,
    one call in flight carrying every partition that has something to send."""

    def __init__(
        self,
        node: str,
        url: str,
        primary: str,
        primary_url: Any,
        peers: Peers,
        on_stale: Callable[[ReplicaSet, int], bool],
        on_unreachable: Any,
        pegasus_of: Callable[[], str] = lambda: "",
    ) -> None:
        """``primary_url()``: this node's URL (a secondary too far behind learns from it);
        ``on_unreachable()``: a call failed (the node reads the configuration again);
        ``pegasus_of()``: the secondary's Pegasus address now ("": it has none)."""
        self.pegasus_of = pegasus_of
        #: the secondary's Pegasus port refused replication: gRPC from now on
        self._port_refused = False
        self.on_unreachable = on_unreachable
        self.node = node
        self.url = url
        self.primary = primary
        self.primary_url = primary_url
        #: the partitions this secondary is learning anew from here (their log is not enough)
        self._learning: set[ReplicaSet] = set()
        self.peers = peers
        self.on_stale = on_stale
        self.sets: set[ReplicaSet] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._outage = Outage(
            log, f"replication from {primary} to {node}", down="failing", up="working again"
        )
        self._stream: _Stream | _PortStream | None = None
        self._thread = threading.Thread(target=self._run, name=f"replicate-{primary}-{node}", daemon=True)
        self._thread.start()
        self._watch = threading.Thread(target=self._watchdog, name=f"replicate-watch-{node}", daemon=True)
        self._watch.start()

    def _watchdog(self) -> None:
        """A reply later than CALL_TIMEOUT (a secondary that hangs) ends the stream: the link's
        thread sees the call fail, and opens another for its next request."""
        while not self._stop.wait(1.0):
            s = self._stream
            at = None if s is None else s.sent_at
            if s is not None and at is not None and time.monotonic() - at > CALL_TIMEOUT:
                s.close()

    def attach(self, rs: ReplicaSet) -> None:
        with self._lock:
            self.sets.add(rs)
        rs.links.append(self)
        self._wake.set()

    def detach(self, rs: ReplicaSet) -> None:
        with self._lock:
            self.sets.discard(rs)

    def idle(self) -> bool:
        """No partition sent over this link, nor any learning from it."""
        with self._lock:
            return not self.sets and not self._learning

    def alive(self) -> bool:
        """Whether its threads still run (False once stopped, within a moment)."""
        return self._thread.is_alive() or self._watch.is_alive()

    def wake(self) -> None:
        if not self._wake.is_set():  # (a batch wakes it once per partition: one set is enough)
            self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        s = self._stream
        if s is not None:
            s.close()

    def _open(self) -> _Stream | _PortStream:
        target = "" if self._port_refused or not _port_allowed() else self.pegasus_of()
        if target:
            token = self.peers.token if self.peers.token is not None else token_from_env()
            return _PortStream(target, token)
        return _Stream(self.peers.get(self.url))

    def _send(self, request: pb.ReplicateRequest) -> pb.ReplicateReply:
        if self._stream is None:
            self._stream = self._open()
        try:
            return self._stream.call(request)
        except PermissionDeniedError as exc:
            log.warning("replication from %s to %s: %s; over gRPC from now on", self.primary, self.node, exc)
            self._port_refused = True
            self._stream.close()
            self._stream = None
            return self._send(request)
        except BaseException:
            self._stream.close()
            self._stream = None
            raise

    def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            if self._stop.is_set():
                return
            with self._lock:
                sets = list(self.sets)
            items, owners = [], []
            for rs in sets:
                if rs in self._learning:
                    continue
                try:
                    item = rs.item_for(self.node)
                except WalGapError:
                    # what it lacks is no longer in this node's log (a checkpoint installed
                    # here, the log collected): it learns the partition anew, as a new one does
                    self._learning.add(rs)
                    threading.Thread(target=self._relearn, args=(rs,), daemon=True).start()
                    continue
                except (PegasusFastError, OSError) as exc:
                    log.warning("%s.%d for %s: %s", rs.part.table, rs.part.pidx, self.node, exc)
                    continue
                if item is not None:
                    items.append(item)
                    owners.append(rs)
            if not items:
                continue
            try:
                reply = self._send(pb.ReplicateRequest(primary=self.primary, items=items))
            except Exception as exc:  # noqa: BLE001 - tried again; the failover removes a dead node
                self._outage.failed(f"{type(exc).__name__}: {exc}")
                self.on_unreachable()  # it may be at another address now: the node reads again
                backoff = min(1.0, max(0.02, backoff * 2))
                self._stop.wait(backoff)
                self._wake.set()
                continue
            self._outage.ok()
            backoff = 0.0
            behind = False
            for rs, ack in zip(owners, reply.acks, strict=False):
                took = rs.on_ack(self.node, ack)
                if took is False:
                    behind |= bool(self.on_stale(rs, ack.ballot))
                elif took is None and rs not in self._learning:
                    log.error(
                        "%s.%d: secondary %s holds decree %d, past this primary's %d: it learns anew",
                        rs.part.table,
                        rs.part.pidx,
                        self.node,
                        ack.decree,
                        rs.part.last_committed,
                    )
                    self._learning.add(rs)
                    threading.Thread(target=self._relearn, args=(rs,), daemon=True).start()
            if behind:
                self._stop.wait(BEHIND_WAIT)  # a secondary not yet at this ballot: a moment
            if any(rs.pending(self.node) for rs in owners):
                self._wake.set()

    def _relearn(self, rs: ReplicaSet) -> None:
        part = rs.part
        try:
            log.warning(
                "%s.%d: secondary %s is behind this node's log; it learns the partition anew",
                part.table,
                part.pidx,
                self.node,
            )
            peer = self.peers.get(self.url)
            pace = int(part.config.replica_learn_mb_per_sec * (1 << 20))
            req = pb.LearnPartitionRequest(
                table=part.table, pidx=part.pidx, source_url=self.primary_url(), max_bytes_per_sec=pace
            )
            decree = peer(peer.node, "Learn", req, timeout=LEARN_TIMEOUT).decree
            log.info(
                "%s.%d: secondary %s learned through decree %d", part.table, part.pidx, self.node, decree
            )
        except Exception as exc:  # noqa: BLE001 - asked again after a pause
            log.warning("%s.%d: secondary %s could not learn: %s", part.table, part.pidx, self.node, exc)
            self._stop.wait(1.0)
        finally:
            rs.forget(self.node)
            self._learning.discard(rs)
            self._wake.set()


__all__ = ["CALL_TIMEOUT", "LEARN_TIMEOUT", "Link"]
