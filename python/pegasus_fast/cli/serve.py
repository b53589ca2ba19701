"""``pegasus-fast --cluster DIR serve``: serve a cluster until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import gc
import os
import signal
import threading
from dataclasses import fields

from ..client.network import Network
from ..config import Config
from ..coord.auth import read_auth_file
from ..coord.zk import connect, parse_zk
from ..engine.cluster import Cluster
from ..errors import InvalidArgumentError
from ..logs import FORMATS, LEVELS, event, get, install
from ..multinode.join import NODE_ID_FILE, join_cluster, node_id_of, node_uid_of
from ..multinode.member import Member
from ..multinode.ownership import Ownership
from ..net.wire import TOKEN_ENV, parse_hostport, read_token_file, token_from_env
from ..server.app import TLS, Server, check_metrics_listen
from ..server.roles import Tokens
from . import serve_file


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="serve the cluster over gRPC until SIGTERM/SIGINT")
    p.add_argument("--listen", default="127.0.0.1:34801", help="HOST:PORT (port 0: a free one)")
    p.add_argument("--ready-file", help="once serving, the URL is written here atomically")
    p.add_argument(
        "--metrics-listen",
        help="HOST:PORT for Prometheus /metrics over HTTP (plain, no token: beyond loopback only "
        "with --insecure, and logged)",
    )
    p.add_argument(
        "--token-file",
        help=f"a file (mode 600) holding the token that may call anything (else ${TOKEN_ENV})",
    )
    for role, what in (
        ("client", "the data API"),
        ("admin", "tables and duplications"),
        ("replication", "the Follower service (a duplication source)"),
    ):
        p.add_argument(
            f"--{role}-token-file", help=f"a file (mode 600) holding a token that may call only {what}"
        )
    p.add_argument(
        "--log-level",
        choices=LEVELS,
        default="info",
        help="the least severe log records written to stderr",
    )
    p.add_argument(
        "--log-format",
        choices=FORMATS,
        default="text",
        help="text: 'TIME LEVEL component: message key=value...'; json: one object a line with "
        "ts, level, component, msg and the event's fields",
    )
    p.add_argument(
        "--remote-token-file",
        action="append",
        default=[],
        metavar="URL=FILE",
        help="the token (in FILE, mode 600) a duplication shows the remote at URL (pegasus://HOST:PORT "
        "or zk://HOST:PORT/CHROOT, as the duplication names it) when it was added without a "
        "remote_token; repeatable, one per remote. A remote with none is shown no token: never "
        "this server's own",
    )
    p.add_argument("--tls-cert", help="PEM certificate of the server")
    p.add_argument("--tls-key", help="PEM private key of the server")
    p.add_argument("--tls-client-ca", help="PEM CA for client certificates (mutual TLS)")
    p.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback address without TLS and a token"
    )
    p.add_argument("--pegasus-listen", help="HOST:PORT (IPv4) to serve Pegasus's own client protocol on")
    p.add_argument(
        "--pegasus-allow",
        metavar="CIDR[,CIDR...]",
        help="peers the Pegasus port serves (needed for a non-loopback --pegasus-listen)",
    )
    p.add_argument(
        "--zk",
        metavar="HOST:PORT[,HOST:PORT...]/CHROOT",
        help="join the multi-node cluster whose configuration is in this ZooKeeper chroot",
    )
    p.add_argument(
        "--zk-auth-file",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="with --zk: ZooKeeper credentials, one line user:password, readable by its owner only; "
        "every znode the node makes is readable and writable by that identity alone (its "
        "clients give the same file); without it the cluster's znodes are open",
    )
    p.add_argument(
        "--backup-dir",
        metavar="DIR",
        help="where `backup`/`restore` over --connect keep their backups, each a directory named "
        "by the caller (made if missing, mode 700); without it they are refused",
    )
    p.add_argument(
        "--node-id", help="with --zk: this node's id (kept in DIR; made on first start if not given)"
    )
    p.add_argument(
        "--config-file",
        metavar="FILE",
        help='a TOML file with any of these flags as keys (listen = "HOST:PORT", insecure = true, '
        'cluster = "DIR", ...) and Config knobs in a [config] table; a flag given here wins '
        "(docs/configuration.md)",
    )
    p.add_argument(
        "--check-config",
        action="store_true",
        help="check the settings (file and flags merged, token and TLS files read, Config knobs "
        "in bounds), print them as TOML and exit: 0 if a start would take them, 2 if not; "
        "nothing is opened or served",
    )
    p.add_argument(
        "--max-message-bytes",
        type=int,
        metavar="BYTES",
        help="the largest gRPC message taken or sent; a larger one is refused as it arrives "
        f"(Config.max_message_bytes, default {Config().max_message_bytes})",
    )
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a pegasus_fast.Config knob (repeatable), e.g. small_partition_max_bytes=1048576",
    )


log = get(__name__)


def _config(items: list[str], base: dict[str, object] | None = None) -> Config:
    """``KEY=VALUE`` knobs, each converted to its Config field's type, over ``base`` (the
    ``[config]`` table of a --config-file); Config checks the values."""
    kinds = {f.name: str(f.type) for f in fields(Config)}
    values: dict[str, object] = dict(base or {})
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or key not in kinds:
            raise InvalidArgumentError(f"--config takes KEY=VALUE naming a Config field, not {item!r}")
        kind = kinds[key]
        try:
            values[key] = _knob(kind, text)
        except ValueError:
            raise InvalidArgumentError(f"--config {key} takes {kind.split()[0]}, not {text!r}") from None
    return Config(**values)  # type: ignore[arg-type]


def _knob(kind: str, text: str) -> object:
    """The text of a --config value as its field's type (``int | None``: an int or ``none``)."""
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise ValueError(text)
        return text.lower() == "true"
    if kind.endswith("| None") and text.lower() == "none":
        return None
    if kind.startswith("int"):
        return int(text)
    return float(text) if kind == "float" else text


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file is None:
        return token_from_env()
    return read_token_file(args.token_file)


