"""The backend's incr_step (the common incr decided in one call) against the Python
decision it shortcuts (storage/stored.py incr_value), on both backends: the same answer
wherever it answers, and no answer where Python must decide (a TTL, another int form, an
error)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pegasus_fast import _pure
from pegasus_fast.errors import InvalidArgumentError
from pegasus_fast.storage.stored import incr_value

try:
    from pegasus_fast import _rust
except ImportError:  # pragma: no cover - the pure-Python install
    _rust = None  # type: ignore[assignment]

BACKENDS = [_pure] + ([_rust] if _rust is not None else [])
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1

values = st.one_of(
    st.sampled_from(
        [
            b"",
            b"0",
            b"7",
            b"41",
            b"007",
            b"+3",
            b"-5",
            b" 12",
            b"0x10",
            b"1a",
            b"12 ",
            b"\x00",
            b"9223372036854775807",
            b"-9223372036854775808",
            b"999999999999999999",
            b"1" * 19,
        ]
    ),
    st.integers(INT64_MIN, INT64_MAX).map(lambda n: b"%d" % n),
    st.binary(max_size=24),
)


def stored(value: bytes, expire_ts: int = 0, tombstone: bool = False) -> bytes:
    return struct.pack(">IQ", expire_ts, (1 if tombstone else 0) | 8 << 1) + value


@pytest.mark.parametrize("impl", BACKENDS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
@given(
    value=values,
    increment=st.one_of(st.sampled_from([1, -1, 0, INT64_MAX, INT64_MIN]), st.integers(INT64_MIN, INT64_MAX)),
    expire_ts=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    absent=st.booleans(),
    tombstone=st.booleans(),
)
def test_incr_step_agrees_with_python(
    impl: object, value: bytes, increment: int, expire_ts: int | None, absent: bool, tombstone: bool
) -> None:
    raw = None if absent else stored(value, 0, tombstone)
    fast = impl.incr_step(raw, increment, expire_ts)  # type: ignore[attr-defined]
    if _rust is not None:
        assert fast == _pure.incr_step(raw, increment, expire_ts)  # the twins agree
    try:
        slow = incr_value(raw, increment, expire_ts)
    except InvalidArgumentError:
        assert fast is None  # an error is Python's to raise
        return
    if fast is not None:
        assert fast == slow


@pytest.mark.parametrize("impl", BACKENDS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_incr_step_leaves_what_needs_python(impl: object) -> None:
    step = impl.incr_step  # type: ignore[attr-defined]
    assert step(stored(b"41", expire_ts=500), 1) is None  # a TTL: the store's clock decides
    assert step(stored(b"0x10"), 1) is None  # another int form
    assert step(stored(b"abc"), 1) is None  # an error
    assert step(stored(b"1"), INT64_MAX) is None  # an overflow
    assert step(b"short", 1) is None
    assert step(None, 5) == (b"5", 5, 0)
    assert step(stored(b"41"), 1, 77) == (b"42", 42, 77)
    assert step(stored(b"41", tombstone=True), 1) == (b"1", 1, 0)
