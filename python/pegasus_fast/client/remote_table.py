"""A table of a served cluster as the application sees it: the methods of :class:`pegasus_fast.Table`.

Keys and values are checked here as Table checks them (the same typed errors,
before anything is sent), and the server checks them again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .. import _backend
from ..data_api import key_collection
from ..engine.table import PartitionStats, TableHealth, TableInfo
from ..errors import InvalidArgumentError, InvalidTypeError
from ..net import pegasus_fast_pb2 as pb
from ..net.pegasus import codes
from ..records import (
    MAX_HASH_KEY,
    MAX_VALUE,
    MAX_WRITE,
    as_bytes,
    check_size,
    encode_key,
    expire_ts_for,
    hash_key_bytes,
)
from ..storage.checkpoint import CheckpointInfo
from .conn import Conn
from .remote_data import RemoteDataApi


def _ttl(ttl_seconds: object) -> int | None:
    expire_ts_for(ttl_seconds)  # the same checks as an embedded write
    return None if ttl_seconds is None else int(ttl_seconds)  # type: ignore[call-overload]


def partition_index(hash_key: object, sort_key: object, partition_count: int) -> int:
    """The partition of a key, by Pegasus's hash (the same as an embedded table's)."""
    hk = hash_key_bytes(hash_key)
    return _backend.impl.partition_index(hk, partition_count, as_bytes(sort_key, "sort_key"))


class RemoteTable(RemoteDataApi):
    """A table of a served cluster: the methods of :class:`pegasus_fast.Table`."""

    def __init__(self, conn: Conn, info: TableInfo) -> None:
        self._c = conn
        self.name = info.name
        self.app_id = info.app_id
        self.partition_count = info.partition_count

    def __repr__(self) -> str:
        return f"RemoteTable(name={self.name!r}, url={self._c.url!r}, partition_count={self.partition_count})"

    def partition_index(self, hash_key: object, sort_key: object = b"") -> int:
        return partition_index(hash_key, sort_key, self.partition_count)

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
        sks = [check_size(as_bytes(sk, "sort_key"), "sort_key") for sk in key_collection(sort_keys)]
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

    def batch_get_checked(self, keys: list[tuple[bytes, bytes]]) -> list[bytes | None]:
        """On the data port: one OP_BATCH_GET per partition the keys fall in (as a Pegasus
        client sends them); over gRPC without one, or for a key no record can have (gRPC
        answers those as an embedded table does)."""
        d = self._c.data() if keys else None
        if d is None or any(len(hk) > MAX_HASH_KEY or len(sk) > MAX_VALUE for hk, sk in keys):
            return super().batch_get_checked(keys)
        groups: dict[int, list[tuple[bytes, bytes]]] = {}
        for hk, sk in keys:
            groups.setdefault(self.partition_index(hk, sk), []).append((hk, sk))
        found: dict[tuple[bytes, bytes], bytes] = {}
        for pidx, group in groups.items():
            _status, triples = d.call(self.name, codes.OP_BATCH_GET, self.app_id, pidx, (group,))
            for hk, sk, v in triples:
                found[(hk, sk)] = v
        return [found.get(k) for k in keys]

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
            sks = [as_bytes(sk, "sort_key") for sk in key_collection(sort_keys)]
            if not sks:
                return {}
            if any(len(sk) > MAX_VALUE for sk in sks):
                return None
        args = (hk, sks, 0, 0, False, b"", b"", True, False, 0, b"", False)
        status, kvs = self._native(d, codes.OP_MULTI_GET, hk, b"", args)
        return dict(kvs) if status == codes.K_OK else None

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


__all__ = ["RemoteTable", "partition_index"]
