"""A multi-node table's envs (Pegasus's ``set_app_envs`` / ``del_app_envs``), set by the meta leader.

The envs live in the table's znode (``/apps/<table>``, coord/layout.py). The
leader merges the change into them, checks the result as a single cluster does
(engine/envs.py: str -> str, valid Unicode, at most
``Config.max_env_bytes_per_table`` bytes), and writes it with a compare-and-set
on the znode's version: a concurrent change (another env set, a second leader)
makes it read again and merge again, never overwrite. A change that is refused
changes nothing.

Then every live node applies it: the leader bumps ``/config`` and calls
``Node.Sync`` on each, whose sync (member.py) makes its copy of the table's
envs exactly the znode's, which re-sets the client-write gate of every
partition of the table (engine/roles.py) — owned or not, so a partition moved
to another node keeps the behaviour. The call returns once every live node has
done so. A node the leader cannot sync is asked again until :data:`APPLY_WAIT`;
one still live and behind by then fails the call with :class:`CoordinationError`
(the change is recorded: that node applies it at its next sync, within
member.py's ``RESYNC_INTERVAL`` of reaching ZooKeeper). A node that is down
applies it when it starts, before it serves.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Protocol

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NoNodeError

from ..coord.layout import AppDoc, DupDoc, NodeDoc, TableConfig, app_path
from ..coord.zk import read_nodes
from ..duplication.ports import SourceId
from ..engine.envs import validate_envs
from ..engine.roles import DupView, TableRole, role_from
from ..errors import CoordinationError, InvalidTypeError, TableNotFoundError
from ..logs import event, get
from .member import RESYNC_INTERVAL, Member

log = get(__name__)

#: how long the leader keeps asking a live node that did not sync to apply a change
APPLY_WAIT = 2 * RESYNC_INTERVAL
#: compare-and-set attempts before a znode that keeps changing is an error
CAS_TRIES = 20


class Leading(Protocol):
    """What an env change needs of the leader that makes it (placement.py)."""

    member: Member
    zk: KazooClient

    def require_leader(self) -> None: ...

    def changed(self, nodes: dict[str, NodeDoc] | None = None, only: set[str] | None = None) -> list[str]:
        """Every node and client is told; the ids of live nodes that did not act on it."""
        ...

    def sync_nodes(self, nodes: dict[str, NodeDoc], only: set[str] | None = None) -> list[str]:
        """``Node.Sync`` on ``nodes``; the ids of those that failed."""
        ...


def check_delete(delete: object) -> tuple[str, ...]:
    if isinstance(delete, (str, bytes)) or not isinstance(delete, (list, tuple)):
        raise InvalidTypeError("delete is a list or tuple of env names")
    if not all(isinstance(k, str) for k in delete):
        raise InvalidTypeError("an env name is a str")
    return tuple(delete)


def set_table_envs(p: Leading, name: str, envs: dict[str, str], delete: tuple[str, ...]) -> AppDoc:
    """Merge ``envs`` into table ``name``'s (``delete`` removed first), compare-and-set in its
    znode, then wait until every live node applies them (the module's docstring)."""
    p.require_leader()
    given = validate_envs(envs)
    gone = set(check_delete(delete))
    limit = p.member.cluster.config.max_env_bytes_per_table
    path = app_path(name)
    for _ in range(CAS_TRIES):
        try:
            raw, stat = p.zk.get(path)
        except NoNodeError:
            raise TableNotFoundError(name) from None
        app = AppDoc.decode(raw, path)
        merged = {k: v for k, v in app.envs.items() if k not in gone}
        merged.update(given)
        new = replace(app, envs=validate_envs(merged, limit))
        if new == app:
            break
        try:
            p.zk.set(path, new.encode(), version=stat.version)
            break
        except BadVersionError:
            continue  # changed meanwhile: merge into what it is now
        except NoNodeError:
            raise TableNotFoundError(name) from None
    else:
        raise CoordinationError(p.member.addr.spec, f"table {name!r}: its znode keeps changing")
    log.info("table %s: envs set (%d)", name, len(new.envs), extra=event(table=name, envs=sorted(new.envs)))
    wait_applied(p, name)
    return new


def wait_applied(p: Leading, name: str) -> None:
    """Bump ``/config`` and sync every live node; one that fails is asked again until
    :data:`APPLY_WAIT`, then named in a CoordinationError if it is still live."""
    deadline = time.monotonic() + APPLY_WAIT
    behind = p.changed()
    while behind:
        live = read_nodes(p.zk)
        behind = [n for n in behind if n in live]
        if not behind:
            return
        if time.monotonic() > deadline:
            raise CoordinationError(
                p.member.addr.spec,
                f"table {name!r}: envs recorded, not yet applied on live nodes {sorted(behind)} "
                "(each applies them at its next sync)",
            )
        time.sleep(0.2)
        behind = p.sync_nodes({n: live[n] for n in behind})


def table_role(tc: TableConfig, dups: Mapping[int, DupDoc]) -> TableRole:
    """A multi-node table's role (engine/roles.py) from its znode and the cluster's
    duplications (``/dups``): what its nodes' gates enforce, as ``ls -d`` and ``app`` show it."""
    f = tc.app.follower_of
    views = [
        DupView(dupid, "", d.remote_table)
        for dupid, d in dups.items()
        if d.table == tc.name and d.status != "removed"
    ]
    return role_from(tc.app.envs, None if f is None else SourceId(**f), views)


__all__ = ["APPLY_WAIT", "check_delete", "set_table_envs", "table_role", "wait_applied"]
