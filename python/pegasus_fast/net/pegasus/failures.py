"""How a request the store refuses or fails is answered (docs/pegasus-protocol.md §5): the
rDSN error and rocksdb status of each error, and the result of each op carrying only that
status."""

from __future__ import annotations

from typing import Any

from ...errors import (
    ClosedError,
    DataCorruptionError,
    FollowerTableError,
    InvalidArgumentError,
    InvalidTypeError,
    NotOwnerError,
    PartitionUnavailableError,
    PegasusFastError,
    ResourceExhaustedError,
    TableMovedError,
    TableNotFoundError,
)
from . import atomics, codes


class InvalidRequest(Exception):
    """A request the store refuses with kInvalidArgument (answered, never raised out)."""


def failure(exc: BaseException) -> tuple[str, int]:
    """``(rDSN error, rocksdb status)`` answering an exception raised by the store."""
    if isinstance(exc, (PartitionUnavailableError, NotOwnerError)):
        return codes.ERR_INVALID_STATE, 0
    if isinstance(exc, (TableNotFoundError, ClosedError)):
        return codes.ERR_OBJECT_NOT_FOUND, 0
    if isinstance(exc, (InvalidArgumentError, InvalidTypeError, InvalidRequest)):
        return codes.ERR_OK, codes.K_INVALID_ARGUMENT
    if isinstance(exc, DataCorruptionError):
        return codes.ERR_OK, codes.K_CORRUPTION
    if isinstance(exc, ResourceExhaustedError):
        return codes.ERR_OK, codes.K_TRY_AGAIN
    if isinstance(exc, (FollowerTableError, TableMovedError)):
        # a write this table never takes here (a read-only follower, a table switched over):
        # NotSupported, which a Pegasus client does not retry (docs/pegasus-protocol.md)
        return codes.ERR_OK, codes.K_NOT_SUPPORTED
    if isinstance(exc, (PegasusFastError, OSError)):
        return codes.ERR_OK, codes.K_IO_ERROR
    return codes.ERR_UNKNOWN, 0


def status_only(op: int, status: int) -> tuple[Any, ...]:
    """The result of ``op`` carrying only a failing rocksdb status."""
    if op in (codes.OP_PUT, codes.OP_MULTI_PUT, codes.OP_REMOVE):
        return status, 0
    if op == codes.OP_MULTI_REMOVE:
        return status, 0, 0
    if op == codes.OP_GET or op == codes.OP_REPLICATE or op == codes.OP_DUP_APPLY:
        return status, b""
    if op == codes.OP_MULTI_GET:
        return status, []
    if op in (codes.OP_SORTKEY_COUNT, codes.OP_TTL):
        return status, 0
    if op in codes.ATOMIC_OPS:
        return atomics.status_only(op, status)
    if op == codes.OP_BATCH_GET:
        return status, []
    return status, [], codes.CONTEXT_ID_COMPLETED  # get_scanner, scan
