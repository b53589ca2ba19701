"""The local metadata store: an append-only journal of whole states, one fdatasync a change.

Each new state is appended to ``meta/journal`` as one line,
``<crc32c hex> <json>\\n``: a status change costs one sync, not the four of a
rename dance. Past a size the journal is compacted: the state is written to
``journal.tmp``, which atomically replaces the journal.

Loading takes the last line, with these rules (nothing acknowledged may be
dropped, so only what a crash mid-append can leave is forgiven):

1. An unterminated last line is a torn tail: an append that never returned.
   It is cut off.
2. Any newline-terminated line that fails its CRC or does not parse is
   damage, even the last one: ``MetaCorruptionError`` naming its offset.
3. No journal (or one with no complete line) next to a non-empty data
   directory (the cluster's ``tables/``) is lost metadata, not a new cluster.
4. A ``journal.tmp`` is a compaction that never reached its rename: removed.

Every file operation goes through ``fileio`` so tests can fail any of them.
An append that fails (short write, fdatasync) is cut back to the previous
size before the error is raised, so the next append never lands after a
partial line; if that cut itself fails, the store refuses every further change
(``MetaFencedError``) until it is opened again and its load decides.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any, Protocol

from .. import _backend, fileio
from ..errors import MetaCorruptionError, MetaFencedError

COMPACT_BYTES = 1 << 20
_READ_CHUNK = 1 << 16


class MetaStore(Protocol):
    def load(self) -> dict[str, Any] | None: ...
    def save(self, state: dict[str, Any]) -> None: ...


def _read_all(path: str) -> bytes:
    fd = fileio.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, _READ_CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        fileio.close(fd)


def _holds_anything(directory: str | None) -> bool:
    if directory is None:
        return False
    try:
        return bool(os.listdir(directory))
    except FileNotFoundError:
        return False


#: the journal is its owner's alone: it holds the tokens duplications show their remotes
JOURNAL_MODE = 0o600


class JournalMetaStore:
    """``data_dir``: a directory whose content proves the cluster existed (rule 3)."""

    def __init__(self, directory: str, data_dir: str | None = None) -> None:
        self.directory = directory
        self.path = os.path.join(directory, "journal")
        self.tmp_path = self.path + ".tmp"
        self.data_dir = data_dir
        fileio.makedirs(directory, exist_ok=True)
        self._fd = -1
        self._size = 0
        self._fenced: BaseException | None = None

    @staticmethod
    def _line(state: dict[str, Any]) -> bytes:
        body = json.dumps(state, sort_keys=True, separators=(",", ":")).encode("utf-8")
        return b"%08x " % _backend.impl.crc32c(body) + body + b"\n"

    def load(self) -> dict[str, Any] | None:
        if os.path.exists(self.tmp_path):
            fileio.unlink(self.tmp_path)  # rule 4
        if not os.path.exists(self.path):
            if _holds_anything(self.data_dir):
                raise MetaCorruptionError(self.path, 0, "missing, but the cluster holds tables")
            return None
        if stat.S_IMODE(os.stat(self.path).st_mode) & (stat.S_IRWXG | stat.S_IRWXO):
            os.chmod(self.path, JOURNAL_MODE)  # written by an older version, open to others
        data = _read_all(self.path)
        state: dict[str, Any] | None = None
        pos = 0
        while pos < len(data):
            end = data.find(b"\n", pos)
            if end < 0:
                break  # rule 1: a torn tail
            state = self._parse(data[pos:end], pos)
            pos = end + 1
        if state is None and _holds_anything(self.data_dir):
            raise MetaCorruptionError(self.path, 0, "no complete record, but the cluster holds tables")
        if pos < len(data):
            fileio.truncate(self.path, pos)
        self._size = pos
        return state

    def _parse(self, line: bytes, offset: int) -> dict[str, Any]:
        try:
            crc, body = int(line[:8], 16), line[9:]
            ok = len(line) > 9 and line[8:9] == b" " and _backend.impl.crc32c(body) == crc
            state = json.loads(body) if ok else None
        except ValueError:  # a bad hex prefix, bad JSON or bad UTF-8
            state = None
        if not isinstance(state, dict):
            raise MetaCorruptionError(self.path, offset, "record fails its checksum or does not parse")
        return state

    def save(self, state: dict[str, Any]) -> None:
        if self._fenced is not None:
            raise MetaFencedError(self.path) from self._fenced
        line = self._line(state)
        if self._fd < 0 or self._size + len(line) > COMPACT_BYTES:
            self._rewrite(line)
            return
        try:
            fileio.write(self._fd, line)
            fileio.fdatasync(self._fd)
        except BaseException as exc:
            self._cut_back(exc)
            raise
        self._size += len(line)

    def _cut_back(self, cause: BaseException) -> None:
        """Take a failed append off the journal, so the next one starts at a line boundary.

        The truncate is synced too: a failed fdatasync may still have put the
        line on disk, and a change reported as failed must not come back after
        a crash.
        """
        try:
            fileio.truncate(self._fd, self._size)
            fileio.fdatasync(self._fd)
        except OSError as exc:
            exc.__context__ = cause
            self._fenced = exc
            raise MetaFencedError(self.path) from exc

    def _rewrite(self, line: bytes) -> None:
        """Compaction: the new state in ``journal.tmp``, synced, then renamed over the journal."""
        # 0600: it keeps the tokens duplications show their remotes
        fd = fileio.open(self.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, JOURNAL_MODE)
        try:
            try:
                fileio.write(fd, line)
                fileio.fdatasync(fd)
            finally:
                fileio.close(fd)
            fileio.replace(self.tmp_path, self.path)
        except BaseException:
            # the journal itself is untouched: only the temporary file goes
            try:
                if os.path.exists(self.tmp_path):
                    fileio.unlink(self.tmp_path)
            except OSError:
                pass  # rule 4 removes it at the next load
            raise
        try:
            # Past the rename the new journal is in place but maybe not durable,
            # and the old fd names the replaced file: whether the change holds is
            # unknown until a reload decides, so nothing more is accepted.
            fileio.fsync_dir(self.directory)
            new_fd = fileio.open(self.path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            self._fenced = exc
            self._close_fd()
            raise MetaFencedError(self.path) from exc
        self._close_fd()
        self._fd = new_fd
        self._size = len(line)

    def _close_fd(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            fileio.close(fd)

    def close(self) -> None:
        self._close_fd()
