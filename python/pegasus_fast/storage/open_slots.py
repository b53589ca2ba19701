"""How many partitions of a process may hold their files open at once, and who holds a slot.

An open partition holds file descriptors: its RocksDB (LOCK, LOG, MANIFEST, its own
log, one per SST file) and our WAL. Measured here (``tests/test_limits.py`` prints
it): 7-8 per idle partition with a few writes; more SST files hold more. Past the
process's fd limit every open fails with EMFILE, a write's WAL or a checkpoint among
them, so the number of open partitions is bounded below it: a partition that would
pass the bound is refused with a typed error before it opens anything.
"""

from __future__ import annotations

import resource
import threading

from ..errors import ResourceExhaustedError

#: file descriptors an open partition is counted for: the 8 measured, plus room for SST files
FDS_PER_OPEN_PARTITION = 12
#: descriptors kept for everything else: sockets, channels, log and metadata files, checkpoint copies
FD_RESERVE = 256
#: the resource name an open refused by the bound reports
OPEN_PARTITIONS = "open_partitions"


def fd_limit() -> int:
    """The process's soft RLIMIT_NOFILE (what an open past it fails with EMFILE at)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def partitions_for_fds(limit: int | None = None) -> int:
    """How many partitions may be open at once under an fd limit (the process's by default)."""
    fds = fd_limit() if limit is None else limit
    return max(1, (fds - FD_RESERVE) // FDS_PER_OPEN_PARTITION)


class OpenSlots:
    """A count of open partitions bounded by ``limit``: a partition takes a slot before it
    opens its files and gives it back when it closes them."""

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        return self._held

    def try_take(self) -> bool:
        with self._lock:
            if self._held >= self.limit:
                return False
            self._held += 1
            return True

    def take(self) -> None:
        """One slot, or :class:`ResourceExhaustedError` naming the bound."""
        with self._lock:
            if self._held >= self.limit:
                raise ResourceExhaustedError(OPEN_PARTITIONS, self.limit, self._held + 1)
            self._held += 1

    def take_past_bound(self) -> None:
        """One slot even past the bound (a partition that must open: it is counted all the same)."""
        with self._lock:
            self._held += 1

    def give_back(self) -> None:
        with self._lock:
            self._held = max(0, self._held - 1)


#: no bound (a partition opened outside a cluster: tools, tests of one partition)
UNBOUNDED = OpenSlots(1 << 62)

__all__ = [
    "FDS_PER_OPEN_PARTITION",
    "FD_RESERVE",
    "OPEN_PARTITIONS",
    "UNBOUNDED",
    "OpenSlots",
    "fd_limit",
    "partitions_for_fds",
]
