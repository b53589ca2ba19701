"""What a partition is doing now: the one state other modules read, and only ``Partition``
changes (its methods: ``fence``, ``unfence``, ``restart_learning``, ``serve_learned``, ``close``...)."""

from __future__ import annotations

from enum import Enum


class PartitionState(str, Enum):
    """A str too, equal to its value: the value is what users see (health, partition stats,
    PartitionUnavailableError.state) and what crosses the wire."""

    #: reads and writes
    SERVING = "serving"
    #: a follower (or a move's target) taking its data: neither reads nor writes
    LEARNING = "learning"
    #: handing the partition over to another node: reads go on, writes are refused (Partition.fence)
    MOVING = "moving"
    CLOSED = "closed"
    #: a write could not be undone: nothing until it is reopened
    FAILED = "failed"
    #: holds data but was not opened at the cluster's open: more partitions than the
    #: open-partition bound (storage/open_slots.py). Its first read or write opens it, or
    #: raises ResourceExhaustedError while the bound is still reached.
    UNOPENED = "unopened"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


__all__ = ["PartitionState"]
