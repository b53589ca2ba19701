"""A loopback TCP proxy that misbehaves on purpose: cuts, stalls and slows connections.

Put between a duplication's source and its served follower (the source
duplicates to the proxy's URL), it forwards bytes both ways, and:

- with a seed, it follows a fault plan drawn from ``random.Random(seed)``:
  at chosen reads (counted over every connection and both directions) it
  *cuts* the connection (a reset or a plain close of both sides), *stalls*
  it (stops forwarding that direction for a while), or *slows* it (forwards
  the bytes read in small pieces with a delay after each). Which connection
  a fault lands on depends on the threads' timing; the plan does not.
- with ``rate``, it forwards at most that many bytes a second each way,
  which makes a checkpoint copy last long enough to kill a side mid-copy.

:meth:`heal` makes it a faithful proxy from then on (faults drawn but not
yet reached are dropped); :meth:`cut_all` resets every open connection.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

CUT, STALL, SLOW = "cut", "stall", "slow"
READ_BYTES = 64 << 10


@dataclass
class Stats:
    cuts: int = 0
    stalls: int = 0
    slows: int = 0
    connections: int = 0
    reads: int = 0
    #: bytes forwarded from the client (the source) to the target (the follower), and back
    up_bytes: int = 0
    down_bytes: int = 0
    faults: list[tuple[int, str]] = field(default_factory=list)


def fault_plan(seed: int, horizon: int, cuts: int, stalls: int, slows: int) -> dict[int, tuple[str, float]]:
    """read index -> (fault, its parameter), drawn from ``random.Random(seed)``."""
    rng = random.Random(seed)
    plan: dict[int, tuple[str, float]] = {}
    for kind, count in ((CUT, cuts), (STALL, stalls), (SLOW, slows)):
        for _ in range(count):
            at = rng.randrange(1, horizon)
            while at in plan:
                at = rng.randrange(1, horizon)
            if kind == CUT:
                param = float(rng.random() < 0.5)  # 1.0: reset, 0.0: a plain close
            elif kind == STALL:
                param = rng.uniform(0.05, 0.5)  # seconds without forwarding
            else:
                param = float(rng.randint(2, 24))  # pieces the bytes read are forwarded in
            plan[at] = (kind, param)
    return plan


def _reset(sock: socket.socket) -> None:
    """Close with a reset (no FIN); a thread blocked reading it wakes up."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD)  # wakes a reader; sends nothing
    except OSError:
        pass
    sock.close()


class _Conn:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.lock = threading.Lock()
        self.closed = False
        #: directions that saw their end (both: the sockets are closed)
        self.ended = 0

    def end_one(self) -> None:
        with self.lock:
            self.ended += 1
            last = self.ended == 2
        if last:
            self.cut(reset=False)

    def cut(self, reset: bool) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for s in (self.client, self.upstream):
            if reset:
                _reset(s)
            else:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


class FaultyProxy:
    """127.0.0.1:<port> forwarding to 127.0.0.1:<target_port>; :meth:`close` stops everything."""

    def __init__(
        self,
        target_port: int,
        seed: int | None = None,
        *,
        horizon: int = 400,
        cuts: int = 2,
        stalls: int = 3,
        slows: int = 6,
        rate: float | None = None,
    ) -> None:
        self.target_port = target_port
        self.seed = seed
        self.rate = rate
        self.plan = {} if seed is None else fault_plan(seed, horizon, cuts, stalls, slows)
        self.stats = Stats()
        self._lock = threading.Lock()
        self._healed = threading.Event()
        self._stopping = threading.Event()
        self._black = threading.Event()
        self._held: list[socket.socket] = []
        self._conns: list[_Conn] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.05)  # the accept loop sees close() soon
        self.port = self._listener.getsockname()[1]
        self._spawn(self._accept, "proxy-accept")

    @property
    def url(self) -> str:
        return f"pegasus://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def heal(self) -> None:
        """Forward faithfully from now on."""
        self._healed.set()

    def open_connections(self) -> int:
        with self._lock:
            return sum(not c.closed for c in self._conns)

    def blackhole(self) -> None:
        """A network partition: from now on nothing is forwarded either way and no new
        connection is let through, but nothing is closed (the peers notice by their timeouts)."""
        self._black.set()

    def cut_all(self, reset: bool = True) -> None:
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.cut(reset)

    def close(self) -> None:
        self._stopping.set()
        self._healed.set()
        try:
            self._listener.close()
        except OSError:
            pass
        self.cut_all()
        for s in self._held:
            _reset(s)
        for t in self._threads:
            t.join(5.0)

    # -- forwarding -----------------------------------------------------------------

    def _spawn(self, target: object, name: str, *args: object) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            if self._black.is_set():
                self._held.append(client)  # accepted, never answered
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5.0)
                upstream.settimeout(None)
            except OSError:
                _reset(client)  # the target is down: the client sees a refused-like reset
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(client, upstream)
            with self._lock:
                self._conns = [c for c in self._conns if not c.closed] + [conn]
                self.stats.connections += 1
            self._spawn(self._pump, "proxy-up", conn, client, upstream, True)
            self._spawn(self._pump, "proxy-down", conn, upstream, client, False)

    def _next_fault(self) -> tuple[str, float] | None:
        with self._lock:
            self.stats.reads += 1
            if self._healed.is_set():
                return None
            fault = self.plan.get(self.stats.reads)
            if fault is not None:
                self.stats.faults.append((self.stats.reads, fault[0]))
            return fault

    def _pump(self, conn: _Conn, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while True:
                data = src.recv(READ_BYTES)
                if not data:
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    conn.end_one()
                    return
                if self._black.is_set():
                    continue  # dropped on the floor
                fault = self._next_fault()
                if fault is not None and fault[0] == CUT:
                    with self._lock:
                        self.stats.cuts += 1
                    conn.cut(reset=bool(fault[1]))
                    return
                if fault is not None and fault[0] == STALL:
                    with self._lock:
                        self.stats.stalls += 1
                    self._stopping.wait(fault[1])
                if fault is not None and fault[0] == SLOW:
                    with self._lock:
                        self.stats.slows += 1
                    pieces = int(fault[1])
                    step = max(1, -(-len(data) // pieces))
                    for at in range(0, len(data), step):
                        dst.sendall(data[at : at + step])
                        time.sleep(0.002)
                else:
                    dst.sendall(data)
                with self._lock:
                    if up:
                        self.stats.up_bytes += len(data)
                    else:
                        self.stats.down_bytes += len(data)
                if self.rate:
                    time.sleep(len(data) / self.rate)
        except OSError:
            conn.cut(reset=False)


__all__ = ["CUT", "SLOW", "STALL", "FaultyProxy", "Stats", "fault_plan"]
