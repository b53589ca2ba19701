"""Moving one partition to another node while writes continue: the data plane (issue #11).

The steps and who calls them are in pegasus_fast.proto (service Node). The
target takes the source's checkpoint files (each chunk checked by its crc32c,
every file by its BLAKE3 before RocksDB opens it), then the source's WAL blocks
with their own decrees and timetags (Partition.append_replica): a moved
partition is the source's copy, decree for decree, because duplication
progress is counted in those decrees. It is no duplication follower's apply,
which renumbers and filters.

Sync is the node agent's (server/node_services.py). Who may hand a partition
out or replace it is an :class:`~.admission.Admission` passed in (admission.py):
only the owner hands a partition out.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from .. import fileio
from ..duplication import learn
from ..duplication.checkpoints import read_chunks
from ..duplication.ports import Chunk, ManifestEntry
from ..engine.cluster import Cluster
from ..errors import (
    ClosedError,
    InvalidArgumentError,
    PartitionUnavailableError,
    RemoteUnavailableError,
    WalGapError,
)
from ..net import pegasus_fast_pb2 as pb
from ..net import pegasus_fast_pb2_grpc as rpc
from ..net.follower import chunk_piece
from ..net.peer import Peers
from ..net.serving import typed, typed_stream
from ..net.wire import auth_metadata, replies, token_from_env
from ..storage import checkpoint as ckpt
from ..storage.log_read import LogCursor, log_batches
from ..storage.partition import LEARNING, Partition
from .admission import Admission, Unowned

#: a pull's deadline; a source that vanishes is noticed sooner, by the channel's keepalive (wire.py)
PULL_TIMEOUT = 3600.0
#: where the target writes the checkpoint it pulls: the partition's open removes a leftover
#: (storage/checkpoint.py, remove_tmp_dirs), so a node killed mid-copy leaves nothing behind
STAGING = ckpt.TMP_PREFIX + "move-in"
_PIN = ckpt.TMP_PREFIX + "move-out."
_pins = itertools.count()
#: a checkpoint collected between its creation and its pinning is made again, this many times
_PIN_TRIES = 3
#: a Learn whose source collected the WAL after the checkpoint meanwhile pulls a newer one, this many times
LEARN_TRIES = 3


# -- the source's side --------------------------------------------------------------------


@contextmanager
def pinned_checkpoint(p: Partition) -> Iterator[tuple[int, str, list[ManifestEntry]]]:
    """A fresh checkpoint of ``p`` as (decree, directory, manifest), kept while it is read.

    Its files are hard-linked into a directory of our own: GC may remove the published
    ``checkpoint.<decree>`` meanwhile (a newer one is made), and the links keep the files.
    """
    for _ in range(_PIN_TRIES):
        info = p.checkpoint()
        pin = os.path.join(p.path, f"{_PIN}{os.getpid()}.{next(_pins)}")
        fileio.makedirs(pin, exist_ok=False)
        try:
            for name, _size, _digest in info.manifest:
                fileio.link(os.path.join(info.path, name), os.path.join(pin, name))
        except FileNotFoundError:
            fileio.rmtree(pin, ignore_errors=True)
            continue  # collected before it was linked: checkpoint again
        except BaseException:
            fileio.rmtree(pin, ignore_errors=True)
            raise
        break
    else:
        raise PartitionUnavailableError(p.table, p.pidx, "its checkpoints are collected as they are made")
    try:
        yield info.decree, pin, list(info.manifest)
    finally:
        fileio.rmtree(pin, ignore_errors=True)


# -- the target's side --------------------------------------------------------------------


def _manifest(entries: object) -> list[ManifestEntry]:
    return [(e.name, e.size, e.blake3) for e in entries]  # type: ignore[attr-defined]


def paced(chunks: Iterator[Chunk], max_bytes_per_sec: int) -> Iterator[Chunk]:
    """``chunks`` taken no faster than ``max_bytes_per_sec`` (0: as they come): the receiver
    reads slower, and the sender's flow control slows the copy at its source too."""
    if max_bytes_per_sec <= 0:
        yield from chunks
        return
    start, taken = time.monotonic(), 0
    for c in chunks:
        yield c
        taken += len(c.data)
        ahead = taken / max_bytes_per_sec - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)


