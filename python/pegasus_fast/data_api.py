"""The vocabulary of the data API (issue #18): its enums, results and mutations, and the rules
every argument of it follows.

It sits below the engine (pyproject's import-linter layers) so that a client can build and
check the same arguments, and hand back the same result types, without importing the
engine. The numbers of the enums are Pegasus's own (``idl/rrdb.thrift``), so they can
travel on Pegasus's wire unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from .errors import InvalidArgumentError, InvalidTypeError
from .records import MAX_VALUE, MAX_WRITE, as_bytes, check_size, expire_ts_for

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


class FilterType(IntEnum):
    """How a key filter's pattern matches a key (Pegasus ``filter_type``, without ``FT_``)."""

    NO_FILTER = 0
    MATCH_ANYWHERE = 1
    MATCH_PREFIX = 2
    MATCH_POSTFIX = 3


class CheckType(IntEnum):
    """The check of check_and_set / check_and_mutate (Pegasus ``cas_check_type``, without ``CT_``).

    The ``VALUE_INT_*`` checks read the value and the operand as int64 the way Pegasus does
    (``strtoll`` with base 0: leading blanks, a sign, ``0x`` hex and ``0`` octal); a value
    or operand that is not one makes the call raise ``InvalidArgumentError``.
    """

    NO_CHECK = 0
    VALUE_NOT_EXIST = 1
    VALUE_NOT_EXIST_OR_EMPTY = 2
    VALUE_EXIST = 3
    VALUE_NOT_EMPTY = 4
    VALUE_MATCH_ANYWHERE = 5
    VALUE_MATCH_PREFIX = 6
    VALUE_MATCH_POSTFIX = 7
    VALUE_BYTES_LESS = 8
    VALUE_BYTES_LESS_OR_EQUAL = 9
    VALUE_BYTES_EQUAL = 10
    VALUE_BYTES_GREATER_OR_EQUAL = 11
    VALUE_BYTES_GREATER = 12
    VALUE_INT_LESS = 13
    VALUE_INT_LESS_OR_EQUAL = 14
    VALUE_INT_EQUAL = 15
    VALUE_INT_GREATER_OR_EQUAL = 16
    VALUE_INT_GREATER = 17


class MutateOperation(IntEnum):
    """One mutation of check_and_mutate (Pegasus ``mutate_operation``, without ``MO_``)."""

    PUT = 0
    DELETE = 1


@dataclass(frozen=True)
class Mutation:
    """A set or a delete of one sort key, applied by check_and_mutate when its check passes.

    Made with :meth:`set` or :meth:`delete`, which check and convert their arguments.
    """

    operation: MutateOperation
    sort_key: bytes
    value: bytes = b""
    ttl_seconds: int | None = None

    def __post_init__(self) -> None:
        # made directly rather than by set()/delete(): the same rules, without conversions
        if not isinstance(self.operation, MutateOperation):
            raise InvalidTypeError("operation must be a MutateOperation")
        for name in ("sort_key", "value"):
            if type(getattr(self, name)) is not bytes:
                raise InvalidTypeError(f"a Mutation's {name} must be bytes")
            check_size(getattr(self, name), name)
        if self.operation == MutateOperation.DELETE and (self.value or self.ttl_seconds is not None):
            raise InvalidArgumentError("a delete carries no value and no TTL")
        expire_ts_for(self.ttl_seconds)  # its type and range, checked now rather than at the write

    @classmethod
    def set(cls, sort_key: object, value: object, ttl_seconds: int | None = None) -> Mutation:
        return cls(MutateOperation.PUT, as_bytes(sort_key, "sort_key"), as_bytes(value, "value"), ttl_seconds)

    @classmethod
    def delete(cls, sort_key: object) -> Mutation:
        return cls(MutateOperation.DELETE, as_bytes(sort_key, "sort_key"))


class MultiGetResult(dict[bytes, bytes]):
    """``multi_get``'s records, sort key -> value, in sort key order (from the largest down
    for a reverse read). ``complete`` is False when ``max_kv_count`` or ``max_kv_size`` cut
    the read short: records in the range (or of the keys asked for) were left unread."""

    complete: bool

    def __init__(
        self, items: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]] = (), complete: bool = True
    ) -> None:
        super().__init__(items)
        self.complete = complete

    def __repr__(self) -> str:
        return f"MultiGetResult({dict.__repr__(self)}, complete={self.complete})"

    def __reduce__(self) -> tuple[object, ...]:
        return (MultiGetResult, (list(self.items()), self.complete))


