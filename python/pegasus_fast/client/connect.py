"""``pf.connect(url)``: a served cluster (pegasus://) or a multi-node cluster (zk://)."""

from __future__ import annotations

from ..errors import InvalidArgumentError
from .remote import RemoteCluster
from .routed import RoutedCluster


def connect(
    url: str,
    token: str | None = None,
    tls_ca: str | None = None,
    timeout: float | None = None,
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    zk_auth_file: str | None = None,
) -> RemoteCluster | RoutedCluster:
    """A served cluster at ``pegasus://host:port`` (nothing is sent until the first call), or a
    multi-node cluster at ``zk://HOST:PORT[,HOST:PORT...]/CHROOT`` (its configuration is read
    from ZooKeeper now). ``token`` defaults to PEGASUS_FAST_TOKEN; ``timeout`` (seconds)
    bounds each call. ``zk_auth_file``: a zk:// cluster's ZooKeeper credentials, one line
    ``user:password`` (defaults to $PEGASUS_FAST_ZK_AUTH_FILE; none: an open cluster)."""
    if isinstance(url, str) and url.startswith("zk://"):
        return RoutedCluster(
            url, token, tls_ca, timeout, tls_cert=tls_cert, tls_key=tls_key, zk_auth_file=zk_auth_file
        )
    if zk_auth_file is not None:
        raise InvalidArgumentError("zk_auth_file is for a zk:// cluster")
    return RemoteCluster(url, token, tls_ca, timeout, tls_cert=tls_cert, tls_key=tls_key)


__all__ = ["connect"]