def receive_checkpoint(
    p: Partition, pieces: Iterator[pb.CheckpointPiece], source: str, max_bytes_per_sec: int = 0
) -> int:
    """Install the checkpoint ``pieces`` carry into learning ``p``; returns its decree.

    Nothing is opened before every file has passed its BLAKE3 against the manifest: a bad
    piece, or a transfer cut short (no ``end`` piece: RemoteUnavailableError), leaves the
    partition as it was. A checkpoint whose decree is not its header's is refused once
    installed; the partition, still learning, serves none of it, and the next Learn replaces it.
    """
    if p.state != LEARNING:
        raise PartitionUnavailableError(p.table, p.pidx, p.state)
    first = next(pieces, None)
    if first is None or first.WhichOneof("piece") != "header":
        raise InvalidArgumentError("a checkpoint transfer starts with its header")
    h = first.header
    if (h.table, h.pidx) != (p.table, p.pidx):
        raise InvalidArgumentError(f"a checkpoint of {h.table}.{h.pidx} sent for {p.table}.{p.pidx}")
    manifest = _manifest(h.manifest)
    learn.check_manifest(manifest)

    def chunks() -> Iterator[Chunk]:
        for piece in pieces:
            kind = piece.WhichOneof("piece")
            if kind == "end":
                return
            if kind != "chunk":
                raise InvalidArgumentError("a checkpoint transfer has one header")
            c = piece.chunk
            yield Chunk(c.name, c.offset, c.data, c.crc32c)
        raise RemoteUnavailableError(source, "the checkpoint transfer ended before its end")

    staging = os.path.join(p.path, STAGING)
    fileio.rmtree(staging, ignore_errors=True)
    fileio.makedirs(staging, exist_ok=False)
    try:
        learn.receive_files(staging, manifest, paced(chunks(), max_bytes_per_sec))
        fileio.fsync_tree(staging)
        p.install_rdb(staging, own_copy=True)
    finally:
        fileio.rmtree(staging, ignore_errors=True)
    if p.last_committed != h.decree:
        raise InvalidArgumentError(
            f"the checkpoint holds decree {p.last_committed}, its header says {h.decree}"
        )
    return h.decree


