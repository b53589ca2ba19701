"""Cross-cluster duplication: adaptive checkpoints, follower learning, log shipping."""

from __future__ import annotations

from .driver import Duplication
from .follower import DuplicationGapError, Follower, LocalFollower
from .status import DupStatus, PartitionProgress

__all__ = [
    "DupStatus",
    "Duplication",
    "DuplicationGapError",
    "Follower",
    "LocalFollower",
    "PartitionProgress",
]
