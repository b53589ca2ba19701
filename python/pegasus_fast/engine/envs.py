"""Table envs (Pegasus "app envs"): string settings kept with a table's metadata."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import InvalidArgumentError, InvalidTypeError, ResourceExhaustedError

#: the resource a table's envs past Config.max_env_bytes_per_table report
ENV_BYTES = "max_env_bytes_per_table"


def validate_envs(envs: object, max_bytes: int | None = None) -> dict[str, str]:
    """A copy of ``envs`` as str -> str; typed errors for anything the metadata cannot keep.

    ``max_bytes``: the most their names and values may take, UTF-8 (every metadata change
    rewrites them): past it, ResourceExhaustedError.

    The metadata journal is UTF-8 JSON, shown by the CLI: a str that is not
    valid Unicode (a lone surrogate) is refused rather than stored escaped.
    """
    if envs is None:
        return {}
    if not isinstance(envs, Mapping):
        raise InvalidTypeError(f"envs must be a mapping of str to str, not {type(envs).__name__}")
    out: dict[str, str] = {}
    size = 0
    for key, value in envs.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidTypeError(f"envs map str to str, not {type(key).__name__} to {type(value).__name__}")
        if not key:
            raise InvalidArgumentError("an env name is a non-empty str")
        for text in (key, value):
            try:
                size += len(text.encode("utf-8"))
            except UnicodeEncodeError:
                raise InvalidArgumentError(f"env {key!r} is not valid Unicode") from None
        out[key] = value
    if max_bytes is not None and size > max_bytes:
        raise ResourceExhaustedError(ENV_BYTES, max_bytes, size)
    return out
