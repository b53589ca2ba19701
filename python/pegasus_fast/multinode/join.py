"""Joining a multi-node cluster: the node's id, kept in its directory, and the cluster's identity.

The first node makes ``/cluster`` (its name and the cluster id every node's
timetags carry). The node id is kept in the node's directory (``NODE_ID``),
so a node restarted with its disk is the same node; beside it, ``NODE_UID`` (a
random id made once) names the directory itself. A node registers both in its
ephemeral ``/nodes/<id>``: a process of another directory given the same
``--node-id`` is refused while the node lives, and the node's own directory,
restarted before its old session expired, takes its id back (member.py).
"""

from __future__ import annotations

import contextlib
import os
import uuid

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError

from .. import fileio
from ..coord.layout import CLUSTER, NODES, ClusterDoc
from ..coord.zk import ZkAddress, read_cluster
from ..engine.cluster import default_cluster_id
from ..errors import CoordinationError, InvalidArgumentError

NODE_ID_FILE = "NODE_ID"
NODE_UID_FILE = "NODE_UID"


def node_id_of(directory: str, wanted: str | None = None) -> str:
    """The node id kept in ``directory`` (made, or checked against ``wanted``, on first use)."""
    path = os.path.join(directory, NODE_ID_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            kept = f.read().strip()
    except FileNotFoundError:
        kept = ""
    if kept:
        if wanted is not None and wanted != kept:
            raise InvalidArgumentError(f"{directory} is node {kept!r}, not {wanted!r}")
        return kept
    node_id = wanted or f"node-{uuid.uuid4().hex[:12]}"
    if not node_id.replace("-", "").replace("_", "").replace(".", "").isalnum() or len(node_id) > 64:
        raise InvalidArgumentError(f"a node id is up to 64 letters, digits, '-', '_' or '.': {node_id!r}")
    os.makedirs(directory, exist_ok=True)
    fileio.write_file(path, (node_id + "\n").encode())
    return node_id


def node_uid_of(directory: str) -> str:
    """The directory's identity (``NODE_UID``, made on first use): which directory a node is."""
    path = os.path.join(directory, NODE_UID_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            kept = f.read().strip()
    except FileNotFoundError:
        kept = ""
    if kept:
        if not kept.isalnum():
            raise InvalidArgumentError(f"{path} is not a node's directory identity")
        return kept
    uid = uuid.uuid4().hex
    os.makedirs(directory, exist_ok=True)
    fileio.write_file(path, (uid + "\n").encode())
    return uid


def join_cluster(zk: KazooClient, addr: ZkAddress) -> ClusterDoc:
    """The cluster's identity in ZooKeeper, made by the first node to join."""
    for path in (NODES, "/meta", "/apps"):
        zk.ensure_path(path)
    doc = read_cluster(zk)
    if doc is not None:
        return doc
    name = addr.chroot.strip("/").replace("/", ".")
    new = ClusterDoc(name, default_cluster_id(name), uuid.uuid4().hex)
    with contextlib.suppress(NodeExistsError):
        zk.create(CLUSTER, new.encode())
    doc = read_cluster(zk)
    if doc is None:
        raise CoordinationError(addr.spec, "/cluster vanished after it was made")
    return doc


__all__ = ["NODE_ID_FILE", "NODE_UID_FILE", "join_cluster", "node_id_of", "node_uid_of"]
