"""Pure-Python twin of ``syncpool.rs``: ``fdatasync`` of several files at once, or of one
started now and waited for later.

The group commit of a batch spread over several partition logs ends in one fdatasync per log;
issued together the file system overlaps them. ``os.fdatasync`` releases the GIL, so a small
pool of threads does here what the Rust pool does; the caller runs the first one itself. A
started one overlaps the caller's own work less than in Rust: the pool's thread needs the GIL
for a moment before it can issue the call.
"""

from __future__ import annotations

import errno
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

#: worker threads, as in the Rust pool
WORKERS = 8

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _one(fd: int) -> int:
    try:
        os.fdatasync(fd)
    except OSError as exc:
        return exc.errno or errno.EIO
    return 0


def _the_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="pf-fsync")
        return _pool


def fdatasync_all(fds: list[int]) -> list[int]:
    """fdatasync each of ``fds`` at once: each one's result, 0 or its errno, in order."""
    if len(fds) < 2:
        return [_one(fd) for fd in fds]
    pool = _the_pool()
    rest: list[Future[int]] = [pool.submit(_one, fd) for fd in fds[1:]]
    first = _one(fds[0])
    return [first] + [f.result() for f in rest]


class StartedSync:
    """An fdatasync running on the pool (:func:`fdatasync_start`)."""

    __slots__ = ("_future",)

    def __init__(self, future: Future[int]) -> None:
        self._future = future

    def wait(self) -> int:
        """Block until the fdatasync has returned: 0, or its errno."""
        return self._future.result()

    @property
    def done(self) -> bool:
        """Whether the fdatasync has returned."""
        return self._future.done()


def fdatasync_start(fd: int) -> StartedSync:
    """Start ``fdatasync(fd)`` on the pool and return at once; the caller keeps ``fd`` open
    until the answer's ``wait()`` has returned."""
    return StartedSync(_the_pool().submit(_one, fd))


__all__ = ["StartedSync", "fdatasync_all", "fdatasync_start"]
