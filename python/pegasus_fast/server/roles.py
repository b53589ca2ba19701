"""Which methods a served cluster's tokens may call: one token for every role (``token``), or a
token per role — a client's (data), an admin's (tables and duplications), a replication source's
(the Follower service).

The guard (app.py) finds the token a call carries among the server's (each compared in constant
time) and lets the call in only when the method is in that token's role; a known token outside
its role is PERMISSION_DENIED (PermissionDeniedError), an unknown one UNAUTHENTICATED.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from ..errors import AuthenticationError, InvalidArgumentError, PermissionDeniedError

_CLIENT = "/pegasus_fast.v1.Client/"
_FOLLOWER = "/pegasus_fast.v1.Follower/"
_HEALTH = "/grpc.health.v1.Health/"

#: what any role may ask: who the cluster is and which tables it has
COMMON = frozenset(f"{_CLIENT}{m}" for m in ("Info", "ListTables", "GetTable", "Health"))
DATA = frozenset(
    f"{_CLIENT}{m}"
    for m in (
        "Set",
        "Get",
        "Delete",
        "MultiSet",
        "MultiGet",
        "MultiDelete",
        "Count",
        "Scan",
        "Ttl",
        "SortKeyCount",
        "MultiGetRange",
        "BatchGet",
        "ScanRange",
        "ScanFiltered",
        "Incr",
        "CheckAndSet",
        "CheckAndMutate",
    )
)
ADMIN = frozenset(
    f"{_CLIENT}{m}"
    for m in (
        "CreateTable",
        "DropTable",
        "PartitionStats",
        "Checkpoint",
        "Compact",
        "Backup",
        "Restore",
        "AddDuplication",
        "ListDuplications",
        "QueryDuplication",
        "DuplicationProgress",
        "WaitDuplication",
        "PauseDuplication",
        "ResumeDuplication",
        "RemoveDuplication",
        "VerifyDuplication",
        "UpdateDuplication",
        "SetTableEnvs",
        "Switchover",
    )
)

ROLES = ("client", "admin", "replication")


def allowed(role: str, method: str) -> bool:
    """Whether a token of ``role`` may call ``method`` (a gRPC path); role "all" may call any."""
    if role == "all" or method.startswith(_HEALTH) or method in COMMON:
        return True
    if role == "client":
        return method in DATA
    if role == "admin":
        return method in ADMIN
    if role == "replication":
        return method.startswith(_FOLLOWER)
    return False


@dataclass(frozen=True)
class Tokens:
    """A served cluster's tokens: ``all`` may call anything (the one-token setup); each of the
    others only its role's methods. No token at all: every call is let in."""

    all: str | None = None
    client: str | None = None
    admin: str | None = None
    replication: str | None = None

    def __post_init__(self) -> None:
        given = [t for t in (self.all, self.client, self.admin, self.replication) if t is not None]
        for t in given:
            if not isinstance(t, str) or not t or t != t.strip():
                raise InvalidArgumentError("a token is a non-empty str without surrounding whitespace")
        if len(set(given)) != len(given):
            raise InvalidArgumentError("each role's token must differ from the others")

    @property
    def required(self) -> bool:
        return any(t is not None for t in (self.all, self.client, self.admin, self.replication))

    def bearers(self) -> list[tuple[bytes, str]]:
        """(``Bearer <token>`` as bytes, its role) for each token given."""
        pairs = [("all", self.all), ("client", self.client), ("admin", self.admin)]
        pairs.append(("replication", self.replication))
        return [(f"Bearer {t}".encode(), role) for role, t in pairs if t is not None]


def role_of(bearers: list[tuple[bytes, str]], got: bytes) -> str | None:
    """The role of the ``authorization`` value ``got`` (every token compared, in constant time)."""
    found = None
    for want, role in bearers:
        if hmac.compare_digest(got, want):
            found = role
    return found


def refusal(bearers: list[tuple[bytes, str]], got: bytes, method: str) -> AuthenticationError | None:
    """Why a call of ``method`` whose ``authorization`` value is ``got`` is refused (None: let
    in, as is everything when the server has no token): an unknown token is
    AuthenticationError, a known one outside its role PermissionDeniedError."""
    if not bearers:
        return None
    role = role_of(bearers, got)
    if role is None:
        return AuthenticationError("", "missing token" if not got else "wrong token")
    if not allowed(role, method):
        return PermissionDeniedError("", f"a {role} token may not call {method}")
    return None


#: the method a duplication's apply on a Pegasus port stands for (OP_DUP_APPLY)
FOLLOWER_APPLY = f"{_FOLLOWER}Apply"

__all__ = ["ADMIN", "COMMON", "DATA", "FOLLOWER_APPLY", "ROLES", "Tokens", "allowed", "refusal", "role_of"]
