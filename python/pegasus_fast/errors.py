"""Every error pegasus_fast raises on purpose; both backends raise these classes.

I/O failures stay the built-in ``OSError`` subclasses.

Whether trying again can help is a property of the error, :attr:`PegasusFastError.retry`,
not of where its class sits in the hierarchy; :func:`retry_of` answers it for any exception.
"""

from __future__ import annotations

from enum import Enum


class Retry(Enum):
    """What a caller that may try again (a duplication, a client) should do about an error."""

    #: the other side is not ready or not reachable now; wait and try again, whatever the fail mode
    TRANSIENT = "transient"
    #: an operation failed and a retry may succeed; the caller's policy (a fail mode) decides
    FAILURE = "failure"
    #: no retry can fix it (a conflict, a bad argument); stop and say why
    PERMANENT = "permanent"


class PegasusFastError(Exception):
    """Base of every pegasus_fast error."""

    retry: Retry = Retry.PERMANENT
    #: what the caller can change to get past it (a flag, an argument), when something can:
    #: set by :func:`with_fix`, which also ends the message with it ("" when nothing is known)
    fix: str = ""

    @property
    def retryable(self) -> bool:
        return self.retry is not Retry.PERMANENT


def with_fix(exc: PegasusFastError, fix: str) -> PegasusFastError:
    """``exc`` with ``fix`` (what would get past it) as its field and at the end of its message."""
    exc.fix = fix
    first = str(exc.args[0]) if exc.args else type(exc).__name__
    exc.args = (f"{first}{FIX_MARK}{fix}", *exc.args[1:])
    return exc


FIX_MARK = ". Fix: "


def fix_of(exc: BaseException | str) -> str:
    """The fix of an error, also of one that crossed the wire as text (a duplication's error
    as a served source reports it): what :func:`with_fix` put at the end of its message."""
    fix = getattr(exc, "fix", "")
    if fix:
        return str(fix)
    return str(exc).rpartition(FIX_MARK)[2] if FIX_MARK in str(exc) else ""


def retry_of(exc: BaseException) -> Retry:
    """The retry class of any exception: I/O errors are failures a retry may fix."""
    if isinstance(exc, PegasusFastError):
        return exc.retry
    if isinstance(exc, OSError):
        return Retry.FAILURE
    return Retry.FAILURE if isinstance(exc, Exception) else Retry.PERMANENT


class InvalidArgumentError(PegasusFastError, ValueError):
    """An argument of the right type with a value the store cannot take."""


class InvalidTypeError(PegasusFastError, TypeError):
    """An argument of the wrong type (keys and values are bytes or str)."""


class ClosedError(PegasusFastError):
    """The cluster or table was closed."""


class WalCorruptionError(PegasusFastError):
    """A WAL block failed its checks somewhere other than a torn tail."""

    retry = Retry.FAILURE

    def __init__(self, path: str, offset: int, reason: str = "") -> None:
        super().__init__(f"WAL corruption in {path} at offset {offset}: {reason}")
        self.path = str(path)
        self.offset = int(offset)
        self.reason = reason


class MetaCorruptionError(PegasusFastError):
    """The cluster metadata journal is damaged somewhere other than a torn last record."""

    def __init__(self, path: str, offset: int, reason: str = "") -> None:
        super().__init__(
            f"cluster metadata {path} is corrupt at offset {offset}" + (f": {reason}" if reason else "")
        )
        self.path = str(path)
        self.offset = int(offset)
        self.reason = reason


class MetaFencedError(PegasusFastError):
    """A failed metadata change could not be taken back off the journal.

    Whether the change that raised it is on disk is unknown until the cluster
    is opened again (its load decides, and either answer is a whole state), so
    the store accepts no further change until then.
    """

    #: the I/O failure behind it; reopening the cluster clears it, so a slow duplication waits
    retry = Retry.FAILURE

    def __init__(self, path: str) -> None:
        super().__init__(f"cluster metadata {path} refuses changes after a failed write; reopen the cluster")
        self.path = str(path)


class WalGapError(PegasusFastError):
    """The WAL does not hold a decree that recovery or shipping needs."""

    retry = Retry.FAILURE

    def __init__(self, path: str, expected_decree: int, found_decree: int) -> None:
        super().__init__(f"WAL {path}: expected decree {expected_decree}, found {found_decree}")
        self.path = str(path)
        self.expected_decree = expected_decree
        self.found_decree = found_decree


