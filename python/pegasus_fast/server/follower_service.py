"""The follower service of pegasus_fast.proto, over one open Cluster: a duplication's calls,
from the source that drives it.

The service hands each call to the embedded Follower (engine/local_follower.py),
so an embedded and a served follower learn and apply by the same rules. Every
method runs inside ``typed`` (net/serving.py).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import DecodeError

from ..duplication.ports import Chunk, SourceId
from ..engine.cluster import Cluster
from ..engine.local_follower import LocalFollower
from ..errors import InvalidArgumentError, RemoteUnavailableError
from ..net import pegasus_fast_pb2 as pb
from ..net import pegasus_fast_pb2_grpc as rpc
from ..net.serving import typed, typed_stream
from ..net.wire import MESSAGE_LIMIT
from .roles import FOLLOWER_APPLY, Tokens, refusal

if TYPE_CHECKING:
    from ..multinode.member import Member
    from ..multinode.meta import Meta


#: batches of one apply stream applied ahead of their acknowledgements, at most
STREAM_AHEAD = 16


def _source(s: pb.SourceId) -> SourceId:
    return SourceId(s.cluster, s.cluster_uid, s.table, s.dupid)


def _manifest(entries: Any) -> list[tuple[str, int, str]]:
    return [(e.name, e.size, e.blake3) for e in entries]


class FollowerService(rpc.FollowerServicer):
    """``member``: a node of a multi-node cluster takes a duplication's calls only for the
    partitions it owns, and its follower tables are made by the meta leader."""

    def __init__(
        self,
        cluster: Cluster,
        member: Member | None = None,
        meta: Meta | None = None,
        message_limit: int = MESSAGE_LIMIT,
    ) -> None:
        if (member is None) != (meta is None):
            raise InvalidArgumentError("a node's services take both its member and its meta")
        self.c = cluster
        self.f = LocalFollower(cluster)
        self.m = member
        self.meta = meta
        #: the largest message the server takes: a source caps what it ships to it
        self.message_limit = message_limit
        #: where a source may send its applies instead of Apply (OP_DUP_APPLY on this server's
        #: Pegasus port: PortApplies), told in Identity; "" for none
        self.dup_apply_address = ""

    def _bound(self, request: Any) -> None:
        """The call names the duplication it comes from, and its table follows that one."""
        if not request.HasField("source"):
            raise InvalidArgumentError("a follower call names its source (the calling duplication)")
        self.f.check_source(request.table, _source(request.source))

    def _own(self, table: str, pidxs: Iterable[int]) -> None:
        if self.m is not None:
            for pidx in pidxs:
                self.m.check(table, pidx, True)

    @typed
    def Identity(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.IdentityReply:
        cid, uid = self.f.identity()
        return pb.IdentityReply(
            cluster_id=cid,
            cluster_uid=uid,
            max_message_bytes=self.message_limit,
            dup_apply_address=self.dup_apply_address,
        )

    @typed
    def EnsureTable(self, request: pb.EnsureTableRequest, context: grpc.ServicerContext) -> pb.Empty:
        if not request.HasField("source"):
            raise InvalidArgumentError("EnsureTable names no source")
        if self.meta is not None:
            self.meta.ensure_follower_table(request)
            return pb.Empty()
        self.f.ensure_table(
            request.table, request.partition_count, _source(request.source), request.with_checkpoint
        )
        return pb.Empty()

    @typed
    def TakeOver(self, request: pb.TakeOverRequest, context: grpc.ServicerContext) -> pb.TakeOverReply:
        if not request.HasField("source"):
            raise InvalidArgumentError("TakeOver names no source")
        if self.meta is not None:
            return self.meta.take_over(request)  # through the meta leader (multinode/takeover.py)
        dupid, applied = self.f.take_over(
            request.table,
            _source(request.source),
            dict(request.decrees),
            request.back_remote,
            request.back_token if request.HasField("back_token") else None,
        )
        return pb.TakeOverReply(dupid=dupid, applied=applied)

    @typed
    def PartitionStatus(
        self, request: pb.PartitionStatusRequest, context: grpc.ServicerContext
    ) -> pb.PartitionStatusReply:
        self._bound(request)
        rows = self.f.partition_statuses(request.table, request.count)
        return pb.PartitionStatusReply(
            partitions=[pb.PartitionStatus(learned=a, source_decree=b) for a, b in rows]
        )

    @typed
    def LearnEmpty(self, request: pb.LearnEmptyRequest, context: grpc.ServicerContext) -> pb.Empty:
        self._bound(request)
        self._own(request.table, request.decrees)
        self.f.learn_empty(request.table, dict(request.decrees))
        return pb.Empty()

    @typed
    def LearnSnapshot(self, request: pb.LearnSnapshotRequest, context: grpc.ServicerContext) -> pb.Empty:
        self._bound(request)
        self._own(request.table, [request.pidx])
        self.f.learn_snapshot(request.table, request.pidx, request.decree, request.block)
        return pb.Empty()

    @typed
    def CheckpointOffsets(
        self, request: pb.CheckpointRequest, context: grpc.ServicerContext
    ) -> pb.CheckpointOffsetsReply:
        self._bound(request)
        self._own(request.table, [request.pidx])
        offsets = self.f.checkpoint_offsets(
            request.table, request.pidx, request.decree, _manifest(request.manifest)
        )
        return pb.CheckpointOffsetsReply(offsets=offsets)

    @typed
    def LearnCheckpoint(
        self, request: Iterator[pb.CheckpointPiece], context: grpc.ServicerContext
    ) -> pb.Empty:
        first = next(request, None)
        if first is None or first.WhichOneof("piece") != "header":
            raise InvalidArgumentError("a checkpoint transfer starts with its header")
        h = first.header
        self._bound(h)
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

    @typed
    def MarkLearned(self, request: pb.MarkLearnedRequest, context: grpc.ServicerContext) -> pb.Empty:
        self._bound(request)
        self._own(request.table, request.pidxs)
        self.f.mark_learned(request.table, list(request.pidxs))
        return pb.Empty()

    @typed
    def RestartLearning(self, request: pb.MarkLearnedRequest, context: grpc.ServicerContext) -> pb.Empty:
        self._bound(request)
        self._own(request.table, request.pidxs)
        self.f.restart_learning(request.table, list(request.pidxs))
        return pb.Empty()

    @typed
    def Apply(self, request: pb.ApplyRequest, context: grpc.ServicerContext) -> pb.ApplyReply:
        self._bound(request)
        self._own(request.table, [request.pidx])
        decree = self.f.apply(request.table, request.pidx, request.blocks, request.skipped_through)
        return pb.ApplyReply(source_decree=decree)

    @typed_stream
    def ApplyStream(
        self, request: Iterator[pb.ApplyRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.ApplyReply]:
        """Each batch is applied as it arrives, in a thread of the stream's own, while this one
        waits for the batches before it to be durable and acknowledges them, in order: the
        fsync of one batch overlaps the apply of the next."""
        begun: queue.Queue[Callable[[], int] | BaseException | None] = queue.Queue(STREAM_AHEAD)
        done = threading.Event()

        def put(item: Callable[[], int] | BaseException | None) -> bool:
            while not done.is_set():
                try:
                    begun.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def apply_all() -> None:
            try:
                for r in request:
                    self._bound(r)
                    self._own(r.table, [r.pidx])
                    if not put(self.f.begin_apply(r.table, r.pidx, r.blocks, r.skipped_through)):
                        return
            except BaseException as exc:  # noqa: BLE001 - raised again below, in the call's thread
                put(exc)
                return
            put(None)

        applier = threading.Thread(target=apply_all, name="apply-stream", daemon=True)
        applier.start()
        try:
            while (item := begun.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield pb.ApplyReply(source_decree=item())
        finally:
            done.set()

    @typed
    def Advance(self, request: pb.AdvanceRequest, context: grpc.ServicerContext) -> pb.Empty:
        self._bound(request)
        self._own(request.table, [request.pidx])
        self.f.advance(request.table, request.pidx, request.source_decree)
        return pb.Empty()

    @typed
    def VerifyView(self, request: pb.VerifyViewRequest, context: grpc.ServicerContext) -> pb.VerifyViewReply:
        # a view reads the table's records (VerifyRecords): only for the duplication it follows;
        # the view's id, random, is what the calls that read it carry
        self._bound(request)
        self._own(request.table, [request.pidx])
        timeout = request.timeout_seconds if request.HasField("timeout_seconds") else None
        view, committed, held = self.f.verify_view(request.table, request.pidx, request.decree, timeout)
        return pb.VerifyViewReply(view=view, committed=committed, source_held=held)

    @typed
    def VerifyDigest(
        self, request: pb.VerifyRangeRequest, context: grpc.ServicerContext
    ) -> pb.VerifyDigestReply:
        end = request.end if request.HasField("end") else None
        chunks = self.f.verify_digest(request.view, request.now, request.start, end)
        return pb.VerifyDigestReply(
            chunks=[pb.DigestChunk(last_key=k, count=n, digest=d) for k, n, d in chunks]
        )

    @typed
    def VerifyRecords(
        self, request: pb.VerifyRangeRequest, context: grpc.ServicerContext
    ) -> pb.VerifyRecordsReply:
        end = request.end if request.HasField("end") else None
        rows = self.f.verify_records(request.view, request.now, request.start, end, request.limit)
        return pb.VerifyRecordsReply(
            records=[pb.StoredRecord(key=k, expire_ts=e, value=v) for k, e, v in rows]
        )

    @typed
    def VerifyRelease(self, request: pb.VerifyViewRef, context: grpc.ServicerContext) -> pb.Empty:
        self.f.verify_release(request.view)
        return pb.Empty()


class PortApplies:
    """A duplication's applies taken on this server's Pegasus port (OP_DUP_APPLY, the handler's
    DupApplies): what :meth:`FollowerService.Apply` does, with the checks its call's gRPC front
    makes (the token, which travels in the request, and its role), answered by the front end's
    batch loop: no gRPC on either side (net/follower.py sends them)."""

    def __init__(self, service: FollowerService, tokens: Tokens) -> None:
        self._service = service
        self._bearers = tokens.bearers()

    def begin(self, request: bytes) -> Callable[[], bytes]:
        try:
            r = pb.ApplyRequest.FromString(request)
        except DecodeError as exc:
            raise InvalidArgumentError(f"an apply request that does not decode: {exc}") from None
        # as gRPC's front checks a Follower/Apply call's token (roles.refusal)
        why = refusal(self._bearers, f"Bearer {r.token}".encode() if r.token else b"", FOLLOWER_APPLY)
        if why is not None:
            raise why
        s = self._service
        s._bound(r)
        s._own(r.table, [r.pidx])
        wait = s.f.begin_apply(r.table, r.pidx, r.blocks, r.skipped_through)
        return lambda: pb.ApplyReply(source_decree=wait()).SerializeToString()


__all__ = ["FollowerService", "PortApplies"]
