"""A cluster's resource bounds at its open, and what it says when it holds more than they allow.

The partitions a cluster holds are bounded by ``Config.max_partitions`` and by the
process's fd limit (storage/open_slots.py), whichever is lower; tables by
``Config.max_tables``. A cluster made before a bound (or whose fd limit was lowered
since) still opens: it opens partitions up to the bound, leaves the rest UNOPENED,
and says why in :meth:`Cluster.info`'s ``warnings`` and the log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..config import Config
from ..storage.open_slots import OpenSlots, fd_limit, partitions_for_fds
from ..storage.partition import Partition
from ..storage.state import PartitionState

log = logging.getLogger(__name__)


def open_slots(config: Config) -> tuple[OpenSlots, list[str]]:
    """The bound on a cluster's partitions, and a warning if the knob asks past the fd limit."""
    room = partitions_for_fds()
    asked = config.max_partitions
    if asked is None:
        return OpenSlots(room), []
    if asked > room:
        why = (
            f"max_partitions {asked} is more than the fd limit {fd_limit()} has room for: "
            f"at most {room} partitions are open at once"
        )
        log.warning("%s", why)
        return OpenSlots(room), [why]
    return OpenSlots(asked), []


def warnings(config: Config, slots: OpenSlots, partitions: Iterable[Partition], tables: int) -> list[str]:
    """Why a cluster serves less than it holds, or can take no new table, now (empty: it does not)."""
    out: list[str] = []
    parts = list(partitions)
    unopened = sum(1 for p in parts if p.state == PartitionState.UNOPENED)
    if len(parts) > slots.limit:
        out.append(
            f"the cluster holds {len(parts)} partitions, more than the {slots.limit} that may be open at "
            f"once (max_partitions={config.max_partitions}, fd limit {fd_limit()}): {unopened} not "
            "opened yet, each opens on its first read or write while there is room; no table can be created"
        )
    if tables > config.max_tables:
        out.append(
            f"the cluster holds {tables} tables, more than max_tables={config.max_tables}: "
            "no table can be created"
        )
    return out


def log_warnings(name: str, found: list[str]) -> None:
    for why in found:
        log.warning("cluster %s: %s", name, why)


__all__ = ["log_warnings", "open_slots", "warnings"]
