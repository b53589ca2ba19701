"""``serve --config-file serve.toml``: every flag of ``serve`` as a key of a TOML file.

A key is the flag's long name without its dashes (``listen``, ``token-file``, ``insecure``), and
the ``[config]`` table holds ``pegasus_fast.Config`` fields with their TOML types
(``small_partition_max_bytes = 1048576``). A flag given on the command line wins over the file;
a ``--config KEY=VALUE`` wins over that key of ``[config]``. An unknown key, or a value of the
wrong type, is a :class:`ConfigFileError` (exit code 2) naming the key. Relative paths in the
file are taken from the directory the server starts in, as on the command line.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from typing import Any

from ..config import Config
from ..errors import InvalidArgumentError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the same parser, a dependency before 3.11
    import tomli as tomllib

#: flags of the serve verb that are no key of the file: the file itself, --check-config (a
#: command, not a setting), --connect (a client's), --help
NOT_KEYS = frozenset({"config-file", "check-config", "connect", "help"})
#: the table of Config knobs (the file's form of --config KEY=VALUE)
CONFIG_TABLE = "config"


class ConfigFileError(InvalidArgumentError):
    """A ``--config-file`` that cannot be used: unreadable, not TOML, an unknown key, or a value
    of the wrong type. ``key`` is the key at fault (``config.NAME`` for a Config knob), None
    when the file as a whole is."""

    def __init__(self, path: str, key: str | None, reason: str) -> None:
        where = f"{path}: key {key!r}" if key is not None else path
        super().__init__(f"--config-file {where}: {reason}")
        self.path = path
        self.key = key
        self.reason = reason


def serve_keys(serve: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Key of the file → the serve flag it stands for."""
    out: dict[str, argparse.Action] = {}
    for action in serve._actions:
        longs = [s for s in action.option_strings if s.startswith("--")]
        if not longs:
            continue
        key = longs[0][2:]
        if key not in NOT_KEYS:
            out[key] = action
    return out


def read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigFileError(path, None, f"cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(path, None, f"is not TOML: {exc}") from None


def _check_value(path: str, key: str, action: argparse.Action, value: object) -> object:
    if key == CONFIG_TABLE:
        if not isinstance(value, dict):
            raise ConfigFileError(path, key, "must be a table of Config knobs ([config])")
        knobs = {f.name for f in fields(Config)}
        for name in value:
            if name not in knobs:
                raise ConfigFileError(path, f"{CONFIG_TABLE}.{name}", "is no pegasus_fast.Config field")
        return value
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise ConfigFileError(path, key, f"takes true or false, not {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigFileError(path, key, f"takes a string, not {value!r}")
    if action.type is not None:
        try:
            value = action.type(str(value))  # type: ignore[operator]
        except (TypeError, ValueError):
            raise ConfigFileError(path, key, f"cannot take {value!r}") from None
    elif not isinstance(value, str):
        raise ConfigFileError(path, key, f"takes a string, not {value!r}")
    if action.choices is not None and value not in action.choices:
        raise ConfigFileError(path, key, f"takes one of {sorted(action.choices)}, not {value!r}")
    return value


def load(path: str, serve: argparse.ArgumentParser) -> dict[str, object]:
    """The file's values by argparse dest (``config``: the ``[config]`` table as a dict),
    every key and type checked."""
    keys = serve_keys(serve)
    out: dict[str, object] = {}
    for key, value in read(path).items():
        action = keys.get(key)
        if action is None:
            raise ConfigFileError(path, key, "is no flag of serve")
        out[action.dest] = _check_value(path, key, action, value)
    return out


def apply(args: argparse.Namespace, given: set[str], file_values: dict[str, object]) -> dict[str, object]:
    """Set each file value on ``args`` whose flag was not given on the command line; the
    ``[config]`` table is returned for the Config it starts from (the command line's --config
    items go on top of it)."""
    knobs: dict[str, object] = {}
    for dest, value in file_values.items():
        if dest == CONFIG_TABLE:
            knobs = dict(value)  # type: ignore[call-overload]
        elif dest not in given:
            setattr(args, dest, value)
    return knobs


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def effective(args: argparse.Namespace, serve: argparse.ArgumentParser, config: Config) -> str:
    """The settings a server would start with (file and command line merged) as TOML: every
    flag that is set, and every Config knob that is not its default. Token files appear by
    path, never by content."""
    lines = []
    for key, action in serve_keys(serve).items():
        if key == CONFIG_TABLE:
            continue
        value = getattr(args, action.dest, None)
        if value is None or value is False or value is argparse.SUPPRESS:
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    default = Config()
    knobs = [
        f"{f.name} = {_toml_value(getattr(config, f.name))}"
        for f in fields(Config)
        if getattr(config, f.name) != getattr(default, f.name) and getattr(config, f.name) is not None
    ]
    if knobs:
        lines += ["", f"[{CONFIG_TABLE}]", *knobs]
    return "\n".join(lines) + "\n"


__all__ = ["CONFIG_TABLE", "ConfigFileError", "apply", "effective", "load", "read", "serve_keys"]
