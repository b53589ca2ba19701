"""Progress of a duplication's checkpoint copies (DS_APP), per partition, with rich.

Only partitions that copy checkpoint files (large ones) get a bar: bytes copied,
rate and ETA, from ``Duplication.progress()``. Empty and small partitions learn in
one message and have nothing to show.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn

from ..duplication import DupStatus
from ..errors import DuplicationStuckError

#: seconds between two looks at the duplication's progress
REFRESH = 0.2


def wait_for_log(
    dup: Any,
    timeout: float,
    show: bool = True,
    file: TextIO | None = None,
    give_up: Callable[[], str | None] | None = None,
) -> None:
    """Wait for DS_LOG like ``dup.wait_for``, drawing the copies meanwhile when ``show``.

    ``give_up`` is asked between two looks: a reason it returns (a stuck reason waiting cannot
    take away) ends the wait at once with DuplicationStuckError.
    """
    deadline = time.monotonic() + timeout
    bar: Progress | None = None
    tasks: dict[int, TaskID] = {}
    with contextlib.ExitStack() as stack:
        if show:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TextColumn("{task.fields[rate]}"),
                TextColumn("{task.fields[eta]}"),
            )
            console = Console(file=file or sys.stderr)
            bar = stack.enter_context(Progress(*columns, console=console, refresh_per_second=5))
        while True:
            left = deadline - time.monotonic()
            try:
                dup.wait_for(DupStatus.LOG, timeout=max(0.0, min(REFRESH, left)))
            except TimeoutError:
                if left <= REFRESH:
                    raise
                reason = give_up() if give_up is not None else None
                if reason:
                    raise DuplicationStuckError(
                        dup.dupid, reason, str(dup.status), str(DupStatus.LOG), "given up at once"
                    ) from None
                if bar is not None:
                    update(bar, tasks, dup.progress())
                continue
            if bar is not None:
                update(bar, tasks, dup.progress())
            return


def update(bar: Progress, tasks: dict[int, TaskID], progress: list[Any]) -> None:
    for p in progress:
        if p.copy_total_bytes <= 0:
            continue
        rate, eta = rate_eta(p.copied_bytes, p.copy_total_bytes, p.copy_seconds)
        task = tasks.get(p.pidx)
        if task is None:
            task = tasks[p.pidx] = bar.add_task(
                f"partition {p.pidx}", total=p.copy_total_bytes, rate=rate, eta=eta
            )
        bar.update(task, completed=p.copied_bytes, total=p.copy_total_bytes, rate=rate, eta=eta)


def rate_eta(copied: int, total: int, seconds: float) -> tuple[str, str]:
    """The copy's own rate (its bytes over its seconds, from the driver's clock, so a copy
    that ended between two looks still has one) and the time left at that rate."""
    if copied >= total:
        return (f"{copied / seconds / 1e6:,.1f} MB/s" if seconds > 0 else "- MB/s"), "done"
    if copied <= 0 or seconds <= 0:
        return "? MB/s", "eta ?"
    rate = copied / seconds
    left = (total - copied) / rate
    return f"{rate / 1e6:,.1f} MB/s", f"eta {int(left // 60)}:{int(left % 60):02d}"
