"""Table envs (Pegasus "app envs"): string settings kept with a table's metadata."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import InvalidArgumentError, InvalidTypeError


def validate_envs(envs: object) -> dict[str, str]:
    """A copy of ``envs`` as str -> str; typed errors for anything the metadata cannot keep.

    The metadata journal is UTF-8 JSON, shown by the CLI: a str that is not
    valid Unicode (a lone surrogate) is refused rather than stored escaped.
    """
    if envs is None:
        return {}
    if not isinstance(envs, Mapping):
        raise InvalidTypeError(f"envs must be a mapping of str to str, not {type(envs).__name__}")
    out: dict[str, str] = {}
    for key, value in envs.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidTypeError(f"envs map str to str, not {type(key).__name__} to {type(value).__name__}")
        if not key:
            raise InvalidArgumentError("an env name is a non-empty str")
        for text in (key, value):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidArgumentError(f"env {key!r} is not valid Unicode") from None
        out[key] = value
    return out
