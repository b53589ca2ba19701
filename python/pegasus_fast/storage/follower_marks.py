"""A follower partition's marks of its source: the source decrees it has seen, and where the
data of each source partition of another partition count landed (re-routing). They are kept
outside the WAL: a decree of its own would be shipped back to a master-master peer.

A mixin of ``Partition`` (partition.py), which provides what is declared below.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import rocksdict

from ..records import DECREE, META_REROUTED_KEY, META_SOURCE_SEEN_KEY, Op
from .rdb import rdb_error
from .state import PartitionState

_REROUTED = struct.Struct("<IQ")
_SOURCE_DECREE = int(Op.SOURCE_DECREE)


class FollowerMarks:
    path: str
    pidx: int
    state: PartitionState
    lock: threading.RLock
    source_seen: int
    _must_sync: bool

    if TYPE_CHECKING:  # what Partition provides

        @property
        def db(self) -> rocksdict.Rdict: ...

        @property
        def holds_nothing(self) -> bool: ...

        def check_available(self, for_write: bool) -> None: ...

        def write_mutations(
            self, build: Callable[[int], list[tuple[int, int, int, list]]], defer_apply: bool = False
        ) -> int: ...

    #: wall-clock seconds of the last shipped batch applied here (0: none since the open)
    last_apply_time: float = 0.0
    #: milliseconds from the source writing the newest mutation of that batch to its apply here
    apply_delay_ms: float = 0.0

    def note_applied(self, newest_ts_us: int) -> None:
        """A shipped batch was applied: for the follower's lag metrics (not persisted)."""
        now = time.time()
        self.last_apply_time = now
        if newest_ts_us > 0:
            self.apply_delay_ms = max(0.0, now * 1000.0 - newest_ts_us / 1000.0)

    def record_source_seen(self, decree: int) -> None:
        """Durably note that source decrees up to ``decree`` need nothing applied here.

        It is no mutation of this partition: a decree of its own would be shipped
        back to a master-master peer, which would note it, and so on for ever.
        So it is one RocksDB write with RocksDB's own WAL on and a sync.
        """
        self._write_source_seen(decree, reset=False)

    def reset_source(self, decree: int) -> None:
        """A follower starts over from source ``decree`` (a new duplication into a table that has one)."""
        self.write_mutations(lambda next_decree: [(next_decree, 0, 0, [(_SOURCE_DECREE, decree)])])
        self._write_source_seen(decree, reset=True)

    def _write_source_seen(self, decree: int, reset: bool) -> None:
        with self.lock:
            if decree <= self.source_seen and not reset:
                return
            self._put_meta_synced(META_SOURCE_SEEN_KEY, DECREE.pack(decree))
            self.source_seen = decree

    def _put_meta_synced(self, key: bytes, value: bytes) -> None:
        """A bookkeeping key written outside our WAL: RocksDB's own WAL, synced (lock held)."""
        if self.state in (PartitionState.CLOSED, PartitionState.FAILED):
            self.check_available(True)
        opts = rocksdict.WriteOptions()
        opts.sync = self._must_sync
        try:
            self.db.put(key, value, write_opt=opts)
        except Exception as exc:
            raise rdb_error(exc, self.path, self.pidx) from exc

    def rerouted_progress(self) -> dict[int, int]:
        """source pidx -> source decree reached, for the source partitions homed here."""
        with self.lock:
            raw = None if self.holds_nothing else self.db.get(META_REROUTED_KEY)
        if not raw:
            return {}
        return {pidx: decree for pidx, decree in _REROUTED.iter_unpack(raw)}

    def record_rerouted(self, source_pidx: int, decree: int) -> None:
        """Durably note that the data of source partition ``source_pidx`` up to ``decree`` is
        applied (where its ops landed); outside our WAL, so it is never shipped on."""
        with self.lock:
            progress = self.rerouted_progress()
            progress[source_pidx] = decree
            self._put_meta_synced(
                META_REROUTED_KEY, b"".join(_REROUTED.pack(p, d) for p, d in sorted(progress.items()))
            )


__all__ = ["FollowerMarks"]