class CheckAndSetResult(NamedTuple):
    """``check_value_exist`` and ``check_value`` are filled only with ``return_check_value``
    (as in Pegasus); ``check_value`` is None unless the checked record exists."""

    set_succeed: bool
    check_value_returned: bool
    check_value_exist: bool
    check_value: bytes | None


class CheckAndMutateResult(NamedTuple):
    """As :class:`CheckAndSetResult`, for check_and_mutate."""

    mutate_succeed: bool
    check_value_returned: bool
    check_value_exist: bool
    check_value: bytes | None


# -- argument rules (a client checks the same before sending) ------------------------------------


def bool_arg(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidTypeError(f"{what} must be a bool, not {type(value).__name__}")
    return value


def int_arg(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(f"{what} must be an int, not {type(value).__name__}")
    return int(value)


def int64_arg(value: object, what: str) -> int:
    n = int_arg(value, what)
    if not INT64_MIN <= n <= INT64_MAX:
        raise InvalidArgumentError(f"{what} {n} does not fit in 64 signed bits")
    return n


def positive_arg(value: object, what: str) -> int:
    n = int_arg(value, what)
    if n < 1:
        raise InvalidArgumentError(f"{what} must be positive, not {n}")
    return n


def limit_arg(value: object, what: str) -> int | None:
    """A result limit: None (no limit) or a positive int."""
    return None if value is None else positive_arg(value, what)


def _enum_arg(value: object, enum: type[IntEnum], what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(f"{what} must be a {enum.__name__}, not {type(value).__name__}")
    try:
        return enum(value)
    except ValueError:
        raise InvalidArgumentError(f"{what} {int(value)} is not a {enum.__name__}") from None


def check_type_arg(value: object) -> CheckType:
    if type(value) is CheckType:
        return value
    return CheckType(_enum_arg(value, CheckType, "check_type"))


def operand_arg(value: object) -> bytes:
    if type(value) is bytes and len(value) <= MAX_VALUE:
        return value
    return check_size(as_bytes(value, "check_operand"), "check_operand", MAX_VALUE)


def filter_arg(value: object, what: str) -> tuple[FilterType, bytes]:
    """A key filter: None, or ``(FilterType, pattern)``; returns ``(NO_FILTER, b"")`` for None."""
    if value is None:
        return FilterType.NO_FILTER, b""
    if not isinstance(value, tuple) or len(value) != 2:
        raise InvalidTypeError(f"{what} must be None or a (FilterType, pattern) pair")
    kind = FilterType(_enum_arg(value[0], FilterType, f"{what} type"))
    pattern = check_size(as_bytes(value[1], f"{what} pattern"), f"{what} pattern")
    return kind, pattern


def key_collection(sort_keys: object) -> Iterable[object]:
    """A collection of sort keys (one key on its own is refused: it would iterate as bytes)."""
    if isinstance(sort_keys, (bytes, str, bytearray, memoryview)):
        raise InvalidTypeError("sort_keys must be a collection of keys, not one key")
    if not isinstance(sort_keys, Iterable):
        raise InvalidTypeError(f"sort_keys must be a collection of keys, not {type(sort_keys).__name__}")
    return sort_keys


def mutations_arg(value: object) -> list[Mutation]:
    if isinstance(value, (bytes, str, bytearray, memoryview, Mutation)) or not isinstance(value, Iterable):
        raise InvalidTypeError("mutations must be a collection of Mutation")
    out = list(value)
    for m in out:
        if not isinstance(m, Mutation):
            raise InvalidTypeError(f"mutations hold Mutation, not {type(m).__name__}")
    if not out:
        raise InvalidArgumentError("check_and_mutate needs at least one mutation")
    return out


def mutations_size_arg(hash_key: bytes, mutations: list[Mutation]) -> None:
    """A check_and_mutate's writes fit one write (MAX_WRITE), on every kind of table alike: the
    embedded one before it touches the partition, a client before it sends anything."""
    total = len(hash_key) + sum(len(m.sort_key) + len(m.value) for m in mutations)
    if total > MAX_WRITE:
        raise InvalidArgumentError(f"check_and_mutate of {total} bytes; the limit is {MAX_WRITE}")


__all__ = [
    "CheckAndMutateResult",
    "CheckAndSetResult",
    "CheckType",
    "FilterType",
    "MultiGetResult",
    "MutateOperation",
    "Mutation",
]
