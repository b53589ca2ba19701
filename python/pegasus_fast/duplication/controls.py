"""What an operator changes of a running duplication (its remote token), and what it reports
when it cannot progress (``stuck_reason``): a mixin of ``Duplication`` (driver.py), which
provides what is declared below.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from ..errors import DuplicationError, InvalidTypeError
from .ports import Follower
from .record import DupRecord
from .status import DupStatus
from .stuck import Stuck


class DuplicationControls:
    dupid: int
    error: BaseException | None
    _record: DupRecord
    _status: DupStatus
    _changed: threading.Condition
    _wake: threading.Event
    _reasons: list[str]
    _follower: Follower | None
    _reconnect: bool
    _stuck: Stuck

    if TYPE_CHECKING:  # what Duplication provides

        def _save(self, record: DupRecord) -> None: ...

    @property
    def stuck_reason(self) -> str | None:
        """Why the duplication cannot progress (no retry of its own takes it away), or None."""
        return self._stuck.overall()

    def update(self, *, remote_token: str | None = None) -> None:
        """Change what the running duplication shows its remote: persisted first, then the
        driver reconnects with it and carries on from the decrees the follower holds."""
        if remote_token is None:
            raise InvalidTypeError("update needs something to change: remote_token")
        if not isinstance(remote_token, str) or not remote_token:
            raise InvalidTypeError("remote_token must be a non-empty str")
        with self._changed:
            if self._status == DupStatus.REMOVED:
                raise DuplicationError(f"duplication {self.dupid} was removed")
            self._save(replace(self._record, remote_token=remote_token))
        # calls in flight with the old token end; the driver connects again with the new one
        self._reconnect = True
        follower = self._follower
        if follower is not None:
            follower.cancel()
        self._wake.set()

    def uses_token(self, remote_token: str) -> bool:
        """Whether ``remote_token`` is the one kept (a node compares ZooKeeper's with it)."""
        return self._record.remote_token == remote_token

    def wait_started(self, timeout: float) -> None:
        """Wait (at most ``timeout``) until the duplication is past INIT, has failed, or waits
        on its remote: a duplication without checkpoint is judged (FollowerGapError) by then."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._status == DupStatus.INIT and self.error is None and not any(self._reasons):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._changed.wait(min(left, 0.1))


__all__ = ["DuplicationControls"]
