"""A served cluster as the application sees it: ``pf.connect(url)`` → RemoteCluster.

RemoteCluster.table(name) has the methods and signatures of Table; keys and
values are checked here as Table checks them (the same typed errors, before
anything is sent), and the server checks them again. Errors the server
raised arrive as their own classes (net/wire.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .. import _backend
from ..duplication.status import DupStatus, PartitionProgress
from ..engine.cluster import Cluster, ClusterInfo
from ..engine.table import PartitionStats, TableHealth, TableInfo, _key_collection
from ..errors import (
    ClosedError,
    DuplicationError,
    DuplicationNotFoundError,
    InvalidArgumentError,
    InvalidTypeError,
)
from ..net import pegasus_fast_pb2 as pb
from ..net import pegasus_fast_pb2_grpc as rpc
from ..net.pegasus import codes
from ..net.wire import Address, auth_metadata, call, is_url, open_channel, parse_url, replies, token_from_env
from ..records import MAX_VALUE, MAX_WRITE, as_bytes, check_size, encode_key, expire_ts_for, hash_key_bytes
from ..storage.checkpoint import CheckpointInfo

#: a call without a timeout of its own gives up after this long
DEFAULT_TIMEOUT = 30.0


def _ttl(ttl_seconds: object) -> int | None:
    expire_ts_for(ttl_seconds)  # the same checks as an embedded write
    return None if ttl_seconds is None else int(ttl_seconds)  # type: ignore[call-overload]


def _table_info(m: pb.TableInfo) -> TableInfo:
    return TableInfo(m.app_id, m.name, m.partition_count, m.status, m.create_time, dict(m.envs))


class _Conn:
    def __init__(self, addr: Address, token: str | None, timeout: float, tls: dict[str, str | None]) -> None:
        self.url = addr.url
        self.timeout = timeout
        self.channel = open_channel(addr, **tls)
        self.stub = rpc.ClientStub(self.channel)
        self.meta = rpc.MetaStub(self.channel)
        self.md = auth_metadata(token)
        self.closed = False
        self.host = addr.host
        self._data: Any = None
        self._data_asked = False
        self._data_lock = threading.Lock()

    # -- the data port (client/native.py): asked once, None when the server has none ----
    def data(self) -> Any:
        if not self._data_asked:
            with self._data_lock:
                if not self._data_asked:
                    target = self("Info", pb.Empty()).pegasus_address
                    if target:
                        from .native import DataPlane

                        host, _, port = target.rpartition(":")
                        # a port on every interface is reached where the gRPC one was
                        host = self.host if host in ("0.0.0.0", "") else host
                        self._data = DataPlane(host, int(port), self.timeout)
                    self._data_asked = True
        return self._data

    def __call__(self, method: str, request: object, timeout: float | None = None) -> Any:
        if self.closed:
            raise ClosedError(f"the connection to {self.url} is closed")
        fn = getattr(self.stub, method)
        return call(self.url, fn, request, timeout=timeout or self.timeout, metadata=self.md)

    def meta_call(self, method: str, request: object, timeout: float) -> Any:
        """A call of the Meta service (a node of a multi-node cluster)."""
        if self.closed:
            raise ClosedError(f"the connection to {self.url} is closed")
        return call(self.url, getattr(self.meta, method), request, timeout=timeout, metadata=self.md)

    def stream(self, method: str, request: object) -> Iterator[Any]:
        if self.closed:
            raise ClosedError(f"the connection to {self.url} is closed")
        stream = getattr(self.stub, method)(request, metadata=self.md)
        yield from replies(self.url, stream)


class RemoteTable:
    """A table of a served cluster: the methods of :class:`pegasus_fast.Table`."""

    def __init__(self, conn: _Conn, info: TableInfo) -> None:
        self._c = conn
        self.name = info.name
        self.app_id = info.app_id
        self.partition_count = info.partition_count

    def __repr__(self) -> str:
        return f"RemoteTable(name={self.name!r}, url={self._c.url!r}, partition_count={self.partition_count})"

    def partition_index(self, hash_key: object, sort_key: object = b"") -> int:
        hk = hash_key_bytes(hash_key)
        return _backend.impl.partition_index(hk, self.partition_count, as_bytes(sort_key, "sort_key"))

    # -- writes -------------------------------------------------------------

    def set(self, hash_key: object, sort_key: object, value: object, ttl_seconds: int | None = None) -> int:
        hk, sk = hash_key_bytes(hash_key), check_size(as_bytes(sort_key, "sort_key"), "sort_key")
        v = check_size(as_bytes(value, "value"), "value")
        if (d := self._c.data()) is not None:
            e = expire_ts_for(ttl_seconds)
            args = (encode_key(hk, sk), v, e - (1 << 32) if e >= 1 << 31 else e)
            return int(self._native(d, codes.OP_PUT, hk, sk, args)[1])
        req = pb.SetRequest(table=self.name, hash_key=hk, sort_key=sk, value=v, ttl_seconds=_ttl(ttl_seconds))
        return self._c("Set", req).decree

    def delete(self, hash_key: object, sort_key: object) -> int:
        hk, sk = hash_key_bytes(hash_key), check_size(as_bytes(sort_key, "sort_key"), "sort_key")
        if (d := self._c.data()) is not None:
            return int(self._native(d, codes.OP_REMOVE, hk, sk, (encode_key(hk, sk),))[1])
        return self._c("Delete", pb.KeyRequest(table=self.name, hash_key=hk, sort_key=sk)).decree

    def _multi_hash_key(self, hash_key: object) -> bytes:
        hk = hash_key_bytes(hash_key)
        if not hk:
            raise InvalidArgumentError("multi-record operations need a non-empty hash_key")
        return hk

    def multi_set(
        self, hash_key: object, values: Mapping[object, object], ttl_seconds: int | None = None
    ) -> int:
        if not isinstance(values, Mapping):
            raise InvalidTypeError("values must be a mapping of sort_key to value")
        if not values:
            raise InvalidArgumentError("multi_set needs at least one sort_key")
        items = list(values.items())
        if not all(type(sk) is bytes and type(v) is bytes for sk, v in items):
            items = [(as_bytes(sk, "sort_key"), as_bytes(v, "value")) for sk, v in items]
        hk = self._multi_hash_key(hash_key)
        # summed in C; only a total over the value limit can hold a key or value over its own
        total = len(hk) + sum(map(len, [sk for sk, _ in items])) + sum(map(len, [v for _, v in items]))
        if total > MAX_VALUE:
            for sk, v in items:
                check_size(sk, "sort_key")
                check_size(v, "value")
            if total > MAX_WRITE:
                raise InvalidArgumentError(f"multi_set of {total} bytes; the limit is {MAX_WRITE}")
        if (d := self._c.data()) is not None:
            e = expire_ts_for(ttl_seconds)
            args = (hk, items, e - (1 << 32) if e >= 1 << 31 else e)
            return int(self._native(d, codes.OP_MULTI_PUT, hk, b"", args)[1])
        kvs = [pb.SortKeyValue(sort_key=sk, value=v) for sk, v in items]
        req = pb.MultiSetRequest(table=self.name, hash_key=hk, kvs=kvs, ttl_seconds=_ttl(ttl_seconds))
        return self._c("MultiSet", req).decree

    def multi_delete(self, hash_key: object, sort_keys: Iterable[object]) -> int:
        sks = [check_size(as_bytes(sk, "sort_key"), "sort_key") for sk in _key_collection(sort_keys)]
        if not sks:
            raise InvalidArgumentError("multi_delete needs at least one sort_key")
        hk = self._multi_hash_key(hash_key)
        if len(hk) + sum(map(len, sks)) > MAX_WRITE:
            raise InvalidArgumentError(f"multi_delete of more than {MAX_WRITE} bytes")
        if (d := self._c.data()) is not None:
            return int(self._native(d, codes.OP_MULTI_REMOVE, hk, b"", (hk, sks))[2])
        return self._c(
            "MultiDelete", pb.MultiDeleteRequest(table=self.name, hash_key=hk, sort_keys=sks)
        ).decree

    # -- reads --------------------------------------------------------------

    def get(self, hash_key: object, sort_key: object) -> bytes | None:
        hk, sk = hash_key_bytes(hash_key), as_bytes(sort_key, "sort_key")
        if len(sk) > MAX_VALUE:
            return None  # no such record can exist
        if (d := self._c.data()) is not None:
            status, value = self._native(d, codes.OP_GET, hk, sk, (encode_key(hk, sk),))
            return value if status == codes.K_OK else None
        r = self._c("Get", pb.KeyRequest(table=self.name, hash_key=hk, sort_key=sk))
        return r.value if r.found else None

    def multi_get(self, hash_key: object, sort_keys: Iterable[object] | None = None) -> dict[bytes, bytes]:
        got = self._native_multi_get(hash_key, sort_keys)
        if got is not None:
            return got
        if sort_keys is None:
            hk = hash_key_bytes(hash_key)
            if not hk:
                raise InvalidArgumentError("multi_get of a whole hash key needs a non-empty hash_key")
            req = pb.MultiGetRequest(table=self.name, hash_key=hk, all=True)
        else:
            if isinstance(sort_keys, (bytes, str)):
                raise InvalidTypeError("sort_keys must be a collection of keys, not one key")
            sks = [as_bytes(sk, "sort_key") for sk in _key_collection(sort_keys)]
            req = pb.MultiGetRequest(table=self.name, hash_key=hash_key_bytes(hash_key), sort_keys=sks)
        return {kv.sort_key: kv.value for kv in self._c("MultiGet", req).kvs}

    # -- the data port (client/native.py) --------------------------------------------

    def _native(self, d: Any, op: int, hk: bytes, sk: bytes, args: tuple[Any, ...]) -> Any:
        return d.call(self.name, op, self.app_id, self.partition_index(hk, sk), args)

    def _native_multi_get(
        self, hash_key: object, sort_keys: Iterable[object] | None
    ) -> dict[bytes, bytes] | None:
        """multi_get on the data port; None where gRPC answers it (an empty hash key, or more
        than the server returns in one answer)."""
        d = self._c.data()
        if d is None:
            return None
        hk = hash_key_bytes(hash_key)
        if not hk:
            return None
        if sort_keys is None:
            sks: list[bytes] = []
        else:
            if isinstance(sort_keys, (bytes, str)):
                raise InvalidTypeError("sort_keys must be a collection of keys, not one key")
            sks = [as_bytes(sk, "sort_key") for sk in _key_collection(sort_keys)]
            if not sks:
                return {}
            if any(len(sk) > MAX_VALUE for sk in sks):
                return None
        args = (hk, sks, 0, 0, False, b"", b"", True, False, 0, b"", False)
        status, kvs = self._native(d, codes.OP_MULTI_GET, hk, b"", args)
        return dict(kvs) if status == codes.K_OK else None

    def scan(self) -> Iterator[tuple[bytes, bytes, bytes]]:
        """Every live record, partition by partition, streamed by the server in batches."""
        for batch in self._c.stream("Scan", pb.TableRef(table=self.name)):
            for r in batch.records:
                yield r.hash_key, r.sort_key, r.value

    def count(self) -> int:
        return self._c("Count", pb.TableRef(table=self.name), timeout=max(self._c.timeout, 600.0)).count

    # -- maintenance ----------------------------------------------------------

    def checkpoint(self) -> list[CheckpointInfo]:
        r = self._c("Checkpoint", pb.TableRef(table=self.name), timeout=max(self._c.timeout, 600.0))
        return [CheckpointInfo(c.pidx, c.decree, c.path, c.duration_ms, c.size_bytes) for c in r.checkpoints]

    def partition_stats(self) -> list[PartitionStats]:
        r = self._c("PartitionStats", pb.TableRef(table=self.name))
        return [
            PartitionStats(
                pidx=s.pidx,
                state=s.state,
                last_committed_decree=s.last_committed_decree,
                last_applied_decree=s.last_applied_decree,
                last_flushed_decree=s.last_flushed_decree,
                last_durable_decree=s.last_durable_decree,
                wal_bytes=s.wal_bytes,
                data_bytes=s.data_bytes,
            )
            for s in r.partitions
        ]

    def health(self) -> TableHealth:
        r = self._c("Health", pb.TableRef(table=self.name))
        return TableHealth(
            r.fully_healthy,
            r.unhealthy,
            r.write_unhealthy,
            r.read_unhealthy,
            [(p.pidx, p.state) for p in r.partitions],
        )

    def close(self) -> None:
        """Nothing to release: the table stays open on the server (the connection is the cluster's)."""


class RemoteDuplication:
    """A duplication running inside a served cluster: the methods of :class:`pegasus_fast.Duplication`."""

    def __init__(self, conn: _Conn, info: pb.DuplicationInfo) -> None:
        self._c = conn
        self.dupid = info.dupid
        self._update(info)

    def _update(self, info: pb.DuplicationInfo) -> None:
        self.table_name = info.table
        self.remote = info.remote
        self.remote_table = info.remote_table
        self.fail_mode = info.fail_mode
        self.with_checkpoint = info.with_checkpoint
        self.create_time = info.create_time
        self._status = DupStatus(info.status)
        self.error = info.error or None

    @property
    def remote_path(self) -> str:
        """Where the follower is (its URL); the embedded handle's name for it."""
        return self.remote

    remote_name = ""

    def __repr__(self) -> str:
        return f"RemoteDuplication(dupid={self.dupid}, table={self.table_name!r}, status={self._status})"

    def _ref(self) -> pb.DupRef:
        return pb.DupRef(dupid=self.dupid)

    @property
    def status(self) -> DupStatus:
        try:
            self._update(self._c("QueryDuplication", self._ref()))
        except DuplicationNotFoundError:
            self._status = DupStatus.REMOVED  # a removed duplication is forgotten by the server
        return self._status

    def wait_for(self, status: DupStatus, timeout: float | None = None) -> None:
        """Block until the duplication reaches ``status``; TimeoutError says where it stands."""
        if not isinstance(status, DupStatus):
            raise InvalidTypeError("status is a DupStatus")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 10.0 if deadline is None else max(0.0, min(10.0, deadline - time.monotonic()))
            info = self._c(
                "WaitDuplication",
                pb.WaitRequest(dupid=self.dupid, status=status.value, timeout_seconds=left),
                timeout=left + self._c.timeout,
            )
            self._update(info)
            if self._status == status:
                return
            if self.error:
                raise DuplicationError(f"duplication {self.dupid} failed: {self.error}")
            if self._status == DupStatus.REMOVED:
                raise DuplicationError(f"duplication {self.dupid} was removed")
            if deadline is not None and time.monotonic() >= deadline:
                stuck = [
                    f"{p.pidx}: {p.checkpoint_state}" + (f" ({p.reason})" if p.reason else "")
                    for p in self.progress()
                    if p.reason or p.checkpoint_state != "learned"
                ]
                raise TimeoutError(
                    f"duplication {self.dupid} to {self.remote} is {self._status}, not {status}, "
                    f"after {timeout}s; partitions: {'; '.join(stuck) or 'none stuck'}"
                )

    def progress(self) -> list[PartitionProgress]:
        r = self._c("DuplicationProgress", self._ref())
        return [
            PartitionProgress(
                pidx=p.pidx,
                checkpoint_state=p.checkpoint_state,
                checkpoint_kind=p.checkpoint_kind,
                checkpoint_decree=p.checkpoint_decree,
                confirmed_decree=p.confirmed_decree,
                last_committed_decree=p.last_committed_decree,
                pending_mutations=p.pending_mutations,
                time_lag_ms=p.time_lag_ms,
                reason=p.reason,
                checkpoint_duration_ms=p.checkpoint_duration_ms,
                copied_bytes=p.copied_bytes,
                copy_total_bytes=p.copy_total_bytes,
                copy_seconds=p.copy_seconds,
            )
            for p in r.partitions
        ]

    def pause(self) -> None:
        self._update(self._c("PauseDuplication", self._ref()))

    def resume(self) -> None:
        self._update(self._c("ResumeDuplication", self._ref()))

    def remove(self) -> None:
        self._update(self._c("RemoveDuplication", self._ref()))


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
        self._c = _Conn(
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
            self._c.closed = True
            self._c.channel.close()
            if self._c._data is not None:
                self._c._data.close()

    def info(self) -> ClusterInfo:
        r = self._c("Info", pb.Empty())
        return ClusterInfo(r.name, r.cluster_id, r.cluster_id_derived, r.uid, r.path, r.backend)

    @property
    def name(self) -> str:
        return self.info().name

    # -- tables -----------------------------------------------------------------

    def create_table(
        self, name: str, partition_count: int = 8, envs: dict[str, str] | None = None
    ) -> RemoteTable:
        if not isinstance(name, str):
            raise InvalidTypeError("a table name is a str")
        if isinstance(partition_count, bool) or not isinstance(partition_count, int):
            raise InvalidTypeError("partition_count is an int")
        if not 0 < partition_count < 1 << 32:
            raise InvalidArgumentError(f"partition_count {partition_count} is out of range")
        if envs is not None and not isinstance(envs, Mapping):
            raise InvalidTypeError("envs must be a mapping of str to str")
        req = pb.CreateTableRequest(table=name, partition_count=partition_count, envs=dict(envs or {}))
        return RemoteTable(
            self._c, _table_info(self._c("CreateTable", req, timeout=max(self._c.timeout, 120.0)))
        )

    def table(self, name: str) -> RemoteTable:
        return RemoteTable(self._c, self.table_info(name))

    def table_info(self, name: str) -> TableInfo:
        if not isinstance(name, str):
            raise InvalidTypeError("a table name is a str")
        return _table_info(self._c("GetTable", pb.TableRef(table=name)))

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
    ) -> RemoteDuplication:
        """Duplicate ``table`` to the served cluster at ``remote`` (a pegasus:// URL); the
        duplication runs inside this cluster's server."""
        if isinstance(remote, (Cluster, RemoteCluster)):
            raise InvalidTypeError("a served cluster duplicates to a pegasus:// URL, not a cluster object")
        if not is_url(remote) and not (isinstance(remote, str) and remote.startswith("zk://")):
            raise InvalidArgumentError(f"a served cluster duplicates to a pegasus:// URL, not {remote!r}")
        for what, v in (
            ("table", table),
            ("remote_table", remote_table),
            ("fail_mode", fail_mode),
            ("remote_token", remote_token),
        ):
            if v is not None and not isinstance(v, str):
                raise InvalidTypeError(f"{what} is a str")
        if not isinstance(with_checkpoint, bool):
            raise InvalidTypeError("with_checkpoint must be a bool")
        req = pb.AddDuplicationRequest(
            table=table,
            remote=remote,
            remote_table=remote_table,
            with_checkpoint=with_checkpoint,
            fail_mode=fail_mode,
            remote_token=remote_token,
        )
        return RemoteDuplication(self._c, self._c("AddDuplication", req))

    def duplications(self, table: str | None = None) -> list[RemoteDuplication]:
        if table is not None and not isinstance(table, str):
            raise InvalidTypeError("table is a str")
        r = self._c("ListDuplications", pb.ListDuplicationsRequest(table=table))
        return [RemoteDuplication(self._c, d) for d in r.duplications]

    def duplication(self, dupid: int) -> RemoteDuplication:
        if isinstance(dupid, bool) or not isinstance(dupid, int) or not 0 <= dupid < 1 << 64:
            raise InvalidTypeError("dupid is a non-negative int")
        return RemoteDuplication(self._c, self._c("QueryDuplication", pb.DupRef(dupid=dupid)))


__all__ = ["DEFAULT_TIMEOUT", "RemoteCluster", "RemoteDuplication", "RemoteTable"]
