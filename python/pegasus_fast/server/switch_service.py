"""The client service's table-role half (issue #21 §2, §3): table envs, and switching a
duplication's table over to its follower; a mixin of ClientService."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc

from ..net import pegasus_fast_pb2 as pb
from ..net.serving import typed
from ..net.table_roles import report_to_pb

if TYPE_CHECKING:
    from ..engine.cluster import Cluster


class SwitchoverHandlers:
    c: Cluster
    meta: Any
    #: how a follower reaches this cluster when a request names no reverse remote ("": none known)
    self_url: str = ""

    if TYPE_CHECKING:

        def _table_pb(self, info: Any) -> pb.TableInfo: ...

    @typed
    def SetTableEnvs(self, request: pb.SetTableEnvsRequest, context: grpc.ServicerContext) -> pb.TableInfo:
        if self.meta is not None:
            # through the meta leader; applied here too (every live node) once it returns
            self.meta.set_table_envs(request)
            return self._table_pb(self.c.table_info(request.table))
        info = self.c.set_table_envs(request.table, dict(request.envs), tuple(request.delete))
        return self._table_pb(info)

    @typed
    def Switchover(self, request: pb.SwitchoverRequest, context: grpc.ServicerContext) -> pb.SwitchoverReply:
        if self.meta is not None:
            # on the meta leader (multinode/switchover.py); another node passes it on
            return self.meta.switchover(request)  # type: ignore[no-any-return]
        report = self.c.switchover(
            request.dupid,
            request.timeout_seconds or 30.0,
            request.reverse_remote or self.self_url or None,
            request.reverse_token if request.HasField("reverse_token") else None,
        )
        return report_to_pb(report)


__all__ = ["SwitchoverHandlers"]
