"""The Client service's Backup and Restore (docs/operations.md), a mixin of ClientService.

Over the wire a backup is named, never placed: ``name`` is one plain directory name under the
server's ``--backup-dir``, so no caller picks a path on the server's disk. A server without
``--backup-dir`` refuses both; so does a node of a multi-node cluster (it holds only its share
of each table's partitions).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import grpc

from ..engine.backup import backup_table, restore_table
from ..engine.cluster import Cluster
from ..errors import InvalidArgumentError, with_fix
from ..net import pegasus_fast_pb2 as pb
from ..net.serving import typed

if TYPE_CHECKING:
    from ..multinode.member import Member


def backup_path(root: str | None, name: str, multi_node: bool) -> str:
    """Where the backup ``name`` is on this server (InvalidArgumentError when it cannot be)."""
    if multi_node:
        raise InvalidArgumentError("a node of a multi-node cluster holds part of each table: no backup here")
    if root is None:
        raise with_fix(
            InvalidArgumentError("this server keeps no backups"),
            "serve --backup-dir DIR (backup-dir in serve.toml), or back up the stopped cluster's "
            "directory with --cluster DIR",
        )
    if not name or name in (".", "..") or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise InvalidArgumentError(f"a backup's name is one plain directory name, not {name!r}")
    return os.path.join(root, name)


class BackupHandlers:
    c: Cluster
    m: Member | None
    #: the server's --backup-dir (None: no backups over the wire)
    backup_dir: str | None

    @typed
    def Backup(self, request: pb.BackupRequest, context: grpc.ServicerContext) -> pb.BackupReply:
        path = backup_path(self.backup_dir, request.name, self.m is not None)
        m = backup_table(self.c, request.table, path)
        return pb.BackupReply(
            table=m.table,
            partition_count=m.partition_count,
            partitions=[
                pb.BackupPartition(
                    pidx=p.pidx, decree=p.decree, files=len(p.files), bytes=sum(f[1] for f in p.files)
                )
                for p in m.partitions
            ],
        )

    @typed
    def Restore(self, request: pb.RestoreRequest, context: grpc.ServicerContext) -> pb.TableInfo:
        path = backup_path(self.backup_dir, request.name, self.m is not None)
        t = restore_table(self.c, path, request.table)
        info = self.c.table_info(t.name)
        return pb.TableInfo(
            app_id=info.app_id,
            name=info.name,
            partition_count=info.partition_count,
            status=info.status,
            create_time=info.create_time,
            envs=info.envs,
        )


__all__ = ["BackupHandlers", "backup_path"]