class ChecksumMismatchError(PegasusFastError):
    """A copied file's size or hash differs from its manifest."""

    retry = Retry.FAILURE

    def __init__(self, path: str, expected: str, actual: str) -> None:
        super().__init__(f"checksum mismatch for {path}: expected {expected}, got {actual}")
        self.path = str(path)
        self.expected = expected
        self.actual = actual


class FileChangedError(PegasusFastError):
    """A file changed size (or was rewritten) while it was hashed or copied: no digest of it holds."""

    def __init__(self, path: str, expected_size: int, actual_size: int) -> None:
        super().__init__(
            f"{path} changed while it was read: {expected_size} bytes at open, {actual_size} read"
        )
        self.path = str(path)
        self.expected_size = int(expected_size)
        self.actual_size = int(actual_size)


class TableExistsError(PegasusFastError):
    def __init__(self, name: str) -> None:
        super().__init__(f"table {name!r} already exists")
        self.name = name


class TableNotFoundError(PegasusFastError, KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(f"table {name!r} not found")
        self.name = name

    def __str__(self) -> str:
        return str(self.args[0])


class PartitionUnavailableError(PegasusFastError):
    """The partition cannot serve now (a follower still learning its checkpoint)."""

    retry = Retry.TRANSIENT

    def __init__(self, table: str, pidx: int, state: str) -> None:
        # a plain str whatever was given (a partition's state is a str Enum): it crosses the wire
        state = str(state)
        super().__init__(f"partition {table}.{pidx} is unavailable: {state}")
        self.table = table
        self.pidx = pidx
        self.state = state


class PartitionFailedError(PartitionUnavailableError):
    """A write failed in a way that could not be undone (its WAL bytes could not be cut
    back, or an fsync failed): the partition refuses reads and writes until the cluster is
    reopened, so no acknowledged write can ever follow a hole in its log."""

    def __init__(self, table: str, pidx: int, path: str, reason: str) -> None:
        super().__init__(table, pidx, "failed")
        self.path = str(path)
        self.reason = reason


class StorageError(PegasusFastError):
    """RocksDB refused an operation of a partition for a reason other than plain I/O."""

    def __init__(self, path: str, pidx: int, reason: str) -> None:
        super().__init__(f"storage error in {path} (partition {pidx}): {reason}")
        self.path = str(path)
        self.pidx = int(pidx)
        self.reason = reason


class DataCorruptionError(StorageError):
    """Stored data (a RocksDB file of a partition, or a checkpoint) failed its checksums."""


class DataLossError(PegasusFastError):
    """Files that held data are missing (removed outside the store): opening would serve less
    than was acknowledged, so the open is refused instead."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"data missing at {path}: {reason}")
        self.path = str(path)
        self.reason = reason


class UnsafePathError(PegasusFastError):
    """A store path is a symlink (or not the kind of file it must be): it is never followed."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"refusing {path}: {reason}")
        self.path = str(path)
        self.reason = reason


class ClusterLockedError(PegasusFastError):
    """Another process has the cluster directory open."""

    def __init__(self, path: str) -> None:
        super().__init__(f"cluster {path} is open in another process")
        self.path = str(path)


class CloseError(PegasusFastError):
    """Closing released everything, but some steps failed; ``failures`` says which.

    ``subject`` is what was closed (a cluster's path, or ``"table <name>"``);
    each failure is ``(step, exception)``, ``step`` naming what failed (e.g.
    ``"table t partition 3"``, ``"metadata"``). Every handle and the directory
    lock are released all the same, so the cluster can be opened again.
    """

    def __init__(self, subject: str, failures: list[tuple[str, BaseException]]) -> None:
        steps = ", ".join(f"{step}: {exc!r}" for step, exc in failures)
        super().__init__(f"closing {subject} failed in {len(failures)} step(s): {steps}")
        self.subject = str(subject)
        self.failures = list(failures)


class DuplicationError(PegasusFastError):
    """A duplication cannot be added or driven (see the message)."""


class VerifyPositionError(DuplicationError):
    """A follower partition to verify holds a source decree past the one asked for: it cannot
    be compared at that decree (a new verification asks again)."""

    retry = Retry.TRANSIENT

    def __init__(self, table: str, pidx: int, decree: int, held: int) -> None:
        super().__init__(f"follower {table}.{pidx} holds source decree {held}, not {decree}")
        self.table = table
        self.pidx = pidx
        self.decree = decree
        self.held = held


class VerifyViewGoneError(DuplicationError):
    """A verification's view of a follower partition is not held (released, or its lease ended:
    verify_views.LEASE_SECONDS); a new verification takes another."""

    retry = Retry.TRANSIENT

    def __init__(self, view: str) -> None:
        super().__init__(f"no verification view {view!r} is held")
        self.view = view


class VerifyTimeoutError(DuplicationError, TimeoutError):
    """A verification ran out of time: a follower partition had not reached the source decree
    it is compared at (``held`` of ``decree``) within the timeout."""

    retry = Retry.TRANSIENT

    def __init__(self, table: str, pidx: int, decree: int, held: int, timeout: float) -> None:
        super().__init__(
            f"follower {table}.{pidx} reached source decree {held} of {decree} within {timeout} s"
        )
        self.table = table
        self.pidx = pidx
        self.decree = decree
        self.held = held
        self.timeout = timeout


class DuplicationGapError(DuplicationError):
    """The follower was sent a source decree past the next one it needs; the source re-reads from there."""

    retry = Retry.TRANSIENT

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"follower needs source decree {expected}, was sent {got}")
        self.expected = expected
        self.got = got


