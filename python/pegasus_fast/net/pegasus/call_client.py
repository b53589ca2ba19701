"""The calls of Pegasus's client protocol over blocking sockets: the Rust client
(``_rust.PegasusClientCore``, waiting with the GIL released) or, under the pure-Python
backend, its twin :class:`PyClientCore`, the same frames (calls.py) and the same compact
results. ``pf.connect``'s data plane (client/native.py) and a primary's replication links
(multinode/links.py) call through it.
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any

from ... import _backend
from ...errors import PegasusProtocolError
from .calls import decode_reply, encode_call
from .frame import DEFAULT_MAX_FRAME

_LEN = struct.Struct(">i")


class PyClientCore:
    """The pure-Python twin of ``_rust.PegasusClientCore``: ``call(op, app_id, pidx, args)``."""

    def __init__(self, host: str, port: int, timeout: float | None = None) -> None:
        self._addr = (host, port)
        self._timeout = timeout
        self._pool: list[socket.socket] = []
        self._lock = threading.Lock()
        self._seqid = 0

    def _conn(self) -> socket.socket:
        with self._lock:
            if self._pool:
                return self._pool.pop()
        s = socket.create_connection(self._addr, timeout=self._timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def call(self, op: int, app_id: int, pidx: int, args: Any) -> tuple[str, Any]:
        with self._lock:
            self._seqid = (self._seqid + 1) & 0x7FFFFFFF
            seqid = self._seqid
        frame = encode_call(op, seqid, app_id, pidx, tuple(args))
        s = self._conn()
        try:
            s.sendall(frame)
            (n,) = _LEN.unpack(_recv(s, 4))
            if n < 4 or n > DEFAULT_MAX_FRAME:
                raise PegasusProtocolError(0, f"reply length {n}")
            error, _, got, result = decode_reply(op, _recv(s, n - 4))
            if got != seqid:
                raise PegasusProtocolError(0, f"reply to sequence id {got}, not {seqid}")
        except BaseException:
            s.close()
            raise
        with self._lock:
            self._pool.append(s)
        return error, result

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, []
        for s in pool:
            s.close()


def _recv(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise ConnectionError(f"the server closed the connection after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def client_core(host: str, port: int, timeout: float | None = None) -> Any:
    """A client of the Pegasus port at ``host:port``: the Rust one when the Rust backend is
    active, :class:`PyClientCore` otherwise (both: ``call(op, app_id, pidx, args)``, ``close()``)."""
    core = getattr(_backend.impl, "PegasusClientCore", None)
    return (core or PyClientCore)(host, port, timeout)


__all__ = ["PyClientCore", "client_core"]
