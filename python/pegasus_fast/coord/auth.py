"""Who may read and change a multi-node cluster's znodes: ZooKeeper digest ACLs.

A cluster served with ``serve --zk-auth-file FILE`` (one line ``user:password``)
makes every znode with a digest ACL that gives that identity every permission
and nobody else any: no one without the credentials can read the cluster's
configuration, or rewrite ``/nodes/<id>`` to send clients (and their token)
elsewhere. Its clients give the same file (``pf.connect(url, zk_auth_file=...)``,
``--zk-auth-file``, or ``$PEGASUS_FAST_ZK_AUTH_FILE``). Without a file a cluster's
znodes are open to every ZooKeeper client, as before.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Any

from kazoo.security import make_digest_acl

from ..errors import InvalidArgumentError

#: the credentials file a client uses when none is given
AUTH_FILE_ENV = "PEGASUS_FAST_ZK_AUTH_FILE"


@dataclass(frozen=True)
class ZkAuth:
    user: str
    password: str

    def auth_data(self) -> list[tuple[str, str]]:
        return [("digest", f"{self.user}:{self.password}")]

    def acl(self) -> list[Any]:
        """Every permission to this identity, none to anyone else."""
        return [make_digest_acl(self.user, self.password, all=True)]

    def __repr__(self) -> str:
        return f"ZkAuth(user={self.user!r})"  # never the password


def read_auth_file(path: str) -> ZkAuth:
    """``user:password`` from ``path``, which only its owner may read."""
    try:
        st = os.stat(path)
        with open(path, encoding="utf-8") as f:
            lines = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read the ZooKeeper credentials file {path}: {exc}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InvalidArgumentError(
            f"the ZooKeeper credentials file {path} is open to group or others "
            f"(mode {stat.S_IMODE(st.st_mode):o}): chmod 600 it"
        )
    user, sep, password = lines[0].partition(":") if len(lines) == 1 else ("", "", "")
    if not sep or not user or not password:
        raise InvalidArgumentError(f"the ZooKeeper credentials file {path} is not one line user:password")
    return ZkAuth(user, password)


def auth_of(path: str | None) -> ZkAuth | None:
    """The credentials of ``path``, else of ``$PEGASUS_FAST_ZK_AUTH_FILE``, else none."""
    path = path if path is not None else os.environ.get(AUTH_FILE_ENV) or None
    return None if path is None else read_auth_file(path)


__all__ = ["AUTH_FILE_ENV", "ZkAuth", "auth_of", "read_auth_file"]
