"""``pf.connect``'s data calls over the server's Pegasus-protocol port (DESIGN.md §8, §11).

RemoteTable hands its data calls (get, set, delete, batch_get, multi_get, multi_set, multi_delete,
sort-key counts and TTLs) to a :class:`DataPlane` when the server's Info names a data port;
administration, duplication and the follower service stay on gRPC. The calls go through the
Rust client (``PegasusClientCore``: blocking sockets from a pool, waiting with the GIL
released, so client threads scale) or, under the pure-Python backend, its twin here: the
same frames (net/pegasus/calls.py), the same compact results.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..errors import (
    DataCorruptionError,
    InvalidArgumentError,
    PartitionUnavailableError,
    PegasusFastError,
    TableNotFoundError,
)
from ..net.pegasus import codes
from ..net.pegasus.call_client import PyClientCore, client_core

#: a write refused for the table's role is sent again this often when the role allows it now
#: (backing off from 1 ms: about 0.5 s in all, the time a loaded node takes to lift every
#: partition's gate after a take-over changed the role)
REFUSED_RETRIES = 9


class DataPlane:
    """A table's data calls on the Pegasus port at ``host:port``."""

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float | None,
        refused: Callable[[str], BaseException | None] = lambda table: None,
    ) -> None:
        self.core: Any = client_core(host, port, timeout)
        self.target = f"{host}:{port}"
        #: the typed error of a write the table refuses (its role: FollowerTableError,
        #: TableMovedError), asked of the server when the port answers NotSupported
        self._refused = refused

    def call(self, table: str, op: int, app_id: int, pidx: int, args: tuple[Any, ...]) -> Any:
        """The result of one call, or the typed error its answer means (protocol §5)."""
        for attempt in range(REFUSED_RETRIES + 1):
            error, result = self.core.call(op, app_id, pidx, args)
            if error != codes.ERR_OK or result[0] != codes.K_NOT_SUPPORTED:
                break
            # a write the table's role refused (nothing was written): say which, or, when the
            # role changed since (a switchover's new primary took over), send it again
            exc = self._refused(table)
            if exc is not None:
                raise exc
            if attempt == REFUSED_RETRIES:
                raise PartitionUnavailableError(table, pidx, "its role is changing")
            time.sleep(0.001 * (1 << attempt))
        if error != codes.ERR_OK:
            if error == codes.ERR_OBJECT_NOT_FOUND:
                raise TableNotFoundError(table)
            if error == codes.ERR_INVALID_STATE:
                raise PartitionUnavailableError(table, pidx, "not serving")
            raise PegasusFastError(f"{self.target}: {RPC_NAME.get(op, op)} of {table!r} answered {error}")
        status = result[0]
        if status in (codes.K_OK, codes.K_NOT_FOUND, codes.K_INCOMPLETE):
            return result
        if status == codes.K_INVALID_ARGUMENT:
            raise InvalidArgumentError(f"{self.target} refused the arguments of {RPC_NAME.get(op, op)}")
        if status == codes.K_CORRUPTION:
            raise DataCorruptionError(self.target, f"corruption in {table!r} partition {pidx}")
        raise OSError(f"{self.target}: {RPC_NAME.get(op, op)} of {table!r} failed (rocksdb status {status})")

    def close(self) -> None:
        self.core.close()


RPC_NAME = {op: name for name, op in codes.RPC_OPS.items()}

__all__ = ["DataPlane", "PyClientCore"]
