"""The Meta and Node services of a node of a multi-node cluster (pegasus_fast.proto)."""

from __future__ import annotations

import grpc

from ..net import pegasus_fast_pb2 as pb
from ..net import pegasus_fast_pb2_grpc as rpc
from ..node.cluster import Cluster
from .member import Member
from .placement import Placement
from .services import _typed


class MetaService(rpc.MetaServicer):
    def __init__(self, placement: Placement) -> None:
        self.p = placement

    @_typed
    def CreateTable(self, request: pb.CreateTableRequest, context: grpc.ServicerContext) -> pb.TableInfo:
        return self.p.forward("CreateTable", request)

    @_typed
    def DropTable(self, request: pb.TableRef, context: grpc.ServicerContext) -> pb.Empty:
        return self.p.forward("DropTable", request)

    @_typed
    def MovePartition(self, request: pb.MovePartitionRequest, context: grpc.ServicerContext) -> pb.MoveReply:
        return self.p.forward("MovePartition", request)

    @_typed
    def Balance(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.BalanceReply:
        return self.p.forward("Balance", request)


class NodeSync:
    """``Node.Sync``: re-read the configuration now (the leader waits for it after a change)."""

    def __init__(self, member: Member) -> None:
        self.member = member

    @_typed
    def Sync(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.Empty:
        self.member.sync()
        return pb.Empty()


def node_service(cluster: Cluster, member: Member) -> rpc.NodeServicer:
    """The Node service: the partition transfer (transfer.py) and Sync."""

    class NodeService(NodeSync, rpc.NodeServicer):
        pass

    return NodeService(member)


__all__ = ["MetaService", "NodeSync", "node_service"]
