"""Where a multi-node cluster keeps its configuration in ZooKeeper, and the bytes of each znode.

Under the cluster's chroot, in the spirit of Pegasus's own layout (its meta
server keeps ``<root>/apps/<app>/<pidx>`` with one partition configuration
each, and the meta leader's address beside it)::

    /cluster                  {"name", "cluster_id", "uid"}: made by the first node, never changed
    /nodes/<node_id>          ephemeral {"node_id", "url", "uid"}: one per live node; uid names
                              the node's directory (join.py), so a process of another
                              directory claiming a live node's id is refused
    /meta/election/...        kazoo's Election recipe: the meta leader is its winner
    /meta/leader              ephemeral {"node_id", "url"} of the meta leader
    /apps/<table>             {"app_id", "partition_count", "envs", "create_time", "follower_of",
                              "replica_count"}; envs change by compare-and-set on its version
                              (multinode/table_envs.py); replica_count 1 when absent
    /apps/<table>/<pidx>      {"owner", "ballot", "decree", "secondaries"}: the owning node (the
                              primary), and the nodes holding a replica it writes to before it
                              acknowledges (multinode/replication.py); the ballot grows by one
                              at each change of either (a versioned compare-and-set); decree:
                              the last decree the previous owner wrote (0 at creation)
    /dups/<dupid>             {"table", "remote", "remote_table", "with_checkpoint", "fail_mode",
                              "remote_token", "status", "create_time", "accept_gap"}: a duplication of the
                              cluster; every node runs it for the partitions it owns
    /dups/<dupid>/<pidx>      {"confirmed", "node"}: the last decree the follower holds durably,
                              written by the owning node at most every CONFIRM_WRITE_INTERVAL
    /config                   a counter the leader bumps after every change above: nodes and
                              clients watch this one znode to learn that something changed;
                              {"log": [[version, [table, ...] or null], ...]}: the tables each of
                              the last bumps changed (null: any), so a node that saw the bump
                              before re-reads those only (ConfigLog)

Every znode holds UTF-8 JSON; a znode that does not decode as its kind is a
:class:`CoordinationError`, never a silently wrong configuration (a partition's
znode fails only that partition: :attr:`PartitionConfig.problem`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..duplication.record import MAX_DUPID
from ..errors import CoordinationError

CLUSTER = "/cluster"
NODES = "/nodes"
ELECTION = "/meta/election"
LEADER = "/meta/leader"
APPS = "/apps"
CONFIG = "/config"
DUPS = "/dups"
#: the bumps of /config whose tables it keeps (ConfigLog)
CONFIG_LOG_LENGTH = 64
#: the replicas a partition may have (a primary and up to four secondaries)
MAX_REPLICAS = 5
#: a node writes a partition's confirmed decree to ZooKeeper at most this often (seconds)
CONFIRM_WRITE_INTERVAL = 2.0
DUP_STATUSES = ("active", "paused", "removed")


def node_path(node_id: str) -> str:
    return f"{NODES}/{node_id}"


def app_path(table: str) -> str:
    return f"{APPS}/{table}"


def partition_path(table: str, pidx: int) -> str:
    return f"{APPS}/{table}/{pidx}"


def dup_path(dupid: int) -> str:
    return f"{DUPS}/{int(dupid)}"


def dup_partition_path(dupid: int, pidx: int) -> str:
    return f"{DUPS}/{int(dupid)}/{int(pidx)}"


def _load(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CoordinationError("", f"{what} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise CoordinationError("", f"{what} is not a JSON object")
    return doc


def _str(doc: dict[str, Any], key: str, what: str) -> str:
    v = doc.get(key)
    if not isinstance(v, str) or not v:
        raise CoordinationError("", f"{what}: {key} is not a non-empty string")
    return v


def _int(doc: dict[str, Any], key: str, what: str, lo: int = 0, hi: int = (1 << 63) - 1) -> int:
    v = doc.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise CoordinationError("", f"{what}: {key} is not an int in {lo}..{hi}")
    return v


def _dump(obj: Any) -> bytes:
    return json.dumps(asdict(obj), sort_keys=True).encode()


@dataclass(frozen=True)
class ClusterDoc:
    name: str
    cluster_id: int
    #: every node's identity as a duplication source (one cluster to a follower)
    uid: str

    def encode(self) -> bytes:
        return _dump(self)

    @classmethod
    def decode(cls, raw: bytes) -> ClusterDoc:
        d = _load(raw, CLUSTER)
        uid = _str(d, "uid", CLUSTER)
        if not uid.isalnum():
            raise CoordinationError("", f"{CLUSTER}: uid is not alphanumeric")
        return cls(_str(d, "name", CLUSTER), _int(d, "cluster_id", CLUSTER, 1, 127), uid)


@dataclass(frozen=True)
class NodeDoc:
    node_id: str
    url: str
    #: the node's directory identity (join.py's NODE_UID): "" for the meta leader's znode
    uid: str = ""
    #: the node's Pegasus-protocol address ``host:port`` (``--pegasus-listen``), "" without one
    #: (and in a znode written before it existed)
    pegasus: str = ""

    def encode(self) -> bytes:
        return _dump(self)

    @classmethod
    def decode(cls, raw: bytes, what: str = "node") -> NodeDoc:
        d = _load(raw, what)
        uid = d.get("uid", "")
        if not isinstance(uid, str):
            raise CoordinationError("", f"{what}: uid is not a str")
        pegasus = d.get("pegasus", "")
        if not isinstance(pegasus, str):
            raise CoordinationError("", f"{what}: pegasus is not a str")
        return cls(_str(d, "node_id", what), _str(d, "url", what), uid, pegasus)


@dataclass(frozen=True)
class AppDoc:
    app_id: int
    partition_count: int
    create_time: float
    envs: dict[str, str] = field(default_factory=dict)
    #: a duplication's follower table: its source {cluster, cluster_uid, table, dupid}
    follower_of: dict[str, Any] | None = None
    #: the replicas each partition should have (1: its owner only; a znode written before
    #: replicas existed has none, and is 1)
    replica_count: int = 1

    def encode(self) -> bytes:
        return _dump(self)

    @classmethod
    def decode(cls, raw: bytes, what: str) -> AppDoc:
        d = _load(raw, what)
        envs = d.get("envs", {})
        if not isinstance(envs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in envs.items()
        ):
            raise CoordinationError("", f"{what}: envs is not a str -> str map")
        t = d.get("create_time")
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            raise CoordinationError("", f"{what}: create_time is not a number")
        f = d.get("follower_of")
        if f is not None:
            if not isinstance(f, dict):
                raise CoordinationError("", f"{what}: follower_of is not an object")
            for key in ("cluster", "cluster_uid", "table"):
                if not isinstance(f.get(key), str):
                    raise CoordinationError("", f"{what}: follower_of.{key} is not a str")
            _int(f, "dupid", f"{what}: follower_of", 1, MAX_DUPID)
        return cls(
            _int(d, "app_id", what, 1, 1 << 31),
            _int(d, "partition_count", what, 1, 1 << 16),
            float(t),
            dict(envs),
            None if f is None else dict(f),
            _int(d, "replica_count", what, 1, MAX_REPLICAS) if "replica_count" in d else 1,
        )


@dataclass(frozen=True)
class PartitionDoc:
    owner: str
    ballot: int
    decree: int = 0
    #: the nodes holding a replica the owner writes to before it acknowledges, in no order
    secondaries: tuple[str, ...] = ()

    def encode(self) -> bytes:
        doc = asdict(self)
        doc["secondaries"] = list(self.secondaries)
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes, what: str) -> PartitionDoc:
        d = _load(raw, what)
        owner = _str(d, "owner", what)
        sec = d.get("secondaries", [])
        if (
            not isinstance(sec, list)
            or not all(isinstance(n, str) and n for n in sec)
            or len(set(sec)) != len(sec)
            or owner in sec
            or len(sec) >= MAX_REPLICAS
        ):
            raise CoordinationError(
                "", f"{what}: secondaries is not a list of distinct node ids other than the owner"
            )
        return cls(owner, _int(d, "ballot", what, 1), _int(d, "decree", what), tuple(sec))


@dataclass(frozen=True)
class DupDoc:
    table: str
    remote: str
    remote_table: str
    with_checkpoint: bool
    fail_mode: str
    create_time: float
    status: str = "active"
    remote_token: str = ""
    accept_gap: bool = False

    def encode(self) -> bytes:
        return _dump(self)

    @classmethod
    def decode(cls, raw: bytes, what: str) -> DupDoc:
        d = _load(raw, what)
        status = _str(d, "status", what)
        if status not in DUP_STATUSES:
            raise CoordinationError("", f"{what}: status {status!r} is not one of {DUP_STATUSES}")
        wc, t, token = d.get("with_checkpoint"), d.get("create_time"), d.get("remote_token", "")
        if not isinstance(wc, bool) or isinstance(t, bool) or not isinstance(t, (int, float)):
            raise CoordinationError("", f"{what}: with_checkpoint or create_time has the wrong type")
        if not isinstance(token, str):
            raise CoordinationError("", f"{what}: remote_token is not a str")
        accept_gap = d.get("accept_gap", False)
        if not isinstance(accept_gap, bool):
            raise CoordinationError("", f"{what}: accept_gap is not a bool")
        return cls(
            _str(d, "table", what),
            _str(d, "remote", what),
            _str(d, "remote_table", what),
            wc,
            _str(d, "fail_mode", what),
            float(t),
            status,
            token,
            accept_gap,
        )


@dataclass(frozen=True)
class PartitionConfig:
    """One partition's configuration as read, with the znode version a compare-and-set names."""

    pidx: int
    owner: str
    ballot: int
    decree: int
    version: int
    #: why its znode is not a configuration ("" when it is): this partition alone is unavailable
    problem: str = ""
    secondaries: tuple[str, ...] = ()

    @classmethod
    def read(cls, pidx: int, raw: bytes, version: int, what: str) -> PartitionConfig:
        """A partition's znode, or one whose ``problem`` says why it is not a configuration
        (its owner ""): a bad znode fails only the partition it describes."""
        try:
            doc = PartitionDoc.decode(raw, what)
        except CoordinationError as exc:
            return cls(pidx, "", 0, 0, version, exc.reason)
        return cls(pidx, doc.owner, doc.ballot, doc.decree, version, "", doc.secondaries)

    @property
    def doc(self) -> PartitionDoc:
        return PartitionDoc(self.owner, self.ballot, self.decree, self.secondaries)

    @property
    def replicas(self) -> tuple[str, ...]:
        """The primary, then the secondaries."""
        return (self.owner, *self.secondaries) if self.owner else self.secondaries


