"""Cluster metadata: a typed document behind one small store interface.

A deployment across machines would keep the same document in ZooKeeper, as
Pegasus's meta server does (DESIGN.md §9). Every change is durable before it
takes effect; the local store is ``journal.JournalMetaStore``.

The document is typed (dataclasses) with one place that encodes and decodes
each record. Loading checks every field: a record that is unknown, malformed
or out of range (an ``app_id`` that is not a small positive int, a partition
count over the maximum, a cluster id outside 1..127) is MetaCorruptionError,
so crafted metadata never builds a path or drives the cluster.
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from ..duplication.ports import SourceId
from ..duplication.record import MAX_DUPID, DupRecord
from ..errors import DuplicationError, MetaCorruptionError
from ..records import MAX_PARTITIONS
from .journal import MetaStore

FORMAT_VERSION = 1
TABLE_STATUSES = ("AVAILABLE",)
MAX_APP_ID = (1 << 31) - 1


def _bad(reason: str) -> MetaCorruptionError:
    return MetaCorruptionError("<cluster metadata>", 0, reason)


def _int(d: dict[str, Any], key: str, lo: int, hi: int) -> int:
    value = d.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _bad(f"{key} is not an int in {lo}..{hi}: {value!r}")
    return value


def valid_table_name(name: object) -> bool:
    if isinstance(name, str):
        try:
            name.encode("utf-8")  # a lone surrogate cannot be stored (nor shown)
        except UnicodeEncodeError:
            return False
    return (
        isinstance(name, str)
        and 0 < len(name) <= 255
        and "/" not in name
        and "\0" not in name
        and name.strip() == name
        and name not in (".", "..")
    )


@dataclass(frozen=True)
class FollowerOf:
    """A table made by a duplication: whose follower it is, and which partitions have learned."""

    source: SourceId
    #: per source partition: its start is set (a checkpoint learned, or a start decree)
    learned: tuple[bool, ...]
    #: the source's partition count when it differs from the table's (0: the same); each
    #: shipped op then goes to the partition its key hashes to (duplication/apply.py)
    source_partitions: int = 0
    #: an existing table taken as it was (a duplication without checkpoint): its data was never
    #: learned from the source, so the source can never make it learn again (nor wipe it)
    adopted: bool = False
    #: adopted from a follower of the same source table (an earlier duplication of it): what
    #: its partitions hold is that source's prefix, so a start after it would leave a gap
    continues: bool = False

    @property
    def rerouted(self) -> bool:
        return self.source_partitions != 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source.to_json(), "learned": list(self.learned)}
        if self.source_partitions:
            out["source_partitions"] = self.source_partitions
        if self.adopted:
            out["adopted"] = True
        if self.continues:
            out["continues"] = True
        return out

    @classmethod
    def from_json(cls, raw: object, partition_count: int) -> FollowerOf:
        if not isinstance(raw, dict):
            raise _bad("follower_of is not an object")
        src = raw.get("source")
        if src is None and "cluster" in raw:  # written before the typed record: the source inline
            src = {"cluster_uid": "", **{k: raw.get(k) for k in ("cluster", "table", "dupid")}}
        if not isinstance(src, dict):
            raise _bad("follower_of.source is not an object")
        for key in ("cluster", "cluster_uid", "table"):
            if not isinstance(src.get(key), str):
                raise _bad(f"follower_of.source.{key} is not a str")
        source_partitions = (
            _int(raw, "source_partitions", 0, MAX_PARTITIONS) if "source_partitions" in raw else 0
        )
        learned = raw.get("learned")
        if (
            not isinstance(learned, list)
            or len(learned) != (source_partitions or partition_count)
            or not all(isinstance(x, bool) for x in learned)
        ):
            raise _bad("follower_of.learned is not one bool per source partition")
        source = SourceId(src["cluster"], src["cluster_uid"], src["table"], _int(src, "dupid", 1, MAX_DUPID))
        adopted = raw.get("adopted", False)
        if not isinstance(adopted, bool):
            raise _bad("follower_of.adopted is not a bool")
        continues = raw.get("continues", False)
        if not isinstance(continues, bool):
            raise _bad("follower_of.continues is not a bool")
        return cls(source, tuple(learned), source_partitions, adopted, continues)


@dataclass(frozen=True)
class TableRecord:
    app_id: int
    partition_count: int
    status: str
    create_time: float
    envs: dict[str, str] = field(default_factory=dict)
    follower_of: FollowerOf | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "app_id": self.app_id,
            "partition_count": self.partition_count,
            "status": self.status,
            "create_time": self.create_time,
            "envs": dict(self.envs),
        }
        if self.follower_of is not None:
            out["follower_of"] = self.follower_of.to_json()
        return out

    @classmethod
    def from_json(cls, raw: object) -> TableRecord:
        if not isinstance(raw, dict):
            raise _bad("a table record is not an object")
        count = _int(raw, "partition_count", 1, MAX_PARTITIONS)
        status = raw.get("status")
        if status not in TABLE_STATUSES:
            raise _bad(f"unknown table status {status!r}")
        create_time = raw.get("create_time")
        if isinstance(create_time, bool) or not isinstance(create_time, (int, float)):
            raise _bad("create_time is not a number")
        envs = raw.get("envs", {})
        if not isinstance(envs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in envs.items()
        ):
            raise _bad("envs is not an object of str to str")
        fo = raw.get("follower_of")
        return cls(
            app_id=_int(raw, "app_id", 1, MAX_APP_ID),
            partition_count=count,
            status=status,
            create_time=float(create_time),
            envs=dict(envs),
            follower_of=None if fo is None else FollowerOf.from_json(fo, count),
        )


@dataclass(frozen=True)
class ClusterState:
    name: str
    cluster_id: int
    uid: str
    #: the id was derived from the name, not configured
    cluster_id_derived: bool = False
    next_app_id: int = 1
    next_dupid: int = 1
    tables: dict[str, TableRecord] = field(default_factory=dict)
    duplications: dict[int, DupRecord] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "name": self.name,
            "cluster_id": self.cluster_id,
            "cluster_id_derived": self.cluster_id_derived,
            "uid": self.uid,
            "next_app_id": self.next_app_id,
            "next_dupid": self.next_dupid,
            "tables": {name: t.to_json() for name, t in self.tables.items()},
            "duplications": {str(k): d.to_json() for k, d in self.duplications.items()},
        }

    @classmethod
    def from_json(cls, raw: object) -> ClusterState:
        if not isinstance(raw, dict):
            raise _bad("the document is not an object")
        if raw.get("format") != FORMAT_VERSION:
            raise _bad(f"unknown format {raw.get('format')!r}")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise _bad("name is not a non-empty str")
        uid = raw.get("uid", "")
        if not isinstance(uid, str):
            raise _bad("uid is not a str")
        tables_raw = raw.get("tables")
        dups_raw = raw.get("duplications")
        if not isinstance(tables_raw, dict) or not isinstance(dups_raw, dict):
            raise _bad("tables or duplications is not an object")
        tables = {}
        for tname, rec in tables_raw.items():
            if not valid_table_name(tname):
                raise _bad(f"invalid table name {tname!r}")
            tables[tname] = TableRecord.from_json(rec)
        next_app_id = _int(raw, "next_app_id", 1, MAX_APP_ID + 1)
        ids = [t.app_id for t in tables.values()]
        if len(set(ids)) != len(ids) or any(i >= next_app_id for i in ids):
            raise _bad("table app ids repeat or run past next_app_id")
        dups = {}
        for key, rec in dups_raw.items():
            if not isinstance(key, str) or not key.isdigit():
                raise _bad(f"invalid duplication id {key!r}")
            dups[int(key)] = DupRecord.from_json(rec)
        next_dupid = _int(raw, "next_dupid", 1, MAX_DUPID + 1)
        if any(k >= next_dupid for k in dups):
            raise _bad("a duplication id runs past next_dupid")
        derived = raw.get("cluster_id_derived", False)
        if not isinstance(derived, bool):
            raise _bad("cluster_id_derived is not a bool")
        return cls(
            name=name,
            cluster_id=_int(raw, "cluster_id", 1, 127),
            uid=uid,
            cluster_id_derived=derived,
            next_app_id=next_app_id,
            next_dupid=next_dupid,
            tables=tables,
            duplications=dups,
        )


class ClusterMeta:
    """The cluster's metadata document; each change is persisted before it becomes current."""

    def __init__(
        self,
        store: MetaStore,
        name: str,
        cluster_id: int,
        cluster_id_derived: bool = False,
        uid: str | None = None,
    ) -> None:
        """``uid``: the identity a new cluster takes (every node of a multi-node cluster shares
        the one in ZooKeeper); default a fresh one."""
        self.store = store
        self._lock = threading.RLock()
        raw = store.load()
        if raw is None:
            state = ClusterState(
                name=name,
                cluster_id=cluster_id,
                uid=uid or uuid.uuid4().hex,
                cluster_id_derived=cluster_id_derived,
            )
            store.save(state.to_json())
        else:
            try:
                state = ClusterState.from_json(raw)
            except MetaCorruptionError as exc:
                raise MetaCorruptionError(getattr(store, "path", "<store>"), exc.offset, exc.reason) from None
            if not state.uid:  # a cluster made before clusters had a uid
                state = replace(state, uid=uuid.uuid4().hex)
                store.save(state.to_json())
        self._state = state

    @property
    def state(self) -> ClusterState:
        return self._state

    def _commit(self, state: ClusterState) -> None:
        self.store.save(state.to_json())
        self._state = state

    # -- tables ----------------------------------------------------------------------

    def add_table(self, name: str, record: TableRecord) -> None:
        """Persist a new table; app ids only grow (``next_app_id`` moves past it)."""
        with self._lock:
            s = self._state
            next_app_id = max(s.next_app_id, record.app_id + 1)
            self._commit(replace(s, next_app_id=next_app_id, tables={**s.tables, name: record}))

    def drop_table(self, name: str) -> None:
        with self._lock:
            tables = dict(self._state.tables)
            del tables[name]
            self._commit(replace(self._state, tables=tables))

    def set_envs(self, name: str, envs: dict[str, str]) -> None:
        """Replace the table's envs (checked by the caller: engine/envs.py)."""
        with self._lock:
            record = replace(self._state.tables[name], envs=dict(envs))
            self._commit(replace(self._state, tables={**self._state.tables, name: record}))

    def set_follower_of(
        self, name: str, follower_of: FollowerOf | None, envs: dict[str, str] | None = None
    ) -> None:
        """``envs``: replace the table's envs in the same change (a switchover's promotion)."""
        with self._lock:
            record = replace(self._state.tables[name], follower_of=follower_of)
            if envs is not None:
                record = replace(record, envs=dict(envs))
            self._commit(replace(self._state, tables={**self._state.tables, name: record}))

    def set_learned(self, name: str, pidxs: list[int], learned: bool = True) -> None:
        with self._lock:
            t = self._state.tables[name]
            if t.follower_of is None:
                return
            flags = list(t.follower_of.learned)
            for pidx in pidxs:
                flags[pidx] = learned
            record = replace(t, follower_of=replace(t.follower_of, learned=tuple(flags)))
            self._commit(replace(self._state, tables={**self._state.tables, name: record}))

    # -- duplications ---------------------------------------------------------------------

    def add_duplication(self, record: DupRecord, dupid: int | None = None) -> int:
        """Record a new duplication under the next free id, or under ``dupid`` (a node of a
        multi-node cluster takes the id the cluster gave it)."""
        with self._lock:
            s = self._state
            if dupid is None:
                dupid = s.next_dupid
            elif dupid in s.duplications:
                raise DuplicationError(f"duplication {dupid} exists already")
            self._commit(
                replace(
                    s, next_dupid=max(s.next_dupid, dupid + 1), duplications={**s.duplications, dupid: record}
                )
            )
            return dupid

    def save_duplication(self, dupid: int, record: DupRecord) -> None:
        with self._lock:
            self._commit(replace(self._state, duplications={**self._state.duplications, dupid: record}))

    def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close is not None:
            close()


def partition_dir(cluster_path: str, app_id: int, pidx: int) -> str:
    """A partition's directory, from validated ints only: never leaves ``<cluster>/tables``."""
    if isinstance(app_id, bool) or not isinstance(app_id, int) or not 1 <= app_id <= MAX_APP_ID:
        raise MetaCorruptionError(os.path.join(cluster_path, "meta"), 0, f"bad app_id {app_id!r}")
    return os.path.join(cluster_path, "tables", f"{app_id}.{int(pidx)}")
