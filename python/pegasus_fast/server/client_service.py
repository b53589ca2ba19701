"""The client service of pegasus_fast.proto, over one open Cluster: tables, records, partitions
and the duplications this cluster runs.

Every method runs inside ``typed`` (net/serving.py): an error raised while
serving goes back in the trailing metadata and the server keeps serving.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc

from ..duplication.status import DupStatus
from ..engine.cluster import Cluster
from ..engine.table import Table
from ..errors import InvalidArgumentError
from ..net import pegasus_fast_pb2 as pb
from ..net import pegasus_fast_pb2_grpc as rpc
from ..net.serving import typed, typed_stream
from ..net.table_roles import role_to_pb
from ..net.verify_wire import report_to_pb
from ..net.wire import encode_error
from ..storage.partition import Partition
from .backup_service import BackupHandlers
from .data_service import DataApiHandlers
from .stream_slots import StreamSlots, client_of
from .switch_service import SwitchoverHandlers

#: a scan reply carries about this many bytes of records
SCAN_BATCH_BYTES = 1 << 20
#: the longest one WaitDuplication call waits on the server
MAX_WAIT = 10.0

if TYPE_CHECKING:
    from ..multinode.member import Member
    from ..multinode.meta import Meta


def _ttl(request: Any) -> int | None:
    return request.ttl_seconds if request.HasField("ttl_seconds") else None


def _table_info(t: Any) -> pb.TableInfo:
    role = getattr(t, "role", None)
    return pb.TableInfo(
        app_id=t.app_id,
        name=t.name,
        partition_count=t.partition_count,
        status=t.status,
        create_time=t.create_time,
        envs=t.envs,
        role=None if role is None else role_to_pb(role),
    )


def _dup_info(d: Any) -> pb.DuplicationInfo:
    return pb.DuplicationInfo(
        dupid=d.dupid,
        table=d.table_name,
        remote=d.remote,
        remote_table=d.remote_table,
        status=d.status.value,
        fail_mode=d.fail_mode,
        with_checkpoint=d.with_checkpoint,
        create_time=d.create_time,
        error="" if d.error is None else str(d.error),
        stuck_reason=d.stuck_reason or "",
        error_detail=b"" if d.error is None else encode_error(d.error),
    )


class ClientService(DataApiHandlers, BackupHandlers, SwitchoverHandlers, rpc.ClientServicer):
    """``member``: this process is a node of a multi-node cluster (multinode/member.py); it answers only
    for the partitions it owns, and table changes go through the meta leader (``meta``). The data
    API beyond get/set/delete/multi_* is served by data_service.py's mixin."""

    def __init__(
        self,
        cluster: Cluster,
        member: Member | None = None,
        meta: Meta | None = None,
        data_address: Callable[[], str] | None = None,
        backup_dir: str | None = None,
    ) -> None:
        if (member is None) != (meta is None):
            raise InvalidArgumentError("a node's services take both its member and its meta")
        self.c = cluster
        self.m = member
        self.meta = meta
        #: the Pegasus-protocol data port's host:port, which Info tells pf.connect ("" without one)
        self.data_address = data_address or (lambda: "")
        #: scans running, per client (Config.max_streams_per_client)
        self.streams = StreamSlots(cluster.config.max_streams_per_client)
        self.backup_dir = backup_dir

    def _table(self, name: str, hash_key: bytes, sort_key: bytes | None, write: bool) -> Table:
        """The table of a one-partition call, once the node may answer it."""
        t = self.c.table(name)
        if self.m is not None:
            pidx = t.partition_index(hash_key) if sort_key is None else t.partition_index(hash_key, sort_key)
            self.m.check(name, pidx, write)
        return t

    def _records(self, request: pb.TableRef) -> Iterator[tuple[bytes, bytes, bytes]]:
        """A scan's records: the table's (one machine), or those of the partitions asked for,
        or (on a node) of those it owns."""
        if not request.partitions and self.m is None:
            return self.c.table(request.table).scan()
        _t, parts = self._partitions(request)
        return (r for p in parts for r in p.iter_records())

    def _partitions(self, request: Any) -> tuple[Table, list[Partition]]:
        """``request``: a TableRef or anything with its ``table`` and ``partitions``."""
        t = self.c.table(request.table)
        if request.partitions:
            pidxs = list(request.partitions)
            if len(set(pidxs)) != len(pidxs) or any(p >= t.partition_count for p in pidxs):
                raise InvalidArgumentError(f"table {request.table!r} has no such partitions: {pidxs}")
            if self.m is not None:
                for p in pidxs:
                    self.m.check(request.table, p, False)
        elif self.m is not None:
            pidxs = self.m.owned(request.table)
        else:
            pidxs = list(range(t.partition_count))
        return t, [t.partitions[p] for p in pidxs]

    @typed
    def Info(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.ClusterInfo:
        i = self.c.info()
        return pb.ClusterInfo(
            name=i.name,
            cluster_id=i.cluster_id,
            cluster_id_derived=i.cluster_id_derived,
            uid=i.uid,
            path="",  # where the cluster lives on the server's disk is not a caller's to know
            backend=i.backend,
            pegasus_address=self.data_address(),
            warnings=list(i.warnings),
        )

    # -- tables ---------------------------------------------------------------------

    def _table_pb(self, info: Any) -> pb.TableInfo:
        return _table_info(info)

    @typed
    def CreateTable(self, request: pb.CreateTableRequest, context: grpc.ServicerContext) -> pb.TableInfo:
        if self.meta is not None:
            return self.meta.create_table(request)
        if request.replica_count > 1:
            raise InvalidArgumentError(
                f"this cluster is one node: it keeps 1 replica, not {request.replica_count} "
                "(replicas are a zk:// cluster's)"
            )
        self.c.create_table(request.table, request.partition_count, dict(request.envs) or None)
        return _table_info(self.c.table_info(request.table))

    @typed
    def DropTable(self, request: pb.TableRef, context: grpc.ServicerContext) -> pb.Empty:
        if self.meta is not None:
            return self.meta.drop_table(request)
        self.c.drop_table(request.table)
        return pb.Empty()

    @typed
    def ListTables(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.TableList:
        return pb.TableList(tables=[_table_info(t) for t in self.c.list_tables()])

    @typed
    def GetTable(self, request: pb.TableRef, context: grpc.ServicerContext) -> pb.TableInfo:
        return _table_info(self.c.table_info(request.table))

    # -- records ----------------------------------------------------------------------

    @typed
    def Set(self, request: pb.SetRequest, context: grpc.ServicerContext) -> pb.WriteReply:
        t = self._table(request.table, request.hash_key, request.sort_key, True)
        return pb.WriteReply(decree=t.set(request.hash_key, request.sort_key, request.value, _ttl(request)))

    @typed
    def Get(self, request: pb.KeyRequest, context: grpc.ServicerContext) -> pb.GetReply:
        t = self._table(request.table, request.hash_key, request.sort_key, False)
        value = t.get(request.hash_key, request.sort_key)
        return pb.GetReply(found=False) if value is None else pb.GetReply(found=True, value=value)

    @typed
    def Delete(self, request: pb.KeyRequest, context: grpc.ServicerContext) -> pb.WriteReply:
        t = self._table(request.table, request.hash_key, request.sort_key, True)
        return pb.WriteReply(decree=t.delete(request.hash_key, request.sort_key))

    @typed
    def MultiSet(self, request: pb.MultiSetRequest, context: grpc.ServicerContext) -> pb.WriteReply:
        values = {kv.sort_key: kv.value for kv in request.kvs}
        if len(values) != len(request.kvs):
            raise InvalidArgumentError("multi_set names one sort_key twice")
        t = self._table(request.table, request.hash_key, None, True)
        return pb.WriteReply(decree=t.multi_set(request.hash_key, values, _ttl(request)))

    @typed
    def MultiGet(self, request: pb.MultiGetRequest, context: grpc.ServicerContext) -> pb.MultiGetReply:
        t = self._table(request.table, request.hash_key, None, False)
        got = t.multi_get(request.hash_key, None if request.all else list(request.sort_keys))
        return pb.MultiGetReply(kvs=[pb.SortKeyValue(sort_key=k, value=v) for k, v in got.items()])

    @typed
    def MultiDelete(self, request: pb.MultiDeleteRequest, context: grpc.ServicerContext) -> pb.WriteReply:
        t = self._table(request.table, request.hash_key, None, True)
        return pb.WriteReply(decree=t.multi_delete(request.hash_key, list(request.sort_keys)))

    @typed
    def Count(self, request: pb.TableRef, context: grpc.ServicerContext) -> pb.CountReply:
        if not request.partitions and self.m is None:
            return pb.CountReply(count=self.c.table(request.table).count())
        return pb.CountReply(count=sum(1 for _ in self._records(request)))

    @typed_stream
    def Scan(self, request: pb.TableRef, context: grpc.ServicerContext) -> Iterator[pb.RecordBatch]:
        release = self.streams.take(client_of(context.peer()))
        # a client that goes away mid-scan gives its stream back too, not only one that finishes
        context.add_callback(release)
        try:
            batch: list[pb.Record] = []
            size = 0
            for hk, sk, v in self._records(request):
                batch.append(pb.Record(hash_key=hk, sort_key=sk, value=v))
                size += len(hk) + len(sk) + len(v) + 16
                if size >= SCAN_BATCH_BYTES:
                    yield pb.RecordBatch(records=batch)
                    batch, size = [], 0
            if batch:
                yield pb.RecordBatch(records=batch)
        finally:
            release()

    # -- partitions ---------------------------------------------------------------------

    @typed
    def PartitionStats(self, request: pb.TableRef, context: grpc.ServicerContext) -> pb.PartitionStatsReply:
        stats = self.c.table(request.table).partition_stats()
        return pb.PartitionStatsReply(partitions=[pb.PartitionStats(**vars(s)) for s in stats])

    @typed
    def Health(self, request: pb.TableRef, context: grpc.ServicerContext) -> pb.HealthReply:
        h = self.c.table(request.table).health()
        return pb.HealthReply(
            fully_healthy=h.fully_healthy,
            unhealthy=h.unhealthy,
            write_unhealthy=h.write_unhealthy,
            read_unhealthy=h.read_unhealthy,
            partitions=[pb.PartitionState(pidx=i, state=s) for i, s in h.partitions],
        )

    @typed
    def Checkpoint(self, request: pb.TableRef, context: grpc.ServicerContext) -> pb.CheckpointReply:
        infos = self.c.table(request.table).checkpoint()
        return pb.CheckpointReply(
            checkpoints=[
                pb.CheckpointInfo(
                    pidx=i.pidx,
                    decree=i.decree,
                    path=i.path,
                    duration_ms=i.duration_ms,
                    size_bytes=i.size_bytes,
                )
                for i in infos
            ]
        )

    @typed
    def Compact(self, request: pb.TableRef, context: grpc.ServicerContext) -> pb.Empty:
        self.c.compact(request.table).result()
        return pb.Empty()

    # -- duplications ------------------------------------------------------------------------

    @typed
    def AddDuplication(
        self, request: pb.AddDuplicationRequest, context: grpc.ServicerContext
    ) -> pb.DuplicationInfo:
        if not request.remote.startswith(("pegasus://", "zk://")):
            # a path names a cluster on this server's disk: no caller over the wire picks those
            raise InvalidArgumentError(
                f"over the wire a duplication's remote is a pegasus:// or zk:// URL, not {request.remote!r}"
            )
        if self.meta is not None:
            # the cluster's, through its leader; every node (this one too) runs it before it answers
            ref = self.meta.add_duplication(request)
            return _dup_info(self.c.duplication(ref.dupid))
        d = self.c.add_duplication(
            request.table,
            request.remote,
            request.remote_table if request.HasField("remote_table") else None,
            with_checkpoint=request.with_checkpoint,
            fail_mode=request.fail_mode,
            remote_token=request.remote_token if request.HasField("remote_token") else None,
            accept_gap=request.accept_gap,
        )
        return _dup_info(d)

    @typed
    def ListDuplications(
        self, request: pb.ListDuplicationsRequest, context: grpc.ServicerContext
    ) -> pb.DuplicationList:
        table = request.table if request.HasField("table") else None
        return pb.DuplicationList(duplications=[_dup_info(d) for d in self.c.duplications(table)])

    @typed
    def QueryDuplication(self, request: pb.DupRef, context: grpc.ServicerContext) -> pb.DuplicationInfo:
        return _dup_info(self.c.duplication(request.dupid))

    @typed
    def DuplicationProgress(self, request: pb.DupRef, context: grpc.ServicerContext) -> pb.ProgressReply:
        rows = self.c.duplication(request.dupid).progress()
        return pb.ProgressReply(partitions=[pb.PartitionProgress(**vars(p)) for p in rows])

    @typed
    def WaitDuplication(self, request: pb.WaitRequest, context: grpc.ServicerContext) -> pb.DuplicationInfo:
        d = self.c.duplication(request.dupid)
        try:
            status = DupStatus(request.status)
        except ValueError:
            raise InvalidArgumentError(f"unknown duplication status {request.status!r}") from None
        timeout = request.timeout_seconds
        if not 0 <= timeout <= MAX_WAIT or timeout != timeout:
            timeout = MAX_WAIT
        try:
            d.wait_for(status, timeout)
        except TimeoutError:
            pass  # the reply's status says it is not there yet; the client decides
        return _dup_info(d)

    @typed
    def PauseDuplication(self, request: pb.DupRef, context: grpc.ServicerContext) -> pb.DuplicationInfo:
        if self.meta is not None:
            self.meta.pause_duplication(request)
            return _dup_info(self.c.duplication(request.dupid))
        d = self.c.duplication(request.dupid)
        d.pause()
        return _dup_info(d)

    @typed
    def ResumeDuplication(self, request: pb.DupRef, context: grpc.ServicerContext) -> pb.DuplicationInfo:
        if self.meta is not None:
            self.meta.resume_duplication(request)
            return _dup_info(self.c.duplication(request.dupid))
        d = self.c.duplication(request.dupid)
        d.resume()
        return _dup_info(d)

    @typed
    def UpdateDuplication(
        self, request: pb.UpdateDuplicationRequest, context: grpc.ServicerContext
    ) -> pb.DuplicationInfo:
        if self.meta is not None:
            self.meta.update_duplication(request)
            return _dup_info(self.c.duplication(request.dupid))
        d = self.c.duplication(request.dupid)
        d.update(remote_token=request.remote_token if request.HasField("remote_token") else None)
        return _dup_info(d)

    @typed
    def RemoveDuplication(self, request: pb.DupRef, context: grpc.ServicerContext) -> pb.DuplicationInfo:
        if self.meta is not None:
            self.meta.remove_duplication(request)
            return _dup_info(self.c.duplication(request.dupid))
        d = self.c.duplication(request.dupid)
        d.remove()
        return _dup_info(d)

    @typed
    def VerifyDuplication(self, request: pb.VerifyRequest, context: grpc.ServicerContext) -> pb.VerifyReply:
        timeout = request.timeout_seconds if request.HasField("timeout_seconds") else None
        d = self.c.duplication(request.dupid)
        return report_to_pb(d.verify(timeout, list(request.pidxs) or None))


__all__ = ["ClientService"]
