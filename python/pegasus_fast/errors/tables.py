"""Errors of tables and partitions as a call meets them: not there, already there, not
serving now, or refusing client writes for their role (a follower, a table moved away)."""

from __future__ import annotations

from .base import PegasusFastError, Retry


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
