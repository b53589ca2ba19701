"""Duplication's Follower port over the wire: a served follower cluster, driven by its source.

Only ids, bytes and chunk iterators cross the port, so each method is one
call of the follower service (pegasus_fast.proto). Transport failures are
RemoteUnavailableError (TRANSIENT: the duplication keeps its state and
retries with backoff); errors the follower raised arrive as their own classes.

Applies, the steady stream, go to the follower's Pegasus port when its Identity
names one (:class:`DupPort`: OP_DUP_APPLY, its token in the request, answered by
the follower's front end's batch loop and sent by the Rust client with the GIL
released): a gRPC call costs each side several times its apply. Not with TLS
(the token would cross that port in the clear), nor with PEGASUS_FAST_DUPLICATION=grpc;
a port that fails or refuses sends them over gRPC again.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from ..duplication.ports import Chunk, Follower, ManifestEntry, SourceId
from ..errors import (
    AuthenticationError,
    ClosedError,
    DuplicationError,
    InvalidArgumentError,
    PegasusFastError,
    PermissionDeniedError,
    RemoteUnavailableError,
    with_fix,
)
from ..logs import get
from . import pegasus_fast_pb2 as pb
from . import pegasus_fast_pb2_grpc as rpc
from .channels import Channels
from .pegasus import codes
from .pegasus.call_client import client_core
from .wire import (
    auth_metadata,
    call,
    decode_error,
    error_from_rpc,
    is_url,
    parse_hostport,
    parse_url,
    tls_from_env,
    token_from_env,
)

log = get(__name__)

#: a follower call that takes longer is given up and retried (the calls are idempotent)
CALL_TIMEOUT = 60.0
#: a checkpoint copy's deadline: this long, plus a second per 16 MiB
COPY_TIMEOUT = 120.0
COPY_BYTES_PER_SECOND = 16 << 20
#: one apply stream ends (and is opened again) within this long; the shipper caps what it carries
STREAM_TIMEOUT = 300.0
#: a verification's digest of a partition (a full scan of it) is given up after this long
VERIFY_TIMEOUT = 3600.0
#: an Apply's deadline: this long, plus a second per 16 MiB it carries
APPLY_TIMEOUT = 10.0
#: room kept in a shipped batch for the message around the blocks
_ENVELOPE = 64 << 10
#: a batch this small fits any follower (Config.max_message_bytes is 8 MiB at least): sent
#: without asking the follower its limit first
_ALWAYS_FITS = 4 << 20
#: "grpc": this process neither sends its duplications' applies to a follower's Pegasus port
#: nor, served, takes them on its own
DUPLICATION_ENV = "PEGASUS_FAST_DUPLICATION"
#: the largest batch sent to a Pegasus port (its frames are bounded: larger ones go by gRPC)
PORT_MAX_BLOCKS = 32 << 20
#: an apply on a Pegasus port is given up after this long (its socket's timeout)
PORT_TIMEOUT = APPLY_TIMEOUT + PORT_MAX_BLOCKS / COPY_BYTES_PER_SECOND
#: after a failure on a follower's Pegasus port its applies go by gRPC for this long (s), twice
#: as long after each further failure in a row, up to PORT_RETRY_MAX; then the follower's
#: Identity is asked again (a restarted follower's port may be another) and the port tried
PORT_RETRY = 30.0
PORT_RETRY_MAX = 900.0


def dup_grpc_only() -> bool:
    """Whether this process keeps duplication applies to gRPC (DUPLICATION_ENV)."""
    return os.environ.get(DUPLICATION_ENV, "") == "grpc"


class DupPort:
    """A follower's Pegasus port for applies, as its last Identity named it (one per URL, kept
    across a duplication's reconnections): ``core()`` is the client to send on, or None for
    gRPC (none named, TLS, or failed or refused lately)."""

    def __init__(self, url: str, usable: bool) -> None:
        self.url = url
        self._usable = usable
        self._lock = threading.Lock()
        self._target = ""
        self._core: Any = None
        self._down_until = 0.0
        #: failures in a row (each doubles the time on gRPC)
        self._failures = 0
        #: a failure since the last Identity: ask it again before the port is tried again
        self._stale = False

    def learn(self, target: str) -> None:
        """What the follower's Identity names ("" none)."""
        if not self._usable:
            return
        with self._lock:
            self._stale = False
            if target != self._target:
                self._drop()
                self._target = target
                self._down_until = 0.0
                self._failures = 0

    def identity_due(self) -> bool:
        """Whether the follower's Identity must be asked before the port is tried again."""
        return self._stale and time.monotonic() >= self._down_until

    def core(self) -> Any:
        with self._lock:
            if not self._target or self._stale or time.monotonic() < self._down_until:
                return None
            if self._core is None:
                # the port named, on the host the duplication names: its token goes nowhere else
                # (a port on every interface is reached there too; one on another interface
                # only is not, and the applies stay on gRPC)
                try:
                    port = parse_hostport(self._target).port
                    self._core = client_core(parse_url(self.url).host, port, PORT_TIMEOUT)
                except (PegasusFastError, OSError) as exc:
                    self._fail(f"failed: {exc}")
                    return None
            return self._core

    def ok(self) -> None:
        if self._failures:
            with self._lock:
                self._failures = 0

    def failed(self, why: object, refused: bool = False) -> None:
        """A call on the port failed (or it ``refused`` applies): gRPC for a while."""
        with self._lock:
            self._fail(f"{'refused them' if refused else 'failed'}: {why}")

    def _fail(self, why: str) -> None:
        self._failures += 1
        wait = min(PORT_RETRY * 2 ** min(self._failures - 1, 16), PORT_RETRY_MAX)
        if self._failures == 1:
            log.warning(
                "duplication applies to %s go over gRPC for a while: its Pegasus port %s %s",
                self.url,
                self._target,
                why,
            )
        self._down_until = time.monotonic() + wait
        self._stale = True
        self._drop()

    def _drop(self) -> None:
        core, self._core = self._core, None
        if core is not None:
            core.close()

    def close(self) -> None:
        with self._lock:
            self._target = ""
            self._drop()


