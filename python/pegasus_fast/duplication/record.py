"""A duplication's persisted record: typed, with one place that encodes and decodes it.

The record lives in the cluster metadata (engine/meta.py) as JSON. Decoding
checks every field; anything unknown or malformed is MetaCorruptionError, so
a damaged or crafted record never drives a duplication.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from ..errors import InvalidTypeError, MetaCorruptionError
from .status import FAIL_MODES, DupStatus

#: the largest duplication id: ids, and the next one to give, fit a signed 64-bit int with
#: room to spare wherever they are kept (the metadata journal, ZooKeeper, the wire)
MAX_DUPID = (1 << 62) - 1


def check_dupid(dupid: object, lookup: bool = False) -> int:
    """``dupid`` if it is a duplication id, else InvalidTypeError. A ``lookup`` may ask for 0
    too (it finds nothing); an id given to a new duplication is from 1."""
    lo = 0 if lookup else 1
    if isinstance(dupid, bool) or not isinstance(dupid, int) or not lo <= dupid <= MAX_DUPID:
        raise InvalidTypeError(f"dupid is an int in {lo}..{MAX_DUPID}")
    return dupid


#: what a partition learns from (checkpoints.py); "none" for a duplication without checkpoint
CHECKPOINT_KINDS = ("", "empty", "small", "large", "none")


class CkptState(Enum):
    PENDING = "pending"
    EMPTY = "empty"
    READY = "ready"
    COPYING = "copying"
    LEARNED = "learned"
    #: the WAL after ``confirmed`` went past the retention cap and was freed: the follower
    #: partition must learn a fresh checkpoint before anything is shipped to it again
    RELEASED = "released"


@dataclass(frozen=True)
class PartitionCheckpoint:
    """Per partition: what it learns from, and the source decree the follower has confirmed."""

    kind: str = ""
    decree: int = 0
    state: CkptState = CkptState.PENDING
    confirmed: int = 0
    duration_ms: float = 0.0
    size_bytes: int = 0

    def describe(self) -> str:
        """As progress shows it: pending, empty, ready@<decree>, learned, released."""
        if self.state is CkptState.READY:
            return f"ready@{self.decree}"
        return self.state.value

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "decree": self.decree,
            "state": self.state.value,
            "confirmed": self.confirmed,
            "duration_ms": round(self.duration_ms, 3),
            "size_bytes": self.size_bytes,
        }

    @classmethod
    def from_json(cls, raw: object) -> PartitionCheckpoint:
        d = _mapping(raw, "partition checkpoint")
        state = _str(d, "state")
        if state.startswith("ready@"):  # journals written before the typed record
            state = "ready"
        try:
            st = CkptState(state)
        except ValueError:
            raise _bad(f"unknown checkpoint state {state!r}") from None
        kind = _str(d, "kind")
        if kind not in CHECKPOINT_KINDS:
            raise _bad(f"unknown checkpoint kind {kind!r}")
        return cls(
            kind=kind,
            decree=_uint(d, "decree"),
            state=st,
            confirmed=_uint(d, "confirmed"),
            duration_ms=_number(d, "duration_ms", 0.0),
            size_bytes=_uint(d, "size_bytes", 0),
        )


@dataclass(frozen=True)
class DupRecord:
    table: str
    #: where the follower is: the path of an embedded cluster, or a pegasus:// URL
    remote: str
    remote_name: str
    remote_table: str
    fail_mode: str
    with_checkpoint: bool
    create_time: float
    status: DupStatus
    timeline: tuple[tuple[str, float], ...]
    partitions: tuple[PartitionCheckpoint, ...] = field(default_factory=tuple)
    #: presented to a served remote, kept so a restart resumes ("" : the process's PEGASUS_FAST_TOKEN)
    remote_token: str = field(default="", repr=False)
    #: without checkpoint: ship from now on even into a follower that missed writes before
    accept_gap: bool = False

    def with_status(self, status: DupStatus, at: float) -> DupRecord:
        return replace(self, status=status, timeline=(*self.timeline, (str(status), at)))

    def with_partitions(self, partitions: list[PartitionCheckpoint]) -> DupRecord:
        return replace(self, partitions=tuple(partitions))

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "remote": self.remote,
            "remote_name": self.remote_name,
            "remote_table": self.remote_table,
            "fail_mode": self.fail_mode,
            "with_checkpoint": self.with_checkpoint,
            "create_time": self.create_time,
            "status": self.status.value,
            "timeline": [list(x) for x in self.timeline],
            "partitions": [p.to_json() for p in self.partitions],
            **({"remote_token": self.remote_token} if self.remote_token else {}),
            **({"accept_gap": True} if self.accept_gap else {}),
        }

    @classmethod
    def from_json(cls, raw: object) -> DupRecord:
        d = _mapping(raw, "duplication")
        try:
            status = DupStatus(_str(d, "status"))
        except ValueError:
            raise _bad(f"unknown duplication status {d.get('status')!r}") from None
        fail_mode = _str(d, "fail_mode")
        if fail_mode not in FAIL_MODES:
            raise _bad(f"unknown fail_mode {fail_mode!r}")
        with_checkpoint = d.get("with_checkpoint")
        if not isinstance(with_checkpoint, bool):
            raise _bad("with_checkpoint is not a bool")
        timeline_raw = d.get("timeline", [])
        if not isinstance(timeline_raw, list):
            raise _bad("timeline is not a list")
        timeline = []
        for item in timeline_raw:
            if (
                not isinstance(item, list)
                or len(item) != 2
                or not isinstance(item[0], str)
                or not isinstance(item[1], (int, float))
            ):
                raise _bad("malformed timeline entry")
            timeline.append((item[0], float(item[1])))
        parts = d.get("partitions")
        if not isinstance(parts, list) or not parts:
            raise _bad("partitions is not a non-empty list")
        accept_gap = d.get("accept_gap", False)
        if not isinstance(accept_gap, bool):
            raise _bad("accept_gap is not a bool")
        remote = d.get("remote", d.get("remote_path"))  # the key's name before served remotes
        if not isinstance(remote, str) or not remote:
            raise _bad("remote is not a non-empty str")
        return cls(
            table=_str(d, "table", nonempty=True),
            remote=remote,
            remote_name=_str(d, "remote_name", default=""),
            remote_table=_str(d, "remote_table", nonempty=True),
            fail_mode=fail_mode,
            with_checkpoint=with_checkpoint,
            create_time=_number(d, "create_time"),
            status=status,
            timeline=tuple(timeline),
            partitions=tuple(PartitionCheckpoint.from_json(p) for p in parts),
            remote_token=_str(d, "remote_token", default=""),
            accept_gap=accept_gap,
        )


# -- field checks -------------------------------------------------------------------


def _bad(reason: str) -> MetaCorruptionError:
    return MetaCorruptionError("<duplication record>", 0, reason)


def _mapping(raw: object, what: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _bad(f"{what} is not an object")
    return raw


def _str(d: dict[str, Any], key: str, default: str | None = None, nonempty: bool = False) -> str:
    value = d.get(key, default)
    if not isinstance(value, str) or (nonempty and not value):
        raise _bad(f"{key} is not a{' non-empty' if nonempty else ''} str")
    return value


def _uint(d: dict[str, Any], key: str, default: int | None = None) -> int:
    value = d.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= 1 << 64:
        raise _bad(f"{key} is not an unsigned 64-bit int")
    return value


def _number(d: dict[str, Any], key: str, default: float | None = None) -> float:
    value = d.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise _bad(f"{key} is not a number")
    return float(value)


__all__ = ["CHECKPOINT_KINDS", "MAX_DUPID", "CkptState", "DupRecord", "PartitionCheckpoint", "check_dupid"]
