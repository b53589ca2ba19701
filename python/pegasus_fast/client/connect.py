"""``pf.connect(url)``: a served cluster (pegasus://) or a multi-node cluster (zk://)."""

from __future__ import annotations

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
) -> RemoteCluster | RoutedCluster:
    """A served cluster at ``pegasus://host:port`` (nothing is sent until the first call), or a
    multi-node cluster at ``zk://HOST:PORT[,HOST:PORT...]/CHROOT`` (its configuration is read
    from ZooKeeper now). ``token`` defaults to PEGASUS_FAST_TOKEN; ``timeout`` (seconds)
    bounds each call."""
    if isinstance(url, str) and url.startswith("zk://"):
        return RoutedCluster(url, token, tls_ca, timeout, tls_cert=tls_cert, tls_key=tls_key)
    return RemoteCluster(url, token, tls_ca, timeout, tls_cert=tls_cert, tls_key=tls_key)


__all__ = ["connect"]
