"""The server's logs: one logger per module (``pegasus_fast.<module>``), installed only by the CLI.

Libraries here never configure logging (no handler, no level, no basicConfig):
an embedding application decides where records go. ``pegasus-fast serve``
calls :func:`install` with ``--log-level`` and ``--log-format``:

- ``text``: ``2026-12-07T03:22:38.123Z INFO  duplication: duplication 1 LOG -> PAUSE dupid=1``
- ``json``: one object a line, ``{"ts", "level", "component", "msg", ...event fields}``

Event fields are passed as ``extra={"event": {...}}`` (see :func:`event`), so a
JSON line carries them as keys and a text line appends them as ``key=value``.

:class:`Outage` and :class:`Refusals` keep a noisy condition to a few lines:
an outage is logged when it begins and once when it ends, with the count of
attempts that failed in between; refused connections are counted and logged
at most once per interval, with how many were refused since the last line.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Mapping
from typing import IO, Any

from .errors import InvalidArgumentError

ROOT = "pegasus_fast"
LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("text", "json")
#: how often a rate-limited condition (refused connections) may log a line
REFUSAL_INTERVAL = 10.0


def get(module: str) -> logging.Logger:
    """The logger of ``module`` (``__name__``); ``pegasus_fast.x.y`` names component ``x.y``."""
    return logging.getLogger(module)


def event(**fields: Any) -> dict[str, Any]:
    """``extra=`` for a record carrying event fields: ``log.info("...", extra=event(dupid=1))``."""
    return {"event": fields}


def component(name: str) -> str:
    """A logger's name without the package: ``pegasus_fast.duplication.driver`` -> ``duplication.driver``."""
    return name[len(ROOT) + 1 :] if name.startswith(ROOT + ".") else name


def _ts(created: float) -> str:
    t = time.gmtime(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(created % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (UTC, ms), level, component, msg, the event's fields, and
    ``exc`` with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _ts(record.created),
            "level": record.levelname.lower(),
            "component": component(record.name),
            "msg": record.getMessage(),
        }
        fields = getattr(record, "event", None)
        if isinstance(fields, Mapping):
            for k, v in fields.items():
                out.setdefault(str(k), v)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``ts LEVEL component: msg key=value ...``, the traceback on the lines after."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_ts(record.created)} {record.levelname:<7} {component(record.name)}: {record.getMessage()}"
        fields = getattr(record, "event", None)
        if isinstance(fields, Mapping) and fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def install(level: str = "info", fmt: str = "text", stream: IO[str] | None = None) -> logging.Handler:
    """Send ``pegasus_fast``'s records at ``level`` and above (other libraries' from warning up)
    to ``stream`` (stderr) in ``fmt``; the CLI's to call, once. Returns the handler (the caller
    may remove it from the root logger)."""
    if level not in LEVELS:
        raise InvalidArgumentError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    if fmt not in FORMATS:
        raise InvalidArgumentError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    # on the root logger, so that the libraries under the server (kazoo, grpc) write in the same
    # format (a JSON log stays one object a line); theirs from warning up, ours from ``level``
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_pegasus_fast", False)]:
        root.removeHandler(old)
    handler._pegasus_fast = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    ours = logging.getLevelName(level.upper())
    root.setLevel(max(logging.WARNING, ours))
    logging.getLogger(ROOT).setLevel(ours)
    # Python's warnings and a thread's uncaught exception: records too, not bare stderr text
    logging.captureWarnings(True)
    threading.excepthook = _thread_died
    return handler


def _thread_died(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger(ROOT).error(
        "thread %s died: %s",
        name,
        args.exc_value,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]
        extra=event(thread=name),
    )


class Outage:
    """A condition that repeats while it lasts (a remote that cannot be reached): logged when it
    begins, counted while it lasts, logged once more when it ends with the count and duration."""

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        down: str = "unavailable",
        up: str = "reachable again",
        **fields: Any,
    ) -> None:
        """``what`` is ``down`` (it begins), then ``up`` (it ends): "remote X" "unavailable"."""
        self._log = log
        self._what = what
        self._down = down
        self._up = up
        self._fields = fields
        self._lock = threading.Lock()
        self.failures = 0
        self.since: float | None = None

    @property
    def active(self) -> bool:
        return self.since is not None

    def failed(self, reason: object) -> None:
        """One more failed attempt; the first of an outage is logged (a warning)."""
        with self._lock:
            self.failures += 1
            if self.since is not None:
                return
            self.since = time.monotonic()
        self._log.warning(
            "%s %s: %s",
            self._what,
            self._down,
            reason,
            extra=event(outage="begin", reason=str(reason), **self._fields),
        )

    def ok(self) -> None:
        """The condition is over: logged once (info) with the failed attempts and seconds it lasted."""
        if self.since is None:  # the common case, on hot paths: no lock
            return
        with self._lock:
            if self.since is None:
                return
            seconds, failures = time.monotonic() - self.since, self.failures
            self.since, self.failures = None, 0
        self._log.info(
            "%s %s after %.1f s, %d failed attempts",
            self._what,
            self._up,
            seconds,
            failures,
            extra=event(outage="end", failed_attempts=failures, seconds=round(seconds, 3), **self._fields),
        )


class Refusals:
    """Refused connections or calls: counted, and logged at most once per ``interval`` (the first at
    once), each line with how many were refused since the last one and the latest reason."""

    def __init__(self, log: logging.Logger, what: str, interval: float = REFUSAL_INTERVAL) -> None:
        self._log = log
        self._what = what
        self._interval = interval
        self._lock = threading.Lock()
        self._last = -float("inf")
        self._unlogged = 0
        self.total = 0

    def flush(self) -> None:
        """Log the refusals not logged yet (at a stop: the count is not lost with the process)."""
        with self._lock:
            count, self._unlogged = self._unlogged, 0
        if count:
            self._log.warning(
                "%s refused %d since the last report",
                self._what,
                count,
                extra=event(refused=count, refused_total=self.total),
            )

    def refused(self, reason: str, peer: str = "", n: int = 1) -> None:
        now = time.monotonic()
        with self._lock:
            self.total += n
            self._unlogged += n
            if now - self._last < self._interval:
                return
            count, self._unlogged, self._last = self._unlogged, 0, now
        self._log.warning(
            "%s refused %d since the last report (latest: %s%s)",
            self._what,
            count,
            reason,
            f" from {peer}" if peer else "",
            extra=event(refused=count, refused_total=self.total, reason=reason, peer=peer),
        )


__all__ = [
    "FORMATS",
    "LEVELS",
    "JsonFormatter",
    "Outage",
    "Refusals",
    "TextFormatter",
    "event",
    "get",
    "install",
]
