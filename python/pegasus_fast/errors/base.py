"""The base of every pegasus_fast error, what a retry can do about an error, and an error's fix.

Whether trying again can help is a property of the error, :attr:`PegasusFastError.retry`,
not of where its class sits in the hierarchy; :func:`retry_of` answers it for any exception.
Also the refusals any call can meet: a bad argument, a closed object, a bounded resource.
"""

from __future__ import annotations

from enum import Enum


class Retry(Enum):
    """What a caller that may try again (a duplication, a client) should do about an error."""

    #: the other side is not ready or not reachable now; wait and try again, whatever the fail mode
    TRANSIENT = "transient"
    #: an operation failed and a retry may succeed; the caller's policy (a fail mode) decides
    FAILURE = "failure"
    #: no retry can fix it (a conflict, a bad argument); stop and say why
    PERMANENT = "permanent"


class PegasusFastError(Exception):
    """Base of every pegasus_fast error."""

    retry: Retry = Retry.PERMANENT
    #: what the caller can change to get past it (a flag, an argument), when something can:
    #: set by :func:`with_fix`, which also ends the message with it ("" when nothing is known)
    fix: str = ""

    @property
    def retryable(self) -> bool:
        return self.retry is not Retry.PERMANENT


def with_fix(exc: PegasusFastError, fix: str) -> PegasusFastError:
    """``exc`` with ``fix`` (what would get past it) as its field and at the end of its message."""
    exc.fix = fix
    first = str(exc.args[0]) if exc.args else type(exc).__name__
    exc.args = (f"{first}{FIX_MARK}{fix}", *exc.args[1:])
    return exc


FIX_MARK = ". Fix: "


def fix_of(exc: BaseException | str) -> str:
    """The fix of an error, also of one that crossed the wire as text (a duplication's error
    as a served source reports it): what :func:`with_fix` put at the end of its message."""
    fix = getattr(exc, "fix", "")
    if fix:
        return str(fix)
    return str(exc).rpartition(FIX_MARK)[2] if FIX_MARK in str(exc) else ""


def retry_of(exc: BaseException) -> Retry:
    """The retry class of any exception: I/O errors are failures a retry may fix."""
    if isinstance(exc, PegasusFastError):
        return exc.retry
    if isinstance(exc, OSError):
        return Retry.FAILURE
    return Retry.FAILURE if isinstance(exc, Exception) else Retry.PERMANENT


class InvalidArgumentError(PegasusFastError, ValueError):
    """An argument of the right type with a value the store cannot take."""


class InvalidTypeError(PegasusFastError, TypeError):
    """An argument of the wrong type (keys and values are bytes or str)."""


class ClosedError(PegasusFastError):
    """The cluster or table was closed."""


class ResourceExhaustedError(PegasusFastError):
    """A bounded resource (``resource``: a Config knob's name, or ``"open_partitions"``) would
    go past its ``limit``: ``requested`` is what it would have reached. Nothing was changed."""

    #: something may be released (a table dropped, a stream ended): a retry may succeed later
    retry = Retry.FAILURE

    def __init__(self, resource: str, limit: int, requested: int) -> None:
        super().__init__(f"{resource}: {requested} would pass the limit of {limit}")
        self.resource = str(resource)
        self.limit = int(limit)
        self.requested = int(requested)