def _source_pb(source: SourceId) -> pb.SourceId:
    return pb.SourceId(
        cluster=source.cluster, cluster_uid=source.cluster_uid, table=source.table, dupid=source.dupid
    )


def _manifest(manifest: list[ManifestEntry]) -> list[pb.ManifestEntry]:
    return [pb.ManifestEntry(name=n, size=s, blake3=d) for n, s, d in manifest]


#: how to give a duplication the follower's token (the CLI's flag, the API's argument)
GIVE_TOKEN = "add_dup --remote-token-file FILE (remote_token= in the API)"


def token_advice(url: str, presented: bool | None, permission: bool) -> str:
    """How to give a duplication the token ``url`` wants: the follower refused its token
    (``permission``: the token's role may not call the Follower service). ``presented``: whether
    it showed one (None: not known). The token that counts is the duplication's own (a served
    source never shows a follower its own token, nor the $PEGASUS_FAST_TOKEN of whoever added
    the duplication)."""
    if permission:
        return (
            f"the duplication's token may not call {url}'s Follower service: give a replication "
            f"token of {url} (its --replication-token-file, or its --token-file) with {GIVE_TOKEN}"
        )
    if presented:
        return f"the duplication's token is not one {url} takes: give {url}'s token with {GIVE_TOKEN}"
    shown = f"presents no token to {url}, which needs one" if presented is False else f"is refused by {url}"
    return (
        f"the duplication {shown}. The token that counts is the duplication's own: a source "
        f"server shows a follower neither its --token-file nor the $PEGASUS_FAST_TOKEN of whoever "
        f"added it. Give {url}'s token with {GIVE_TOKEN}"
    )


def token_fix(exc: AuthenticationError, url: str, presented: bool) -> AuthenticationError:
    """The follower refused the duplication's token: say which token is missing and how to give
    it (token_advice)."""
    fix = token_advice(url, presented, isinstance(exc, PermissionDeniedError))
    return with_fix(exc, fix)  # type: ignore[return-value]


