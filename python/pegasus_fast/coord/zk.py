"""Connecting to ZooKeeper (kazoo) and reading a multi-node cluster's configuration.

A ZooKeeper address is ``HOST:PORT[,HOST:PORT...]/CHROOT`` (``zk://`` in front
for clients); the chroot names the cluster, and is required: two clusters on
one ZooKeeper must not share a root.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoAuthError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

from ..errors import (
    CoordinationAuthError,
    CoordinationError,
    InvalidArgumentError,
    InvalidTypeError,
    TableNotFoundError,
)
from .auth import ZkAuth
from .layout import (
    APPS,
    CLUSTER,
    DUPS,
    LEADER,
    NODES,
    AppDoc,
    ClusterDoc,
    DupDoc,
    NodeDoc,
    PartitionConfig,
    TableConfig,
    app_path,
    dup_path,
    partition_path,
)

log = logging.getLogger(__name__)

#: a client's session (a node's is its Config.zk_session_timeout_seconds): ZooKeeper expires it
#: this long after the client stops answering
SESSION_TIMEOUT = 6.0
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class ZkAddress:
    hosts: str
    chroot: str

    @property
    def spec(self) -> str:
        return f"{self.hosts}{self.chroot}"

    @property
    def url(self) -> str:
        return f"zk://{self.spec}"


def parse_zk(spec: object) -> ZkAddress:
    """``[zk://]HOST:PORT[,HOST:PORT...]/CHROOT`` → a :class:`ZkAddress` (typed errors)."""
    if not isinstance(spec, str):
        raise InvalidTypeError("a ZooKeeper address is a str")
    text = spec[len("zk://") :] if spec.startswith("zk://") else spec
    hosts, slash, chroot = text.partition("/")
    if not slash or not chroot.strip("/"):
        raise InvalidArgumentError(f"a ZooKeeper address needs a /CHROOT naming the cluster: {spec!r}")
    chroot = "/" + chroot.strip("/")
    if any(part in ("", ".", "..", "zookeeper") for part in chroot[1:].split("/")):
        raise InvalidArgumentError(f"invalid ZooKeeper chroot {chroot!r}")
    for host in hosts.split(","):
        name, colon, port = host.rpartition(":")
        if not colon or not name or not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidArgumentError(f"a ZooKeeper host is HOST:PORT, not {host!r}")
    return ZkAddress(hosts, chroot)


def connect(
    addr: ZkAddress,
    timeout: float = CONNECT_TIMEOUT,
    create: bool = False,
    session_timeout: float = SESSION_TIMEOUT,
    auth: ZkAuth | None = None,
) -> KazooClient:
    """A started kazoo client rooted at the cluster's chroot (``create``: made if missing,
    as a node joining does; a client finds no cluster there instead). With ``auth``, it
    authenticates and makes every znode with its digest ACL (coord/auth.py); a cluster
    whose znodes it may not read is a :class:`CoordinationAuthError`."""
    zk = KazooClient(
        hosts=addr.hosts,
        timeout=session_timeout,
        auth_data=auth.auth_data() if auth else None,
        default_acl=auth.acl() if auth else None,
    )
    try:
        zk.start(timeout=timeout)
        if create:
            zk.ensure_path(addr.chroot)
        elif zk.exists(addr.chroot) is None:
            raise CoordinationError(addr.spec, f"no cluster at {addr.chroot}")
        zk.chroot = addr.chroot
        try:
            zk.get(CLUSTER)
        except NoNodeError:
            pass  # a new cluster: its first node makes it
        except NoAuthError:
            raise CoordinationAuthError(
                addr.spec,
                "the cluster's znodes have an ACL these credentials do not pass"
                if auth
                else "the cluster's znodes have an ACL: give its credentials (zk_auth_file, --zk-auth-file)",
            ) from None
    except (KazooTimeoutError, KazooException) as exc:
        zk.stop()
        zk.close()
        raise CoordinationError(addr.spec, f"cannot connect: {exc or type(exc).__name__}") from None
    except BaseException:
        zk.stop()
        zk.close()
        raise
    return zk


def read_cluster(zk: KazooClient) -> ClusterDoc | None:
    try:
        raw, _ = zk.get(CLUSTER)
    except NoNodeError:
        return None
    return ClusterDoc.decode(raw)


def read_nodes(zk: KazooClient) -> dict[str, NodeDoc]:
    """The live nodes (ephemeral znodes), read in parallel."""
    try:
        names = zk.get_children(NODES)
    except NoNodeError:
        return {}
    pending = [(n, zk.get_async(f"{NODES}/{n}")) for n in names]
    out: dict[str, NodeDoc] = {}
    for name, res in pending:
        try:
            raw, _ = res.get()
        except NoNodeError:
            continue  # gone since the listing
        doc = NodeDoc.decode(raw, f"{NODES}/{name}")
        out[doc.node_id] = doc
    return out


def read_leader(zk: KazooClient) -> NodeDoc | None:
    try:
        raw, _ = zk.get(LEADER)
    except NoNodeError:
        return None
    return NodeDoc.decode(raw, LEADER)


def list_tables(zk: KazooClient) -> list[str]:
    try:
        return sorted(zk.get_children(APPS))
    except NoNodeError:
        return []


def read_table(zk: KazooClient, name: str) -> TableConfig:
    """One table's configuration: its app znode, then every partition's, read in parallel."""
    try:
        raw, _ = zk.get(app_path(name))
    except NoNodeError:
        raise TableNotFoundError(name) from None
    app = AppDoc.decode(raw, app_path(name))
    pending = [zk.get_async(partition_path(name, i)) for i in range(app.partition_count)]
    parts = []
    for i, res in enumerate(pending):
        try:
            raw, stat = res.get()
        except NoNodeError:
            # made in one transaction with the app: a missing one is a table being dropped
            raise TableNotFoundError(name) from None
        parts.append(PartitionConfig.read(i, raw, stat.version, partition_path(name, i)))
    return TableConfig(name, app, tuple(parts))


def read_dups(zk: KazooClient) -> dict[int, DupDoc]:
    """Every duplication of the cluster, removed ones included (their ids are never reused)."""
    try:
        names = zk.get_children(DUPS)
    except NoNodeError:
        return {}
    pending = [(int(n), zk.get_async(dup_path(int(n)))) for n in names if n.isdigit()]
    out = {}
    for dupid, res in pending:
        try:
            raw, _ = res.get()
        except NoNodeError:
            continue
        out[dupid] = DupDoc.decode(raw, dup_path(dupid))
    return out


def read_tables(zk: KazooClient) -> dict[str, TableConfig]:
    out = {}
    for name in list_tables(zk):
        try:
            out[name] = read_table(zk, name)
        except TableNotFoundError:
            continue
    return out


__all__ = [
    "SESSION_TIMEOUT",
    "ZkAddress",
    "connect",
    "list_tables",
    "parse_zk",
    "read_cluster",
    "read_dups",
    "read_leader",
    "read_nodes",
    "read_table",
    "read_tables",
]
