"""Pure-Python twin of the Rust atomic-write helpers (``records::incr_fast``)."""

from __future__ import annotations

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def incr_step(
    raw: bytes | None, increment: int, expire_ts: int | None = None
) -> tuple[bytes, int, int] | None:
    """``_rust.incr_step``: the common incr decided in one call (see _rust.pyi)."""
    if raw is None:
        value = b""
    elif len(raw) < 12 or raw[:4] != b"\x00\x00\x00\x00":
        return None
    elif raw[11] & 1:
        value = b""
    else:
        value = raw[12:]
    if not value:
        base = 0
    elif value.isdigit() and len(value) < 19 and (value[0] != 48 or len(value) == 1):
        base = int(value)
    else:
        return None
    new = base + increment
    if not _INT64_MIN <= new <= _INT64_MAX:
        return None
    return b"%d" % new, new, 0 if expire_ts is None else expire_ts


__all__ = ["incr_step"]