class RemoteFollower:
    """A follower cluster served at a pegasus:// URL."""

    def __init__(
        self,
        url: str,
        channel: grpc.Channel,
        token: str | None,
        source: SourceId | None = None,
        port: DupPort | None = None,
    ) -> None:
        """``source``: the duplication this follower serves; every call names it (the follower
        takes a table's calls only from the duplication it follows). ``port``: its Pegasus port
        for applies (None: gRPC only)."""
        self.url = url
        self._src = None if source is None else _source_pb(source)
        self._stub = rpc.FollowerStub(channel)
        self._token = token or ""
        self._port = port
        self._md = auth_metadata(token)
        #: the largest message the follower takes (IdentityReply), 0 until asked
        self.message_limit = 0
        self._lock = threading.Lock()
        self._in_flight: set[grpc.Future] = set()
        self._cancelled = False

    def _call(self, method: str, request: object, timeout: float = CALL_TIMEOUT) -> object:
        fn = getattr(self._stub, method)
        with self._lock:
            if self._cancelled:
                raise RemoteUnavailableError(self.url, "the duplication is stopping")
            future = call(self.url, fn.future, request, timeout=timeout, metadata=self._md)
            self._in_flight.add(future)
        try:
            return call(self.url, future.result)
        except AuthenticationError as exc:
            raise token_fix(exc, self.url, bool(self._md)) from None
        except grpc.FutureCancelledError:
            raise RemoteUnavailableError(self.url, "the duplication is stopping") from None
        finally:
            with self._lock:
                self._in_flight.discard(future)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            calls = list(self._in_flight)
        for future in calls:
            future.cancel()

    def identity(self) -> tuple[int, str]:
        r = self._call("Identity", pb.Empty())
        assert isinstance(r, pb.IdentityReply)
        self.message_limit = r.max_message_bytes
        if self._port is not None:
            self._port.learn(r.dup_apply_address)
        return r.cluster_id, r.cluster_uid

    def max_batch_bytes(self) -> int:
        """The most WAL bytes one Apply may carry to this follower."""
        if not self.message_limit:
            self.identity()
        return max(1, self.message_limit - _ENVELOPE)

    def ensure_table(self, table: str, partition_count: int, source: SourceId, with_checkpoint: bool) -> None:
        src = _source_pb(source)
        self._call(
            "EnsureTable",
            pb.EnsureTableRequest(
                table=table, partition_count=partition_count, source=src, with_checkpoint=with_checkpoint
            ),
        )

    def partition_statuses(self, table: str, count: int) -> list[tuple[bool, int]]:
        r = self._call(
            "PartitionStatus", pb.PartitionStatusRequest(table=table, count=count, source=self._src)
        )
        assert isinstance(r, pb.PartitionStatusReply)
        if len(r.partitions) != count:
            raise DuplicationError(f"{self.url} answered {len(r.partitions)} partition statuses, not {count}")
        return [(p.learned, p.source_decree) for p in r.partitions]

    def learn_empty(self, table: str, decrees: dict[int, int]) -> None:
        self._call("LearnEmpty", pb.LearnEmptyRequest(table=table, decrees=decrees, source=self._src))

    def take_over(
        self,
        table: str,
        source: SourceId,
        decrees: dict[int, int],
        back_remote: str,
        back_token: str | None = None,
    ) -> tuple[int, dict[int, int]]:
        src = pb.SourceId(
            cluster=source.cluster, cluster_uid=source.cluster_uid, table=source.table, dupid=source.dupid
        )
        r = self._call(
            "TakeOver",
            pb.TakeOverRequest(
                table=table, source=src, decrees=decrees, back_remote=back_remote, back_token=back_token
            ),
        )
        assert isinstance(r, pb.TakeOverReply)
        return r.dupid, dict(r.applied)

    def learn_snapshot(self, table: str, pidx: int, decree: int, block: bytes) -> None:
        self._call(
            "LearnSnapshot",
            pb.LearnSnapshotRequest(table=table, pidx=pidx, decree=decree, block=block, source=self._src),
        )

    def checkpoint_offsets(
        self, table: str, pidx: int, decree: int, manifest: list[ManifestEntry]
    ) -> dict[str, int]:
        req = pb.CheckpointRequest(
            table=table, pidx=pidx, decree=decree, manifest=_manifest(manifest), source=self._src
        )
        r = self._call("CheckpointOffsets", req)
        assert isinstance(r, pb.CheckpointOffsetsReply)
        return dict(r.offsets)

    def learn_checkpoint(
        self, table: str, pidx: int, decree: int, manifest: list[ManifestEntry], chunks: Iterable[Chunk]
    ) -> None:
        header = pb.CheckpointRequest(
            table=table, pidx=pidx, decree=decree, manifest=_manifest(manifest), source=self._src
        )

        def pieces() -> Iterator[pb.CheckpointPiece]:
            yield pb.CheckpointPiece(header=header)
            for c in chunks:
                yield chunk_piece(c)
            # says the transfer is whole: a stream that ends without it was cut short
            yield pb.CheckpointPiece(end=pb.Empty())

        total = sum(size for _, size, _ in manifest)
        self._call("LearnCheckpoint", pieces(), timeout=COPY_TIMEOUT + total / COPY_BYTES_PER_SECOND)

    def mark_learned(self, table: str, pidxs: list[int]) -> None:
        self._call("MarkLearned", pb.MarkLearnedRequest(table=table, pidxs=pidxs, source=self._src))

    def restart_learning(self, table: str, pidxs: list[int]) -> None:
        self._call("RestartLearning", pb.MarkLearnedRequest(table=table, pidxs=pidxs, source=self._src))

    def apply(self, table: str, pidx: int, blocks: bytes, skipped_through: int = 0) -> int:
        if len(blocks) > _ALWAYS_FITS and len(blocks) > self.max_batch_bytes():
            # one WAL block larger than the follower takes: it could never be shipped (Pegasus #1840
            # retried such a batch forever); stop and say so instead
            raise DuplicationError(
                f"a batch of {len(blocks)} bytes exceeds the follower's message limit {self.message_limit} "
                "(its max_message_bytes: serve it with a larger --max-message-bytes)"
            )
        if self._cancelled:
            raise RemoteUnavailableError(self.url, "the duplication is stopping")
        # a blocking call, not a future: a future's reply comes through gRPC's channel thread and
        # a hand-off that cost a steady stream of writes 0.2 ms a batch at p50 and 4 ms at p99. It
        # cannot be cancelled, so its deadline is short: stopping waits for it at most that long
        request = pb.ApplyRequest(
            table=table, pidx=pidx, blocks=blocks, skipped_through=skipped_through, source=self._src
        )
        port = self._port if len(blocks) <= PORT_MAX_BLOCKS else None
        if port is not None and port.identity_due():
            self.identity()  # a restarted follower's port may be another
        core = port.core() if port is not None else None
        if core is not None:
            decree = self._apply_on_port(core, request)
            if decree is not None:
                return decree
        timeout = APPLY_TIMEOUT + len(blocks) / COPY_BYTES_PER_SECOND
        try:
            r = call(self.url, self._stub.Apply, request, timeout=timeout, metadata=self._md)
        except AuthenticationError as exc:
            raise token_fix(exc, self.url, bool(self._md)) from None
        return r.source_decree

    def _apply_on_port(self, core: Any, request: pb.ApplyRequest) -> int | None:
        """``request`` sent to the follower's Pegasus port: its durable decree, or None when the
        port failed or refused it (the caller sends it over gRPC: an apply may be sent twice,
        the follower skips what it holds). The follower's own errors are raised, typed."""
        assert self._port is not None
        request.token = self._token
        try:
            error, result = core.call(codes.OP_DUP_APPLY, 0, 0, (request.SerializeToString(),))
        except (PegasusFastError, OSError) as exc:
            self._port.failed(exc)
            return None
        finally:
            request.token = ""
        if error != codes.ERR_OK:  # ERR_HANDLER_NOT_FOUND: it takes them over gRPC only now
            self._port.failed(error, refused=True)
            return None
        self._port.ok()
        status, value = result
        if status != codes.K_OK:
            exc = decode_error(value, self.url, "a duplication apply failed")
            if isinstance(exc, AuthenticationError):
                # as gRPC's refusal reads: this URL refused the call, and why
                auth = type(exc)(self.url, getattr(exc, "reason", "") or "")
                raise token_fix(auth, self.url, bool(self._md))
            raise exc
        try:
            return pb.ApplyReply.FromString(value).source_decree
        except DecodeError as exc:
            raise RemoteUnavailableError(self.url, f"an apply reply that does not decode: {exc}") from None

    def apply_stream(self, table: str, pidx: int, batches: Iterable[tuple[bytes, int]]) -> Iterator[int]:
        limit = self.max_batch_bytes()
        oversize: list[int] = []

        def requests() -> Iterator[pb.ApplyRequest]:
            for blocks, skipped in batches:
                if len(blocks) > limit:
                    oversize.append(len(blocks))
                    return  # ends the stream; raised below, in the caller's thread
                yield pb.ApplyRequest(
                    table=table, pidx=pidx, blocks=blocks, skipped_through=skipped, source=self._src
                )

        with self._lock:
            if self._cancelled:
                raise RemoteUnavailableError(self.url, "the duplication is stopping")
            stream = self._stub.ApplyStream(requests(), timeout=STREAM_TIMEOUT, metadata=self._md)
            self._in_flight.add(stream)
        try:
            while True:
                try:
                    reply = next(stream)
                except StopIteration:
                    break
                except grpc.RpcError as exc:
                    if self._cancelled:
                        raise RemoteUnavailableError(self.url, "the duplication is stopping") from None
                    raise error_from_rpc(exc, self.url) from None
                yield reply.source_decree
        finally:
            stream.cancel()
            with self._lock:
                self._in_flight.discard(stream)
        if oversize:
            raise DuplicationError(
                f"a batch of {oversize[0]} bytes exceeds the follower's message limit {self.message_limit} "
                "(its max_message_bytes: serve it with a larger --max-message-bytes)"
            )

    def advance(self, table: str, pidx: int, source_decree: int) -> None:
        self._call(
            "Advance",
            pb.AdvanceRequest(table=table, pidx=pidx, source_decree=source_decree, source=self._src),
        )

    def verify_view(self, table: str, pidx: int, decree: int, timeout: float | None) -> tuple[str, int, int]:
        req = pb.VerifyViewRequest(
            table=table, pidx=pidx, decree=decree, timeout_seconds=timeout, source=self._src
        )
        r = self._call(
            "VerifyView", req, timeout=VERIFY_TIMEOUT if timeout is None else timeout + CALL_TIMEOUT
        )
        assert isinstance(r, pb.VerifyViewReply)
        return r.view, r.committed, r.source_held

    def verify_digest(
        self, view: str, now: int, start: bytes, end: bytes | None
    ) -> list[tuple[bytes, int, bytes]]:
        r = self._call(
            "VerifyDigest", pb.VerifyRangeRequest(view=view, now=now, start=start, end=end), VERIFY_TIMEOUT
        )
        assert isinstance(r, pb.VerifyDigestReply)
        return [(c.last_key, c.count, c.digest) for c in r.chunks]

    def verify_records(
        self, view: str, now: int, start: bytes, end: bytes | None, limit: int
    ) -> list[tuple[bytes, int, bytes]]:
        req = pb.VerifyRangeRequest(view=view, now=now, start=start, end=end, limit=limit)
        r = self._call("VerifyRecords", req, VERIFY_TIMEOUT)
        assert isinstance(r, pb.VerifyRecordsReply)
        return [(x.key, x.expire_ts, x.value) for x in r.records]

    def verify_release(self, view: str) -> None:
        self._call("VerifyRelease", pb.VerifyViewRef(view=view))


