"""pegasus_fast: a partitioned, durable key-value store with cross-cluster duplication.

Embedded use::

    import pegasus_fast as pf
    with pf.Cluster.open("data/src", name="source") as c:
        t = c.create_table("test1", partition_count=8)
        t.set(b"a", b"b", b"c")
"""

from __future__ import annotations

import os
from typing import Any

from . import _backend
from ._version import __version__ as __version__
from .client.network import Network
from .config import Config
from .data_api import (
    CheckAndMutateResult,
    CheckAndSetResult,
    CheckType,
    FilterType,
    MultiGetResult,
    MutateOperation,
    Mutation,
)
from .duplication import Duplication, DupStatus, PartitionProgress
from .duplication.verify_report import Difference, PartitionVerify, RecordState, VerifyReport
from .engine import cluster as _engine
from .engine.cluster import ClusterInfo
from .engine.roles import TableRole
from .engine.switchover import SwitchoverReport
from .engine.table import PartitionStats, Table, TableHealth, TableInfo
from .errors import (
    AuthenticationError,
    BackupError,
    ChecksumMismatchError,
    ClosedError,
    CloseError,
    ClusterLockedError,
    CoordinationAuthError,
    CoordinationError,
    DataCorruptionError,
    DataLossError,
    DuplicationError,
    DuplicationGapError,
    DuplicationNotFoundError,
    DuplicationStuckError,
    DuplicationWalReleasedError,
    FileChangedError,
    FollowerDecreeError,
    FollowerGapError,
    FollowerTableError,
    FollowerTableNotFoundError,
    InvalidArgumentError,
    InvalidTypeError,
    MetaCorruptionError,
    MetaFencedError,
    NodeIdInUseError,
    NodeUnavailableError,
    NotLeaderError,
    NotOwnerError,
    PartitionFailedError,
    PartitionUnavailableError,
    PegasusFastError,
    PermissionDeniedError,
    RemoteError,
    RemoteUnavailableError,
    ResourceExhaustedError,
    Retry,
    StorageError,
    SwitchoverError,
    TableExistsError,
    TableMovedError,
    TableNotFoundError,
    UnsafePathError,
    VerifyPositionError,
    VerifyTimeoutError,
    VerifyViewGoneError,
    WalCorruptionError,
    WalGapError,
)
from .storage.checkpoint import CheckpointInfo
from .storage.scan import RecordBatch


class Cluster(_engine.Cluster):
    """An embedded cluster: ``Cluster.open(path)``; close it (or use ``with``) to release it.

    The engine's cluster, opened with the package's network (``client/network.py``), so
    its duplications also reach served clusters (``pegasus://``, ``zk://``). The engine
    imports no network itself; grpc and kazoo load only when such a remote is first used.
    """

    @classmethod
    def open(  # type: ignore[override]
        cls,
        path: str | os.PathLike[str],
        name: str | None = None,
        config: Config | None = None,
        cluster_id: int | None = None,
        **kwargs: Any,
    ) -> Cluster:
        if kwargs.get("network") is None:
            kwargs["network"] = Network()
        cluster = super().open(path, name, config, cluster_id, **kwargs)
        assert isinstance(cluster, Cluster)
        return cluster


#: the served side (grpcio) is imported when first used: an embedded user does not pay for it
_LAZY = {
    "serve": ("server.app", "serve"),
    "Server": ("server.app", "Server"),
    "TLS": ("server.app", "TLS"),
    "connect": ("client.connect", "connect"),
    "RemoteCluster": ("client.remote", "RemoteCluster"),
    "RoutedCluster": ("client.routed", "RoutedCluster"),
    "RoutedTable": ("client.routed_table", "RoutedTable"),
    "PartitionConfig": ("client.routed_table", "PartitionConfig"),
    "RemoteTable": ("client.remote_table", "RemoteTable"),
    "RemoteDuplication": ("client.remote_dup", "RemoteDuplication"),
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def backend() -> str:
    """``"rust"`` when the compiled hot path is in use, ``"python"`` otherwise."""
    return _backend.name


__all__ = [
    "TLS",
    "AuthenticationError",
    "CheckAndMutateResult",
    "CheckAndSetResult",
    "CheckType",
    "CheckpointInfo",
    "ChecksumMismatchError",
    "CloseError",
    "ClosedError",
    "Cluster",
    "BackupError",
    "ClusterInfo",
    "ClusterLockedError",
    "Config",
    "DataCorruptionError",
    "DataLossError",
    "DupStatus",
    "Duplication",
    "DuplicationError",
    "DuplicationGapError",
    "DuplicationStuckError",
    "DuplicationWalReleasedError",
    "DuplicationNotFoundError",
    "FileChangedError",
    "FilterType",
    "Difference",
    "FollowerDecreeError",
    "FollowerGapError",
    "FollowerTableNotFoundError",
    "FollowerTableError",
    "InvalidArgumentError",
    "InvalidTypeError",
    "MetaCorruptionError",
    "MetaFencedError",
    "MultiGetResult",
    "MutateOperation",
    "Mutation",
    "PartitionFailedError",
    "PartitionProgress",
    "PartitionStats",
    "PartitionUnavailableError",
    "PartitionVerify",
    "RecordState",
    "CoordinationAuthError",
    "CoordinationError",
    "NodeIdInUseError",
    "NodeUnavailableError",
    "NotLeaderError",
    "NotOwnerError",
    "PegasusFastError",
    "PermissionDeniedError",
    "RecordBatch",
    "RemoteCluster",
    "RoutedCluster",
    "RoutedTable",
    "PartitionConfig",
    "RemoteDuplication",
    "RemoteError",
    "RemoteTable",
    "RemoteUnavailableError",
    "ResourceExhaustedError",
    "Retry",
    "Server",
    "StorageError",
    "SwitchoverError",
    "SwitchoverReport",
    "Table",
    "TableExistsError",
    "TableHealth",
    "TableInfo",
    "TableMovedError",
    "TableRole",
    "TableNotFoundError",
    "UnsafePathError",
    "VerifyPositionError",
    "VerifyReport",
    "VerifyTimeoutError",
    "VerifyViewGoneError",
    "WalCorruptionError",
    "WalGapError",
    "backend",
    "connect",
    "serve",
]
