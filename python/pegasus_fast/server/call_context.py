"""What a served call's blocking method sees of its call (server/front.py runs the methods):
on a worker thread, every touch of the call goes through the front's loop while the call lives.
On either, an abort is kept and raised as :class:`Aborted`, and the front's handler makes it the
call's status once the method has unwound: so whatever the method does on its way out (counting
the call: call_metrics.py) is done before the client can see the status."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import grpc

from ..errors import RemoteUnavailableError


class _Loop(Protocol):
    """The front, as a worker reaches its loop."""

    loop: asyncio.AbstractEventLoop
    #: seconds a request stream may go without a request once it began
    stream_idle: float

    def wait(self, future: Any, peer: str) -> Any: ...

    def stopping(self) -> bool: ...


class SyncContext:
    """What the services' blocking methods ask of their call, from a worker thread.

    The call is touched only on the loop's thread, and only while its handler runs there: a
    worker that goes on after the call ended (the caller went away) gets RemoteUnavailableError,
    never a call gRPC has freed. The peer is read once, while the call is alive."""

    def __init__(self, context: grpc.aio.ServicerContext, front: _Loop) -> None:
        self._ctx = context
        self._front = front
        self._peer = context.peer()
        #: set on the loop's thread by the handler, when it returns or is cancelled
        self.live = True
        #: the status an abort ended the call with (call_metrics counts it), and its details
        self.aborted: grpc.StatusCode | None = None
        self.code = grpc.StatusCode.UNKNOWN
        self.details = ""

    def _op(self, fn: Callable[..., Any], *args: Any) -> Any:
        async def op() -> tuple[bool, Any]:
            # (ok, result or error): an error goes back to the worker, never left on a task
            if not self.live:
                return False, RemoteUnavailableError(self._peer, "the call ended")
            try:
                out = fn(*args)
                return True, (await out) if inspect.isawaitable(out) else out
            except BaseException as exc:  # noqa: BLE001 - AbortError and CancelledError too
                return False, exc

        # the coroutine is made on the loop, when it runs there: a loop stopped first (the
        # server stopping) leaves no coroutine never awaited behind
        done: concurrent.futures.Future[tuple[bool, Any]] = concurrent.futures.Future()

        def start() -> None:
            if not done.set_running_or_notify_cancel():
                return
            if self._front.stopping():
                # the loop stops after this turn: a task made now might never run
                done.set_result((False, RemoteUnavailableError(self._peer, "the server is stopping")))
            else:
                asyncio.ensure_future(op()).add_done_callback(
                    lambda t: done.set_result(
                        (False, RemoteUnavailableError(self._peer, "the call ended"))
                        if t.cancelled()
                        else t.result()
                    )
                )

        try:
            self._front.loop.call_soon_threadsafe(start)
        except RuntimeError:  # the loop is closed
            raise RemoteUnavailableError(self._peer, "the server is stopping") from None
        ok, out = self._front.wait(done, self._peer)
        if not ok:
            raise out
        return out

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> Any:
        return self._op(self._ctx.invocation_metadata)

    def time_remaining(self) -> float | None:
        return self._op(self._ctx.time_remaining)

    def set_trailing_metadata(self, metadata: Any) -> None:
        self._op(self._ctx.set_trailing_metadata, metadata)

    def add_callback(self, callback: Callable[[], object]) -> bool:
        try:
            self._op(self._ctx.add_done_callback, lambda _ctx: callback())
        except RemoteUnavailableError:
            callback()  # ended already: as if it ended now
            return False
        return True

    def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        if not self.live:
            raise RemoteUnavailableError(self._peer, "the call ended")
        self.code, self.details = code, details
        self.aborted = code
        raise Aborted  # the front's handler ends the call with it (front.py)

    def is_active(self) -> bool:
        try:
            return not self._op(self._ctx.done)
        except RemoteUnavailableError:
            return False

    def read(self) -> Any:
        """The next request of a request stream (blocks this worker), awaited for the stream's
        idle timeout at most: past it the stream is cut (RemoteUnavailableError), so a peer that
        stalls after its first request holds a worker that long, not for good."""

        async def read() -> Any:
            try:
                async with asyncio.timeout(self._front.stream_idle):
                    return await self._ctx.read()
            except TimeoutError:
                raise RemoteUnavailableError(
                    self._peer, f"no request for {self._front.stream_idle:g} s: the stream is cut"
                ) from None

        return self._op(read)


class LoopContext:
    """The call as a blocking method run on the loop's own thread sees it: an abort is kept
    and raised as Aborted, which the handler turns into the call's status."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._ctx = context
        self.code = grpc.StatusCode.UNKNOWN
        self.details = ""
        #: the status an abort ended the call with (call_metrics counts it)
        self.aborted: grpc.StatusCode | None = None

    def peer(self) -> str:
        return self._ctx.peer()

    def set_trailing_metadata(self, metadata: Any) -> None:
        self._ctx.set_trailing_metadata(metadata)

    def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        self.code, self.details = code, details
        self.aborted = code
        raise Aborted


class Aborted(Exception):
    """A method run on the loop ended its call (code and details kept by its LoopContext)."""


def requests_of(first: Any, ctx: SyncContext) -> Iterator[Any]:
    yield first
    while True:
        msg = ctx.read()
        if msg is grpc.aio.EOF:
            return
        yield msg


__all__ = ["Aborted", "LoopContext", "SyncContext", "requests_of"]
