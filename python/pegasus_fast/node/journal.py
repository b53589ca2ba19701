"""The local metadata store: an append-only journal of whole states, one fdatasync a change.

Each new state is appended to ``meta/journal`` as one line,
``<crc32c hex> <json>``: a status change costs one sync, not the four of a
rename dance. Loading takes the last intact line (a torn last line is what a
crash mid-append leaves). Past a size the journal is compacted: the state is
written to a fresh journal, which atomically replaces the old one.
"""

from __future__ import annotations

import json
import os
from typing import Any, Protocol

from .. import _backend
from ..errors import MetaCorruptionError
from ..fileio import fsync_dir

COMPACT_BYTES = 1 << 20


class MetaStore(Protocol):
    def load(self) -> dict[str, Any] | None: ...
    def save(self, state: dict[str, Any]) -> None: ...


class JournalMetaStore:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, "journal")
        os.makedirs(directory, exist_ok=True)
        self._fd = -1
        self._size = 0

    @staticmethod
    def _line(state: dict[str, Any]) -> bytes:
        body = json.dumps(state, sort_keys=True, separators=(",", ":")).encode("utf-8")
        return b"%08x " % _backend.impl.crc32c(body) + body + b"\n"

    def load(self) -> dict[str, Any] | None:
        if not os.path.exists(self.path):
            return None
        with open(self.path, "rb") as f:
            data = f.read()
        state = None
        good_end = 0
        pos = 0
        while pos < len(data):
            end = data.find(b"\n", pos)
            if end < 0:
                break  # a torn last line
            line = data[pos:end]
            try:
                crc, body = int(line[:8], 16), line[9:]
                ok = line[8:9] == b" " and _backend.impl.crc32c(body) == crc
            except ValueError:
                ok = False
            if not ok:
                if end + 1 < len(data):
                    raise MetaCorruptionError(self.path, pos)
                break
            state = json.loads(body)
            good_end = end + 1
            pos = end + 1
        if good_end < len(data):
            os.truncate(self.path, good_end)
        self._size = good_end
        return state

    def save(self, state: dict[str, Any]) -> None:
        line = self._line(state)
        if self._fd < 0 or self._size + len(line) > COMPACT_BYTES:
            self._rewrite(line)
            return
        os.write(self._fd, line)
        os.fdatasync(self._fd)
        self._size += len(line)

    def _rewrite(self, line: bytes) -> None:
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, line)
            os.fdatasync(fd)
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        os.replace(tmp, self.path)
        fsync_dir(self.directory)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._size = len(line)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