class NodeTransfer(rpc.NodeServicer):
    """The Node service's moves over one open Cluster (Sync is the node agent's)."""

    def __init__(
        self,
        cluster: Cluster,
        token: str | None = None,
        admission: Admission | None = None,
        peers: Peers | None = None,
    ) -> None:
        """``token``: what this node presents to a source node (default: $PEGASUS_FAST_TOKEN);
        ``admission``: who may hand a partition out or replace it (default: :class:`Unowned`);
        ``peers``: the node's channels to the others (default: its own, closed by :meth:`close`)."""
        self.c = cluster
        self.admission: Admission = admission or Unowned()
        self._md = auth_metadata(token if token is not None else token_from_env())
        self._own_peers = peers is None
        self.peers = Peers(token) if peers is None else peers
        self._lock = threading.Lock()
        #: one Learn or CatchUp at a time per partition
        self._busy: dict[tuple[str, int], threading.Lock] = {}
        #: where each partition's last PullLog ended (a source's side)
        self._cursors: dict[tuple[str, int], LogCursor] = {}

    def close(self) -> None:
        if self._own_peers:
            self.peers.close()

    # -- helpers ------------------------------------------------------------------------

    def partition(self, table: str, pidx: int) -> Partition:
        try:
            t = self.c.table(table)
        except ClosedError:
            raise RemoteUnavailableError(self.c.path, "the cluster closed") from None
        if not 0 <= pidx < t.partition_count:
            raise InvalidArgumentError(f"table {table!r} has no partition {pidx}")
        return t.partitions[pidx]

    @contextmanager
    def _alone(self, p: Partition) -> Iterator[None]:
        with self._lock:
            lock = self._busy.setdefault((p.table, p.pidx), threading.Lock())
        with lock:
            yield

    def _stub(self, url: str) -> tuple[str, rpc.NodeStub]:
        peer = self.peers.get(url)
        return peer.url, peer.node

    def _pull_checkpoint(self, p: Partition, url: str, stub: rpc.NodeStub, max_bytes_per_sec: int = 0) -> int:
        ref = pb.PartitionRef(table=p.table, pidx=p.pidx)
        stream = stub.PullCheckpoint(ref, timeout=PULL_TIMEOUT, metadata=self._md)
        try:
            return receive_checkpoint(p, replies(url, stream), url, max_bytes_per_sec)  # type: ignore[arg-type]
        finally:
            stream.cancel()

    def _pull_log(self, p: Partition, url: str, stub: rpc.NodeStub, through: int) -> int:
        req = pb.PullLogRequest(table=p.table, pidx=p.pidx, after=p.last_committed, through=through)
        stream = stub.PullLog(req, timeout=PULL_TIMEOUT, metadata=self._md)
        try:
            for batch in replies(url, stream):
                p.append_replica(batch.blocks)  # type: ignore[attr-defined]
        finally:
            stream.cancel()
        return p.last_committed

    # -- the source's calls -------------------------------------------------------------

    @typed_stream
    def PullCheckpoint(
        self, request: pb.PartitionRef, context: grpc.ServicerContext
    ) -> Iterator[pb.CheckpointPiece]:
        p = self.partition(request.table, request.pidx)
        self.admission.hand_out(p)
        with pinned_checkpoint(p) as (decree, directory, manifest):
            entries = [pb.ManifestEntry(name=n, size=s, blake3=d) for n, s, d in manifest]
            header = pb.CheckpointRequest(table=p.table, pidx=p.pidx, decree=decree, manifest=entries)
            yield pb.CheckpointPiece(header=header)
            for c in read_chunks(directory, manifest, {}):
                yield chunk_piece(c)
            yield pb.CheckpointPiece(end=pb.Empty())

    @typed_stream
    def PullLog(self, request: pb.PullLogRequest, context: grpc.ServicerContext) -> Iterator[pb.LogBatch]:
        p = self.partition(request.table, request.pidx)
        self.admission.hand_out(p)
        with self._lock:
            cursor = self._cursors.setdefault((p.table, p.pidx), LogCursor())
        for blocks, last in log_batches(p, request.after, request.through, cursor=cursor):
            yield pb.LogBatch(blocks=blocks, last_decree=last)

    @typed
    def Fence(self, request: pb.PartitionRef, context: grpc.ServicerContext) -> pb.MoveReply:
        p = self.partition(request.table, request.pidx)
        self.admission.hand_out(p)
        decree = p.fence()
        self.admission.fenced(p)
        return pb.MoveReply(decree=decree)

    @typed
    def Unfence(self, request: pb.PartitionRef, context: grpc.ServicerContext) -> pb.Empty:
        self.partition(request.table, request.pidx).unfence()
        return pb.Empty()

    # -- the target's calls -------------------------------------------------------------

    @typed
    def Learn(self, request: pb.LearnPartitionRequest, context: grpc.ServicerContext) -> pb.MoveReply:
        p = self.partition(request.table, request.pidx)
        self.admission.replace(p)
        url, stub = self._stub(request.source_url)
        with self._alone(p):
            p.restart_learning()
            if p.state != LEARNING:
                raise PartitionUnavailableError(p.table, p.pidx, p.state)
            tries = 1
            while True:
                self._pull_checkpoint(p, url, stub, request.max_bytes_per_sec)
                try:
                    return pb.MoveReply(decree=self._pull_log(p, url, stub, 0))
                except WalGapError:
                    # a long copy: the source's periodic flush and GC took the WAL after the
                    # checkpoint meanwhile; a newer checkpoint has the WAL after it
                    if tries == LEARN_TRIES:
                        raise
                    tries += 1

    @typed
    def CatchUp(self, request: pb.LearnPartitionRequest, context: grpc.ServicerContext) -> pb.MoveReply:
        p = self.partition(request.table, request.pidx)
        self.admission.replace(p)
        url, stub = self._stub(request.source_url)
        with self._alone(p):
            if request.through and request.through == p.last_committed:
                return pb.MoveReply(decree=p.last_committed)  # a retry: caught up already
            if p.state != LEARNING:
                raise PartitionUnavailableError(p.table, p.pidx, p.state)
            if request.through and request.through < p.last_committed:
                raise InvalidArgumentError(
                    f"{p.table}.{p.pidx} is at decree {p.last_committed}, past {request.through}"
                )
            decree = self._pull_log(p, url, stub, request.through)
            if request.through and decree != request.through:
                raise WalGapError(p.wal.path, request.through, decree)
            return pb.MoveReply(decree=decree)


__all__ = ["LogCursor", "NodeTransfer", "log_batches", "pinned_checkpoint", "receive_checkpoint"]
