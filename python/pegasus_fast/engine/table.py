"""A table (Pegasus "app"): routes records to partitions by Pegasus's key hash."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import _backend
from ..data_api import key_collection
from ..errors import ClosedError, CloseError, InvalidArgumentError, InvalidTypeError
from ..records import (
    MAX_HASH_KEY,
    MAX_VALUE,
    MAX_WRITE,
    Op,
    as_bytes,
    check_size,
    encode_key,
    expire_ts_for,
    hash_key_bytes,
)
from ..storage.checkpoint import CheckpointInfo
from ..storage.partition import CLOSED, SERVING, Partition
from ..storage.scan import RecordBatch
from .roles import TableRole
from .table_atomic import TableAtomic
from .table_reads import TableReads

#: op kinds as plain ints, for the write path
PUT, DELETE, MULTI_PUT, MULTI_DELETE = int(Op.PUT), int(Op.DELETE), int(Op.MULTI_PUT), int(Op.MULTI_DELETE)


@dataclass(frozen=True)
class TableInfo:
    app_id: int
    name: str
    partition_count: int
    status: str
    create_time: float
    #: Pegasus app envs, str -> str
    envs: dict[str, str] = field(default_factory=dict, hash=False)
    #: its part in duplication: plain, a source, a follower (read-only unless opted out), ...
    #: (None where the cluster does not say: a multi-node cluster's tables, for now)
    role: TableRole | None = field(default=None, hash=False)


@dataclass(frozen=True)
class PartitionStats:
    pidx: int
    state: str
    last_committed_decree: int
    last_applied_decree: int
    last_flushed_decree: int
    last_durable_decree: int
    wal_bytes: int
    data_bytes: int


@dataclass(frozen=True)
class TableHealth:
    fully_healthy: int
    unhealthy: int
    write_unhealthy: int
    read_unhealthy: int
    partitions: list[tuple[int, str]]

    @property
    def is_fully_healthy(self) -> bool:
        return self.fully_healthy == len(self.partitions)


class Table(TableReads, TableAtomic):
    """A table of an embedded cluster. The data API's reads and atomic writes are its mixins
    (table_reads.py, table_atomic.py); the plain writes and maintenance are here."""

    def __init__(
        self,
        name: str,
        app_id: int,
        partitions: list[Partition],
        run_high: Callable[[Callable[[], Any]], Any] | None = None,
    ) -> None:
        self.name = name
        self.app_id = app_id
        self.partitions = partitions
        self.partition_count = len(partitions)
        self._closed = False
        #: runs user-requested maintenance (the cluster gives its scheduler's high lane)
        self._run_high = run_high or (lambda fn: fn())

    def __repr__(self) -> str:
        return f"Table(name={self.name!r}, app_id={self.app_id}, partition_count={self.partition_count})"

    def _route(self, hash_key: object, sort_key: object = b"") -> tuple[Partition, bytes, bytes]:
        if self._closed:
            raise ClosedError(f"table {self.name!r} is closed")
        hk = hash_key_bytes(hash_key)
        sk = as_bytes(sort_key, "sort_key")
        pidx = _backend.impl.partition_index(hk, self.partition_count, sk)
        return self.partitions[pidx], hk, sk

    def _route_multi(self, hash_key: object) -> tuple[Partition, bytes, bytes]:
        p, hk, sk = self._route(hash_key)
        if not hk:
            # with an empty hash key each sort key hashes on its own (Pegasus refuses this too)
            raise InvalidArgumentError("multi-record operations need a non-empty hash_key")
        return p, hk, sk

    def partition_index(self, hash_key: object, sort_key: object = b"") -> int:
        hk = hash_key_bytes(hash_key)
        return _backend.impl.partition_index(hk, self.partition_count, as_bytes(sort_key, "sort_key"))

    def partition_of(self, hash_key: object, sort_key: object = b"") -> Partition:
        return self._route(hash_key, sort_key)[0]

    # -- writes -------------------------------------------------------------

    def set(self, hash_key: object, sort_key: object, value: object, ttl_seconds: int | None = None) -> int:
        if type(hash_key) is bytes and type(sort_key) is bytes and len(hash_key) <= MAX_HASH_KEY:
            # the common case, without the general conversions
            if self._closed:
                raise ClosedError(f"table {self.name!r} is closed")
            p = self.partitions[_backend.impl.partition_index(hash_key, self.partition_count, sort_key)]
            hk, sk = hash_key, sort_key
        else:
            p, hk, sk = self._route(hash_key, sort_key)
        v = value if type(value) is bytes else as_bytes(value, "value")
        if len(v) > MAX_VALUE or len(sk) > MAX_VALUE:
            check_size(v, "value")
            check_size(sk, "sort_key")
        return p.write([(PUT, hk, sk, v, 0 if ttl_seconds is None else expire_ts_for(ttl_seconds))])

    def delete(self, hash_key: object, sort_key: object) -> int:
        p, hk, sk = self._route(hash_key, sort_key)
        check_size(sk, "sort_key")
        return p.write([(DELETE, hk, sk)])

    def multi_set(
        self, hash_key: object, values: Mapping[object, object], ttl_seconds: int | None = None
    ) -> int:
        if not isinstance(values, Mapping):
            raise InvalidTypeError("values must be a mapping of sort_key to value")
        if not values:
            raise InvalidArgumentError("multi_set needs at least one sort_key")
        pairs = list(values.items())
        # a dict of bytes checked and summed in one backend call: a Python pass over the
        # pairs costs as much as the rest of the write
        total = _backend.impl.pairs_bytes(values)
        if total < 0:
            pairs = [(as_bytes(sk, "sort_key"), as_bytes(v, "value")) for sk, v in pairs]
            total = sum(len(sk) + len(v) for sk, v in pairs)
        p, hk, _ = self._route_multi(hash_key)
        total += len(hk)
        if total > MAX_VALUE:  # only then can one of them be over its own limit
            for sk, v in pairs:
                check_size(sk, "sort_key")
                check_size(v, "value")
            if total > MAX_WRITE:
                raise InvalidArgumentError(f"multi_set of {total} bytes; the limit is {MAX_WRITE}")
        return p.write([(MULTI_PUT, hk, pairs, expire_ts_for(ttl_seconds))])

    def multi_delete(self, hash_key: object, sort_keys: Iterable[object]) -> int:
        sks = [as_bytes(sk, "sort_key") for sk in key_collection(sort_keys)]
        if not sks:
            raise InvalidArgumentError("multi_delete needs at least one sort_key")
        p, hk, _ = self._route_multi(hash_key)
        total = len(hk) + sum(len(check_size(sk, "sort_key")) for sk in sks)
        if total > MAX_WRITE:
            raise InvalidArgumentError(f"multi_delete of {total} bytes; the limit is {MAX_WRITE}")
        return p.write([(MULTI_DELETE, hk, sks)])

    # -- reads --------------------------------------------------------------

    def get(self, hash_key: object, sort_key: object) -> bytes | None:
        p, hk, sk = self._route(hash_key, sort_key)
        return p.get(encode_key(hk, sk))

    def scan_batches(self, batch_bytes: int = 4 << 20) -> Iterator[RecordBatch]:
        """``scan``'s records as ``RecordBatch``es of about ``batch_bytes`` of keys and values
        each: contiguous buffers with offsets, a few objects per batch, not three per record."""
        if self._closed:
            raise ClosedError(f"table {self.name!r} is closed")
        if isinstance(batch_bytes, bool) or not isinstance(batch_bytes, int):
            raise InvalidTypeError("batch_bytes must be an int")
        if batch_bytes < 1:
            raise InvalidArgumentError("batch_bytes must be positive")
        return (batch for p in self.partitions for batch in p.iter_records(batch_bytes))

    def count(self) -> int:
        return sum(1 for _ in self.scan())

    # -- maintenance ----------------------------------------------------------

    def checkpoint(self) -> list[CheckpointInfo]:
        """Checkpoint every partition now, in the scheduler's high-priority lane."""
        if self._closed:
            raise ClosedError(f"table {self.name!r} is closed")
        return self._run_high(lambda: [p.checkpoint() for p in self.partitions])

    def partition_stats(self) -> list[PartitionStats]:
        if self._closed:
            raise ClosedError(f"table {self.name!r} is closed")
        return [PartitionStats(state=p.state.value, **p.stats()) for p in self.partitions]

    def health(self) -> TableHealth:
        """Pegasus-style health: a learning partition serves neither reads nor writes."""
        states = [(p.pidx, p.state.value) for p in self.partitions]
        healthy = sum(1 for _, s in states if s == SERVING.value)
        sick = len(states) - healthy
        return TableHealth(healthy, sick, sick, sick, states)

    def release(self, flush: bool = True) -> list[tuple[str, BaseException]]:
        """Close every partition whatever fails; returns ``(step, exception)`` for each failure."""
        self._closed = True
        failures: list[tuple[str, BaseException]] = []
        for p in self.partitions:
            if p.state == CLOSED:
                continue
            try:
                p.close(flush=flush)
            except Exception as exc:
                failures.append((f"table {self.name} partition {p.pidx}", exc))
                p.release_handles()
        return failures

    def close(self) -> None:
        failures = self.release()
        if failures:
            raise CloseError(f"table {self.name}", failures)
