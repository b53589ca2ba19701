"""Serve a batch of compact Pegasus requests against an embedded Cluster (DESIGN.md §11).

``BatchHandler.handle_batch(requests) -> responses`` is the one call a front end
makes per batch, whichever connections the requests came from (the asyncio front
end today, a Rust one later). The writes of one partition become one mutation:
one WAL append, one RocksDB write; the whole batch is made durable by one
fdatasync of the cluster's shared log (``storage.writes.wait_durable_shared``,
storage/slog.py), or without one by the fsyncs of its partitions' logs at once
(``wait_durable_all``: one backend call, the GIL released). A read sees every
write that arrived with or before it (it is applied), and nothing is answered
before every write of the batch is durable.

A front end may pipeline: ``begin_batch(requests)`` logs, applies and reads a
batch and returns a :class:`PendingBatch` whose fsyncs run on the pool;
``finish()`` waits for them and gives the answers. The front end takes the next
batch meanwhile, and answers batches in the order it began them, each once its
own fsyncs and every earlier batch's are done: a read of a later batch may see
an earlier batch's write, so it is held until that write is durable (the fence).
Errors map to Pegasus's answers as docs/pegasus-protocol.md §5 lists them (failures.py).
Each request's own work is elsewhere: reads.py (the read RPCs), writes.py (a write's
storage op), atomics.py, scanners.py and config_query.py (the meta query).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from ... import _backend
from ...errors import PegasusFastError, PermissionDeniedError, TableNotFoundError
from ...records import MAX_HASH_KEY, MAX_VALUE, MAX_WRITE, now_pegasus_seconds
from ...storage.writes import wait_durable_all, wait_durable_shared
from ..wire import encode_error
from . import atomics, codes
from .config_query import Placement, query_cfg
from .failures import InvalidRequest, failure, status_only
from .pending import Logged as _Logged
from .pending import PendingBatch, count
from .reads import MULTI_GET_MAX_COUNT, read
from .replies import Response
from .requests import Request
from .scanners import Scanners
from .writes import put_op, split_key, write_op

if TYPE_CHECKING:
    from ...engine.cluster import Cluster
    from ...engine.table import Table

log = logging.getLogger(__name__)

#: the verb a request is counted under (requests_total{service="pegasus"}): its op's RPC name;
#: a name no op has is "unknown" (a client cannot grow the label set with names of its own)
_VERBS: dict[int, str] = {op: name for name, op in codes.RPC_OPS.items()}
_VERBS[codes.OP_BAD_REQUEST] = "bad_request"

_OP_GET, _OP_PUT = codes.OP_GET, codes.OP_PUT
#: a get's result for an absent (or expired) record
_NOT_FOUND = (codes.K_NOT_FOUND, b"")


def _answer(req: Request, result: tuple[int, bytes]) -> Response:
    op, seqid, app_id, pidx, name, _ = req
    return op, seqid, app_id, pidx, name, codes.ERR_OK, result


def _verb(op: int) -> str:
    return _VERBS.get(op, "unknown")


#: batches whose WAL fsyncs may run at once (a pipelined front end begins the next batch while
#: the earlier ones' fsyncs run; one batch's partitions are synced together by wait_durable_all)
SYNC_WORKERS = 4


class DupApplies(Protocol):
    """A follower cluster's duplication applies taken on this port (OP_DUP_APPLY: the server's
    follower service, server/follower_service.py)."""

    def begin(self, request: bytes) -> Callable[[], bytes]:
        """Check and apply a serialized ApplyRequest (its token inside); the callable waits for
        it to be durable and returns the serialized ApplyReply. Raises the typed error the
        gRPC Apply would answer (AuthenticationError for a token it refuses)."""
        ...


#: a duplication apply answered with a failure: the value is the error (net/wire.encode_error)
DUP_APPLY_FAILED = codes.K_INVALID_ARGUMENT


class BatchHandler:
    """Answers compact requests from ``cluster``'s tables; one batch at a time (not thread-safe)."""

    def __init__(
        self,
        cluster: Cluster,
        multi_get_max_count: int = MULTI_GET_MAX_COUNT,
        placement: Placement | None = None,
        dup_applies: DupApplies | None = None,
    ) -> None:
        """``placement``: serve as a node of a multi-node cluster, answering only the partitions
        it owns and naming each partition's owner in the meta query; ``dup_applies``: take a
        duplication's applies here (a follower's; none: OP_DUP_APPLY is ERR_HANDLER_NOT_FOUND,
        and its source keeps to gRPC)."""
        self.cluster = cluster
        self.placement = placement
        self.dup_applies = dup_applies
        self.multi_get_max_count = multi_get_max_count
        self._tables: dict[int, Table] = {}
        self._sync_pool: ThreadPoolExecutor | None = None
        self.scanners = Scanners()
        #: batches its front end keeps begun and not yet answered at most: at 1 (the Rust front
        #: end's default) ``finish`` is called right after ``begin_batch``, so the batch's
        #: fsyncs run in ``finish`` on the calling thread rather than on the pool (two thread
        #: hand-offs less per batch); above 1 they start on the pool at once
        self.pipeline_depth = 2
        #: requests answered, by op and error, counted lock-free in finish() (one batch at a time)
        self.tally = cluster.metric_set.requests.tally("pegasus", _verb)
        #: a node's: its front end answers replication requests apart (side_batch), with a
        #: tally of their own (another thread writes it)
        self.takes_replication = placement is not None
        self.side_tally = cluster.metric_set.requests.tally("pegasus", _verb)

    def close(self) -> None:
        """Stop the fsync pool (a front end's stop calls it); a later batch starts it again."""
        pool, self._sync_pool = self._sync_pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    # -- tables -------------------------------------------------------------------

    def _table(self, app_id: int) -> Table | None:
        t = self._tables.get(app_id)
        if t is None:
            self._tables = {}
            for info in self.cluster.list_tables():
                try:
                    self._tables[info.app_id] = self.cluster.table(info.name)
                except TableNotFoundError:  # dropped meanwhile
                    pass
            t = self._tables.get(app_id)
        return t

    def _forget(self, app_id: int) -> None:
        self._tables.pop(app_id, None)

    # -- the batch ----------------------------------------------------------------

    def handle_batch(self, requests: Sequence[Request]) -> list[Response]:
        """Answers of ``requests``, every write of them durable."""
        return self._run(requests, False).finish()

    def begin_batch(self, requests: Sequence[Request]) -> PendingBatch:
        """Log, apply and read ``requests``; their fsyncs run on the pool. Answer them only by
        the returned batch's ``finish()``, after every batch begun before it is finished."""
        return self._run(requests, self.pipeline_depth > 1)

    def _run(self, requests: Sequence[Request], pipelined: bool) -> PendingBatch:
        start = time.perf_counter()
        out: list[Any] = [None] * len(requests)
        writes: dict[tuple[int, int], list[tuple[int, tuple[Any, ...], int]]] = {}
        reads: list[tuple[int, Table | None]] = []
        atomic: list[tuple[int, Table]] = []
        #: plain gets, routed by the fast path below: (request index, partition, key)
        gets: list[tuple[int, Any, bytes]] = []
        #: duplication applies begun (applied, not yet durable): (request index, their wait)
        applies: list[tuple[int, Callable[[], bytes]]] = []
        fast = self.placement is None
        partition_index = _backend.impl.partition_index
        for i, req in enumerate(requests):
            op, seqid, app_id, pidx, name, args = req
            if (op == _OP_GET or op == _OP_PUT) and fast:
                # the common read and write, routed inline (what _route does for them, without
                # its calls); anything unusual (an unknown table, a bad key, a misrouted one, a
                # value too big) goes the general way below, which answers it
                table = self._tables.get(app_id)
                key = args[0]
                if table is not None and 0 <= pidx < table.partition_count and len(key) >= 2:
                    n = (key[0] << 8) | key[1]
                    if n <= MAX_HASH_KEY and n + 2 <= len(key):
                        hk, sk = key[2 : 2 + n], key[2 + n :]
                        if partition_index(hk, table.partition_count, sk) == pidx:
                            if op == _OP_GET:
                                gets.append((i, table.partitions[pidx], key))
                                continue
                            value = args[1]
                            if len(value) <= MAX_VALUE and len(sk) <= MAX_VALUE:
                                item = (i, *put_op(hk, sk, value, args[2], len(key)))
                                group = writes.get((app_id, pidx))
                                if group is None:
                                    writes[(app_id, pidx)] = [item]
                                else:
                                    group.append(item)
                                continue
            try:
                if op in codes.WRITE_OPS or op in codes.READ_OPS or op in codes.ATOMIC_OPS:
                    table = self._route(req)
                    if isinstance(table, str):
                        out[i] = (op, seqid, app_id, pidx, name, table, None)
                    elif op in codes.WRITE_OPS:
                        wop, size = write_op(op, args)
                        writes.setdefault((app_id, pidx), []).append((i, wop, size))
                    elif op in codes.ATOMIC_OPS:
                        atomic.append((i, table))
                    else:
                        reads.append((i, table))
                elif op == codes.OP_QUERY_CFG:
                    cfg = query_cfg(self.cluster, self.placement, *args)
                    out[i] = (op, seqid, app_id, pidx, name, codes.ERR_OK, cfg)
                elif op == codes.OP_REPLICATE:
                    out[i] = self._replicate(req)
                elif op == codes.OP_DUP_APPLY:
                    if self.dup_applies is None:
                        out[i] = (op, seqid, app_id, pidx, name, codes.ERR_HANDLER_NOT_FOUND, None)
                    else:
                        applies.append((i, self.dup_applies.begin(args[0])))
                elif op in codes.SCANNER_OPS:
                    reads.append((i, None))
                elif op == codes.OP_BAD_REQUEST:
                    out[i] = (op, seqid, app_id, pidx, name, codes.ERR_INVALID_DATA, None)
                else:
                    out[i] = (op, seqid, app_id, pidx, name, codes.ERR_HANDLER_NOT_FOUND, None)
            except Exception as exc:
                out[i] = self._answer_failure(req, exc)
        logged: list[_Logged] = []
        for (app_id, pidx), items in writes.items():
            self._write_group(requests, out, app_id, pidx, items, logged)
        syncs = self._start_syncs(logged, pipelined)
        # an atomic write sees the plain writes of its batch (logged above, applied) and is
        # durable when it answers; reads see both
        for i, table in atomic:
            try:
                out[i] = self._atomic(requests[i], table)
            except Exception as exc:
                out[i] = self._answer_failure(requests[i], exc)
        if gets:
            now = now_pegasus_seconds()
            for i, part, key in gets:
                try:
                    value = part.get_at(key, now)
                except Exception as exc:
                    out[i] = self._answer_failure(requests[i], exc)
                    continue
                _, seqid, app_id, pidx, name, _ = requests[i]
                result = _NOT_FOUND if value is None else (codes.K_OK, value)
                out[i] = (_OP_GET, seqid, app_id, pidx, name, codes.ERR_OK, result)
        for i, maybe in reads:
            try:
                req = requests[i]
                out[i] = self._scanner(req) if maybe is None else read(req, maybe, self.multi_get_max_count)
            except Exception as exc:
                out[i] = self._answer_failure(requests[i], exc)
        # each begun apply's wait (its partition's WAL fsync), once every write of the batch
        # is logged and its syncs started: the applied partitions sync in turn, each group
        # commit taking what came meanwhile
        for i, wait in applies:
            try:
                out[i] = _answer(requests[i], (codes.K_OK, wait()))
            except Exception as exc:
                out[i] = self._answer_failure(requests[i], exc)
        return PendingBatch(self, requests, out, logged, syncs, start)

    def side_batch(self, requests: Sequence[Request]) -> list[Response]:
        """A primary's replication requests (OP_REPLICATE), answered apart from the batches of
        client requests, on a thread of their own (the front end's ``serve_side``). A node's
        client writes wait in their batch for their secondaries' acknowledgements; those come
        through the secondaries' own ports, where a batch may be waiting for this node's in
        turn: behind such batches, each side's replication request would wait for the
        other's (until the commit's timeout). Logging a replica waits for nothing remote."""
        start = time.perf_counter()
        out: list[Response] = []
        for req in requests:
            try:
                if req[0] == codes.OP_REPLICATE:
                    out.append(self._replicate(req))
                else:
                    op, seqid, app_id, pidx, name, _ = req
                    out.append((op, seqid, app_id, pidx, name, codes.ERR_HANDLER_NOT_FOUND, None))
            except Exception as exc:
                out.append(self._answer_failure(req, exc))
        count(self.side_tally, out, time.perf_counter() - start)
        return out

    def _replicate(self, req: Request) -> Response:
        """A primary's replication request (a node's port only): logged and made durable on
        this thread, as the batch's own writes are before they are answered."""
        op, seqid, app_id, pidx, name, args = req
        if self.placement is None:
            return op, seqid, app_id, pidx, name, codes.ERR_HANDLER_NOT_FOUND, None
        try:
            reply = self.placement.replicate(args[0])
        except PermissionDeniedError:
            return op, seqid, app_id, pidx, name, codes.ERR_ACL_DENY, None
        return op, seqid, app_id, pidx, name, codes.ERR_OK, (codes.K_OK, reply)

    def _answer_failure(self, req: Request, exc: BaseException) -> Response:
        op, seqid, app_id, pidx, name, _ = req
        if op == codes.OP_DUP_APPLY:
            # the source raises the same typed error the gRPC Apply would have sent
            if not isinstance(exc, PegasusFastError | OSError | TimeoutError):
                log.exception("pegasus front: a duplication apply failed", exc_info=exc)
            return _answer(req, (DUP_APPLY_FAILED, encode_error(exc)))
        error, status = failure(exc)
        if error == codes.ERR_UNKNOWN:
            log.exception("pegasus front: %s failed", name, exc_info=exc)
        if error == codes.ERR_OBJECT_NOT_FOUND:
            self._forget(app_id)
        if error != codes.ERR_OK or op == codes.OP_QUERY_CFG:
            return op, seqid, app_id, pidx, name, codes.ERR_UNKNOWN if error == codes.ERR_OK else error, None
        return op, seqid, app_id, pidx, name, codes.ERR_OK, status_only(op, status)

    def _route(self, req: Request) -> Table | str:
        """The table a replica request is for, or the error that makes a client re-query its
        configuration (a wrong app id or partition, a key of another partition)."""
        op, _, app_id, pidx, _, args = req
        table = self._table(app_id)
        if table is None or not 0 <= pidx < table.partition_count:
            return codes.ERR_OBJECT_NOT_FOUND
        if self.placement is not None:
            self.placement.check(table.name, pidx, op not in codes.READ_OPS)
        if op in (codes.OP_PUT, codes.OP_REMOVE, codes.OP_GET, codes.OP_TTL, codes.OP_INCR):
            hk, sk = split_key(args[0])
        elif op in (codes.OP_CHECK_AND_SET, codes.OP_CHECK_AND_MUTATE):
            hk, sk = args[0], args[1]
            if len(hk) > MAX_HASH_KEY:
                raise InvalidRequest(f"hash key of {len(hk)} bytes")
            if not hk and any(x != sk for x in atomics.written_sort_keys(op, args)):
                # each sort key would hash on its own: one partition could not hold them all
                raise InvalidRequest(
                    "an atomic write of other sort keys than the checked one needs a hash_key"
                )
        elif op == codes.OP_BATCH_GET:
            if not args[0]:
                raise InvalidRequest("batch_get needs at least one key")
            for hk, sk in args[0]:
                if len(hk) > MAX_HASH_KEY:
                    raise InvalidRequest(f"hash key of {len(hk)} bytes")
                if table.partition_index(hk, sk) != pidx:
                    return codes.ERR_PARENT_PARTITION_MISUSED
            return table
        else:
            hk, sk = args[0], b""
            if not hk:
                # with an empty hash key each sort key hashes on its own (Pegasus refuses this too)
                raise InvalidRequest("multi-record operations need a non-empty hash_key")
            if len(hk) > MAX_HASH_KEY:
                raise InvalidRequest(f"hash key of {len(hk)} bytes")
        if table.partition_index(hk, sk) != pidx:
            return codes.ERR_PARENT_PARTITION_MISUSED
        return table

    # -- durable writes -------------------------------------------------------------

    def _write_group(
        self,
        requests: Sequence[Request],
        out: list[Any],
        app_id: int,
        pidx: int,
        items: list[tuple[int, tuple[Any, ...], int]],
        logged: list[_Logged],
    ) -> None:
        """The writes of one partition as few mutations as the write-size limit allows, logged
        and applied; ``logged`` gets each mutation, to be made durable before it is answered."""
        table = self._tables.get(app_id)
        start = 0
        while start < len(items):
            end, total = start, 0
            while end < len(items) and (end == start or total + items[end][2] <= MAX_WRITE):
                total += items[end][2]
                end += 1
            chunk = items[start:end]
            start = end
            try:
                if table is None:
                    raise TableNotFoundError(f"app {app_id}")
                part = table.partitions[pidx]
                decree, offset, begin, block = part.write_logged([wop for _, wop, _ in chunk])
            except Exception as exc:
                for i, _, _ in chunk:
                    out[i] = self._answer_failure(requests[i], exc)
                continue
            logged.append((part, decree, offset, app_id, pidx, chunk, begin, block))

    def _start_syncs(
        self, logged: list[_Logged], pipelined: bool
    ) -> Future[list[BaseException | None]] | None:
        """The WAL fsyncs of the batch's partitions, all at once (``wait_durable_all``), on the
        pool when the caller goes on meanwhile (None: ``finish`` makes them durable itself)."""
        if not pipelined or not logged:
            return None
        if self._sync_pool is None:
            self._sync_pool = ThreadPoolExecutor(SYNC_WORKERS, thread_name_prefix="pegasus-fsync")
        return self._sync_pool.submit(self._make_durable, logged)

    def _make_durable(self, logged: list[_Logged]) -> list[BaseException | None]:
        """Every write of the batch durable: one fsync of the cluster's shared log, or (without
        one) the fsyncs of the partition logs at once. Each one's failure, or None."""
        if self.cluster.config.shared_log:
            return wait_durable_shared(
                self.cluster.shared_log, [(x[0], x[1], x[2], x[6], x[7]) for x in logged]
            )
        return wait_durable_all([(part, decree, offset) for part, decree, offset, *_ in logged])

    def finish_syncs(
        self,
        requests: Sequence[Request],
        out: list[Any],
        logged: list[_Logged],
        syncs: Future[list[BaseException | None]] | None,
    ) -> None:
        """A begun batch's answers to its writes, once they are durable (``PendingBatch.finish``):
        each an acknowledgement, or the failure of its partition's log."""
        if not logged:
            return
        if syncs is None:
            failures = self._make_durable(logged)
        else:
            failures = syncs.result()
        for (_, decree, _, app_id, pidx, chunk, _, _), exc in zip(logged, failures, strict=True):
            if exc is not None:
                for i, _, _ in chunk:
                    out[i] = self._answer_failure(requests[i], exc)
                continue
            for i, wop, _ in chunk:
                op, seqid, _, _, name, _ = requests[i]
                result = (
                    (codes.K_OK, len(wop[2]), decree) if op == codes.OP_MULTI_REMOVE else (codes.K_OK, decree)
                )
                out[i] = (op, seqid, app_id, pidx, name, codes.ERR_OK, result)

    def _atomic(self, req: Request, table: Table) -> Response:
        op, seqid, app_id, pidx, name, args = req
        p = table.partitions[pidx]
        result: tuple[Any, ...]
        if op == codes.OP_INCR:
            result = atomics.incr(p, *split_key(args[0]), args)
        elif op == codes.OP_CHECK_AND_SET:
            result = atomics.check_and_set(p, args)
        else:
            result = atomics.check_and_mutate(p, args)
        return op, seqid, app_id, pidx, name, codes.ERR_OK, result

    # -- scanners -------------------------------------------------------------------

    def _scanner(self, req: Request) -> Response | None:
        op, seqid, app_id, pidx, name, args = req
        if op == codes.OP_CLEAR_SCANNER:
            self.scanners.clear(args[0])
            return op, seqid, app_id, pidx, name, codes.ERR_OK, None
        table = self._table(app_id)
        if table is None or not 0 <= pidx < table.partition_count:
            return op, seqid, app_id, pidx, name, codes.ERR_OBJECT_NOT_FOUND, None
        if self.placement is not None:
            self.placement.check(table.name, pidx, False)
        if op == codes.OP_SCAN:
            result = self.scanners.next(app_id, pidx, args[0])
        else:
            result = self.scanners.open(app_id, pidx, table.partitions[pidx], args)
        return op, seqid, app_id, pidx, name, codes.ERR_OK, result
