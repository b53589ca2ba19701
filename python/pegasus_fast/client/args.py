"""The requests a client builds from its caller's arguments, checked as the embedded Cluster checks
them (the same typed errors, before anything is sent); the server checks them again.

One place for the served (remote.py) and the multi-node (routed.py) client.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..coord.layout import MAX_REPLICAS
from ..errors import InvalidArgumentError, InvalidTypeError
from ..net import pegasus_fast_pb2 as pb
from ..net.wire import is_url


def create_table_request(
    name: object, partition_count: object, envs: object, replica_count: object = None
) -> pb.CreateTableRequest:
    if not isinstance(name, str):
        raise InvalidTypeError("a table name is a str")
    if isinstance(partition_count, bool) or not isinstance(partition_count, int):
        raise InvalidTypeError("partition_count is an int")
    if not 0 < partition_count < 1 << 32:
        raise InvalidArgumentError(f"partition_count {partition_count} is out of range")
    if envs is not None and not isinstance(envs, Mapping):
        raise InvalidTypeError("envs must be a mapping of str to str")
    if replica_count is not None:
        if isinstance(replica_count, bool) or not isinstance(replica_count, int):
            raise InvalidTypeError("replica_count is an int")
        if not 1 <= replica_count <= MAX_REPLICAS:
            raise InvalidArgumentError(f"replica_count {replica_count} is not in 1..{MAX_REPLICAS}")
    return pb.CreateTableRequest(
        table=name, partition_count=partition_count, envs=dict(envs or {}), replica_count=replica_count or 0
    )


def add_duplication_request(
    who: str,
    table: object,
    remote: object,
    remote_table: object,
    with_checkpoint: object,
    fail_mode: object,
    remote_token: object,
    accept_gap: object = False,
) -> pb.AddDuplicationRequest:
    """``who``: the kind of cluster duplicating, as its errors name it."""
    if not is_url(remote) and not (isinstance(remote, str) and remote.startswith("zk://")):
        raise InvalidArgumentError(f"{who} duplicates to a pegasus:// URL, not {remote!r}")
    for what, v in (
        ("table", table),
        ("remote_table", remote_table),
        ("fail_mode", fail_mode),
        ("remote_token", remote_token),
    ):
        if v is not None and not isinstance(v, str):
            raise InvalidTypeError(f"{what} is a str")
    if not isinstance(with_checkpoint, bool):
        raise InvalidTypeError("with_checkpoint must be a bool")
    if not isinstance(accept_gap, bool):
        raise InvalidTypeError("accept_gap must be a bool")
    return pb.AddDuplicationRequest(
        accept_gap=accept_gap,
        table=table,
        remote=remote,
        remote_table=remote_table,
        with_checkpoint=with_checkpoint,
        fail_mode=fail_mode,
        remote_token=remote_token,
    )


__all__ = ["add_duplication_request", "create_table_request"]
