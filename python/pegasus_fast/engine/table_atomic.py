"""The atomic writes of a table's data API (issue #18): incr, check_and_set, check_and_mutate.
A mixin of ``Table`` (table.py), which provides the routing.

Each is atomic within its partition and logged as one mutation of its result
(storage/atomic.py). Every argument is checked before the partition is touched, so a
call refused for its arguments, like one whose check fails or raises, changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import _backend
from ..data_api import (
    CheckAndMutateResult,
    CheckAndSetResult,
    MutateOperation,
    Mutation,
    bool_arg,
    check_type_arg,
    int64_arg,
    mutations_arg,
    mutations_size_arg,
    operand_arg,
)
from ..errors import InvalidArgumentError
from ..records import (
    KEY_LEN,
    MAX_HASH_KEY,
    MAX_VALUE,
    Op,
    as_bytes,
    check_size,
    encode_key,
    expire_ts_for,
)
from ..storage.stored import last_per_key

if TYPE_CHECKING:
    from ..storage.partition import Partition

_PUT, _DELETE = int(Op.PUT), int(Op.DELETE)
#: records.encode_key inline on the hot path
_KEY_LEN = KEY_LEN.pack


#: the two results without the check value (a NamedTuple is immutable): building one costs
#: as much as the check itself
_SET = CheckAndSetResult(True, False, False, None)
_NOT_SET = CheckAndSetResult(False, False, False, None)


class TableAtomic:
    if TYPE_CHECKING:  # what Table provides
        partitions: list[Partition]
        partition_count: int
        _closed: bool

        def _route(self, hash_key: object, sort_key: object = b"") -> tuple[Partition, bytes, bytes]: ...

    def incr(
        self, hash_key: object, sort_key: object, increment: int = 1, ttl_seconds: int | None = None
    ) -> int:
        """Add ``increment`` to the int64 stored as ASCII decimal; returns the new value.

        An absent or expired record, or an empty value, counts as 0. A value Pegasus would
        not read as an int64, or a sum outside int64, is InvalidArgumentError (nothing
        changes). ``ttl_seconds``: None keeps the record's TTL, 0 clears it, > 0 sets it.
        """
        if (
            type(hash_key) is bytes
            and type(sort_key) is bytes
            and len(hash_key) <= MAX_HASH_KEY
            and not self._closed
        ):
            # _route_bytes inline: the hot path of a counter
            p = self.partitions[_backend.impl.partition_index(hash_key, self.partition_count, sort_key)]
            hk, sk = hash_key, sort_key
        else:
            p, hk, sk = self._route(hash_key, sort_key)
        if len(sk) > MAX_VALUE:
            check_size(sk, "sort_key")
        if type(increment) is not int:
            increment = int64_arg(increment, "increment")
        elif not -(1 << 63) <= increment < 1 << 63:
            int64_arg(increment, "increment")
        expire_ts = None if ttl_seconds is None else expire_ts_for(ttl_seconds)
        return p.write_incr(_KEY_LEN(len(hk)) + hk + sk, hk, sk, increment, expire_ts)

    def check_and_set(
        self,
        hash_key: object,
        check_sort_key: object,
        check_type: int,
        check_operand: object,
        set_sort_key: object,
        set_value: object,
        ttl_seconds: int | None = None,
        return_check_value: bool = False,
    ) -> CheckAndSetResult:
        """Set ``set_sort_key`` to ``set_value`` if the record at ``check_sort_key`` passes
        ``check_type`` against ``check_operand`` (both keys of ``hash_key``)."""
        if (
            type(hash_key) is bytes
            and type(check_sort_key) is bytes
            and len(hash_key) <= MAX_HASH_KEY
            and not self._closed
        ):
            p = self.partitions[_backend.impl.partition_index(hash_key, self.partition_count, check_sort_key)]
            hk, check_sk = hash_key, check_sort_key
        else:
            p, hk, check_sk = self._route(hash_key, check_sort_key)
        check = check_type_arg(check_type)
        operand = operand_arg(check_operand)
        set_sk = set_sort_key if type(set_sort_key) is bytes else as_bytes(set_sort_key, "set_sort_key")
        value = set_value if type(set_value) is bytes else as_bytes(set_value, "set_value")
        if len(check_sk) > MAX_VALUE or len(set_sk) > MAX_VALUE or len(value) > MAX_VALUE:
            check_size(check_sk, "check_sort_key")
            check_size(set_sk, "set_sort_key")
            check_size(value, "set_value")
        returned = bool_arg(return_check_value, "return_check_value")
        if not hk and set_sk != check_sk:
            _same_partition(hk, check_sk, [set_sk])
        ops = [(_PUT, hk, set_sk, value, 0 if ttl_seconds is None else expire_ts_for(ttl_seconds))]
        passed, exists, current = p.write_if(_KEY_LEN(len(hk)) + hk + check_sk, check, operand, ops)
        if returned:
            return CheckAndSetResult(passed, True, exists, current)
        return _SET if passed else _NOT_SET

    def check_and_mutate(
        self,
        hash_key: object,
        check_sort_key: object,
        check_type: int,
        check_operand: object,
        mutations: list[Mutation],
        return_check_value: bool = False,
    ) -> CheckAndMutateResult:
        """Apply ``mutations`` (``Mutation.set`` / ``Mutation.delete`` of sort keys of
        ``hash_key``) together if the record at ``check_sort_key`` passes the check."""
        p, hk, check_sk = self._route(hash_key, check_sort_key)
        check_size(check_sk, "check_sort_key")
        check_size(check_sk, "check_sort_key")
        check = check_type_arg(check_type)
        operand = operand_arg(check_operand)
        muts = mutations_arg(mutations)
        returned = bool_arg(return_check_value, "return_check_value")
        _same_partition(hk, check_sk, [m.sort_key for m in muts])
        mutations_size_arg(hk, muts)
        ops: list[tuple[Any, ...]] = [
            (_PUT, hk, m.sort_key, m.value, expire_ts_for(m.ttl_seconds))
            if m.operation == MutateOperation.PUT
            else (_DELETE, hk, m.sort_key)
            for m in muts
        ]
        passed, exists, current = p.write_if(encode_key(hk, check_sk), check, operand, last_per_key(ops))
        return CheckAndMutateResult(passed, returned, returned and exists, current if returned else None)


def _same_partition(hash_key: bytes, check_sort_key: bytes, sort_keys: list[bytes]) -> None:
    """An atomic write touches one partition: with an empty hash key each sort key hashes on
    its own, so it may touch only the key it checks."""
    if not hash_key and any(sk != check_sort_key for sk in sort_keys):
        raise InvalidArgumentError(
            "an atomic write of other sort keys than the checked one needs a non-empty hash_key"
        )


__all__ = ["TableAtomic"]