@dataclass(frozen=True)
class ConfigLog:
    """``/config``'s data: the tables each of the last :data:`CONFIG_LOG_LENGTH` bumps changed,
    by the znode version the bump made (None: any table, or not known)."""

    entries: tuple[tuple[int, tuple[str, ...] | None], ...] = ()

    def encode(self) -> bytes:
        return json.dumps({"log": [[v, None if t is None else list(t)] for v, t in self.entries]}).encode()

    @classmethod
    def decode(cls, raw: bytes) -> ConfigLog:
        """The log, or an empty one for data that is not one (a znode of an older version: a
        reader that cannot tell what changed reads everything)."""
        try:
            doc = json.loads(raw.decode("utf-8"))
            out = []
            for v, tables in doc["log"]:
                if isinstance(v, bool) or not isinstance(v, int):
                    return cls()
                if tables is not None and not (
                    isinstance(tables, list) and all(isinstance(t, str) for t in tables)
                ):
                    return cls()
                out.append((v, None if tables is None else tuple(tables)))
            return cls(tuple(out))
        except (UnicodeDecodeError, ValueError, KeyError, TypeError):
            return cls()

    def bumped(self, version: int, tables: tuple[str, ...] | None) -> ConfigLog:
        """This log with the bump that makes ``version`` appended (the oldest ones dropped)."""
        return ConfigLog((*self.entries, (version, tables))[-CONFIG_LOG_LENGTH:])

    def changed_since(self, seen: int, version: int) -> set[str] | None:
        """The tables changed by the bumps after version ``seen`` through ``version``; None
        when the log cannot say (a bump it no longer holds, or one that changed any)."""
        if seen < 0:
            return None
        by_version = dict(self.entries)
        out: set[str] = set()
        for v in range(seen + 1, version + 1):
            if v not in by_version or by_version[v] is None:
                return None
            out.update(by_version[v] or ())
        return out


@dataclass(frozen=True)
class TableConfig:
    name: str
    app: AppDoc
    partitions: tuple[PartitionConfig, ...]

    def owners(self) -> list[str]:
        return [p.owner for p in self.partitions]


__all__ = [
    "APPS",
    "CLUSTER",
    "CONFIG",
    "CONFIRM_WRITE_INTERVAL",
    "DUPS",
    "ELECTION",
    "LEADER",
    "MAX_REPLICAS",
    "NODES",
    "AppDoc",
    "ClusterDoc",
    "ConfigLog",
    "DupDoc",
    "NodeDoc",
    "PartitionConfig",
    "PartitionDoc",
    "TableConfig",
    "app_path",
    "dup_partition_path",
    "dup_path",
    "node_path",
    "partition_path",
]
