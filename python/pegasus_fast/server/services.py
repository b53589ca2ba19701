"""The client and follower services of pegasus_fast.proto, over one open Cluster.

Every method runs inside :func:`_typed`: an error raised while serving goes
back in the trailing metadata (net/wire.py) and the server keeps serving.
The follower service hands each call to the embedded Follower
(engine/local_follower.py), so an embedded and a served follower learn and
apply by the same rules.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from ..duplication.ports import Chunk, SourceId
from ..duplication.status import DupStatus
from ..engine.cluster import Cluster
from ..engine.local_follower import LocalFollower
from ..engine.table import Table
from ..errors import InvalidArgumentError, PegasusFastError, RemoteUnavailableError
from ..net import pegasus_fast_pb2 as pb
from ..net import pegasus_fast_pb2_grpc as rpc
from ..net.wire import ERROR_KEY, MESSAGE_LIMIT, encode_error, status_of
from ..storage.partition import Partition

log = logging.getLogger(__name__)

#: a scan reply carries about this many bytes of records
SCAN_BATCH_BYTES = 1 << 20
#: the longest one WaitDuplication call waits on the server
MAX_WAIT = 10.0

_F = TypeVar("_F", bound=Callable[..., Any])

if TYPE_CHECKING:
    from .member import Member


def _abort(context: grpc.ServicerContext, exc: BaseException) -> None:
    if not isinstance(exc, (PegasusFastError, OSError, TimeoutError, grpc.RpcError)):
        # (an RpcError here is the caller going away mid-stream: nothing to report)
        log.exception("serving a call failed", exc_info=exc)
    context.set_trailing_metadata(((ERROR_KEY, encode_error(exc)),))
    context.abort(status_of(exc), str(exc) or type(exc).__name__)


def _typed(fn: _F) -> _F:
    """Serve a unary call; any error travels typed."""

    @functools.wraps(fn)
    def serve(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return fn(self, request, context)
        except Exception as exc:  # noqa: BLE001 - every error goes back to the caller
            _abort(context, exc)

    return serve  # type: ignore[return-value]


def _typed_stream(fn: _F) -> _F:
    """Serve a streamed reply; an error part way ends the stream, typed."""

    @functools.wraps(fn)
    def serve(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from fn(self, request, context)
        except Exception as exc:  # noqa: BLE001
            _abort(context, exc)

    return serve  # type: ignore[return-value]


def _ttl(request: Any) -> int | None:
    return request.ttl_seconds if request.HasField("ttl_seconds") else None


def _table_info(t: Any) -> pb.TableInfo:
    return pb.TableInfo(
        app_id=t.app_id,
        name=t.name,
        partition_count=t.partition_count,
        status=t.status,
        create_time=t.create_time,
        envs=t.envs,
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
    )


class ClientService(rpc.ClientServicer):
    """``member``: this process is a node of a multi-node cluster (member.py); it answers only
    for the partitions it owns, and table changes go through the meta leader."""

    def __init__(
        self, cluster: Cluster, member: Member | None = None, data_address: Callable[[], str] | None = None
    ) -> None:
        self.c = cluster
        self.m = member
        #: the Pegasus-protocol data port's host:port, which Info tells pf.connect ("" without one)
        self.data_address = data_address or (lambda: "")

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

    def _partitions(self, request: pb.TableRef) -> tuple[Table, list[Partition]]:
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

    @_typed
    def Info(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.ClusterInfo:
        i = self.c.info()
        return pb.ClusterInfo(
            name=i.name,
            cluster_id=i.cluster_id,
            cluster_id_derived=i.cluster_id_derived,
            uid=i.uid,
            path=i.path,
            backend=i.backend,
            pegasus_address=self.data_address(),
        )

    # -- tables ---------------------------------------------------------------------

    @_typed
    def CreateTable(self, request: pb.CreateTableRequest, context: grpc.ServicerContext) -> pb.TableInfo:
        if self.m is not None:
            return self.m.placement.forward("CreateTable", request)
        self.c.create_table(request.table, request.partition_count, dict(request.envs) or None)
        return _table_info(self.c.table_info(request.table))

    @_typed
    def DropTable(self, request: pb.TableRef, context: grpc.ServicerContext) -> pb.Empty:
        if self.m is not None:
            return self.m.placement.forward("DropTable", request)
        self.c.drop_table(request.table)
        return pb.Empty()

    @_typed
    def ListTables(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.TableList:
        return pb.TableList(tables=[_table_info(t) for t in self.c.list_tables()])

    @_typed
    def GetTable(self, request: pb.TableRef, context: grpc.ServicerContext) -> pb.TableInfo:
        return _table_info(self.c.table_info(request.table))

    # -- records ----------------------------------------------------------------------

    @_typed
    def Set(self, request: pb.SetRequest, context: grpc.ServicerContext) -> pb.WriteReply:
        t = self._table(request.table, request.hash_key, request.sort_key, True)
        return pb.WriteReply(decree=t.set(request.hash_key, request.sort_key, request.value, _ttl(request)))

    @_typed
    def Get(self, request: pb.KeyRequest, context: grpc.ServicerContext) -> pb.GetReply:
        t = self._table(request.table, request.hash_key, request.sort_key, False)
        value = t.get(request.hash_key, request.sort_key)
        return pb.GetReply(found=False) if value is None else pb.GetReply(found=True, value=value)

    @_typed
    def Delete(self, request: pb.KeyRequest, context: grpc.ServicerContext) -> pb.WriteReply:
        t = self._table(request.table, request.hash_key, request.sort_key, True)
        return pb.WriteReply(decree=t.delete(request.hash_key, request.sort_key))

    @_typed
    def MultiSet(self, request: pb.MultiSetRequest, context: grpc.ServicerContext) -> pb.WriteReply:
        values = {kv.sort_key: kv.value for kv in request.kvs}
        if len(values) != len(request.kvs):
            raise InvalidArgumentError("multi_set names one sort_key twice")
        t = self._table(request.table, request.hash_key, None, True)
        return pb.WriteReply(decree=t.multi_set(request.hash_key, values, _ttl(request)))

    @_typed
    def MultiGet(self, request: pb.MultiGetRequest, context: grpc.ServicerContext) -> pb.MultiGetReply:
        t = self._table(request.table, request.hash_key, None, False)
        got = t.multi_get(request.hash_key, None if request.all else list(request.sort_keys))
        return pb.MultiGetReply(kvs=[pb.SortKeyValue(sort_key=k, value=v) for k, v in got.items()])

    @_typed
    def MultiDelete(self, request: pb.MultiDeleteRequest, context: grpc.ServicerContext) -> pb.WriteReply:
        t = self._table(request.table, request.hash_key, None, True)
        return pb.WriteReply(decree=t.multi_delete(request.hash_key, list(request.sort_keys)))

    @_typed
    def Count(self, request: pb.TableRef, context: grpc.ServicerContext) -> pb.CountReply:
        if not request.partitions and self.m is None:
            return pb.CountReply(count=self.c.table(request.table).count())
        return pb.CountReply(count=sum(1 for _ in self._records(request)))

    @_typed_stream
    def Scan(self, request: pb.TableRef, context: grpc.ServicerContext) -> Iterator[pb.RecordBatch]:
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

    # -- partitions ---------------------------------------------------------------------

    @_typed
    def PartitionStats(self, request: pb.TableRef, context: grpc.ServicerContext) -> pb.PartitionStatsReply:
        stats = self.c.table(request.table).partition_stats()
        return pb.PartitionStatsReply(partitions=[pb.PartitionStats(**vars(s)) for s in stats])

    @_typed
    def Health(self, request: pb.TableRef, context: grpc.ServicerContext) -> pb.HealthReply:
        h = self.c.table(request.table).health()
        return pb.HealthReply(
            fully_healthy=h.fully_healthy,
            unhealthy=h.unhealthy,
            write_unhealthy=h.write_unhealthy,
            read_unhealthy=h.read_unhealthy,
            partitions=[pb.PartitionState(pidx=i, state=s) for i, s in h.partitions],
        )

    @_typed
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

    @_typed
    def Compact(self, request: pb.TableRef, context: grpc.ServicerContext) -> pb.Empty:
        self.c.compact(request.table).result()
        return pb.Empty()

    # -- duplications ------------------------------------------------------------------------

    @_typed
    def AddDuplication(
        self, request: pb.AddDuplicationRequest, context: grpc.ServicerContext
    ) -> pb.DuplicationInfo:
        if self.m is not None:
            # the cluster's, through its leader; every node (this one too) runs it before it answers
            ref = self.m.placement.forward("AddDuplication", request)
            return _dup_info(self.c.duplication(ref.dupid))
        d = self.c.add_duplication(
            request.table,
            request.remote,
            request.remote_table if request.HasField("remote_table") else None,
            with_checkpoint=request.with_checkpoint,
            fail_mode=request.fail_mode,
            remote_token=request.remote_token if request.HasField("remote_token") else None,
        )
        return _dup_info(d)

    @_typed
    def ListDuplications(
        self, request: pb.ListDuplicationsRequest, context: grpc.ServicerContext
    ) -> pb.DuplicationList:
        table = request.table if request.HasField("table") else None
        return pb.DuplicationList(duplications=[_dup_info(d) for d in self.c.duplications(table)])

    @_typed
    def QueryDuplication(self, request: pb.DupRef, context: grpc.ServicerContext) -> pb.DuplicationInfo:
        return _dup_info(self.c.duplication(request.dupid))

    @_typed
    def DuplicationProgress(self, request: pb.DupRef, context: grpc.ServicerContext) -> pb.ProgressReply:
        rows = self.c.duplication(request.dupid).progress()
        return pb.ProgressReply(partitions=[pb.PartitionProgress(**vars(p)) for p in rows])

    @_typed
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

    @_typed
    def PauseDuplication(self, request: pb.DupRef, context: grpc.ServicerContext) -> pb.DuplicationInfo:
        if self.m is not None:
            self.m.placement.forward("PauseDuplication", request)
            return _dup_info(self.c.duplication(request.dupid))
        d = self.c.duplication(request.dupid)
        d.pause()
        return _dup_info(d)

    @_typed
    def ResumeDuplication(self, request: pb.DupRef, context: grpc.ServicerContext) -> pb.DuplicationInfo:
        if self.m is not None:
            self.m.placement.forward("ResumeDuplication", request)
            return _dup_info(self.c.duplication(request.dupid))
        d = self.c.duplication(request.dupid)
        d.resume()
        return _dup_info(d)

    @_typed
    def RemoveDuplication(self, request: pb.DupRef, context: grpc.ServicerContext) -> pb.DuplicationInfo:
        if self.m is not None:
            self.m.placement.forward("RemoveDuplication", request)
            return _dup_info(self.c.duplication(request.dupid))
        d = self.c.duplication(request.dupid)
        d.remove()
        return _dup_info(d)


def _source(s: pb.SourceId) -> SourceId:
    return SourceId(s.cluster, s.cluster_uid, s.table, s.dupid)


def _manifest(entries: Any) -> list[tuple[str, int, str]]:
    return [(e.name, e.size, e.blake3) for e in entries]


class FollowerService(rpc.FollowerServicer):
    """``member``: a node of a multi-node cluster takes a duplication's calls only for the
    partitions it owns, and its follower tables are made by the meta leader."""

    def __init__(self, cluster: Cluster, member: Member | None = None) -> None:
        self.c = cluster
        self.f = LocalFollower(cluster)
        self.m = member

    def _own(self, table: str, pidxs: Iterable[int]) -> None:
        if self.m is not None:
            for pidx in pidxs:
                self.m.check(table, pidx, True)

    @_typed
    def Identity(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.IdentityReply:
        cid, uid = self.f.identity()
        return pb.IdentityReply(cluster_id=cid, cluster_uid=uid, max_message_bytes=MESSAGE_LIMIT)

    @_typed
    def EnsureTable(self, request: pb.EnsureTableRequest, context: grpc.ServicerContext) -> pb.Empty:
        if not request.HasField("source"):
            raise InvalidArgumentError("EnsureTable names no source")
        if self.m is not None:
            self.m.placement.forward("EnsureFollowerTable", request)
            return pb.Empty()
        self.f.ensure_table(
            request.table, request.partition_count, _source(request.source), request.with_checkpoint
        )
        return pb.Empty()

    @_typed
    def PartitionStatus(
        self, request: pb.PartitionStatusRequest, context: grpc.ServicerContext
    ) -> pb.PartitionStatusReply:
        rows = self.f.partition_statuses(request.table, request.count)
        return pb.PartitionStatusReply(
            partitions=[pb.PartitionStatus(learned=a, source_decree=b) for a, b in rows]
        )

    @_typed
    def LearnEmpty(self, request: pb.LearnEmptyRequest, context: grpc.ServicerContext) -> pb.Empty:
        self._own(request.table, request.decrees)
        self.f.learn_empty(request.table, dict(request.decrees))
        return pb.Empty()

    @_typed
    def LearnSnapshot(self, request: pb.LearnSnapshotRequest, context: grpc.ServicerContext) -> pb.Empty:
        self._own(request.table, [request.pidx])
        self.f.learn_snapshot(request.table, request.pidx, request.decree, request.block)
        return pb.Empty()

    @_typed
    def CheckpointOffsets(
        self, request: pb.CheckpointRequest, context: grpc.ServicerContext
    ) -> pb.CheckpointOffsetsReply:
        self._own(request.table, [request.pidx])
        offsets = self.f.checkpoint_offsets(
            request.table, request.pidx, request.decree, _manifest(request.manifest)
        )
        return pb.CheckpointOffsetsReply(offsets=offsets)

    @_typed
    def LearnCheckpoint(
        self, request: Iterator[pb.CheckpointPiece], context: grpc.ServicerContext
    ) -> pb.Empty:
        first = next(request, None)
        if first is None or first.WhichOneof("piece") != "header":
            raise InvalidArgumentError("a checkpoint transfer starts with its header")
        h = first.header
        self._own(h.table, [h.pidx])

        def chunks() -> Iterator[Chunk]:
            for piece in request:
                kind = piece.WhichOneof("piece")
                if kind == "end":
                    return
                if kind != "chunk":
                    raise InvalidArgumentError("a checkpoint transfer has one header")
                c = piece.chunk
                yield Chunk(c.name, c.offset, c.data, c.crc32c)
            # gRPC can end the requests of a call whose sender died as if it had finished: without
            # the end piece the transfer was cut short, and what arrived stays for the copy to resume
            raise RemoteUnavailableError(context.peer(), "the checkpoint transfer ended before its end")

        self.f.learn_checkpoint(h.table, h.pidx, h.decree, _manifest(h.manifest), chunks())
        return pb.Empty()

    @_typed
    def MarkLearned(self, request: pb.MarkLearnedRequest, context: grpc.ServicerContext) -> pb.Empty:
        self._own(request.table, request.pidxs)
        self.f.mark_learned(request.table, list(request.pidxs))
        return pb.Empty()

    @_typed
    def RestartLearning(self, request: pb.MarkLearnedRequest, context: grpc.ServicerContext) -> pb.Empty:
        self._own(request.table, request.pidxs)
        self.f.restart_learning(request.table, list(request.pidxs))
        return pb.Empty()

    @_typed
    def Apply(self, request: pb.ApplyRequest, context: grpc.ServicerContext) -> pb.ApplyReply:
        self._own(request.table, [request.pidx])
        decree = self.f.apply(request.table, request.pidx, request.blocks, request.skipped_through)
        return pb.ApplyReply(source_decree=decree)

    @_typed_stream
    def ApplyStream(
        self, request: Iterator[pb.ApplyRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.ApplyReply]:
        for r in request:
            self._own(r.table, [r.pidx])
            yield pb.ApplyReply(source_decree=self.f.apply(r.table, r.pidx, r.blocks, r.skipped_through))

    @_typed
    def Advance(self, request: pb.AdvanceRequest, context: grpc.ServicerContext) -> pb.Empty:
        self._own(request.table, [request.pidx])
        self.f.advance(request.table, request.pidx, request.source_decree)
        return pb.Empty()


__all__ = ["ClientService", "FollowerService"]