class FollowerDecreeError(DuplicationError):
    """A follower answered a source decree past the source partition's last one: it holds what
    the source never wrote (or lies), so the duplication stops rather than count it confirmed."""

    def __init__(self, table: str, pidx: int, claimed: int, last: int) -> None:
        super().__init__(
            f"the follower of {table!r} partition {pidx} claims source decree {claimed}, "
            f"past the source's last decree {last}"
        )
        self.table = table
        self.pidx = pidx
        self.claimed = claimed
        self.last = last


class DuplicationWalReleasedError(DuplicationError):
    """The WAL a duplication without checkpoint needed went past the retention cap and was freed:
    it cannot re-learn (a checkpoint would replace the follower table), so it stops; remove it and
    add one with a checkpoint."""

    def __init__(self, dupid: int, pidxs: list[int]) -> None:
        super().__init__(
            f"duplication {dupid}: WAL of partitions {pidxs} was released past the retention cap, "
            "and a duplication without checkpoint cannot re-learn"
        )
        self.dupid = dupid
        self.pidxs = pidxs


class DuplicationStuckError(DuplicationError, TimeoutError):
    """A ``wait_for`` ran out while the duplication could not progress for a reason no retry
    takes away (``reason``: ``"authentication failed"``, ``"remote table dropped"``,
    ``"retention cap passed, re-learning"``...): it names it rather than time out quietly. A
    TimeoutError too, as every ``wait_for`` that runs out."""

    def __init__(self, dupid: int, reason: str, status: str, wanted: str, detail: str = "") -> None:
        super().__init__(
            f"duplication {dupid} is stuck ({reason}): {status}, not {wanted}"
            + (f"; {detail}" if detail else "")
        )
        self.dupid = int(dupid)
        self.reason = str(reason)
        self.status = str(status)
        self.wanted = str(wanted)


class FollowerGapError(DuplicationError):
    """A duplication without checkpoint would start shipping after writes its follower never
    got (it followed this source before and stopped short): refused unless ``accept_gap``.
    ``missing_decrees``: how many source decrees the follower lacks, over all partitions;
    ``partitions``: ``[pidx, missing]`` of each partition that lacks some."""

    def __init__(self, dupid: int, table: str, missing_decrees: int, partitions: list[list[int]]) -> None:
        super().__init__(
            f"duplication {dupid}: the follower table {table!r} misses {missing_decrees} source "
            f"decrees (partitions {[p for p, _ in partitions]}); add it with a checkpoint, or "
            "accept_gap=True to ship from now on regardless"
        )
        self.dupid = int(dupid)
        self.table = table
        self.missing_decrees = int(missing_decrees)
        self.partitions = [[int(p), int(n)] for p, n in partitions]


class RemoteUnavailableError(PegasusFastError):
    """The remote cluster of a duplication (or a served cluster) cannot be reached now."""

    retry = Retry.TRANSIENT

    def __init__(self, remote: str, reason: str = "") -> None:
        super().__init__(f"remote {remote} is unavailable" + (f": {reason}" if reason else ""))
        self.remote = remote
        self.reason = reason


