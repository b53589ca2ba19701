"""Serve an open Cluster: gRPC (client, follower and health services), a token, TLS, /metrics.

``serve(cluster, listen="127.0.0.1:0")`` returns a running :class:`Server`;
``Server.stop()`` stops accepting, finishes the calls in flight, lets the
duplications ship what is durable, and (when it owns it) closes the cluster.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ..config import Config
from ..duplication.status import DupStatus
from ..engine.cluster import Cluster
from ..errors import InvalidArgumentError, InvalidTypeError
from ..logs import event, get
from ..net import pegasus_fast_pb2_grpc as rpc
from ..net.follower import dup_grpc_only
from ..net.wire import Address, parse_hostport
from .client_service import ClientService
from .follower_service import FollowerService
from .front import Front
from .roles import Tokens

if TYPE_CHECKING:
    from ..multinode.member import Member
    from .pegasus_front import PegasusFront
    from .pegasus_native import RustPegasusFront

log = get(__name__)

SERVICES = ("pegasus_fast.v1.Client", "pegasus_fast.v1.Follower")
#: how long stop() waits by default: calls in flight, then duplications shipping what is durable
STOP_GRACE = 2.0
DRAIN_GRACE = 1.5
#: how long a call let in may take to send its request (a unary call's, whole); then it is cancelled
BODY_TIMEOUT = 30.0

_SERVER_OPTIONS = [
    # a fixed flow-control window per stream, not one grown by BDP probing: a peer sending a
    # message past max_message_bytes has at most this much in flight when it is refused (with
    # BDP the windows grew until four refused 250 MiB messages cost 45-113 MiB under load);
    # 4 MiB keeps a stream at full speed here (benches/remote.py --only ship) and ~80 MB/s at
    # 50 ms round trips
    ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", 4 << 20),
    # clients ping every 10 s (wire.py); allow it
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
]


@dataclass(frozen=True)
class TLS:
    """PEM files: the server's certificate and key, and the CA that signs client certificates
    (given: clients must present one, mutual TLS)."""

    cert: str
    key: str
    client_ca: str | None = None

    def credentials(self) -> grpc.ServerCredentials:
        def read(path: str) -> bytes:
            with open(path, "rb") as f:
                return f.read()

        ca = read(self.client_ca) if self.client_ca else None
        return grpc.ssl_server_credentials(
            [(read(self.key), read(self.cert))], root_certificates=ca, require_client_auth=ca is not None
        )


def check_metrics_listen(metrics_listen: str, insecure: bool) -> None:
    """/metrics is plain HTTP without a token: beyond loopback (``0.0.0.0`` is every interface)
    only when asked for with ``insecure`` (``--insecure``), and then it is logged."""
    maddr = parse_hostport(metrics_listen)
    if not maddr.is_loopback() and not insecure:
        raise InvalidArgumentError(
            f"refusing to serve /metrics on {maddr.target}, which is not loopback: it is plain HTTP "
            "without a token (insecure=True / --insecure to serve it there anyway)"
        )


class Server:
    """A served cluster; a context manager that stops it on exit."""

    def __init__(
        self,
        cluster: Cluster,
        listen: str,
        token: str | None,
        tls: TLS | None,
        insecure: bool,
        metrics_listen: str | None,
        owns_cluster: bool,
        member: Member | None = None,
        pegasus_listen: str | None = None,
        pegasus_allow: str | list[str] | None = None,
        body_timeout: float = BODY_TIMEOUT,
        *,
        max_message_bytes: int | None = None,
        client_token: str | None = None,
        admin_token: str | None = None,
        replication_token: str | None = None,
        backup_dir: str | None = None,
    ) -> None:
        """``token``: every call carries it (or one of the role tokens: ``client_token`` for
        data, ``admin_token`` for tables and duplications, ``replication_token`` for the
        Follower service; roles.py).
        ``member``: serve as a node of a multi-node cluster (multinode/member.py), which adds the
        Meta and Node services and answers only for the partitions the node owns.
        ``pegasus_listen``: also serve Pegasus's own client protocol there (pegasus_front.py),
        a non-loopback address only with ``pegasus_allow`` CIDRs.
        ``body_timeout``: how long a call may take to send its request once its headers came.
        ``max_message_bytes``: the largest message taken or sent (default: the cluster's
        ``Config.max_message_bytes``); a larger one is refused as it arrives.
        ``backup_dir``: the directory Backup and Restore name their backups in (None: refused)."""
        if not isinstance(cluster, Cluster):
            raise InvalidTypeError("serve() takes an open pegasus_fast.Cluster")
        tokens = self._tokens = Tokens(token, client_token, admin_token, replication_token)
        addr = parse_hostport(listen)
        if pegasus_listen is not None:
            from .pegasus_front import check_listen

            check_listen(pegasus_listen, pegasus_allow)  # refused before any port is bound
        if not addr.is_loopback() and not insecure and (tls is None or not tokens.required):
            raise InvalidArgumentError(
                f"refusing to listen on {addr.target}, which is not loopback, without both TLS and a "
                "token (or insecure=True / --insecure)"
            )
        if metrics_listen is not None:
            check_metrics_listen(metrics_listen, insecure)
        self.cluster = cluster
        self._owns_cluster = owns_cluster
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        if (
            not isinstance(body_timeout, (int, float))
            or isinstance(body_timeout, bool)
            or not body_timeout > 0
        ):
            raise InvalidArgumentError("body_timeout is a number of seconds > 0")
        if max_message_bytes is None:
            max_message_bytes = cluster.config.max_message_bytes
        else:
            Config(max_message_bytes=max_message_bytes)  # the knob's checks
        #: the largest message this server takes or sends
        self.max_message_bytes = int(max_message_bytes)
        limits = [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
        ]
        self._front = Front(
            cluster.name,
            tokens,
            float(body_timeout),
            [*limits, *_SERVER_OPTIONS],
            cluster.metric_set.requests,
            log,
        )
        self._backup_dir = backup_dir
        self._metrics_http: Any = None
        self.pegasus: PegasusFront | RustPegasusFront | None = None
        try:
            self._start(cluster, addr, tls, metrics_listen, member, pegasus_listen, pegasus_allow)
        except BaseException:
            if self.pegasus is not None:
                self.pegasus.stop()
            if self._metrics_http is not None:
                self._metrics_http.shutdown()
                self._metrics_http.server_close()
            self._front.stop(0)
            raise

    def _start(
        self,
        cluster: Cluster,
        addr: Address,
        tls: TLS | None,
        metrics_listen: str | None,
        member: Member | None,
        pegasus_listen: str | None,
        pegasus_allow: str | list[str] | None,
    ) -> None:
        grpc_server = self._front.server
        meta = None
        self.pegasus_address: Address | None = None

        # pf.connect's Pegasus-port client (client/native.py) sends every partition to the one
        # address it is given; a node's Pegasus port refuses the partitions the node does not own
        # (a Pegasus client then asks the meta query again, and goes to their owners; ours does not
        # route), so pf.connect of a node keeps to gRPC, which routes
        def data() -> str:
            return "" if self.pegasus_address is None or member is not None else self.pegasus_address.target

        if member is not None:
            from ..multinode.meta import Meta
            from ..multinode.placement import Placement
            from .node_services import MetaService, NodeService

            meta = Meta(member, Placement(member))
            rpc.add_MetaServicer_to_server(MetaService(meta), grpc_server)
            rpc.add_NodeServicer_to_server(NodeService(cluster, member), grpc_server)
        client_service = ClientService(cluster, member, meta, data, self._backup_dir)
        rpc.add_ClientServicer_to_server(client_service, grpc_server)
        follower_service = FollowerService(cluster, member, meta, self.max_message_bytes)
        rpc.add_FollowerServicer_to_server(follower_service, grpc_server)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, grpc_server)
        if tls is None:
            port = self._front.on_loop(grpc_server.add_insecure_port, addr.target)
        else:
            port = self._front.on_loop(grpc_server.add_secure_port, addr.target, tls.credentials())
        if port == 0:
            raise OSError(f"cannot listen on {addr.target}")
        self.address = Address(addr.host, port)
        self.url = self.address.url
        # where a switchover's new primary reaches this cluster when the caller names nowhere
        client_service.self_url = self.url
        self.tls = tls is not None
        self.metrics_url: str | None = None
        if metrics_listen is not None:
            from prometheus_client import start_http_server

            maddr = parse_hostport(metrics_listen)
            httpd, _thread = start_http_server(maddr.port, maddr.host, registry=cluster.metric_set.registry)
            self._metrics_http = httpd
            bound = Address(maddr.host, httpd.server_port).target
            if not maddr.is_loopback():
                log.warning(
                    "/metrics served on %s, beyond loopback: plain HTTP, no token (insecure=True)",
                    bound,
                    extra=event(metrics_listen=bound),
                )
            self.metrics_url = f"http://{bound}/metrics"
        if pegasus_listen is not None:
            from ..net.pegasus import BatchHandler
            from .follower_service import PortApplies
            from .pegasus_native import open_front

            # a duplication's source may send its applies here (net/follower.py): its token
            # travels in the request, so not with TLS (it would cross this port in the clear).
            # On a node an apply waits in the batch loop for its secondaries, whose ports answer
            # replication apart from their own batches (BatchHandler.side_batch)
            applies = (
                PortApplies(follower_service, self._tokens) if tls is None and not dup_grpc_only() else None
            )
            handler = None
            if member is not None:
                from ..multinode.links import grpc_only
                from ..multinode.pegasus_view import PegasusView

                # a node answers only what it owns and names each partition's owner in the
                # meta query; it takes replication on this port, but not with TLS (the token
                # would cross it in the clear), nor with role tokens only (none of them may
                # call the Node service), nor when told to keep it to gRPC
                tokens = self._tokens
                view = PegasusView(
                    member,
                    replication=tls is None
                    and not grpc_only()
                    and (tokens.all is not None or not tokens.required),
                    token=tokens.all,
                )
                handler = BatchHandler(cluster, placement=view, dup_applies=applies)
            elif applies is not None:
                handler = BatchHandler(cluster, dup_applies=applies)
            # the Rust front end with the Rust backend, the asyncio one otherwise
            self.pegasus = open_front(cluster, pegasus_listen, pegasus_allow, handler=handler)
            self.pegasus_address = self.pegasus.address
            if handler is not None and handler.dup_applies is not None:
                follower_service.dup_apply_address = self.pegasus_address.target
        self._front.run(grpc_server.start())
        for name in ("", *SERVICES):
            self._front.run(self._health.set(name, health_pb2.HealthCheckResponse.SERVING))

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Server(url={self.url!r}, cluster={self.cluster.name!r})"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops; False on timeout."""
        return self._stopped.wait(timeout)

    def stop(self, grace: float | None = None) -> None:
        """Stop accepting, let calls in flight finish (``grace`` seconds, default 2), let the
        duplications ship what is durable (up to 1.5 s more), then close the cluster if the
        server opened it. Safe to call twice."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            grace = STOP_GRACE if grace is None else grace
            self._front.run(self._health.enter_graceful_shutdown())
            if self.pegasus is not None:
                self.pegasus.stop()
            self._front.stop(grace)
            self._front.refusals.flush()
            if self._metrics_http is not None:
                self._metrics_http.shutdown()
                self._metrics_http.server_close()
            try:
                if not self.cluster.closed:
                    _drain(self.cluster, DRAIN_GRACE)
                if self._owns_cluster:
                    self.cluster.close()
            finally:
                self._stopped.set()


def _drain(cluster: Cluster, seconds: float) -> None:
    """Give duplications in DS_LOG up to ``seconds`` to ship what is durable."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        busy = [
            d
            for d in cluster.duplications()
            if d.status == DupStatus.LOG
            and d.connected.is_set()
            and any(p.pending_mutations for p in d.progress())
        ]
        if not busy:
            return
        for d in busy:
            d.wake()
        time.sleep(0.01)


