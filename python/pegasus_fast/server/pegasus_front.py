"""Serve Pegasus's own client protocol from asyncio: the pure-Python front end (DESIGN.md §11).

Every connection is a coroutine, so a slow or silent client holds no thread.
A connection from outside the allowlist is aborted in ``connection_made``,
before its socket is ever read. Frames are read with every length bounded
(net/pegasus/frame.py); a frame that breaks the protocol closes its connection
and is counted. Decoded requests of all connections go to one queue; one task
takes everything that is ready and hands it to ``BatchHandler.handle_batch`` in
one call on one worker thread, so batches grow by themselves under load while
the event loop keeps reading. Replies are written back per connection; a
connection with ``max_inflight`` requests unanswered, or whose client does not
read its replies, is not read further until that changes.
"""

from __future__ import annotations

import asyncio
import bisect
import ipaddress
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..engine.cluster import Cluster
from ..errors import InvalidArgumentError, InvalidTypeError, PegasusProtocolError
from ..logs import Refusals, get
from ..net.pegasus import (
    DEFAULT_MAX_FRAME,
    BatchHandler,
    Request,
    decode_meta,
    decode_request,
    encode_response,
    header_length,
    parse_header,
    rpc_address,
)
from ..net.pegasus.codes import OP_REPLICATE
from ..net.pegasus.frame import PREFIX
from ..net.wire import Address, parse_hostport

log = get(__name__)

#: unanswered requests one connection may have before the front end stops reading it
MAX_INFLIGHT = 256
#: the most requests one handle_batch call takes
MAX_BATCH = 4096
#: upper bounds of the batch-size histogram's buckets (then +Inf), as the Rust front end keeps them
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
START_TIMEOUT = 10.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allow(allow: str | Iterable[str] | None) -> list[Network]:
    """``"CIDR[,CIDR...]"`` (or a list of CIDRs) as networks; a bare address is a /32 (/128)."""
    if allow is None:
        return []
    items = allow.split(",") if isinstance(allow, str) else list(allow)
    nets: list[Network] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidTypeError(f"an allowlist entry is a str CIDR, not {type(item).__name__}")
        text = item.strip()
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise InvalidArgumentError(f"{text!r} is not a CIDR (e.g. 10.0.0.0/8)") from None
    if not nets:
        raise InvalidArgumentError("an allowlist needs at least one CIDR")
    return nets


def check_listen(listen: str, allow: str | Iterable[str] | None) -> tuple[Address, list[Network]]:
    """The address to listen on and the allowlist, refusing what the Pegasus port must not do:
    an address that is not IPv4, or one beyond loopback without an allowlist."""
    addr = parse_hostport(listen)
    try:
        ip = ipaddress.ip_address(addr.host)
    except ValueError:
        raise InvalidArgumentError(
            f"the Pegasus port listens on an IPv4 address, not {addr.host!r}"
        ) from None
    if ip.version != 4:
        # a Pegasus rpc_address (how the meta query names a primary) holds IPv4 only
        raise InvalidArgumentError(f"the Pegasus port listens on an IPv4 address, not {addr.host}")
    nets = parse_allow(allow)
    if not ip.is_loopback and not nets:
        raise InvalidArgumentError(
            f"refusing to serve the Pegasus protocol on {addr.target}, which is not loopback, "
            "without an allowlist (pegasus_allow= / --pegasus-allow CIDR[,CIDR...]): "
            "Pegasus clients carry no token"
        )
    return addr, nets


