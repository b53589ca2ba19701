"""The Meta and Node services of a node of a multi-node cluster (pegasus_fast.proto), over
multinode/: each Meta call is answered where the cluster's leader is (multinode/meta.py), the
Node service's moves are multinode/transfer.py's, allowed by the node's ownership."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import grpc

from ..engine.cluster import Cluster
from ..multinode.admission import ByOwnership
from ..multinode.member import Member
from ..multinode.meta import Meta
from ..multinode.transfer import NodeTransfer
from ..net import pegasus_fast_pb2 as pb
from ..net import pegasus_fast_pb2_grpc as rpc
from ..net.serving import typed

#: threads logging what primaries' replication streams bring to this node's secondaries
REPLICA_WORKERS = 4


class MetaService(rpc.MetaServicer):
    def __init__(self, meta: Meta) -> None:
        self.meta = meta

    @typed
    def CreateTable(self, request: pb.CreateTableRequest, context: grpc.ServicerContext) -> pb.TableInfo:
        return self.meta.create_table(request)

    @typed
    def DropTable(self, request: pb.TableRef, context: grpc.ServicerContext) -> pb.Empty:
        return self.meta.drop_table(request)

    @typed
    def SetTableEnvs(self, request: pb.SetTableEnvsRequest, context: grpc.ServicerContext) -> pb.TableInfo:
        return self.meta.set_table_envs(request)

    @typed
    def MovePartition(self, request: pb.MovePartitionRequest, context: grpc.ServicerContext) -> pb.MoveReply:
        return self.meta.move_partition(request)

    @typed
    def Balance(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.BalanceReply:
        return self.meta.balance(request)

    @typed
    def AddDuplication(self, request: pb.AddDuplicationRequest, context: grpc.ServicerContext) -> pb.DupRef:
        return self.meta.add_duplication(request)

    @typed
    def PauseDuplication(self, request: pb.DupRef, context: grpc.ServicerContext) -> pb.DupRef:
        return self.meta.pause_duplication(request)

    @typed
    def ResumeDuplication(self, request: pb.DupRef, context: grpc.ServicerContext) -> pb.DupRef:
        return self.meta.resume_duplication(request)

    @typed
    def RemoveDuplication(self, request: pb.DupRef, context: grpc.ServicerContext) -> pb.DupRef:
        return self.meta.remove_duplication(request)

    @typed
    def UpdateDuplication(
        self, request: pb.UpdateDuplicationRequest, context: grpc.ServicerContext
    ) -> pb.DupRef:
        return self.meta.update_duplication(request)

    @typed
    def EnsureFollowerTable(self, request: pb.EnsureTableRequest, context: grpc.ServicerContext) -> pb.Empty:
        return self.meta.ensure_follower_table(request)


class NodeService(NodeTransfer):
    """The Node service of a node: Sync, and the moves of multinode/transfer.py, allowed by
    ownership (only the owner hands a partition out: multinode/admission.py)."""

    def __init__(self, cluster: Cluster, member: Member) -> None:
        super().__init__(cluster, member.peers.token, ByOwnership(member), member.peers)
        self.member = member
        #: the workers that log what the replication streams bring (one per primary at a time)
        self._replicas = ThreadPoolExecutor(REPLICA_WORKERS, thread_name_prefix="replica-in")

    @typed
    def Sync(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.Empty:
        """Re-read the configuration now (the leader waits for it after a change)."""
        self.member.sync(fresh=True)
        return pb.Empty()

    @typed
    def Replicate(self, request: pb.ReplicateRequest, context: grpc.ServicerContext) -> pb.ReplicateReply:
        """A primary's mutations for the replicas held here (multinode/replication.py)."""
        return self.member.replication.receive(request)

    async def ReplicateStream(
        self, requests: AsyncIterator[pb.ReplicateRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ReplicateReply]:
        """:meth:`Replicate` over one stream a primary's link keeps open: each request logged
        and made durable on a worker, its reply sent before the next is read."""
        loop = asyncio.get_running_loop()
        async for request in requests:
            yield await loop.run_in_executor(self._replicas, self.member.replication.receive, request)

    @typed
    def ReplicaDecree(self, request: pb.ReplicaDecreeRequest, context: grpc.ServicerContext) -> pb.MoveReply:
        """A failover's promise: no primary below ``ballot`` is followed from now on."""
        part = self.partition(request.table, request.pidx)
        return pb.MoveReply(decree=self.member.replication.promise(part, request.ballot))


__all__ = ["MetaService", "NodeService"]
