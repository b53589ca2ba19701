"""A source and a follower cluster of one duplication, behind a small factory.

The fault walk (test_faults_duplication.py) and the stateful model
(test_stateful_duplication.py) reach the two clusters only through
:class:`DupPair`: open, restart either side, read what the follower holds.
Here both are embedded clusters in this process; a served follower (another
process, over the wire) replaces ``open_follower``/``restart_follower`` and the
``follower_*`` readers and leaves the tests as they are.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pegasus_fast as pf
from pegasus_fast import _backend
from pegasus_fast.records import Op

SOURCE_DECREE_OP = int(Op.SOURCE_DECREE)
Raw = dict[bytes, bytes]


class DupPair:
    """``source`` duplicates to ``follower``; every open cluster is closed by :meth:`close`."""

    def __init__(
        self,
        root: Path,
        source_config: pf.Config | None = None,
        follower_config: pf.Config | None = None,
        source_template: Path | None = None,
    ) -> None:
        self.root = root
        self.source_dir = root / "source"
        self.follower_dir = root / "target"
        self.source_config = source_config
        self.follower_config = follower_config
        if source_template is not None:
            shutil.copytree(source_template, self.source_dir)
        self.source: pf.Cluster | None = None
        self.follower: pf.Cluster | None = None
        self.restarts = {"source": 0, "follower": 0}

    #: what a fault plan's path_part names to hit one side only
    @property
    def source_part(self) -> str:
        return os.sep + "source" + os.sep

    @property
    def follower_part(self) -> str:
        return os.sep + "target" + os.sep

    def open_source(self) -> pf.Cluster:
        self.source = pf.Cluster.open(self.source_dir, name="source", config=self.source_config)
        return self.source

    def open_follower(self) -> pf.Cluster:
        self.follower = pf.Cluster.open(self.follower_dir, name="target", config=self.follower_config)
        return self.follower

    def close_source(self) -> None:
        c, self.source = self.source, None
        if c is not None and not c.closed:
            c.close()

    def close_follower(self) -> None:
        c, self.follower = self.follower, None
        if c is not None and not c.closed:
            c.close()

    def restart_source(self) -> pf.Cluster:
        self.restarts["source"] += 1
        self.close_source()
        return self.open_source()

    def restart_follower(self) -> pf.Cluster:
        self.restarts["follower"] += 1
        self.close_follower()
        return self.open_follower()

    def close(self) -> None:
        errors: list[BaseException] = []
        for close in (self.close_source, self.close_follower):
            try:
                close()
            except pf.CloseError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def add_duplication(self, table: str, **kwargs: Any) -> pf.Duplication:
        assert self.source is not None and self.follower is not None
        return self.source.add_duplication(table, self.follower, **kwargs)

    # -- what the follower holds (a served follower answers these over the wire) -------------

    def follower_has_table(self, table: str) -> bool:
        assert self.follower is not None
        return self.follower.has_table(table)

    def follower_states(self, table: str) -> list[str]:
        assert self.follower is not None
        return [p.state for p in self.follower.table(table).partitions]

    def follower_source_decrees(self, table: str) -> list[int]:
        """Per partition, the last source decree the follower holds."""
        assert self.follower is not None
        return [p.source_decree for p in self.follower.table(table).partitions]

    def follower_raw(self, table: str) -> Raw:
        assert self.follower is not None
        return raw_records(self.follower.table(table))

    def follower_applied(self, table: str) -> list[list[int]]:
        """Per partition, the source decrees its WAL recorded, in log order (each once if
        nothing was applied twice)."""
        assert self.follower is not None
        out = []
        for p in self.follower.table(table).partitions:
            mutations, _infos = _backend.impl.scan_log_dir(p.wal.path, 0)
            out.append([op[1] for m in mutations for op in m[3] if op[0] == SOURCE_DECREE_OP])
        return out

    def follower_get(self, table: str, pidx: int, key: bytes) -> bytes | None:
        assert self.follower is not None
        return self.follower.table(table).partitions[pidx].get(key)

    def needs_restart(self, cluster: pf.Cluster | None) -> bool:
        """A failed partition or a fenced metadata journal refuses everything until reopened."""
        if cluster is None or cluster.closed:
            return False
        if getattr(getattr(cluster.meta, "store", None), "_fenced", None) is not None:
            return True
        return any(p.state == "failed" for t in cluster.open_tables() for p in t.partitions)


def raw_records(table: pf.Table) -> Raw:
    """Every stored RocksDB key -> raw value (expire_ts | timetag | value)."""
    return {k: v for p in table.partitions for k, v in p.raw_view()}


def wait_until(pred: Callable[[], bool], timeout: float, what: str | Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what() if callable(what) else what}"
            )
        time.sleep(0.005)


def caught_up(pair: DupPair, table: str) -> bool:
    assert pair.source is not None
    src = [p.last_committed for p in pair.source.table(table).partitions]
    if not pair.follower_has_table(table):
        return False
    return (
        all(s == "serving" for s in pair.follower_states(table))
        and pair.follower_source_decrees(table) == src
    )


def check_converged(pair: DupPair, table: str, model: Raw | None = None) -> None:
    """The follower holds exactly what the source holds, each source decree applied once."""
    assert pair.source is not None
    src = pair.source.table(table)
    want = raw_records(src)
    got = pair.follower_raw(table)
    assert got.keys() == want.keys(), (
        f"missing on follower: {sorted(want.keys() - got.keys())[:5]}, extra: {sorted(got.keys() - want.keys())[:5]}"
    )
    assert got == want
    for pidx, seq in enumerate(pair.follower_applied(table)):
        assert all(a < b for a, b in zip(seq, seq[1:])), (
            f"partition {pidx} applied a source decree twice: {seq}"
        )
    assert pair.follower_source_decrees(table) == [p.last_committed for p in src.partitions]
    if model is not None:
        assert {(hk, sk): v for hk, sk, v in src.scan()} == model