class AddDuplicationFailedError(DuplicationError):
    """``add_dup`` failed before the duplication shipped its log, and the duplication was removed
    (``removed``; False only when the remove failed too, ``dupid`` then names it): nothing of it
    is left to find and remove by hand. ``status`` is where it stood, ``cause`` why it failed;
    ``fix`` (when known) what to change."""

    def __init__(self, dupid: int, table: str, remote: str, status: str, cause: str, removed: bool) -> None:
        left = "removed" if removed else "NOT removed (remove_dup it)"
        super().__init__(
            f"duplication {dupid} of {table} to {remote} failed in {status} and was {left}: {cause}"
        )
        self.dupid = dupid
        self.table = table
        self.remote = remote
        self.status = status
        self.cause = cause
        self.removed = removed


class FollowerTableNotFoundError(RemoteUnavailableError):
    """A duplication's follower table is not on the remote cluster (it was dropped there):
    TRANSIENT as any unavailability, but a duplication shipping its log says it is stuck."""

    def __init__(self, remote: str, table: str) -> None:
        super().__init__(remote, f"table {table!r} not found")
        self.table = table


class DuplicationNotFoundError(DuplicationError, KeyError):
    def __init__(self, dupid: int) -> None:
        super().__init__(f"duplication {dupid} not found")
        self.dupid = dupid

    def __str__(self) -> str:
        return str(self.args[0])


class AuthenticationError(PegasusFastError):
    """A served cluster refused the call: its token was missing or wrong."""

    def __init__(self, remote: str, reason: str = "") -> None:
        super().__init__(f"{remote} refused the call" + (f": {reason}" if reason else ""))
        self.remote = remote
        self.reason = reason


class PermissionDeniedError(AuthenticationError):
    """A served cluster knew the call's token, but that token's role does not cover the method
    (a client token calling an admin method, say)."""


class RemoteError(PegasusFastError):
    """A served cluster failed a call with an error that is not one of this module's classes
    (its class name and message travel in ``type_name`` and the message)."""

    retry = Retry.FAILURE

    def __init__(self, remote: str, type_name: str, message: str) -> None:
        super().__init__(f"{remote}: {type_name}: {message}")
        self.remote = remote
        self.type_name = type_name


class NodeUnavailableError(PartitionUnavailableError):
    """A partition of a multi-node cluster whose owning node cannot be reached: only that
    node's partitions are unavailable; it serves them again when it is back with its disk."""

    def __init__(self, table: str, pidx: int, node: str, url: str, reason: str = "") -> None:
        super().__init__(
            table, pidx, f"node {node} ({url}) is unavailable" + (f": {reason}" if reason else "")
        )
        self.node = node
        self.url = url
        self.reason = reason


class NotOwnerError(PegasusFastError):
    """A node of a multi-node cluster was asked for a partition it does not own (the
    caller's configuration is stale: read it again and go to the owner)."""

    retry = Retry.TRANSIENT

    def __init__(self, table: str, pidx: int, node: str) -> None:
        super().__init__(f"node {node} does not own partition {table}.{pidx}")
        self.table = table
        self.pidx = pidx
        self.node = node


class NotLeaderError(PegasusFastError):
    """A placement call reached a node that is not the meta leader now."""

    retry = Retry.TRANSIENT

    def __init__(self, node: str, leader: str | None) -> None:
        super().__init__(f"node {node} is not the meta leader (leader: {leader or 'none'})")
        self.node = node
        self.leader = leader


class CoordinationError(PegasusFastError):
    """ZooKeeper cannot be reached, or the cluster's configuration in it is not usable."""

    retry = Retry.TRANSIENT

    def __init__(self, zk: str, reason: str) -> None:
        super().__init__(f"zookeeper {zk}: {reason}")
        self.zk = zk
        self.reason = reason


class ResourceExhaustedError(PegasusFastError):
    """A bounded resource (``resource``: a Config knob's name, or ``"open_partitions"``) would
    go past its ``limit``: ``requested`` is what it would have reached. Nothing was changed."""

    #: something may be released (a table dropped, a stream ended): a retry may succeed later
    retry = Retry.FAILURE

    def __init__(self, resource: str, limit: int, requested: int) -> None:
        super().__init__(f"{resource}: {requested} would pass the limit of {limit}")
        self.resource = str(resource)
        self.limit = int(limit)
        self.requested = int(requested)


