"""Pegasus's conditions, as its server evaluates them: key filters (multi_get, scanners),
value checks (check_and_set, check_and_mutate) and the int64 reading of a value (incr and
the ``VALUE_INT_*`` checks).

Learned from ``pegasus_server_impl.cpp`` (``validate_filter``),
``pegasus_write_service_impl.h`` (``validate_check``) and ``dsn::buf2int64``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .data_api import INT64_MAX, INT64_MIN, CheckType, FilterType
from .errors import InvalidArgumentError

#: what C's strtoll(s, &end, 0) reads when it must consume all of ``s``: leading white
#: space (C locale), a sign, then hex after 0x/0X, octal after a leading 0, else decimal
_INT = re.compile(rb"[ \t\n\v\f\r]*([+-]?)(?:0[xX]([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))")


def parse_int64(data: bytes) -> int | None:
    """The int64 that Pegasus reads in ``data`` (``buf2int64``), or None when it reads none.

    ``b"  12"`` and ``b"+3"`` are 12 and 3, ``b"0x10"`` is 16 and ``b"010"`` is 8; an empty
    value, trailing characters (a blank or a NUL too) and anything outside int64 are None.
    """
    m = _INT.fullmatch(data)
    if m is None:
        return None
    sign, hex_digits, octal, decimal = m.groups()
    if hex_digits is not None:
        n = int(hex_digits, 16)
    elif octal is not None:
        n = int(octal, 8)
    else:
        n = int(decimal)
    if sign == b"-":
        n = -n
    return n if INT64_MIN <= n <= INT64_MAX else None


def matches(kind: FilterType, pattern: bytes, data: bytes) -> bool:
    """Whether ``data`` passes a key filter; an empty pattern passes everything."""
    if kind == FilterType.NO_FILTER or not pattern:
        return True
    if kind == FilterType.MATCH_ANYWHERE:
        return pattern in data
    if kind == FilterType.MATCH_PREFIX:
        return data.startswith(pattern)
    return data.endswith(pattern)


def filter_fn(kind: FilterType, pattern: bytes) -> Callable[[bytes], bool] | None:
    """A fast one-argument predicate for ``matches(kind, pattern, ·)``; None when it passes all."""
    if kind == FilterType.NO_FILTER or not pattern:
        return None
    if kind == FilterType.MATCH_ANYWHERE:
        return lambda data: pattern in data
    if kind == FilterType.MATCH_PREFIX:
        return lambda data: data.startswith(pattern)
    return lambda data: data.endswith(pattern)


_MATCH = {
    CheckType.VALUE_MATCH_ANYWHERE: FilterType.MATCH_ANYWHERE,
    CheckType.VALUE_MATCH_PREFIX: FilterType.MATCH_PREFIX,
    CheckType.VALUE_MATCH_POSTFIX: FilterType.MATCH_POSTFIX,
}


def _compare(check: CheckType, lowest: CheckType, c: int) -> bool:
    """One of the five ordered checks starting at ``lowest`` (LESS, LESS_OR_EQUAL, EQUAL,
    GREATER_OR_EQUAL, GREATER), given ``c`` = sign of value - operand."""
    offset = check - lowest
    if c < 0:
        return offset <= 1
    if c > 0:
        return offset >= 3
    return 1 <= offset <= 3


_NO_CHECK, _VALUE_NOT_EXIST, _VALUE_NOT_EXIST_OR_EMPTY, _VALUE_EXIST, _VALUE_NOT_EMPTY = (
    int(CheckType.NO_CHECK),
    int(CheckType.VALUE_NOT_EXIST),
    int(CheckType.VALUE_NOT_EXIST_OR_EMPTY),
    int(CheckType.VALUE_EXIST),
    int(CheckType.VALUE_NOT_EMPTY),
)


def check_passes(check: CheckType, operand: bytes, exists: bool, value: bytes) -> bool:
    """Whether the checked record passes ``check`` against ``operand`` (``value`` is b"" when
    it does not exist). An int check on a record that exists, whose value or operand is not an
    int64, raises ``InvalidArgumentError`` (Pegasus answers kInvalidArgument); on a record that
    does not exist it simply fails, as in Pegasus."""
    if check <= _VALUE_NOT_EMPTY:  # the checks of existence (numbers 0..4): the usual ones
        if check == _VALUE_EXIST:
            return exists
        if check == _VALUE_NOT_EXIST:
            return not exists
        if check == _NO_CHECK:
            return True
        if check == _VALUE_NOT_EXIST_OR_EMPTY:
            return not exists or not value
        return exists and bool(value)
    if not exists:
        return False
    if check in _MATCH:
        return matches(_MATCH[check], operand, value)
    if check <= CheckType.VALUE_BYTES_GREATER:
        return _compare(check, CheckType.VALUE_BYTES_LESS, (value > operand) - (value < operand))
    have = parse_int64(value)
    if have is None:
        raise InvalidArgumentError("the checked value is not an int64, which an int check needs")
    want = parse_int64(operand)
    if want is None:
        raise InvalidArgumentError("check_operand is not an int64, which an int check needs")
    return _compare(check, CheckType.VALUE_INT_LESS, (have > want) - (have < want))


__all__ = ["check_passes", "filter_fn", "matches", "parse_int64"]
