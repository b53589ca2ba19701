"""pegasus_fast: a partitioned, durable key-value store with cross-cluster duplication.

Embedded use::

    import pegasus_fast as pf
    with pf.Cluster.open("data/src", name="source") as c:
        t = c.create_table("test1", partition_count=8)
        t.set(b"a", b"b", b"c")
"""

from __future__ import annotations

from . import _backend
from .config import Config
from .duplication import Duplication, DupStatus, PartitionProgress
from .errors import (
    ChecksumMismatchError,
    ClosedError,
    CloseError,
    ClusterLockedError,
    DataCorruptionError,
    DataLossError,
    DuplicationError,
    DuplicationGapError,
    DuplicationNotFoundError,
    FileChangedError,
    InvalidArgumentError,
    InvalidTypeError,
    MetaCorruptionError,
    MetaFencedError,
    PartitionFailedError,
    PartitionUnavailableError,
    PegasusFastError,
    RemoteUnavailableError,
    Retry,
    StorageError,
    TableExistsError,
    TableNotFoundError,
    UnsafePathError,
    WalCorruptionError,
    WalGapError,
)
from .node.cluster import Cluster, ClusterInfo
from .node.table import PartitionStats, Table, TableHealth, TableInfo
from .storage.checkpoint import CheckpointInfo
from .storage.scan import RecordBatch

__version__ = "0.1.0"


def backend() -> str:
    """``"rust"`` when the compiled hot path is in use, ``"python"`` otherwise."""
    return _backend.name


__all__ = [
    "CheckpointInfo",
    "ChecksumMismatchError",
    "CloseError",
    "ClosedError",
    "Cluster",
    "ClusterInfo",
    "ClusterLockedError",
    "Config",
    "DataCorruptionError",
    "DataLossError",
    "DupStatus",
    "Duplication",
    "DuplicationError",
    "DuplicationGapError",
    "DuplicationNotFoundError",
    "FileChangedError",
    "InvalidArgumentError",
    "InvalidTypeError",
    "MetaCorruptionError",
    "MetaFencedError",
    "PartitionFailedError",
    "PartitionProgress",
    "PartitionStats",
    "PartitionUnavailableError",
    "PegasusFastError",
    "RecordBatch",
    "RemoteUnavailableError",
    "Retry",
    "StorageError",
    "Table",
    "TableExistsError",
    "TableHealth",
    "TableInfo",
    "TableNotFoundError",
    "UnsafePathError",
    "WalCorruptionError",
    "WalGapError",
    "backend",
]
