"""The Meta and Node services of a node of a multi-node cluster (pegasus_fast.proto)."""

from __future__ import annotations

import grpc

from ..engine.cluster import Cluster
from ..errors import InvalidArgumentError
from ..multinode.member import Member
from ..multinode.placement import Placement
from ..multinode.transfer import NodeTransfer
from ..net import pegasus_fast_pb2 as pb
from ..net import pegasus_fast_pb2_grpc as rpc
from ..net.serving import typed
from ..storage.partition import Partition


class MetaService(rpc.MetaServicer):
    def __init__(self, placement: Placement) -> None:
        self.p = placement

    @typed
    def CreateTable(self, request: pb.CreateTableRequest, context: grpc.ServicerContext) -> pb.TableInfo:
        return self.p.forward("CreateTable", request)

    @typed
    def DropTable(self, request: pb.TableRef, context: grpc.ServicerContext) -> pb.Empty:
        return self.p.forward("DropTable", request)

    @typed
    def MovePartition(self, request: pb.MovePartitionRequest, context: grpc.ServicerContext) -> pb.MoveReply:
        return self.p.forward("MovePartition", request)

    @typed
    def Balance(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.BalanceReply:
        return self.p.forward("Balance", request)

    @typed
    def AddDuplication(self, request: pb.AddDuplicationRequest, context: grpc.ServicerContext) -> pb.DupRef:
        return self.p.forward("AddDuplication", request)

    @typed
    def PauseDuplication(self, request: pb.DupRef, context: grpc.ServicerContext) -> pb.DupRef:
        return self.p.forward("PauseDuplication", request)

    @typed
    def ResumeDuplication(self, request: pb.DupRef, context: grpc.ServicerContext) -> pb.DupRef:
        return self.p.forward("ResumeDuplication", request)

    @typed
    def RemoveDuplication(self, request: pb.DupRef, context: grpc.ServicerContext) -> pb.DupRef:
        return self.p.forward("RemoveDuplication", request)

    @typed
    def EnsureFollowerTable(self, request: pb.EnsureTableRequest, context: grpc.ServicerContext) -> pb.Empty:
        return self.p.forward("EnsureFollowerTable", request)


class NodeSync:
    """``Node.Sync``: re-read the configuration now (the leader waits for it after a change)."""

    def __init__(self, member: Member) -> None:
        self.member = member

    @typed
    def Sync(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.Empty:
        self.member.sync()
        return pb.Empty()


class NodeService(NodeSync, NodeTransfer):
    """The Node service of a node: Sync, and the moves of multinode/transfer.py, allowed by ownership."""

    def __init__(self, cluster: Cluster, member: Member) -> None:
        NodeSync.__init__(self, member)
        NodeTransfer.__init__(self, cluster, member.peers.token)

    def check_source(self, p: Partition) -> None:
        # only the owner hands a partition out (a stale copy elsewhere never is)
        self.member.check(p.table, p.pidx, False)
        super().check_source(p)

    def check_target(self, p: Partition) -> None:
        if p.pidx in self.member.owned(p.table):
            raise InvalidArgumentError(f"node {self.member.node_id} owns {p.table}.{p.pidx} already")

    @typed
    def Fence(self, request: pb.PartitionRef, context: grpc.ServicerContext) -> pb.MoveReply:
        reply = NodeTransfer.Fence.__wrapped__(self, request, context)  # type: ignore[attr-defined]
        self.member.note_fenced(request.table, request.pidx)
        return reply


def node_service(cluster: Cluster, member: Member) -> NodeService:
    return NodeService(cluster, member)


__all__ = ["MetaService", "NodeSync", "node_service"]
