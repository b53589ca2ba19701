"""What the source partitions ask of a duplication, through the catalog's PartitionHooks
(catalog.py): the WAL to keep for it, the checkpoints being copied from that GC must leave;
and past the retention cap (retention.py), the release, recorded durably, after which a
partition's WAL is freed and the follower re-learns it.

A mixin of ``Duplication`` (driver.py), which provides what is declared below.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..logs import get
from . import checkpoints as policy
from . import retention
from .record import CkptState, DupRecord
from .status import DupStatus

#: the driver's logger, as before these hooks had a module of their own: its records name
#: component duplication.driver
log = get("pegasus_fast.duplication.driver")


class DuplicationHooks:
    dupid: int
    table_name: str
    error: BaseException | None
    _env: Any
    _record: DupRecord
    _status: DupStatus
    _artifacts: list[policy.Artifact | None]
    _pinned: list[frozenset[int]]
    _persisted_confirmed: list[int]
    _wake: threading.Event
    _changed: threading.Condition
    _cap: retention.Cap
    _m_released: list[Any]

    if TYPE_CHECKING:  # what Duplication provides

        def _save(self, record: DupRecord) -> None: ...

        def _set_ckpt_metric(self, i: int) -> None: ...

    def retain_after(self, pidx: int) -> int | None:
        """The WAL must keep decrees after this one for this duplication (None: nothing).

        Past the retention cap this asks the driver to release the partition and
        keeps the WAL until that is recorded; a released partition holds nothing
        but a fresh checkpoint being made.
        """
        if self._status == DupStatus.REMOVED:
            return None
        scope = self._env.scope(self.table_name)
        if scope is not None and pidx not in scope:
            return None  # another node ships it: this copy of its WAL is not needed for it
        released = self._record.partitions[pidx].state is CkptState.RELEASED
        bound = self._cap.bound(pidx, released, self._persisted_confirmed[pidx])
        if self._cap.wanted[pidx]:
            self._wake.set()
            if self.error is not None:
                # stopped for good: no driver thread records it, and a failed duplication
                # must not fill the disk either (it stays failed until removed)
                try:
                    self._release_past_cap(stopped=True)
                except Exception as exc:  # noqa: BLE001 - not recorded: the WAL stays held
                    log.warning("duplication %s: recording a release failed: %s", self.dupid, exc)
                    return bound
                if self._record.partitions[pidx].state is CkptState.RELEASED:
                    return self._cap.holding[pidx]
        return bound

    def pinned(self, pidx: int) -> frozenset[int]:
        return self._pinned[pidx]

    # -- the retention cap ------------------------------------------------------

    def _release_past_cap(self, stopped: bool = False) -> None:
        """Record (durably) that partitions past the cap must re-learn; GC frees their WAL after.

        Runs in the driver thread between steps (so no step in flight holds an artifact
        or a record it would save over this one), or in GC once the driver has stopped
        for good.
        """
        wanted = self._cap.take_wanted()
        if self._status == DupStatus.REMOVED or (self._status == DupStatus.PREPARE and not stopped):
            return  # PREPARE replaces every partition's record with a fresh checkpoint anyway
        with self._changed:
            parts = list(self._record.partitions)
            released = []
            for i in wanted:
                c = parts[i]
                r = None if c.state is CkptState.RELEASED else self._cap.past(i, self._persisted_confirmed[i])
                if r is None:
                    continue
                parts[i] = replace(c, state=CkptState.RELEASED)
                released.append((i, r))
            if not released:
                return
            self._save(self._record.with_partitions(parts))
        for i, r in released:
            log.warning(
                "duplication %s: partition %s kept %d WAL bytes (oldest %.0fs) past the retention cap; "
                "released, the follower will re-learn",
                self.dupid,
                i,
                r.bytes,
                r.age_seconds,
            )
            # an artifact made before is of no use: its WAL is gone, and a fresh one is made
            self._artifacts[i] = None
            self._pinned[i] = frozenset()
            self._m_released[i].inc()
            self._set_ckpt_metric(i)


__all__ = ["DuplicationHooks"]