class PegasusFront:
    """A running Pegasus-protocol server over ``cluster``; ``stop()`` ends it."""

    def __init__(
        self,
        cluster: Cluster,
        listen: str = "127.0.0.1:0",
        allow: str | Iterable[str] | None = None,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_inflight: int = MAX_INFLIGHT,
        handler: BatchHandler | None = None,
    ) -> None:
        addr, self.allow = check_listen(listen, allow)
        if max_frame < 64 or max_inflight < 1:
            raise InvalidArgumentError("max_frame must be at least 64 and max_inflight at least 1")
        self.cluster = cluster
        self.max_frame = max_frame
        self.max_inflight = max_inflight
        self.handler = handler or BatchHandler(cluster)
        #: counters, also exported as Prometheus metrics on the cluster's registry
        self.stats = {
            "connections_accepted": 0,
            "connections_refused": 0,
            "protocol_errors": 0,
            "requests": 0,
            "batches": 0,
            "batch_requests": 0,
        }
        self._batch_hist = [0] * (len(BATCH_BUCKETS) + 1)
        #: refused connections, logged at most every few seconds with their count
        self.refusals = Refusals(log, "pegasus port: connections")
        self._loop = asyncio.new_event_loop()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pegasus-batch")
        self._queue: asyncio.Queue[tuple[Request, _Conn]] = asyncio.Queue()
        #: a node's replication requests, answered apart from the batches on a thread of their
        #: own (BatchHandler.side_batch: the batches of a node's client writes wait for their
        #: secondaries, whose acknowledgements come through the secondaries' ports in turn)
        self._side = getattr(self.handler, "takes_replication", False)
        self._side_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pegasus-replication")
        self._side_queue: asyncio.Queue[tuple[Request, _Conn]] = asyncio.Queue()
        self._conns: set[_Conn] = set()
        self._stopped = False
        self._stop_lock = threading.Lock()
        ready: list[Any] = []
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(addr, ready, started), name="pegasus-front", daemon=True
        )
        self._thread.start()
        if not started.wait(START_TIMEOUT) or isinstance(ready[0], BaseException):
            self._thread.join(START_TIMEOUT)
            self._executor.shutdown(wait=False)
            if ready and isinstance(ready[0], BaseException):
                raise ready[0]
            raise OSError(f"the Pegasus front end did not start on {addr.target}")
        self.address: Address = ready[0]
        self._collector = FrontCollector(self.stats, self.batch_histogram)
        self._registry = cluster.metric_set.registry
        self._registry.register(self._collector)

    def __repr__(self) -> str:
        return f"PegasusFront(address={self.address.target!r})"

    def allowed(self, host: str) -> bool:
        if not self.allow:
            return True
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in net for net in self.allow)

    # -- the event loop's thread ------------------------------------------------------

    def _run(self, addr: Address, ready: list[Any], started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            server = self._loop.run_until_complete(
                self._loop.create_server(self._protocol, addr.host, addr.port, reuse_address=True)
            )
        except BaseException as exc:
            ready.append(exc)
            started.set()
            self._loop.close()
            return
        port = server.sockets[0].getsockname()[1]
        ready.append(Address(addr.host, port))
        self._server = server
        batcher = self._loop.create_task(self._batches())
        side = self._loop.create_task(self._side_batches())
        started.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            batcher.cancel()
            side.cancel()
            for conn in list(self._conns):
                conn.abort()
            # each connection's task ends by itself once its transport is gone: a cancelled one
            # makes asyncio's stream callback log an error (Python 3.11)
            serving = [t for t in asyncio.all_tasks(self._loop) if t is not batcher and t is not side]
            if serving:
                self._loop.run_until_complete(asyncio.wait(serving, timeout=1.0))
            pending = asyncio.all_tasks(self._loop)
            for t in pending:
                t.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    def _protocol(self) -> asyncio.Protocol:
        reader = asyncio.StreamReader(limit=1 << 16, loop=self._loop)
        return _Guarded(self, reader)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(self, writer)
        self._conns.add(conn)
        offset = 0
        try:
            while True:
                try:
                    prefix = await reader.readexactly(PREFIX)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        raise PegasusProtocolError(offset, "connection closed inside a frame") from None
                    return  # closed between frames
                hlen = header_length(prefix, offset)
                hdr = prefix + await reader.readexactly(hlen - PREFIX)
                _, meta_len, body_len, app_id, pidx = parse_header(hdr, offset, self.max_frame)
                if meta_len:
                    meta = await reader.readexactly(meta_len)
                    app_id, pidx = decode_meta(meta, offset + hlen)
                body = await reader.readexactly(body_len)
                req = decode_request(body, app_id, pidx, offset + hlen + meta_len)
                offset += hlen + meta_len + body_len
                await conn.slots.acquire()
                self.stats["requests"] += 1
                if self._side and req[0] == OP_REPLICATE:
                    self._side_queue.put_nowait((req, conn))
                else:
                    self._queue.put_nowait((req, conn))
                await writer.drain()  # a client that does not read its replies is not read
        except PegasusProtocolError as exc:
            self.stats["protocol_errors"] += 1
            log.warning("pegasus front: closing %s: %s", conn.peer, exc)
        except asyncio.IncompleteReadError:
            self.stats["protocol_errors"] += 1
            log.warning("pegasus front: %s closed inside a frame", conn.peer)
        except (ConnectionError, OSError):
            pass
        finally:
            self._conns.discard(conn)
            conn.abort()

    async def _batches(self) -> None:
        await self._drain(self._queue, self._executor, self.handler.handle_batch, counted=True)

    async def _side_batches(self) -> None:
        await self._drain(self._side_queue, self._side_executor, self.handler.side_batch, counted=False)

    async def _drain(
        self,
        queue: asyncio.Queue[tuple[Request, _Conn]],
        executor: ThreadPoolExecutor,
        handle: Callable[[list[Request]], Sequence[Any]],
        counted: bool,
    ) -> None:
        """Hand what ``queue`` holds to ``handle`` in ``executor``, a batch at a time, and
        answer it (``counted``: in the batch statistics)."""
        loop = asyncio.get_running_loop()
        while True:
            items = [await queue.get()]
            while len(items) < MAX_BATCH and not queue.empty():
                items.append(queue.get_nowait())
            requests = [req for req, _ in items]
            try:
                responses: Sequence[Any] = await loop.run_in_executor(executor, handle, requests)
            except Exception:
                log.exception("pegasus front: a batch of %d requests failed", len(requests))
                responses = [
                    (op, seqid, app_id, pidx, name, "ERR_UNKNOWN", None)
                    for op, seqid, app_id, pidx, name, _ in requests
                ]
            if counted:
                self.stats["batches"] += 1
                self.stats["batch_requests"] += len(requests)
                self._batch_hist[bisect.bisect_left(BATCH_BUCKETS, len(requests))] += 1
            for (_, conn), resp in zip(items, responses):
                conn.reply(resp)

    def batch_histogram(self) -> list[tuple[int | None, int]]:
        """``[(upper bound, batches), ...]``; the last bound None (+Inf)."""
        return list(zip([*BATCH_BUCKETS, None], self._batch_hist))

    # -- stopping ---------------------------------------------------------------------

    def stop(self) -> None:
        """Close the port and every connection; a batch in flight finishes first. Safe twice."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_TIMEOUT)
        self._executor.shutdown(wait=True)
        self._side_executor.shutdown(wait=True)
        self.refusals.flush()
        close = getattr(self.handler, "close", None)
        if close is not None:
            close()
        try:
            self._registry.unregister(self._collector)
        except KeyError:
            pass


class _Conn:
    """One client connection's writing side and its in-flight bound."""

    def __init__(self, front: PegasusFront, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.slots = asyncio.Semaphore(front.max_inflight)
        peer = writer.get_extra_info("peername") or ("?", 0)
        self.peer = f"{peer[0]}:{peer[1]}"
        # the address the client reached is the one the meta query names as the primary
        host, port = writer.get_extra_info("sockname")[:2]
        self.server = f"{host}:{port}".encode()
        self.primary = rpc_address(host, port)

    def reply(self, resp: Any) -> None:
        self.slots.release()
        data = encode_response(resp, self.server, self.primary)
        if data is not None and not self.writer.is_closing():
            self.writer.write(data)

    def abort(self) -> None:
        if not self.writer.is_closing():
            self.writer.transport.abort()


class _Guarded(asyncio.StreamReaderProtocol):
    """Refuses a peer outside the allowlist in connection_made, before the transport reads."""

    def __init__(self, front: PegasusFront, reader: asyncio.StreamReader) -> None:
        super().__init__(reader, front._serve)
        self._front = front
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        if not peer or not self._front.allowed(peer[0]):
            self._refused = True
            self._front.stats["connections_refused"] += 1
            self._front.refusals.refused("not in the allowlist", f"{peer[0]}:{peer[1]}" if peer else "")
            # a stream server's transports are TCP (asyncio.Transport): abort closes at once,
            # and the transport never starts reading (it would after connection_made)
            assert isinstance(transport, asyncio.Transport)
            transport.abort()
            return
        self._front.stats["connections_accepted"] += 1
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._refused:
            super().connection_lost(exc)


class FrontCollector:
    """A front end's counters and batch-size histogram as Prometheus metrics on the cluster's
    registry (both front ends export the same names)."""

    def __init__(
        self, stats: Mapping[str, int], histogram: Callable[[], list[tuple[int | None, int]]]
    ) -> None:
        self._stats = stats
        self._histogram = histogram

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        conns = CounterMetricFamily(
            "pegasus_front_connections", "Pegasus-protocol connections", labels=["result"]
        )
        conns.add_metric(["accepted"], self._stats["connections_accepted"])
        conns.add_metric(["refused"], self._stats["connections_refused"])
        yield conns
        for key, text in (
            ("protocol_errors", "connections closed for breaking the Pegasus protocol"),
            ("requests", "Pegasus-protocol requests read"),
            ("batches", "batches handed to the store"),
        ):
            yield CounterMetricFamily(f"pegasus_front_{key}", text, value=self._stats[key])
        from prometheus_client.core import HistogramMetricFamily

        buckets, total = [], 0
        for bound, n in self._histogram():
            total += n
            buckets.append(("+Inf" if bound is None else str(bound), total))
        yield HistogramMetricFamily(
            "pegasus_front_batch_size",
            "requests per handle_batch call (they grow under load)",
            buckets=buckets,
            sum_value=self._stats["batch_requests"],
        )


__all__ = ["BATCH_BUCKETS", "FrontCollector", "PegasusFront", "check_listen", "parse_allow"]
