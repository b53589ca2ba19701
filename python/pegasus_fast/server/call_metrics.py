"""Every gRPC call counted by method and status code, and timed (request_metrics.py).

The server's front (front.py) wraps each service handler it lets in
with :func:`measured`; calls it refuses are counted by :func:`refused`. The
verb is ``Service/Method`` (``Client/Set``, ``Follower/Apply``), the code the
gRPC status name (``OK``, ``NOT_FOUND``, ``UNAUTHENTICATED``, ...). A streamed
reply is timed until its last message (or its end by error or cancellation). Handlers that
run on the front's loop (coroutines, async generators: a replication stream, health) are
counted the same way.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc

from ..request_metrics import RequestMetrics

SERVICE = "grpc"


def verb_of(method: str) -> str:
    """``/pegasus_fast.v1.Client/Set`` -> ``Client/Set``."""
    service, _, name = method.rpartition("/")
    return f"{service.rpartition('.')[2]}/{name}"


def _code(context: Any, failed: bool) -> str:
    """The call's status name: OK, or the code it was aborted with (the front's contexts keep
    it: call_context.py), or CANCELLED when the client went away mid-call."""
    if not failed:
        return "OK"
    code = getattr(context, "aborted", None)
    if isinstance(code, grpc.StatusCode):
        return code.name
    if not hasattr(context, "is_active"):  # an asyncio call's context (the loop's own handlers)
        if context.cancelled():
            return "CANCELLED"
        code = context.code()
        return code.name if isinstance(code, grpc.StatusCode) and code != grpc.StatusCode.OK else "UNKNOWN"
    if not context.is_active():
        return "CANCELLED"  # the client went away (or a deadline passed) mid-call
    return "UNKNOWN"


def refused(metrics: RequestMetrics, method: str, code: grpc.StatusCode) -> None:
    metrics.record(SERVICE, verb_of(method), code.name, 0.0)


def measured(handler: grpc.RpcMethodHandler, method: str, metrics: RequestMetrics) -> grpc.RpcMethodHandler:
    """``handler`` with every call counted and timed."""
    verb = verb_of(method)

    @contextlib.contextmanager
    def counted(context: Any) -> Iterator[None]:
        """One call, from now until the block ends: OK, or failed however it ended (an error,
        a cancellation, a stream closed before its end)."""
        start = time.perf_counter()
        failed = True
        try:
            yield
            failed = False
        finally:
            metrics.record(SERVICE, verb, _code(context, failed), time.perf_counter() - start)

    def wrapped(behavior: Callable[..., Any], streams: bool) -> Callable[..., Any]:
        """``behavior`` counted: a coroutine, an async generator (the front's loop runs them),
        or a plain function whose reply is a message or, if ``streams``, an iterator of them."""
        if inspect.isasyncgenfunction(behavior):

            async def async_stream(request: Any, context: Any) -> AsyncIterator[Any]:
                with counted(context):
                    async for item in behavior(request, context):
                        yield item

            return async_stream
        if inspect.iscoroutinefunction(behavior):

            async def awaited(request: Any, context: Any) -> Any:
                with counted(context):
                    return await behavior(request, context)

            return awaited
        if streams:

            def stream(request: Any, context: Any) -> Iterator[Any]:
                with counted(context):
                    yield from behavior(request, context)

            return stream

        def unary(request: Any, context: Any) -> Any:
            with counted(context):
                return behavior(request, context)

        return unary

    des, ser = handler.request_deserializer, handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(wrapped(handler.stream_stream, True), des, ser)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(wrapped(handler.stream_unary, False), des, ser)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(wrapped(handler.unary_stream, True), des, ser)
    return grpc.unary_unary_rpc_method_handler(wrapped(handler.unary_unary, False), des, ser)


__all__ = ["measured", "refused", "verb_of"]
