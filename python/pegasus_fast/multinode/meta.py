"""A Meta call made on any node of a multi-node cluster: answered here when this node leads
(placement.py), else passed to the leader, whose answer comes back as it is.

The Meta service (server/node_services.py) and the client and follower
services of a node (a table made or dropped, a duplication changed) call
these; each takes and returns the messages of pegasus_fast.proto.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..coord.zk import read_leader, read_nodes
from ..duplication.ports import SourceId
from ..errors import NotLeaderError
from ..net import pegasus_fast_pb2 as pb
from ..net.table_roles import report_to_pb
from . import switchover
from .member import Member
from .placement import Placement

_Q = TypeVar("_Q")
_A = TypeVar("_A")

#: a forwarded call waits this long for the leader (a move or a balance takes a while)
FORWARD_TIMEOUT = 3600.0


class Meta:
    def __init__(self, member: Member, placement: Placement) -> None:
        self.member = member
        self.placement = placement

    def close(self) -> None:
        self.placement.close()

    def _here_or_leader(
        self, method: str, request: _Q, here: Callable[[_Q], _A], service: str = "meta"
    ) -> _A:
        """``here(request)`` when this node leads, else the leader's answer to ``method`` (of
        its ``service``: meta, or follower for a take-over)."""
        m = self.member
        if m.is_leader:
            return here(request)
        leader = read_leader(m.zk)
        if leader is None or leader.node_id == m.node_id:
            raise NotLeaderError(m.node_id, None)
        peer = m.peers.get(leader.url)
        return peer(getattr(peer, service), method, request, timeout=FORWARD_TIMEOUT)  # type: ignore[no-any-return]

    # -- tables ----------------------------------------------------------------------------

    def create_table(self, request: pb.CreateTableRequest) -> pb.TableInfo:
        def here(r: pb.CreateTableRequest) -> pb.TableInfo:
            app = self.placement.create_table(
                r.table, r.partition_count, dict(r.envs) or None, replica_count=r.replica_count or None
            )
            return pb.TableInfo(
                app_id=app.app_id,
                name=r.table,
                partition_count=app.partition_count,
                status="AVAILABLE",
                create_time=app.create_time,
                envs=app.envs,
            )

        return self._here_or_leader("CreateTable", request, here)

    def set_table_envs(self, request: pb.SetTableEnvsRequest) -> pb.TableInfo:
        """The table's envs changed in its znode, applied on every live node (table_envs.py)."""

        def here(r: pb.SetTableEnvsRequest) -> pb.TableInfo:
            app = self.placement.set_table_envs(r.table, dict(r.envs), tuple(r.delete))
            return pb.TableInfo(
                app_id=app.app_id,
                name=r.table,
                partition_count=app.partition_count,
                status="AVAILABLE",
                create_time=app.create_time,
                envs=app.envs,
            )

        return self._here_or_leader("SetTableEnvs", request, here)

    def drop_table(self, request: pb.TableRef) -> pb.Empty:
        def here(r: pb.TableRef) -> pb.Empty:
            self.placement.drop_table(r.table)
            return pb.Empty()

        return self._here_or_leader("DropTable", request, here)

    # -- moves -------------------------------------------------------------------------------

    def move_partition(self, request: pb.MovePartitionRequest) -> pb.MoveReply:
        def here(r: pb.MovePartitionRequest) -> pb.MoveReply:
            return pb.MoveReply(decree=self.placement.move_partition(r.table, r.pidx, r.node, r.from_node))

        return self._here_or_leader("MovePartition", request, here)

    def balance(self, request: pb.Empty) -> pb.BalanceReply:
        def here(r: pb.Empty) -> pb.BalanceReply:
            moves = self.placement.balance()
            return pb.BalanceReply(
                moves=[
                    pb.MovePartitionRequest(table=m.table, pidx=m.pidx, node=m.node, from_node=m.from_node)
                    for m in moves
                ]
            )

        return self._here_or_leader("Balance", request, here)

    # -- duplications ------------------------------------------------------------------------

    def add_duplication(self, request: pb.AddDuplicationRequest) -> pb.DupRef:
        def here(r: pb.AddDuplicationRequest) -> pb.DupRef:
            dupid = self.placement.add_duplication(
                r.table,
                r.remote,
                r.remote_table if r.HasField("remote_table") else None,
                r.with_checkpoint,
                r.fail_mode or "slow",
                r.remote_token if r.HasField("remote_token") else None,
                r.accept_gap,
            )
            return pb.DupRef(dupid=dupid)

        return self._here_or_leader("AddDuplication", request, here)

    def _set_duplication(self, method: str, status: str, request: pb.DupRef) -> pb.DupRef:
        def here(r: pb.DupRef) -> pb.DupRef:
            self.placement.set_duplication(r.dupid, status)
            return pb.DupRef(dupid=r.dupid)

        return self._here_or_leader(method, request, here)

    def pause_duplication(self, request: pb.DupRef) -> pb.DupRef:
        return self._set_duplication("PauseDuplication", "paused", request)

    def resume_duplication(self, request: pb.DupRef) -> pb.DupRef:
        return self._set_duplication("ResumeDuplication", "active", request)

    def remove_duplication(self, request: pb.DupRef) -> pb.DupRef:
        return self._set_duplication("RemoveDuplication", "removed", request)

    def update_duplication(self, request: pb.UpdateDuplicationRequest) -> pb.DupRef:
        def here(r: pb.UpdateDuplicationRequest) -> pb.DupRef:
            token = r.remote_token if r.HasField("remote_token") else None
            self.placement.update_duplication(r.dupid, token)
            return pb.DupRef(dupid=r.dupid)

        return self._here_or_leader("UpdateDuplication", request, here)

    def ensure_follower_table(self, request: pb.EnsureTableRequest) -> pb.Empty:
        def here(r: pb.EnsureTableRequest) -> pb.Empty:
            s = r.source
            self.placement.ensure_follower_table(
                r.table,
                r.partition_count,
                SourceId(s.cluster, s.cluster_uid, s.table, s.dupid),
                r.with_checkpoint,
            )
            return pb.Empty()

        return self._here_or_leader("EnsureFollowerTable", request, here)

    def switchover(self, request: pb.SwitchoverRequest) -> pb.SwitchoverReply:
        """A duplication of this cluster switched over to its follower (switchover.py), run by
        the leader: the Client service's call, passed on to the leader's."""

        def here(r: pb.SwitchoverRequest) -> pb.SwitchoverReply:
            back = r.reverse_remote or None
            if back is not None and back in {d.url for d in read_nodes(self.member.zk).values()}:
                # a client of one node names that node: the way back is the cluster's zk:// URL
                back = None
            report = switchover.switchover(
                self.placement,
                r.dupid,
                r.timeout_seconds or 30.0,
                back,
                r.reverse_token if r.HasField("reverse_token") else None,
            )
            return report_to_pb(report)

        return self._here_or_leader("Switchover", request, here, service="client")

    def take_over(self, request: pb.TakeOverRequest) -> pb.TakeOverReply:
        """A switchover's take-over of a follower table of this cluster (takeover.py), on the
        leader: the Follower service's call, passed on to the leader's."""

        def here(r: pb.TakeOverRequest) -> pb.TakeOverReply:
            s = r.source
            dupid, held = self.placement.take_over(
                r.table,
                SourceId(s.cluster, s.cluster_uid, s.table, s.dupid),
                dict(r.decrees),
                r.back_remote,
                r.back_token if r.HasField("back_token") else None,
            )
            return pb.TakeOverReply(dupid=dupid, applied=held)

        return self._here_or_leader("TakeOver", request, here, service="follower")


__all__ = ["FORWARD_TIMEOUT", "Meta"]
