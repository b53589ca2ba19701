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

    def done(context: grpc.ServicerContext, start: float, failed: bool) -> None:
        metrics.record(SERVICE, verb, _code(context, failed), time.perf_counter() - start)

    def unary_reply(behavior: Callable[..., Any]) -> Callable[..., Any]:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            start = time.perf_counter()
            try:
                reply = behavior(request, context)
            except BaseException:
                done(context, start, True)
                raise
            done(context, start, False)
            return reply

        return call

    def streamed_reply(behavior: Callable[..., Any]) -> Callable[..., Any]:
        def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            start = time.perf_counter()
            failed = True
            try:
                yield from behavior(request, context)
                failed = False
            finally:
                done(context, start, failed)

        return call

    def awaited_reply(behavior: Callable[..., Any]) -> Callable[..., Any]:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            start = time.perf_counter()
            try:
                reply = await behavior(request, context)
            except BaseException:
                done(context, start, True)
                raise
            done(context, start, False)
            return reply

        return call

    def async_streamed_reply(behavior: Callable[..., Any]) -> Callable[..., Any]:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            start = time.perf_counter()
            failed = True
            try:
                async for item in behavior(request, context):
                    yield item
                failed = False
            finally:
                done(context, start, failed)

        return call

    def reply(behavior: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isasyncgenfunction(behavior):
            return async_streamed_reply(behavior)
        if inspect.iscoroutinefunction(behavior):
            return awaited_reply(behavior)
        return streamed_reply(behavior)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(
            reply(handler.stream_stream), handler.request_deserializer, handler.response_serializer
        )
    if handler.request_streaming:
        b = handler.stream_unary
        return grpc.stream_unary_rpc_method_handler(
            awaited_reply(b) if inspect.iscoroutinefunction(b) else unary_reply(b),
            handler.request_deserializer,
            handler.response_serializer,
        )
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(
            reply(handler.unary_stream), handler.request_deserializer, handler.response_serializer
        )
    b = handler.unary_unary
    return grpc.unary_unary_rpc_method_handler(
        awaited_reply(b) if inspect.iscoroutinefunction(b) else unary_reply(b),
        handler.request_deserializer,
        handler.response_serializer,
    )


__all__ = ["measured", "refused", "verb_of"]
