"""A peer that attacks a served cluster over gRPC: calls that send their headers but never a body
(stalls), and calls with huge bodies; with or without the token."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc

SET = "/pegasus_fast.v1.Client/Set"
#: a request stream (the Follower's): a stall there never sends its first request
APPLY_STREAM = "/pegasus_fast.v1.Follower/ApplyStream"


def _md(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


class Stalls:
    """``n`` calls to the unary ``method`` on one connection of their own: headers go out, the
    request never does (until :meth:`close`)."""

    def __init__(self, target: str, n: int, token: str | None = None, method: str = SET) -> None:
        # a subchannel (so a connection) of its own, not shared with the test's clients
        self.channel = grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        self._release = threading.Event()
        call = self.channel.stream_unary(method)
        self.calls = [call.future(self._never(), metadata=_md(token)) for _ in range(n)]

    def _never(self) -> Iterator[bytes]:
        self._release.wait()
        yield from ()

    def wait_done(self, timeout: float) -> bool:
        """True once every stalled call has ended (refused or cut), False at ``timeout``."""
        deadline = time.monotonic() + timeout
        for c in self.calls:
            left = deadline - time.monotonic()
            if left <= 0:
                return all(c.done() for c in self.calls)
            try:
                c.exception(timeout=left)
            except grpc.FutureTimeoutError:
                return False
        return True

    def codes(self) -> set[grpc.StatusCode]:
        return {c.code() for c in self.calls if c.done()}

    def close(self) -> None:
        for c in self.calls:
            c.cancel()
        self._release.set()
        self.channel.close()


def huge_calls(
    target: str, n: int, size: int, token: str | None = None, timeout: float = 60.0
) -> list[object]:
    """``n`` concurrent unary calls to Set whose body is ``size`` bytes; each call's outcome (its
    status code, or the exception), once all have ended."""
    channel = grpc.insecure_channel(
        target,
        options=[("grpc.max_send_message_length", -1), ("grpc.use_local_subchannel_pool", 1)],
    )
    body = bytes(size)
    call = channel.unary_unary(SET)
    try:
        futures = [call.future(body, metadata=_md(token), timeout=timeout) for _ in range(n)]
        out: list[object] = []
        for f in futures:
            try:
                f.result()
                out.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                out.append(e.code())
        return out
    finally:
        channel.close()


def rss_bytes(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of process ``pid``, in bytes."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


class PeakRss:
    """Samples a process's RSS every few milliseconds until stopped; ``growth`` over the first
    sample, counting the high-water mark if it rose meanwhile."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start, self._hwm0 = rss_bytes(pid)
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_bytes(self.pid)[0])

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        rss, hwm = rss_bytes(self.pid)
        self.peak = max(self.peak, rss)
        if hwm > self._hwm0:
            self.peak = max(self.peak, hwm)
        return self.peak - self.start
