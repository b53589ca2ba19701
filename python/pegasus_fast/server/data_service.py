"""The client service's half for the rest of Pegasus's data API (issue #18): ttl, sort-key
counts, ranged multi_get, batch_get, scanners, incr and the checked writes.

A mixin of ``ClientService`` (client_service.py), which provides the cluster, the ownership
check of a one-partition call (``_table``) and the partitions of a scan (``_partitions``).
Every call checks, as Get and Set do, that a node of a multi-node cluster owns the
partition it touches. The engine checks every argument again; its typed errors travel back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import grpc

from ..data_api import MutateOperation, Mutation
from ..errors import InvalidArgumentError
from ..net import pegasus_fast_pb2 as pb
from ..net.serving import typed, typed_stream
from .stream_slots import StreamSlots, client_of

if TYPE_CHECKING:
    from ..engine.cluster import Cluster
    from ..engine.table import Table
    from ..multinode.member import Member
    from ..storage.partition import Partition

#: a scanner's message carries batch_size records, or fewer once they pass about this many bytes
SCANNER_BATCH_BYTES = 1 << 20


def _opt(request: Any, name: str) -> Any:
    return getattr(request, name) if request.HasField(name) else None


def _filter(f: pb.KeyFilter) -> tuple[int, bytes] | None:
    return None if f.type == 0 and not f.pattern else (f.type, f.pattern)


def _check_reply(res: tuple[bool, bool, bool, bytes | None]) -> pb.CheckReply:
    succeed, returned, exists, value = res
    reply = pb.CheckReply(succeed=succeed, check_value_returned=returned, check_value_exist=exists)
    if value is not None:
        reply.check_value = value
    return reply


def _mutation(m: pb.Mutation) -> Mutation:
    try:
        op = MutateOperation(m.operation)
    except ValueError:
        raise InvalidArgumentError(f"mutation operation {m.operation} is not a MutateOperation") from None
    return Mutation(op, m.sort_key, m.value, _opt(m, "ttl_seconds"))


class DataApiHandlers:
    if TYPE_CHECKING:  # what ClientService provides
        c: Cluster
        m: Member | None
        streams: StreamSlots

        def _table(self, name: str, hash_key: bytes, sort_key: bytes | None, write: bool) -> Table: ...

        def _partitions(self, request: Any) -> tuple[Table, list[Partition]]: ...

    @typed
    def Ttl(self, request: pb.KeyRequest, context: grpc.ServicerContext) -> pb.TtlReply:
        t = self._table(request.table, request.hash_key, request.sort_key, False)
        left = t.ttl(request.hash_key, request.sort_key)
        return pb.TtlReply(found=False) if left is None else pb.TtlReply(found=True, ttl_seconds=left)

    @typed
    def SortKeyCount(self, request: pb.KeyRequest, context: grpc.ServicerContext) -> pb.CountReply:
        t = self._table(request.table, request.hash_key, None, False)
        return pb.CountReply(count=t.sort_key_count(request.hash_key))

    @typed
    def MultiGetRange(
        self, request: pb.MultiGetRangeRequest, context: grpc.ServicerContext
    ) -> pb.MultiGetRangeReply:
        if request.by_keys and not request.hash_key:
            # each sort key hashes on its own: the node must own every one's partition
            t = self.c.table(request.table)
            if self.m is not None:
                for sk in request.sort_keys:
                    self.m.check(request.table, t.partition_index(b"", sk), False)
        else:
            t = self._table(request.table, request.hash_key, None, False)
        limits = {
            "max_kv_count": _opt(request, "max_kv_count"),
            "max_kv_size": _opt(request, "max_kv_size"),
            "no_value": request.no_value,
        }
        if request.by_keys:
            got = t.multi_get(request.hash_key, list(request.sort_keys), **limits)
        else:
            got = t.multi_get(
                request.hash_key,
                start_sort_key=request.start_sort_key,
                stop_sort_key=request.stop_sort_key,
                start_inclusive=request.start_inclusive,
                stop_inclusive=request.stop_inclusive,
                sort_key_filter=_filter(request.sort_key_filter),
                reverse=request.reverse,
                **limits,
            )
        kvs = [pb.SortKeyValue(sort_key=k, value=v) for k, v in got.items()]
        return pb.MultiGetRangeReply(kvs=kvs, complete=got.complete)

    @typed
    def BatchGet(self, request: pb.BatchGetRequest, context: grpc.ServicerContext) -> pb.BatchGetReply:
        t = self.c.table(request.table)
        keys = [(k.hash_key, k.sort_key) for k in request.keys]
        if self.m is not None:
            for pidx in {t.partition_index(hk, sk) for hk, sk in keys}:
                self.m.check(request.table, pidx, False)
        values = t.batch_get(keys)
        return pb.BatchGetReply(
            values=[
                pb.GetReply(found=False) if v is None else pb.GetReply(found=True, value=v) for v in values
            ]
        )

    def _stream(
        self,
        records: Iterator[tuple[bytes, bytes, bytes]],
        batch_size: int,
        context: grpc.ServicerContext,
    ) -> Iterator[pb.RecordBatch]:
        """Records in messages of ``batch_size``; counted in ``open_scanners`` and in the
        client's bounded stream slots (Config.max_streams_per_client) until the stream ends,
        fails or is cancelled (grpc closes the generator, which runs the ``finally``)."""
        release = self.streams.take(client_of(context.peer()))
        context.add_callback(release)
        gauge = self.c.metric_set.open_scanners
        gauge.inc()
        try:
            batch: list[pb.Record] = []
            size = 0
            for hk, sk, v in records:
                batch.append(pb.Record(hash_key=hk, sort_key=sk, value=v))
                size += len(hk) + len(sk) + len(v) + 16
                if len(batch) >= batch_size or size >= SCANNER_BATCH_BYTES:
                    yield pb.RecordBatch(records=batch)
                    batch, size = [], 0
            if batch:
                yield pb.RecordBatch(records=batch)
        finally:
            gauge.dec()
            release()

    @typed_stream
    def ScanRange(
        self, request: pb.ScanRangeRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.RecordBatch]:
        t = self._table(request.table, request.hash_key, None, False)
        records = t.get_scanner(
            request.hash_key,
            request.start_sort_key,
            request.stop_sort_key,
            start_inclusive=request.start_inclusive,
            stop_inclusive=request.stop_inclusive,
            sort_key_filter=_filter(request.sort_key_filter),
            batch_size=request.batch_size,
            no_value=request.no_value,
        )
        return self._stream(records, request.batch_size, context)

    @typed_stream
    def ScanFiltered(
        self, request: pb.ScanFilteredRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.RecordBatch]:
        t, parts = self._partitions(request)
        records = t.scan_partitions(
            [p.pidx for p in parts],
            hash_key_filter=_filter(request.hash_key_filter),
            sort_key_filter=_filter(request.sort_key_filter),
            batch_size=request.batch_size,
            no_value=request.no_value,
        )
        return self._stream(records, request.batch_size, context)

    @typed
    def Incr(self, request: pb.IncrRequest, context: grpc.ServicerContext) -> pb.IncrReply:
        t = self._table(request.table, request.hash_key, request.sort_key, True)
        value = t.incr(request.hash_key, request.sort_key, request.increment, _opt(request, "ttl_seconds"))
        return pb.IncrReply(value=value)

    @typed
    def CheckAndSet(self, request: pb.CheckAndSetRequest, context: grpc.ServicerContext) -> pb.CheckReply:
        t = self._table(request.table, request.hash_key, request.check_sort_key, True)
        res = t.check_and_set(
            request.hash_key,
            request.check_sort_key,
            request.check_type,
            request.check_operand,
            request.set_sort_key,
            request.set_value,
            _opt(request, "ttl_seconds"),
            request.return_check_value,
        )
        return _check_reply(res)

    @typed
    def CheckAndMutate(
        self, request: pb.CheckAndMutateRequest, context: grpc.ServicerContext
    ) -> pb.CheckReply:
        t = self._table(request.table, request.hash_key, request.check_sort_key, True)
        res = t.check_and_mutate(
            request.hash_key,
            request.check_sort_key,
            request.check_type,
            request.check_operand,
            [_mutation(m) for m in request.mutations],
            request.return_check_value,
        )
        return _check_reply(res)


__all__ = ["DataApiHandlers"]