def chunk_piece(c: Chunk) -> pb.CheckpointPiece:
    """A checkpoint chunk as the piece a stream carries, its data copied once: built as
    ``CheckpointPiece(chunk=Chunk(data=...))`` it was copied twice, each time with the GIL
    held (0.25 ms of a primary's reads per 256 KiB chunk while a secondary learns)."""
    piece = pb.CheckpointPiece()
    out = piece.chunk
    out.name = c.name
    out.offset = c.offset
    out.data = c.data
    out.crc32c = c.crc32c
    return piece


class RemoteConnector:
    """Finds the follower at a pegasus:// URL; one channel per URL (channels.py), reused across
    retries (gRPC reconnects it by itself once the remote is back)."""

    def __init__(self, env_token: bool = True) -> None:
        """``env_token``: a remote given no token is shown this process's $PEGASUS_FAST_TOKEN
        (an embedded cluster's default); a served cluster passes False, so a duplication someone
        adds over the wire shows only the ``remote_token`` it was given, never the server's own."""
        self._channels: Channels[tuple[grpc.Channel, DupPort]] = Channels(
            lambda url, channel: (
                channel,
                DupPort(url, not dup_grpc_only() and not any(tls_from_env().values())),
            )
        )
        self._env_token = env_token

    def connect(self, remote: str, token: str | None = None, source: SourceId | None = None) -> Follower:
        if not is_url(remote):
            raise InvalidArgumentError(f"not a served cluster's URL: {remote!r}")
        url = parse_url(remote).url
        try:
            channel, port = self._channels.get(url)
        except ClosedError:
            raise RemoteUnavailableError(url, "the cluster is closing") from None
        if token is None and self._env_token:
            token = token_from_env()
        return RemoteFollower(url, channel, token, source, port)

    def close(self) -> None:
        """Close every channel, ending the calls in flight; no new one is opened after this.
        The channels close in a thread of their own, never in a cluster's close (a slow link
        takes as long to close as its queued bytes take to send)."""
        for _channel, port in self._channels.kept():
            port.close()
        self._channels.close(wait=False)


__all__ = [
    "DUPLICATION_ENV",
    "PORT_RETRY",
    "DupPort",
    "RemoteConnector",
    "RemoteFollower",
    "chunk_piece",
    "dup_grpc_only",
]