def _role_tokens(args: argparse.Namespace) -> dict[str, str | None]:
    """``client_token``, ``admin_token``, ``replication_token`` of the role token files given."""
    out: dict[str, str | None] = {}
    for role in ("client", "admin", "replication"):
        path = getattr(args, f"{role}_token_file", None)
        out[f"{role}_token"] = None if path is None else read_token_file(path)
    return out


def _remote_tokens(args: argparse.Namespace, own: list[str | None]) -> dict[str, str]:
    """``--remote-token-file URL=FILE`` items: URL -> the token in FILE (owner-only, and none of
    this server's own tokens: those are never shown to a remote)."""
    out: dict[str, str] = {}
    check = Network()
    for item in getattr(args, "remote_token_file", None) or []:
        url, sep, path = item.partition("=")
        if not sep or not url or not path:
            raise InvalidArgumentError(f"--remote-token-file takes URL=FILE, not {item!r}")
        url = check.canonical(url)
        if url in out:
            raise InvalidArgumentError(f"--remote-token-file names {url} twice")
        token = read_token_file(path)
        if token in own:
            raise InvalidArgumentError(
                f"the token file {path} for {url} holds one of this server's own tokens: a remote "
                "is never shown those; give it a token of its own"
            )
        out[url] = token
    return out


def _tls(args: argparse.Namespace) -> TLS | None:
    if args.tls_cert is None and args.tls_key is None:
        if args.tls_client_ca is not None:
            raise InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if args.tls_cert is None or args.tls_key is None:
        raise InvalidArgumentError("TLS needs both --tls-cert and --tls-key")
    return TLS(args.tls_cert, args.tls_key, args.tls_client_ca)


def _backup_dir(path: str | None) -> str | None:
    if path is None:
        return None
    path = os.path.abspath(path)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _check_only(
    args: argparse.Namespace, token: str | None, tls: TLS | None, roles: dict[str, str | None]
) -> None:
    """What a start would refuse before it opens anything, refused the same way here."""
    if args.zk is None and args.node_id is not None:
        raise InvalidArgumentError("--node-id needs --zk")
    if args.zk is None and getattr(args, "zk_auth_file", None) is not None:
        raise InvalidArgumentError("--zk-auth-file needs --zk")
    if args.zk is not None:
        parse_zk(args.zk)
        path = getattr(args, "zk_auth_file", None)
        if path is not None:
            read_auth_file(path)
    addr = parse_hostport(args.listen)
    tokens = Tokens(token, roles["client_token"], roles["admin_token"], roles["replication_token"])
    if not addr.is_loopback() and not args.insecure and (tls is None or not tokens.required):
        raise InvalidArgumentError(
            f"refusing to listen on {addr.target}, which is not loopback, without both TLS and a "
            "token (or --insecure)"
        )
    if args.metrics_listen is not None:
        check_metrics_listen(args.metrics_listen, args.insecure)
    if args.pegasus_listen is not None:
        from ..server.pegasus_front import check_listen

        check_listen(args.pegasus_listen, args.pegasus_allow)


