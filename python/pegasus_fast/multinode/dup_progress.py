"""A multi-node cluster's duplications on one node: each runs here for the partitions this
node owns, as ZooKeeper records them, and its confirmed decrees go back to ZooKeeper.

The leader records a duplication (placement.py); every node starts, pauses,
resumes or removes its own run of it on the next sync, and writes each owned
partition's confirmed decree to ``/dups/<dupid>/<pidx>`` when it moved on (at
most every :data:`~pegasus_fast.coord.layout.CONFIRM_WRITE_INTERVAL`), so a
move's next owner ships from there.
"""

from __future__ import annotations

import json
import logging
import time

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError

from ..coord.layout import DupDoc, dup_partition_path
from ..coord.zk import read_dups
from ..duplication.status import DupStatus
from ..engine.cluster import Cluster
from ..errors import PegasusFastError
from .ownership import Ownership

log = logging.getLogger(__name__)


class DupProgress:
    def __init__(self, zk: KazooClient, cluster: Cluster, node_id: str, ownership: Ownership) -> None:
        self.zk = zk
        self.cluster = cluster
        self.node_id = node_id
        self.ownership = ownership
        self._confirmed_written: dict[tuple[int, int], int] = {}
        #: when the confirmed decrees were last written (monotonic)
        self.confirmed_at = 0.0
        #: the cluster's duplications as the last sync read them (``/dups``)
        self.docs: dict[int, DupDoc] = {}

    def sync(self) -> None:
        """Run every duplication of the cluster here, for the partitions this node owns."""
        docs = read_dups(self.zk)
        self.docs = docs
        local = {d.dupid: d for d in self.cluster.duplications()}
        for dupid, doc in sorted(docs.items()):
            d = local.get(dupid)
            if doc.status == "removed":
                if d is not None and d.status != DupStatus.REMOVED:
                    d.remove()
                continue
            if d is None:
                if not self.cluster.has_table(doc.table):
                    continue
                try:
                    d = self.cluster.add_duplication(
                        doc.table,
                        doc.remote,
                        doc.remote_table,
                        with_checkpoint=doc.with_checkpoint,
                        fail_mode=doc.fail_mode,
                        remote_token=doc.remote_token or None,
                        accept_gap=doc.accept_gap,
                        dupid=dupid,
                    )
                except PegasusFastError as exc:
                    log.warning("node %s: duplication %d cannot start here: %s", self.node_id, dupid, exc)
                    continue
            if doc.remote_token and not d.uses_token(doc.remote_token):
                d.update(remote_token=doc.remote_token)
            if doc.status == "paused" and d.status == DupStatus.LOG:
                d.pause()
            elif doc.status == "active" and d.status == DupStatus.PAUSE:
                d.resume()
            d.wake()  # the partitions it ships may have changed
        for dupid, d in local.items():
            if dupid not in docs and d.status != DupStatus.REMOVED:
                d.remove()

    def missing(self, table: str) -> list[int]:
        """The duplications of ``table`` in ``/dups`` that do not run here (yet)."""
        running = {d.dupid for d in self.cluster.duplications() if d.status != DupStatus.REMOVED}
        return sorted(
            dupid
            for dupid, d in self.docs.items()
            if d.table == table and d.status != "removed" and dupid not in running
        )

    def write_confirmed(self) -> None:
        """Each owned partition's confirmed decree, into ZooKeeper when it moved on."""
        self.confirmed_at = time.monotonic()
        for d in self.cluster.duplications():
            if d.status in (DupStatus.REMOVED, DupStatus.INIT, DupStatus.PREPARE):
                continue
            mine = self.ownership.scope(d.table_name)
            for row in d.progress():
                key = (d.dupid, row.pidx)
                if row.pidx not in mine or self._confirmed_written.get(key) == row.confirmed_decree:
                    continue
                path = dup_partition_path(d.dupid, row.pidx)
                body = json.dumps({"confirmed": row.confirmed_decree, "node": self.node_id}).encode()
                try:
                    self.zk.set(path, body)
                except NoNodeError:
                    try:
                        self.zk.create(path, body)
                    except (NodeExistsError, NoNodeError):
                        continue  # raced another writer, or the duplication's znode is gone
                self._confirmed_written[key] = row.confirmed_decree


__all__ = ["DupProgress"]
