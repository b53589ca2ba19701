"""A served cluster as the application sees it: ``pf.connect(url)`` → RemoteCluster.

RemoteCluster.table(name) has the methods and signatures of Table
(remote_table.py), and a duplication those of Duplication (remote_dup.py).
Arguments are checked here as the embedded Cluster checks them (args.py);
errors the server raised arrive as their own classes (net/wire.py).
"""

from __future__ import annotations

from ..duplication.record import check_dupid
from ..engine.cluster import Cluster, ClusterInfo
from ..engine.envs import validate_envs
from ..engine.roles import TableRole
from ..engine.switchover import SwitchoverReport
from ..engine.table import TableInfo
from ..errors import InvalidArgumentError, InvalidTypeError
from ..net import pegasus_fast_pb2 as pb
from ..net.table_roles import role_from_pb
from ..net.wire import parse_url, token_from_env
from ..storage.backup_set import BackupSummary
from . import args
from .conn import DEFAULT_TIMEOUT, Conn
from .remote_dup import RemoteDuplication
from .remote_table import RemoteTable


def _table_info(m: pb.TableInfo) -> TableInfo:
    return TableInfo(
        m.app_id, m.name, m.partition_count, m.status, m.create_time, dict(m.envs), role_from_pb(m.role)
    )


class RemoteCluster:
    """A served cluster (``pf.connect(url)``); a context manager that closes the connection."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        tls_ca: str | None = None,
        timeout: float | None = None,
        *,
        tls_cert: str | None = None,
        tls_key: str | None = None,
    ) -> None:
        addr = parse_url(url)
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
        ):
            raise InvalidArgumentError("timeout is a positive number of seconds")
        if token is not None and not isinstance(token, str):
            raise InvalidTypeError("token is a str")
        self.url = addr.url
        self._c = Conn.open(
            addr,
            token if token is not None else token_from_env(),
            float(timeout) if timeout is not None else DEFAULT_TIMEOUT,
            {"tls_ca": tls_ca, "tls_cert": tls_cert, "tls_key": tls_key},
        )

    def __enter__(self) -> RemoteCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteCluster({self.url!r})"

    @property
    def closed(self) -> bool:
        return self._c.closed

    def close(self) -> None:
        if not self._c.closed:
            self._c.close()

    def info(self) -> ClusterInfo:
        r = self._c("Info", pb.Empty())
        return ClusterInfo(
            r.name, r.cluster_id, r.cluster_id_derived, r.uid, r.path, r.backend, tuple(r.warnings)
        )

    @property
    def name(self) -> str:
        return self.info().name

    # -- tables -----------------------------------------------------------------

    def create_table(
        self, name: str, partition_count: int = 8, envs: dict[str, str] | None = None
    ) -> RemoteTable:
        req = args.create_table_request(name, partition_count, envs)
        return RemoteTable(
            self._c, _table_info(self._c("CreateTable", req, timeout=max(self._c.timeout, 120.0)))
        )

    def table(self, name: str) -> RemoteTable:
        return RemoteTable(self._c, self.table_info(name))

    def table_info(self, name: str) -> TableInfo:
        if not isinstance(name, str):
            raise InvalidTypeError("a table name is a str")
        return _table_info(self._c("GetTable", pb.TableRef(table=name)))

    def table_role(self, name: str) -> TableRole | None:
        """The table's part in duplication and whether it takes client writes (engine/roles.py);
        None where the server does not say."""
        return self.table_info(name).role

    def set_table_envs(self, name: str, envs: dict[str, str], delete: tuple[str, ...] = ()) -> TableInfo:
        """Set (and delete) table envs on the server (Pegasus's set_app_envs / del_app_envs)."""
        if not isinstance(name, str):
            raise InvalidTypeError("a table name is a str")
        req = pb.SetTableEnvsRequest(table=name, envs=validate_envs(envs), delete=list(delete))
        return _table_info(self._c("SetTableEnvs", req))

    def switchover(
        self,
        dupid: int,
        timeout: float = 30.0,
        reverse_remote: str | None = None,
        reverse_token: str | None = None,
    ) -> SwitchoverReport:
        """``duplication(dupid).switchover(...)``."""
        return self.duplication(dupid).switchover(timeout, reverse_remote, reverse_token)

    def has_table(self, name: str) -> bool:
        return any(t.name == name for t in self.list_tables())

    def list_tables(self) -> list[TableInfo]:
        return [_table_info(t) for t in self._c("ListTables", pb.Empty()).tables]

    def drop_table(self, name: str) -> None:
        if not isinstance(name, str):
            raise InvalidTypeError("a table name is a str")
        self._c("DropTable", pb.TableRef(table=name), timeout=max(self._c.timeout, 120.0))

    def compact(self, name: str) -> None:
        """Manual compaction of a table on the server (drops expired records); returns when done."""
        if not isinstance(name, str):
            raise InvalidTypeError("a table name is a str")
        self._c("Compact", pb.TableRef(table=name), timeout=max(self._c.timeout, 3600.0))

    def backup_table(self, name: str, backup: str) -> BackupSummary:
        """Back up table ``name`` on the server into ``backup``, a new directory under its
        --backup-dir (docs/operations.md)."""
        if not isinstance(name, str) or not isinstance(backup, str):
            raise InvalidTypeError("a table and a backup are named by str")
        r = self._c("Backup", pb.BackupRequest(table=name, name=backup), timeout=max(self._c.timeout, 3600.0))
        rows = tuple((p.pidx, p.decree, p.files, p.bytes) for p in r.partitions)
        return BackupSummary(r.table, r.partition_count, rows)

    def restore_table(self, backup: str, name: str) -> RemoteTable:
        """Restore the backup ``backup`` (under the server's --backup-dir) as the new table
        ``name``: verified first, nothing created when it is damaged (BackupError)."""
        if not isinstance(name, str) or not isinstance(backup, str):
            raise InvalidTypeError("a table and a backup are named by str")
        self._c("Restore", pb.RestoreRequest(name=backup, table=name), timeout=max(self._c.timeout, 3600.0))
        return self.table(name)

    # -- duplications ---------------------------------------------------------------

    def add_duplication(
        self,
        table: str,
        remote: str,
        remote_table: str | None = None,
        with_checkpoint: bool = True,
        fail_mode: str = "slow",
        *,
        remote_token: str | None = None,
        accept_gap: bool = False,
    ) -> RemoteDuplication:
        """Duplicate ``table`` to the served cluster at ``remote`` (a pegasus:// URL); the
        duplication runs inside this cluster's server."""
        if isinstance(remote, (Cluster, RemoteCluster)):
            raise InvalidTypeError("a served cluster duplicates to a pegasus:// URL, not a cluster object")
        req = args.add_duplication_request(
            "a served cluster",
            table,
            remote,
            remote_table,
            with_checkpoint,
            fail_mode,
            remote_token,
            accept_gap,
        )
        return RemoteDuplication(self._c, self._c("AddDuplication", req))

    def duplications(self, table: str | None = None) -> list[RemoteDuplication]:
        if table is not None and not isinstance(table, str):
            raise InvalidTypeError("table is a str")
        r = self._c("ListDuplications", pb.ListDuplicationsRequest(table=table))
        return [RemoteDuplication(self._c, d) for d in r.duplications]

    def duplication(self, dupid: int) -> RemoteDuplication:
        check_dupid(dupid, lookup=True)
        return RemoteDuplication(self._c, self._c("QueryDuplication", pb.DupRef(dupid=dupid)))


__all__ = ["RemoteCluster"]