def _write_ready(path: str, url: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(url + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def settle_gc() -> None:
    """Once serving: what startup made (modules, descriptors, the cluster's tables) frozen out
    of the cyclic collector's reach. A full collection walks every object it tracks while
    holding the GIL: in a served node it took 15-30 ms, every thread stalled (benches/
    replica_learn.py with gc.callbacks timing it: a primary's get p99 jumped to that in the
    window where one fell); with startup's objects frozen it walks only what came later, and
    none took over 3 ms in the same run."""
    gc.collect()
    gc.freeze()


def run(
    args: argparse.Namespace,
    knobs: dict[str, object] | None = None,
    parser: argparse.ArgumentParser | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT; ``knobs``: the Config knobs of a --config-file, under
    those of --config; ``parser``: serve's own (--check-config prints its flags' settings)."""
    if not args.cluster:
        raise InvalidArgumentError('serve needs --cluster DIR (or `cluster = "DIR"` in --config-file)')
    install(args.log_level, args.log_format)
    token, tls, config = _token(args), _tls(args), _config(args.config, knobs)
    if args.max_message_bytes is not None:
        config = dataclasses.replace(config, max_message_bytes=args.max_message_bytes)
    roles = _role_tokens(args)
    remote_tokens = _remote_tokens(args, [token, *roles.values()])
    if args.check_config:
        _check_only(args, token, tls, roles)
        if parser is not None:
            print(serve_file.effective(args, parser, config), end="", flush=True)
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # `kill -USR2 PID`: every thread's stack on stderr, the server going on (a hung stop or call)
    faulthandler.register(signal.SIGUSR2, all_threads=True, chain=False)
    member = None
    if args.zk is None:
        if args.node_id is not None:
            raise InvalidArgumentError("--node-id needs --zk")
        if getattr(args, "zk_auth_file", None) is not None:
            raise InvalidArgumentError("--zk-auth-file needs --zk")
        network = Network(env_token=False, remote_tokens=remote_tokens)
        cluster = Cluster.open(args.cluster, name=args.name, config=config, network=network)
    else:
        cluster, member = _join(args, config, token, remote_tokens)
    try:
        server = Server(
            cluster,
            args.listen,
            token,
            tls,
            insecure=args.insecure,
            metrics_listen=args.metrics_listen,
            owns_cluster=True,
            member=member,
            pegasus_listen=args.pegasus_listen,
            pegasus_allow=args.pegasus_allow,
            backup_dir=_backup_dir(args.backup_dir),
            **roles,
        )
        if member is not None:
            member.start(server.url, server.pegasus_address.target if server.pegasus_address else "")
    except BaseException:
        if member is not None:
            member.stop()
        cluster.close()
        raise
    try:
        print(server.url, flush=True)
        if server.metrics_url:
            print(f"metrics: {server.metrics_url}", flush=True)
        if server.pegasus_address is not None:
            print(f"pegasus: {server.pegasus_address.target}", flush=True)
        log.info(
            "serving %s at %s",
            cluster.name,
            server.url,
            extra=event(
                cluster=cluster.name,
                url=server.url,
                metrics=server.metrics_url or "",
                pegasus=server.pegasus_address.target if server.pegasus_address else "",
                node=member.node_id if member is not None else "",
                pid=os.getpid(),
            ),
        )
        settle_gc()
        if args.ready_file:
            _write_ready(args.ready_file, server.url)
        while not stop.wait(0.5):
            pass
        log.info("stopping", extra=event(cluster=cluster.name))
    finally:
        if member is not None:
            member.stop()  # leave the cluster first: its leader and clients stop sending here
        server.stop()
    return 0


def _join(
    args: argparse.Namespace, config: Config, token: str | None, remote_tokens: dict[str, str]
) -> tuple[Cluster, Member]:
    """Open the node's directory as a node of the cluster in ZooKeeper."""
    addr = parse_zk(args.zk)
    path = getattr(args, "zk_auth_file", None)
    auth = read_auth_file(path) if path is not None else None
    zk = connect(addr, create=True, session_timeout=config.zk_session_timeout_seconds, auth=auth)
    try:
        doc = join_cluster(zk, addr)
        if args.name is not None and args.name != doc.name:
            raise InvalidArgumentError(f"the cluster at {addr.spec} is {doc.name!r}, not {args.name!r}")
        # a node owns a share of each table's partitions: the others are never opened
        config = dataclasses.replace(config, open_rocksdb_eagerly=False)
        ownership = Ownership()
        cluster = Cluster.open(
            args.cluster,
            name=doc.name,
            config=config,
            cluster_id=doc.cluster_id,
            uid=doc.uid,
            duplication_scope=ownership.scope,
            network=Network(env_token=False, remote_tokens=remote_tokens),
        )
        try:
            if not os.path.exists(os.path.join(cluster.path, NODE_ID_FILE)) and cluster.list_tables():
                # a node's tables are the cluster's: it drops those ZooKeeper does not list
                raise InvalidArgumentError(
                    f"{cluster.path} holds tables of a cluster that was never a node: serve it "
                    "without --zk, or give a new directory"
                )
            node_id = node_id_of(cluster.path, args.node_id)
            member = Member(zk, addr, cluster, node_id, token, ownership, node_uid_of(cluster.path))
            # a live node of another directory holds this id: refused before anything serves
            member.registration.check()
            return cluster, member
        except BaseException:
            cluster.close()
            raise
    except BaseException:
        zk.stop()
        zk.close()
        raise
