"""What both ends of the wire share: URLs, channel options, credentials, and how errors travel.

An error of :mod:`pegasus_fast.errors` raised on the server travels in the
call's trailing metadata as JSON (class name, args, attributes) and is raised
on the client as the same class with the same attributes. Anything else comes
back as :class:`~pegasus_fast.errors.RemoteError` (or ``OSError`` with its
errno), and the transport's own failures as :class:`RemoteUnavailableError`
or :class:`AuthenticationError`, naming the URL.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from .. import errors
from ..errors import (
    AuthenticationError,
    InvalidArgumentError,
    InvalidTypeError,
    PegasusFastError,
    RemoteError,
    RemoteUnavailableError,
)
from ..records import MAX_WRITE

SCHEME = "pegasus://"
DEFAULT_PORT = 34801
#: the largest message either side sends or takes: the largest write, plus room for its framing.
#: A WAL block never exceeds MAX_WRITE plus a header, so a shipped batch always fits (Pegasus #1840).
MESSAGE_LIMIT = MAX_WRITE + (4 << 20)
ERROR_KEY = "pegasus-fast-error-bin"
#: the resource a message past the limit names (Config.max_message_bytes)
MESSAGE_BYTES = "max_message_bytes"
_SIZES = re.compile(r"\((\d+) vs\. (\d+)\)")
TOKEN_ENV = "PEGASUS_FAST_TOKEN"

CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MESSAGE_LIMIT),
    ("grpc.max_receive_message_length", MESSAGE_LIMIT),
    # a peer that vanished (or a network that stalls) is noticed within ~15 s, not at the next write
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # reconnect quickly once the remote is back
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    @property
    def target(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return SCHEME + self.target

    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_hostport(text: object, default_port: int | None = DEFAULT_PORT) -> Address:
    """``host:port`` or ``[v6]:port`` (the port may be 0 for a server: a free one)."""
    if not isinstance(text, str):
        raise InvalidTypeError(f"an address is a str 'host:port', not {type(text).__name__}")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if not sep or (rest and not rest.startswith(":")):
            raise InvalidArgumentError(f"malformed address {text!r}")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            host, port_text = text, ""
        if ":" in host:
            raise InvalidArgumentError(f"an IPv6 address goes in brackets: {text!r}")
    if not host:
        raise InvalidArgumentError(f"address {text!r} has no host")
    if not port_text:
        if default_port is None:
            raise InvalidArgumentError(f"address {text!r} has no port")
        return Address(host, default_port)
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise InvalidArgumentError(f"address {text!r} has no valid port")
    return Address(host, int(port_text))


def parse_url(url: object) -> Address:
    """``pegasus://host:port`` of a served cluster."""
    if not isinstance(url, str):
        raise InvalidTypeError(f"a cluster URL is a str, not {type(url).__name__}")
    if not url.startswith(SCHEME):
        raise InvalidArgumentError(f"a served cluster's URL starts with {SCHEME}: {url!r}")
    addr = parse_hostport(url[len(SCHEME) :].rstrip("/"))
    if addr.port == 0:
        raise InvalidArgumentError(f"{url!r} has port 0")
    return addr


def is_url(remote: object) -> bool:
    return isinstance(remote, str) and remote.startswith(SCHEME)


def token_from_env() -> str | None:
    return os.environ.get(TOKEN_ENV) or None


def read_token_file(path: str) -> str:
    """The token in ``path``, a file only its owner may read (one open to group or others is
    refused: anyone on the machine could take the token)."""
    try:
        st = os.stat(path)
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read the token file {path}: {exc}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InvalidArgumentError(
            f"the token file {path} is open to group or others (mode {stat.S_IMODE(st.st_mode):o}): chmod 600 it"
        )
    if not token:
        raise InvalidArgumentError(f"token file {path} is empty")
    return token


#: PEM files a duplicating process uses to reach TLS followers: the CA that signed them, and
#: for mutual TLS its own certificate and key
TLS_ENV = {
    "tls_ca": "PEGASUS_FAST_TLS_CA",
    "tls_cert": "PEGASUS_FAST_TLS_CERT",
    "tls_key": "PEGASUS_FAST_TLS_KEY",
}


def tls_from_env() -> dict[str, str | None]:
    return {k: os.environ.get(v) or None for k, v in TLS_ENV.items()}


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


