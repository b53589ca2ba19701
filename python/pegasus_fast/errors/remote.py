"""Errors of talking to a served cluster: unreachable, a refused token, a failure it
reports that is not one of ours, and bytes that are not the Pegasus protocol."""

from __future__ import annotations

from .base import PegasusFastError, Retry


class RemoteUnavailableError(PegasusFastError):
    """The remote cluster of a duplication (or a served cluster) cannot be reached now."""

    retry = Retry.TRANSIENT

    def __init__(self, remote: str, reason: str = "") -> None:
        super().__init__(f"remote {remote} is unavailable" + (f": {reason}" if reason else ""))
        self.remote = remote
        self.reason = reason


class FollowerTableNotFoundError(RemoteUnavailableError):
    """A duplication's follower table is not on the remote cluster (it was dropped there):
    TRANSIENT as any unavailability, but a duplication shipping its log says it is stuck."""

    def __init__(self, remote: str, table: str) -> None:
        super().__init__(remote, f"table {table!r} not found")
        self.table = table


class AuthenticationError(PegasusFastError):
    """A served cluster refused the call: its token was missing or wrong."""

    def __init__(self, remote: str, reason: str = "") -> None:
        super().__init__(f"{remote} refused the call" + (f": {reason}" if reason else ""))
        self.remote = remote
        self.reason = reason


class PermissionDeniedError(AuthenticationError):
    """A served cluster knew the call's token, but that token's role does not cover the method
    (a client token calling an admin method, say)."""


class RemoteError(PegasusFastError):
    """A served cluster failed a call with an error that is not one of this module's classes
    (its class name and message travel in ``type_name`` and the message)."""

    retry = Retry.FAILURE

    def __init__(self, remote: str, type_name: str, message: str) -> None:
        super().__init__(f"{remote}: {type_name}: {message}")
        self.remote = remote
        self.type_name = type_name


class PegasusProtocolError(PegasusFastError):
    """Bytes on a Pegasus-protocol connection (net/pegasus/) that are not a valid frame or
    message: ``offset`` is where the rejected bytes start, counted from the start of the
    connection's stream (or of the buffer given to a decoder)."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"Pegasus protocol error at offset {offset}: {reason}")
        self.offset = int(offset)
        self.reason = reason


class FrameTooLargeError(PegasusProtocolError):
    """A Pegasus-protocol frame header announces more bytes than the frame-size limit."""

    def __init__(self, offset: int, length: int, limit: int) -> None:
        super().__init__(offset, f"frame of {length} bytes; the limit is {limit}")
        self.length = int(length)
        self.limit = int(limit)
