"""A partition's WAL at open: replay from a decree, the torn tail cut off, the files checked for
gaps (docs/wal-format.md, "Reading, torn tails and corruption").

A mixin of ``Wal`` (wal.py), which provides what is declared below.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import _backend, fileio
from ..errors import UnsafePathError, WalCorruptionError, WalGapError
from ..records import list_log_files
from . import walhead


@dataclass
class LogFile:
    index: int
    start_offset: int
    name: str
    first_decree: int
    last_decree: int
    size: int


#: mutations per replay WriteBatch: large sorted batches insert fastest
REPLAY_BATCH = 65536


class WalRecovery:
    path: str
    files: list[LogFile]

    if TYPE_CHECKING:  # what Wal provides

        def _open_tail(self) -> None: ...

    def recover(
        self,
        start_decree: int,
        apply: Callable[[list[tuple[bytes, bytes | None]]], None] | None = None,
        tombstone_seconds: int = 0,
    ) -> int:
        """Replay mutations from ``start_decree`` through ``apply``; truncate a torn tail; open for append.

        Files are replayed in order, the next one decoded on a helper thread
        (the backend releases the GIL) while the batches of the current one are
        applied. Returns the last decree in the log, or 0.
        """
        impl = _backend.impl
        # A log that never had a write has no directory yet (ensure_dir): a new table's
        # partitions each cost one inode, not two (issue #16). A partition that has stored
        # anything has one: RocksDB is never created before it (layout.check_present).
        names = [] if not os.path.isdir(self.path) else [n for _i, _o, n in list_log_files(self.path)]
        for name in names:
            # a log file that is a symlink could lead anywhere: never read or appended through
            if stat.S_ISLNK(os.lstat(os.path.join(self.path, name)).st_mode):
                raise UnsafePathError(os.path.join(self.path, name), "a WAL file that is a symlink")
        files: list[LogFile] = []
        if names:
            with ThreadPoolExecutor(1, thread_name_prefix="wal-replay") as pool:

                def replay(i: int) -> Future[tuple[list, tuple, bool]]:
                    return pool.submit(
                        impl.replay_log_file,
                        os.path.join(self.path, names[i]),
                        start_decree,
                        REPLAY_BATCH,
                        tombstone_seconds,
                    )

                pending = replay(0)
                for i, name in enumerate(names):
                    batches, (_, first, last, valid_end, size), torn = pending.result()
                    if i + 1 < len(names):
                        pending = replay(i + 1)
                        if torn:
                            raise WalCorruptionError(
                                os.path.join(self.path, name),
                                valid_end,
                                "torn block in a log file that is not the newest",
                            )
                    if apply is not None:
                        for _last, writes in batches:
                            apply(writes)
                    del batches
                    _, index, start = name.split(".")
                    files.append(LogFile(int(index), int(start), name, first, last, size))
                    if valid_end < size:  # the newest file's torn tail: cut it off
                        fd = fileio.open(os.path.join(self.path, name), os.O_WRONLY | os.O_NOFOLLOW)
                        try:
                            fileio.truncate(fd, valid_end)
                            fileio.fsync(fd)
                        finally:
                            fileio.close(fd)
                        files[-1].size = valid_end
        self._check_continuity(files, start_decree)
        last_decree = max((f.last_decree for f in files), default=0)
        walhead.check(self.path, files[-1].index if files else 0, start_decree, last_decree)
        # empty files go, but never the newest: HEAD may name it
        self.files = [f for f in files[:-1] if f.size > 0] + files[-1:]
        for f in files:
            if f not in self.files:
                fileio.unlink(os.path.join(self.path, f.name))
        self._open_tail()
        return last_decree

    def _check_continuity(self, files: list[LogFile], start_decree: int) -> None:
        expected = 0
        for f in files:
            if not f.first_decree:
                continue
            if expected and f.first_decree != expected:
                raise WalGapError(os.path.join(self.path, f.name), expected, f.first_decree)
            expected = f.last_decree + 1
        with_data = [f for f in files if f.first_decree]
        if with_data and with_data[-1].last_decree >= start_decree > 0:
            if with_data[0].first_decree > start_decree:
                raise WalGapError(self.path, start_decree, with_data[0].first_decree)

    def has_data(self) -> bool:
        """Whether any log file with bytes exists (without opening the log)."""
        if not os.path.isdir(self.path):
            return False
        return any(
            name.startswith("log.") and os.path.getsize(os.path.join(self.path, name)) > 0
            for name in os.listdir(self.path)
        )


__all__ = ["REPLAY_BATCH", "LogFile", "WalRecovery"]