def serve(
    cluster: Cluster,
    listen: str = "127.0.0.1:0",
    token: str | None = None,
    tls: TLS | None = None,
    *,
    insecure: bool = False,
    metrics_listen: str | None = None,
    pegasus_listen: str | None = None,
    pegasus_allow: str | list[str] | None = None,
    body_timeout: float = BODY_TIMEOUT,
    max_message_bytes: int | None = None,
    client_token: str | None = None,
    admin_token: str | None = None,
    replication_token: str | None = None,
    backup_dir: str | None = None,
) -> Server:
    """Serve ``cluster`` on ``listen`` (port 0: a free one) until ``stop()``; the cluster stays the
    caller's to close. ``pegasus_listen="HOST:PORT"`` also serves Pegasus's own client protocol
    (``server.pegasus_address``), beyond loopback only to the ``pegasus_allow`` CIDRs.
    ``body_timeout``: seconds a call may take to send its request once its headers came.
    ``max_message_bytes``: the largest message taken or sent (default: the cluster's Config).
    ``token`` may call anything; ``client_token`` only the data API, ``admin_token`` only tables
    and duplications, ``replication_token`` only the Follower service (a duplication source).
    ``backup_dir``: where Backup and Restore over the wire keep their backups (None: refused)."""
    return Server(
        cluster,
        listen,
        token,
        tls,
        insecure,
        metrics_listen,
        owns_cluster=False,
        pegasus_listen=pegasus_listen,
        pegasus_allow=pegasus_allow,
        body_timeout=body_timeout,
        max_message_bytes=max_message_bytes,
        client_token=client_token,
        admin_token=admin_token,
        replication_token=replication_token,
        backup_dir=None if backup_dir is None else os.path.abspath(backup_dir),
    )


__all__ = ["TLS", "Server", "check_metrics_listen", "serve"]