class BackupError(PegasusFastError):
    """A backup (``pegasus-fast backup``) that cannot be restored as it is, or cannot be made:
    ``path`` is the backup directory, ``file`` the file at fault relative to it (None: the backup
    as a whole), ``reason`` one of :data:`BACKUP_REASONS`. A restore that raises it created
    nothing."""

    def __init__(self, path: str, file: str | None, reason: str, detail: str = "") -> None:
        where = f"{path}: {file}" if file is not None else str(path)
        super().__init__(f"backup {where}: {reason}" + (f" ({detail})" if detail else ""))
        self.path = str(path)
        self.file = file
        self.reason = reason
        self.detail = detail


#: what a :class:`BackupError` found: no manifest or one that does not parse; a name that
#: leaves its directory; a file missing, extra, of another size or another hash; a directory
#: that is not empty for a new backup; a restore whose data is not the manifest's decree
BACKUP_REASONS = (
    "bad_manifest",
    "unsafe_path",
    "missing",
    "extra",
    "size",
    "hash",
    "not_empty",
    "decree",
)


class NodeIdInUseError(CoordinationError):
    """A node was started with the id of a live node of another directory: it is refused
    (it serves nothing), and the live node keeps its id. ``holder`` is the live node's URL."""

    retry = Retry.PERMANENT

    def __init__(self, zk: str, node_id: str, holder: str) -> None:
        super().__init__(zk, f"node id {node_id!r} is held by a live node of another directory ({holder})")
        self.node_id = node_id
        self.holder = holder


class CoordinationAuthError(CoordinationError):
    """ZooKeeper refused this client: the cluster's znodes carry a digest ACL and the client
    gave no credentials, or other ones (``zk_auth_file`` / ``--zk-auth-file``)."""

    retry = Retry.PERMANENT


class PegasusProtocolError(PegasusFastError):
    """Bytes on a Pegasus-protocol connection (net/pegasus/) that are not a valid frame or
    message: ``offset`` is where the rejected bytes start, counted from the start of the
    connection's stream (or of the buffer given to a decoder)."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"Pegasus protocol error at offset {offset}: {reason}")
        self.offset = int(offset)
        self.reason = reason


class FrameTooLargeError(PegasusProtocolError):
    """A Pegasus-protocol frame header announces more bytes than the frame-size limit."""

    def __init__(self, offset: int, length: int, limit: int) -> None:
        super().__init__(offset, f"frame of {length} bytes; the limit is {limit}")
        self.length = int(length)
        self.limit = int(limit)


class FollowerTableError(PegasusFastError):
    """A client write to the follower table of a master-slave duplication: it takes the
    source's writes only (duplication applies), unless its env ``duplication.follower_writable``
    is ``true``. ``source`` names whom it follows (``cluster.table#dupid``)."""

    def __init__(self, table: str, source: str) -> None:
        super().__init__(f"table {table!r} follows {source}: it takes no client writes")
        self.table = table
        self.source = source


class TableMovedError(PegasusFastError):
    """A client write to a table switched over to another cluster (or being switched): write to
    ``primary``, the new primary's address (a ``pegasus://`` URL, or an embedded cluster's path)."""

    def __init__(self, table: str, primary: str) -> None:
        super().__init__(f"table {table!r} moved: its primary is {primary}")
        self.table = table
        self.primary = primary


class SwitchoverError(DuplicationError):
    """A switchover that could not finish: ``stage`` is where it stopped (``check``, ``fence``,
    ``catch_up``, ``take_over``), ``reason`` why. The source was unfenced and nothing changed on
    the follower, unless ``unfenced`` is False (the source keeps refusing writes: the follower's
    answer to the take-over never came, so it may be the primary now; see docs/switchover.md)."""

    retry = Retry.FAILURE

    def __init__(self, table: str, dupid: int, stage: str, reason: str, unfenced: bool = True) -> None:
        super().__init__(
            f"switchover of {table!r} (duplication {dupid}) stopped at {stage}: {reason}"
            + ("" if unfenced else "; the source stays fenced")
        )
        self.table = table
        self.dupid = dupid
        self.stage = stage
        self.reason = reason
        self.unfenced = unfenced
