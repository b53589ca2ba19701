"""Cross-cluster duplication: adaptive checkpoints, follower learning, log shipping.

It depends only on the storage layer and on the ports it defines (ports.py);
the node layer builds and injects their implementations.
"""

from __future__ import annotations

from .driver import Duplication
from .ports import Chunk, Follower, SourceId
from .status import DupStatus, PartitionProgress

__all__ = ["Chunk", "DupStatus", "Duplication", "Follower", "PartitionProgress", "SourceId"]