def open_channel(
    addr: Address,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> grpc.Channel:
    if tls_ca is None and tls_cert is None:
        return grpc.insecure_channel(addr.target, options=CHANNEL_OPTIONS)
    creds = grpc.ssl_channel_credentials(
        root_certificates=_read(tls_ca), private_key=_read(tls_key), certificate_chain=_read(tls_cert)
    )
    return grpc.secure_channel(addr.target, creds, options=CHANNEL_OPTIONS)


def auth_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


# -- errors ----------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, BaseException):
        return repr(value)
    return str(value)


def status_of(exc: BaseException) -> grpc.StatusCode:
    E = errors
    if isinstance(exc, (E.TableNotFoundError, E.DuplicationNotFoundError)):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, E.TableExistsError):
        return grpc.StatusCode.ALREADY_EXISTS
    if isinstance(exc, (E.InvalidArgumentError, E.InvalidTypeError, E.UnsafePathError)):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, (E.PartitionUnavailableError, E.RemoteUnavailableError, E.ClosedError)):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(
        exc, (E.DataLossError, E.DataCorruptionError, E.ChecksumMismatchError, E.WalCorruptionError)
    ):
        return grpc.StatusCode.DATA_LOSS
    if isinstance(exc, (E.DuplicationError, E.FollowerTableError, E.TableMovedError)):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, E.ResourceExhaustedError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(exc, TimeoutError):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.INTERNAL


def encode_error(exc: BaseException) -> bytes:
    """The trailing-metadata form of an error raised while serving a call."""
    body: dict[str, Any] = {"type": type(exc).__name__, "args": _jsonable(list(exc.args))}
    if isinstance(exc, PegasusFastError):
        body["attrs"] = _jsonable({k: v for k, v in vars(exc).items() if not k.startswith("_")})
    elif isinstance(exc, OSError):
        body["type"] = "OSError"
        body["errno"] = exc.errno
        body["strerror"] = exc.strerror
        body["filename"] = exc.filename if isinstance(exc.filename, str) else None
    elif isinstance(exc, TimeoutError):
        body["type"] = "TimeoutError"
    return json.dumps(body).encode()


def _error_classes() -> dict[str, type[PegasusFastError]]:
    out = {}
    for name in dir(errors):
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, PegasusFastError):
            out[obj.__name__] = obj
    return out


_CLASSES = _error_classes()


def decode_error(raw: bytes, url: str, message: str) -> BaseException:
    """The error a server sent, raised here as the same class (never any other kind of object)."""
    try:
        body = json.loads(raw)
        name = body["type"]
        args = body.get("args", [])
        if not isinstance(name, str) or not isinstance(args, list):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        return RemoteError(url, "malformed error", message)
    cls = _CLASSES.get(name)
    if cls is not None:
        exc = cls.__new__(cls)
        Exception.__init__(exc, *args)
        attrs = body.get("attrs")
        if isinstance(attrs, dict):
            for k, v in attrs.items():
                if isinstance(k, str) and not k.startswith("_") and k != "retry":
                    setattr(exc, k, v)
        return exc
    if name == "OSError":
        errno_, strerror = body.get("errno"), body.get("strerror")
        if isinstance(errno_, int) and isinstance(strerror, str):
            fn = body.get("filename")
            return (
                OSError(errno_, f"{url}: {strerror}", fn)
                if isinstance(fn, str)
                else OSError(errno_, f"{url}: {strerror}")
            )
    if name == "TimeoutError":
        return TimeoutError(*[a for a in args if isinstance(a, str)])
    return RemoteError(url, name, message)


def error_from_rpc(exc: grpc.RpcError, url: str) -> BaseException:
    """The typed error a failed call stands for."""
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (exc.details() if isinstance(exc, grpc.Call) else "") or ""
    trailing = exc.trailing_metadata() if isinstance(exc, grpc.Call) else None
    for key, value in trailing or ():
        if key == ERROR_KEY and isinstance(value, bytes):
            return decode_error(value, url, details)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return AuthenticationError(url, details)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return errors.PermissionDeniedError(url, details)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
        return RemoteUnavailableError(
            url, f"{code.name.lower()}: {details}" if details else code.name.lower()
        )
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        # untyped, so the transport's: a message past a max_message_bytes (the server's, or
        # this channel's), which gRPC says as "... larger than max (SIZE vs. LIMIT)"
        sizes = _SIZES.search(details)
        got, limit = (int(sizes[1]), int(sizes[2])) if sizes else (0, 0)
        return errors.ResourceExhaustedError(MESSAGE_BYTES, limit, got)
    return RemoteError(url, code.name, details)


_R = TypeVar("_R")


def call(url: str, fn: Callable[..., _R], *args: Any, **kwargs: Any) -> _R:
    """One RPC, its failure raised as the typed error it stands for."""
    try:
        return fn(*args, **kwargs)
    except grpc.RpcError as exc:
        raise error_from_rpc(exc, url) from None


def replies(url: str, stream: Any) -> Iterator[Any]:
    """The messages of a streamed reply, its failures raised as the typed errors they stand
    for; the call is cancelled when the caller stops reading."""
    try:
        yield from stream
    except grpc.RpcError as exc:
        raise error_from_rpc(exc, url) from None
    finally:
        stream.cancel()
