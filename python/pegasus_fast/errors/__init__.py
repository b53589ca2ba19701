"""Every error pegasus_fast raises on purpose; both backends raise these classes.

I/O failures stay the built-in ``OSError`` subclasses.

Whether trying again can help is a property of the error, :attr:`PegasusFastError.retry`,
not of where its class sits in the hierarchy; :func:`retry_of` answers it for any exception.

One hierarchy, kept in modules by what the errors are about: ``base`` (the base class,
:class:`Retry`, fixes, refusals any call can meet), ``storage`` (files on disk), ``tables``
(tables and partitions), ``duplication``, ``remote`` (served clusters, the Pegasus protocol)
and ``multinode`` (nodes, the meta leader, ZooKeeper). Import them from here: this module
is their one public name (their ``__module__``, so pickles and tracebacks say
``pegasus_fast.errors``), and the wire rebuilds a served error by looking its class up here.
"""

from __future__ import annotations

from .base import (
    FIX_MARK,
    ClosedError,
    InvalidArgumentError,
    InvalidTypeError,
    PegasusFastError,
    ResourceExhaustedError,
    Retry,
    fix_of,
    retry_of,
    with_fix,
)
from .duplication import (
    AddDuplicationFailedError,
    DuplicationError,
    DuplicationGapError,
    DuplicationNotFoundError,
    DuplicationStuckError,
    DuplicationWalReleasedError,
    FollowerDecreeError,
    FollowerGapError,
    SwitchoverError,
    VerifyPositionError,
    VerifyTimeoutError,
    VerifyViewGoneError,
)
from .multinode import (
    CoordinationAuthError,
    CoordinationError,
    NodeIdInUseError,
    NodeUnavailableError,
    NotLeaderError,
    NotOwnerError,
)
from .remote import (
    AuthenticationError,
    FollowerTableNotFoundError,
    FrameTooLargeError,
    PegasusProtocolError,
    PermissionDeniedError,
    RemoteError,
    RemoteUnavailableError,
)
from .storage import (
    BACKUP_REASONS,
    BackupError,
    ChecksumMismatchError,
    CloseError,
    ClusterLockedError,
    DataCorruptionError,
    DataLossError,
    FileChangedError,
    MetaCorruptionError,
    MetaFencedError,
    StorageError,
    UnsafePathError,
    WalCorruptionError,
    WalGapError,
)
from .tables import (
    FollowerTableError,
    PartitionFailedError,
    PartitionUnavailableError,
    TableExistsError,
    TableMovedError,
    TableNotFoundError,
)

__all__ = [
    "BACKUP_REASONS",
    "FIX_MARK",
    "AddDuplicationFailedError",
    "AuthenticationError",
    "BackupError",
    "ChecksumMismatchError",
    "CloseError",
    "ClosedError",
    "ClusterLockedError",
    "CoordinationAuthError",
    "CoordinationError",
    "DataCorruptionError",
    "DataLossError",
    "DuplicationError",
    "DuplicationGapError",
    "DuplicationNotFoundError",
    "DuplicationStuckError",
    "DuplicationWalReleasedError",
    "FileChangedError",
    "FollowerDecreeError",
    "FollowerGapError",
    "FollowerTableError",
    "FollowerTableNotFoundError",
    "FrameTooLargeError",
    "InvalidArgumentError",
    "InvalidTypeError",
    "MetaCorruptionError",
    "MetaFencedError",
    "NodeIdInUseError",
    "NodeUnavailableError",
    "NotLeaderError",
    "NotOwnerError",
    "PartitionFailedError",
    "PartitionUnavailableError",
    "PegasusFastError",
    "PegasusProtocolError",
    "PermissionDeniedError",
    "RemoteError",
    "RemoteUnavailableError",
    "ResourceExhaustedError",
    "Retry",
    "StorageError",
    "SwitchoverError",
    "TableExistsError",
    "TableMovedError",
    "TableNotFoundError",
    "UnsafePathError",
    "VerifyPositionError",
    "VerifyTimeoutError",
    "VerifyViewGoneError",
    "WalCorruptionError",
    "WalGapError",
    "fix_of",
    "retry_of",
    "with_fix",
]

# the public home of every class and function is this module, as it was before the split
for _name in __all__:
    _obj = globals()[_name]
    if callable(_obj):
        _obj.__module__ = __name__
del _name, _obj
