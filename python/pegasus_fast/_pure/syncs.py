"""Pure-Python twin of ``syncpool.rs``: ``fdatasync`` of several files at once.

The group commit of a batch spread over several partition logs ends in one fdatasync per log;
issued together the file system overlaps them. ``os.fdatasync`` releases the GIL, so a small
pool of threads does here what the Rust pool does; the caller runs the first one itself.
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


def fdatasync_all(fds: list[int]) -> list[int]:
    """fdatasync each of ``fds`` at once: each one's result, 0 or its errno, in order."""
    global _pool
    if len(fds) < 2:
        return [_one(fd) for fd in fds]
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="pf-fsync")
        pool = _pool
    rest: list[Future[int]] = [pool.submit(_one, fd) for fd in fds[1:]]
    first = _one(fds[0])
    return [first] + [f.result() for f in rest]


__all__ = ["fdatasync_all"]
