"""The serving side of how errors travel (wire.py): every servicer method runs inside one of these.

An error raised while serving goes back in the call's trailing metadata and
the server keeps serving; the client raises it again as its own class. One
place, used by every service (client, follower, meta, node).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc

from ..errors import PegasusFastError
from .wire import ERROR_KEY, encode_error, status_of

log = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])


def abort(context: grpc.ServicerContext, exc: BaseException) -> None:
    """End the call with ``exc``, typed; an error no one foresaw is logged with its traceback."""
    if not isinstance(exc, (PegasusFastError, OSError, TimeoutError, grpc.RpcError)):
        # (an RpcError here is the caller going away mid-stream: nothing to report)
        log.exception("serving a call failed", exc_info=exc)
    context.set_trailing_metadata(((ERROR_KEY, encode_error(exc)),))
    context.abort(status_of(exc), str(exc) or type(exc).__name__)


def typed(fn: _F) -> _F:
    """Serve a unary call; any error travels typed."""

    @functools.wraps(fn)
    def serve(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return fn(self, request, context)
        except Exception as exc:  # noqa: BLE001 - every error goes back to the caller
            abort(context, exc)

    return serve  # type: ignore[return-value]


def typed_stream(fn: _F) -> _F:
    """Serve a streamed reply; an error part way ends the stream, typed."""

    @functools.wraps(fn)
    def serve(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from fn(self, request, context)
        except Exception as exc:  # noqa: BLE001
            abort(context, exc)

    return serve  # type: ignore[return-value]


__all__ = ["abort", "typed", "typed_stream"]
