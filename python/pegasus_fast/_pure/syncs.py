"""Pure-Python twin of ``syncpool.rs``: ``fdatasync`` of several files at once, or of one
started now and waited for later.

The group commit of a batch spread over several partition logs ends in one fdatasync per log;
issued together the file system overlaps them. ``os.fdatasync`` releases the GIL, so a small
pool of threads does here what the Rust pool does; the caller runs the first one itself. One
"started" here has run already (see :func:`fdatasync_start`).
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
    """An fdatasync :func:`fdatasync_start` has run."""

    __slots__ = ("_code",)

    def __init__(self, code: int) -> None:
        self._code = code

    def wait(self) -> int:
        """0, or the errno the fdatasync failed with."""
        return self._code

    @property
    def done(self) -> bool:
        return True


def fdatasync_start(fd: int) -> StartedSync:
    """``fdatasync(fd)``, run here before it returns. The Rust twin runs it on a thread of its
    own while the caller goes on; a Python thread could not start it before the caller, which
    holds the GIL while it works meanwhile, lets go of it: handing it over would only add the
    hand-off to the same serial cost."""
    return StartedSync(_one(fd))


__all__ = ["StartedSync", "fdatasync_all", "fdatasync_start"]
