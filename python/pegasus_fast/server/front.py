"""The front of a served cluster: gRPC on an asyncio loop of its own, the services' (blocking)
methods on bounded thread pools behind it.

A call waits for its request on the loop, where a call that never sends one costs a few KiB and
no thread: only a request that arrived takes a worker. So a token holder's stalled calls hold
no worker, whatever their number; each call has the body timeout to send its request (a request
stream, its first message), then it is cancelled.

Four pools: ``data`` (the data API, the Follower, Meta and Node services' unary calls),
``reserve`` (who the cluster is: Info, ListTables, GetTable; health runs on the loop itself),
``admin`` (tables and duplications: what an operator needs while the data pool is busy) and
``streams`` (calls whose requests stream in, which hold their worker between messages: a few,
so they never take the others'). A reply that streams out takes a
worker per message, not while the caller is slow to read it. A point read (Get, Ttl) answers
on the loop itself: the hop to a worker and back costs more than the read (benches/remote.py:
get p50 1.66x a bare grpcio call through a worker, 1.30-1.38x on the loop, as with the
threaded server before).

The guard runs with a call's headers, before its request is read: with tokens, a call must
carry ``authorization: Bearer <token>`` (constant-time compare) of a role that covers its
method (roles.py), or it is refused unread.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from ..errors import PermissionDeniedError, RemoteUnavailableError, ResourceExhaustedError
from ..logs import Refusals, get
from ..net.wire import ERROR_KEY, encode_error, status_of
from .call_context import Aborted, LoopContext, SyncContext, requests_of
from .call_metrics import measured, refused
from .roles import ADMIN, COMMON, Tokens, refusal
from .stream_slots import client_of

if TYPE_CHECKING:
    from ..request_metrics import RequestMetrics

#: workers for the data API and the Follower, Meta and Node services
WORKERS = 32
#: workers kept for who the cluster is (Info, ListTables, GetTable, Health); health itself
#: runs on the loop
RESERVE = 4
#: workers for tables and duplications (a checkpoint or a compaction may take a while)
ADMIN_WORKERS = 4
#: workers for calls whose requests stream in (a checkpoint copy, an apply stream)
STREAM_WORKERS = 8
#: how many calls one connection may have open at once (HTTP/2 concurrent streams)
CALLS_PER_CONNECTION = 100
#: how many calls of one client (a host) may wait for their request at once; health apart, so
#: a client's stalled calls never keep its health checks out (each waiting call holds ~50 KiB)
WAITING = {"calls": 256, "health": 16}
_WAITING_RESOURCE = {"calls": "calls_waiting_per_client", "health": "health_calls_waiting_per_client"}

_HEALTH = "/grpc.health.v1.Health/"
#: admin calls that may wait long: kept off the reserve
_LONG = frozenset({"/pegasus_fast.v1.Client/WaitDuplication"})
#: point reads, answered on the loop itself (no hop to a worker and back)
_INLINE = frozenset(f"/pegasus_fast.v1.Client/{m}" for m in ("Get", "Ttl"))
_END = object()
_T = TypeVar("_T")


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)


class Front:
    """An asyncio gRPC server on a thread of its own; :meth:`stop` ends both."""

    def __init__(
        self,
        name: str,
        tokens: Tokens,
        body_timeout: float,
        options: list[tuple[str, Any]],
        metrics: RequestMetrics | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.body_timeout = body_timeout
        #: every call counted by method and code, and timed (call_metrics.py); None: not counted
        self.metrics = metrics
        #: refused calls: counted (requests_total's codes) and logged at most every few seconds
        self.refusals = Refusals(log or get(__name__), "gRPC calls")
        #: a request stream that began may go this long without its next request (a source
        #: sends its batches and chunks back to back: twice the body timeout is a dead peer)
        self.stream_idle = 2 * body_timeout
        #: (client, kind) -> its calls waiting for their request (the loop's thread only)
        self._waiting: dict[tuple[str, str], int] = {}
        #: method -> (the service's handler, its wrapped handler): made on the loop's thread only
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}
        self._bearers = tokens.bearers()
        self._pools = {
            "data": ThreadPoolExecutor(WORKERS, thread_name_prefix=f"serve-{name}"),
            "reserve": ThreadPoolExecutor(RESERVE, thread_name_prefix=f"serve-{name}-reserve"),
            "admin": ThreadPoolExecutor(ADMIN_WORKERS, thread_name_prefix=f"serve-{name}-admin"),
            "streams": ThreadPoolExecutor(STREAM_WORKERS, thread_name_prefix=f"serve-{name}-streams"),
        }
        self._loop = self.loop = asyncio.new_event_loop()
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"serve-{name}-front", daemon=True
        )
        self._thread.start()
        opts = [*options, ("grpc.max_concurrent_streams", CALLS_PER_CONNECTION)]

        async def make() -> grpc.aio.Server:
            # no pool of its own: every blocking method goes through _wrap to ours
            return grpc.aio.server(interceptors=[_Guard(self)], options=opts)

        self.server: grpc.aio.Server = self.run(make())

    def run(self, coro: Awaitable[_T]) -> _T:
        """Run ``coro`` on the loop; its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()  # type: ignore[arg-type]

    def on_loop(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Call ``fn(*args)`` on the loop's thread (the aio server's methods)."""

        async def call() -> _T:
            return fn(*args)

        return self.run(call())

    def stopping(self) -> bool:
        """Whether the loop is stopping (or stopped): nothing begun on it now may ever run."""
        return self._closed.is_set()

    def wait(self, future: Any, peer: str) -> Any:
        """The result of ``future`` (of the loop), from a worker; RemoteUnavailableError once
        the front is stopped (the loop may never run it)."""
        while True:
            try:
                return future.result(timeout=0.5)
            except TimeoutError:
                if self._closed.is_set():
                    future.cancel()  # not begun yet: never begun
                    raise RemoteUnavailableError(peer, "the server is stopping") from None

    def stop(self, grace: float) -> None:
        try:
            self.run(self.server.stop(grace))
        finally:
            self._closed.set()
            for pool in self._pools.values():
                pool.shutdown(wait=False, cancel_futures=True)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                self._loop.close()

    # -- calls -------------------------------------------------------------------------

    def _pool(self, method: str, request_streaming: bool) -> ThreadPoolExecutor:
        if request_streaming:
            return self._pools["streams"]
        if method in _LONG:
            return self._pools["data"]
        if method.startswith(_HEALTH) or method in COMMON:
            return self._pools["reserve"]
        if method in ADMIN:
            return self._pools["admin"]
        return self._pools["data"]

    async def _first(self, context: grpc.aio.ServicerContext, kind: str) -> Any:
        """The call's first request, awaited for the body timeout at most; while it waits, the
        call counts among its client's (a host: stream_slots.client_of) calls waiting for their
        request, ``kind`` "health" or "calls", each bounded (WAITING): past the bound the call is
        refused at once, ResourceExhaustedError, so a client's stalls hold a bounded memory."""
        key = (client_of(context.peer()), kind)
        limit = WAITING[kind]
        n = self._waiting.get(key, 0)
        if n >= limit:
            exc = ResourceExhaustedError(_WAITING_RESOURCE[kind], limit, n + 1)
            context.set_trailing_metadata(((ERROR_KEY, encode_error(exc)),))
            await context.abort(status_of(exc), str(exc))
        self._waiting[key] = n + 1  # the loop's thread only
        try:
            async with asyncio.timeout(self.body_timeout):
                request = await context.read()
        except TimeoutError:
            await context.abort(grpc.StatusCode.CANCELLED, "the request did not arrive in time")
        finally:
            left = self._waiting[key] - 1
            if left:
                self._waiting[key] = left
            else:
                del self._waiting[key]
        if request is grpc.aio.EOF:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "a call needs a request")
        return request

    def wrapped(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """:meth:`wrap` of ``handler``, made once per method (the services' handlers are fixed)."""
        got = self._wrapped.get(method)
        if got is None or got[0] is not handler:
            counted = handler
            if self.metrics is not None:
                counted = measured(handler, method, self.metrics)
            got = self._wrapped[method] = (handler, self.wrap(counted, method))
        return got[1]

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """``handler`` with its first request awaited on the loop (for the body timeout at most)
        and its blocking behaviour run on a pool; as a handler of a request stream, so that
        nothing of the request is read before this."""
        behavior = _behavior(handler)
        pool = self._pool(method, handler.request_streaming)
        inline = method in _INLINE and not handler.request_streaming and not handler.response_streaming
        kind = "health" if method.startswith(_HEALTH) else "calls"
        loop = self._loop
        streaming_in = handler.request_streaming

        def args(first: Any, ctx: SyncContext) -> tuple[Any, SyncContext]:
            return (requests_of(first, ctx) if streaming_in else first), ctx

        if not handler.response_streaming:

            async def unary(_requests_in: Any, context: grpc.aio.ServicerContext) -> Any:
                first = await self._first(context, kind)
                if _is_async(behavior) and not streaming_in:
                    return await behavior(first, context)
                if inline:
                    # a point read answers on the loop: the hop to a worker and back would cost
                    # more than the read
                    here = LoopContext(context)
                    try:
                        return behavior(first, here)
                    except Aborted:
                        await context.abort(here.code, here.details)
                ctx = SyncContext(context, self)
                try:
                    return await loop.run_in_executor(pool, behavior, *args(first, ctx))
                except Aborted:
                    await context.abort(ctx.code, ctx.details)
                finally:
                    ctx.live = False

            return grpc.stream_unary_rpc_method_handler(
                unary, handler.request_deserializer, handler.response_serializer
            )

        if inspect.iscoroutinefunction(behavior) and not streaming_in:
            # an async method that writes its replies with context.write (health's Watch)

            async def writes(_requests_in: Any, context: grpc.aio.ServicerContext) -> None:
                first = await self._first(context, kind)
                await behavior(first, context)

            return grpc.stream_stream_rpc_method_handler(
                writes, handler.request_deserializer, handler.response_serializer
            )

        if inspect.isasyncgenfunction(behavior) and streaming_in:
            # a request stream answered on the loop, request by request (a replication link's:
            # it holds no worker while it waits for the next request)

            async def on_loop(_requests_in: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                first = await self._first(context, kind)
                async for item in behavior(_after(first, context), context):
                    yield item

            return grpc.stream_stream_rpc_method_handler(
                on_loop, handler.request_deserializer, handler.response_serializer
            )

        async def stream(_requests_in: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            first = await self._first(context, kind)
            if inspect.isasyncgenfunction(behavior) and not streaming_in:
                async for item in behavior(first, context):
                    yield item
                return
            ctx = SyncContext(context, self)
            step: Any = None
            gen: Any = None
            try:
                gen = await loop.run_in_executor(pool, behavior, *args(first, ctx))
                while True:
                    step = pool.submit(next, gen, _END)
                    item = await asyncio.wrap_future(step)
                    step = None
                    if item is _END:
                        return
                    yield item
            except Aborted:
                step = None  # the step that raised it is over
                await context.abort(ctx.code, ctx.details)
            finally:
                ctx.live = False
                # the generator's own finally (a scan's slot, a gauge) runs on a worker, once
                # the step running there (if any) is over

                def close(_: object = None) -> None:
                    if gen is not None:
                        try:
                            pool.submit(gen.close)
                        except RuntimeError:  # the pool is shut down
                            pass

                if step is None:
                    close()
                else:
                    step.add_done_callback(close)

        return grpc.stream_stream_rpc_method_handler(
            stream, handler.request_deserializer, handler.response_serializer
        )


async def _after(first: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    """``first``, then every request the call reads after it."""
    yield first
    while True:
        request = await context.read()
        if request is grpc.aio.EOF:
            return
        yield request


def _behavior(handler: grpc.RpcMethodHandler) -> Callable[..., Any]:
    return {
        (False, False): handler.unary_unary,
        (False, True): handler.unary_stream,
        (True, False): handler.stream_unary,
        (True, True): handler.stream_stream,
    }[(handler.request_streaming, handler.response_streaming)]


def _refuse(reason: str, code: grpc.StatusCode) -> grpc.RpcMethodHandler:
    """A handler that refuses the call without reading its request."""

    async def refuse(requests: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, reason)

    return grpc.stream_unary_rpc_method_handler(refuse)


class _Guard(grpc.aio.ServerInterceptor):
    def __init__(self, front: Front) -> None:
        self._front = front

    def _refuse(self, method: str, reason: str, code: grpc.StatusCode) -> grpc.RpcMethodHandler:
        if self._front.metrics is not None:
            refused(self._front.metrics, method, code)
        self._front.refusals.refused(f"{code.name}: {reason}")
        return _refuse(reason, code)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        bearers = self._front._bearers
        if bearers:
            got = b""
            for key, value in handler_call_details.invocation_metadata or ():
                if key == "authorization":
                    got = value.encode() if isinstance(value, str) else bytes(value)
                    break
            why = refusal(bearers, got, method)
            if why is not None:
                code = (
                    grpc.StatusCode.PERMISSION_DENIED
                    if isinstance(why, PermissionDeniedError)
                    else grpc.StatusCode.UNAUTHENTICATED
                )
                return self._refuse(method, why.reason, code)
        return self._front.wrapped(handler, method)


__all__ = [
    "ADMIN_WORKERS",
    "CALLS_PER_CONNECTION",
    "RESERVE",
    "WAITING",
    "STREAM_WORKERS",
    "WORKERS",
    "Front",
]
