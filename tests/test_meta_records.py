"""Persisted metadata is typed and checked at load: a crafted or malformed record with a valid
checksum is MetaCorruptionError, never a path outside the cluster or a runaway open."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pegasus_fast as pf
import pytest
from pegasus_fast import _backend
from pegasus_fast.duplication.record import CkptState, DupRecord, PartitionCheckpoint
from pegasus_fast.duplication.status import DupStatus
from pegasus_fast.engine.meta import ClusterState, TableRecord


def _journal(path: Path) -> Path:
    return path / "meta" / "journal"


def _last_state(path: Path) -> dict[str, Any]:
    line = _journal(path).read_bytes().splitlines()[-1]
    return json.loads(line[9:])


def _append_state(path: Path, state: dict[str, Any]) -> None:
    body = json.dumps(state, sort_keys=True, separators=(",", ":")).encode()
    with open(_journal(path), "ab") as f:
        f.write(b"%08x " % _backend.impl.crc32c(body) + body + b"\n")


@pytest.fixture
def made(tmp_path: Path, backend: Any) -> tuple[Path, dict[str, Any]]:
    """A closed cluster with a table and a duplication record, and its last metadata state."""
    src_path, dst_path = tmp_path / "src", tmp_path / "dst"
    with pf.Cluster.open(src_path, name="src") as src, pf.Cluster.open(dst_path, name="dst") as dst:
        t = src.create_table("t", partition_count=2)
        t.set("a", "b", "c")
        dup = src.add_duplication("t", dst)
        dup.wait_for(pf.DupStatus.LOG, timeout=10)
    return src_path, _last_state(src_path)


def _crafted(mutate: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def make(state: dict[str, Any]) -> dict[str, Any]:
        s = copy.deepcopy(state)
        mutate(s)
        return s

    return make


def _set_table(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda s: s["tables"]["t"].__setitem__(field, value)


def _set_dup(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda s: next(iter(s["duplications"].values())).__setitem__(field, value)


CRAFTED: dict[str, Callable[[dict[str, Any]], None]] = {
    "app_id a path": _set_table("app_id", "../../victim"),
    "app_id absolute": _set_table("app_id", "/tmp/victim"),
    "app_id negative": _set_table("app_id", -1),
    "app_id bool": _set_table("app_id", True),
    "partition_count huge": _set_table("partition_count", 10**6),
    "partition_count zero": _set_table("partition_count", 0),
    "partition_count str": _set_table("partition_count", "8"),
    "table status unknown": _set_table("status", "GONE"),
    "envs not str": _set_table("envs", {"k": 1}),
    "table name a path": lambda s: s["tables"].__setitem__("../x", s["tables"].pop("t")),
    "table record a list": lambda s: s["tables"].__setitem__("t", [1, 2]),
    "cluster_id 500": lambda s: s.__setitem__("cluster_id", 500),
    "cluster_id 1.5": lambda s: s.__setitem__("cluster_id", 1.5),
    "next_app_id rolled back": lambda s: s.__setitem__("next_app_id", 1),
    "unknown format": lambda s: s.__setitem__("format", 99),
    "tables not an object": lambda s: s.__setitem__("tables", []),
    "dup status unknown": _set_dup("status", "DS_WHATEVER"),
    "dup fail_mode unknown": _set_dup("fail_mode", "sometimes"),
    "dup partitions empty": _set_dup("partitions", []),
    "dup confirmed negative": lambda s: next(iter(s["duplications"].values()))["partitions"][0].__setitem__(
        "confirmed", -5
    ),
    "dup checkpoint state unknown": lambda s: next(iter(s["duplications"].values()))["partitions"][
        0
    ].__setitem__("state", "copying 1/2 bytes"),
    "dup id not a number": lambda s: s["duplications"].__setitem__("x", s["duplications"].pop("1")),
    "dup timeline malformed": _set_dup("timeline", [["DS_INIT"]]),
    "the document a list": lambda s: (s.clear(), None)[1],
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_metadata_is_refused_and_nothing_is_touched(
    made: tuple[Path, dict[str, Any]], tmp_path: Path, case: str
) -> None:
    path, state = made
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("mine")
    before = sorted(os.listdir(path / "tables"))
    _append_state(path, _crafted(CRAFTED[case])(state))
    with pytest.raises(pf.MetaCorruptionError) as ei:
        pf.Cluster.open(path)
    assert ei.value.path == str(_journal(path))
    assert sorted(os.listdir(path / "tables")) == before
    assert (victim / "keep").read_text() == "mine"
    # the lock was released: the directory opens again once the bad record is gone
    lines = _journal(path).read_bytes().splitlines(keepends=True)
    _journal(path).write_bytes(b"".join(lines[:-1]))
    with pf.Cluster.open(path) as c:
        assert c.table("t").get("a", "b") == b"c"


def test_records_round_trip() -> None:
    part = PartitionCheckpoint(kind="large", decree=7, state=CkptState.READY, confirmed=7, duration_ms=1.5)
    rec = DupRecord(
        table="t",
        remote="/x",
        remote_name="x",
        remote_table="t",
        fail_mode="slow",
        with_checkpoint=True,
        create_time=1.0,
        status=DupStatus.APP,
        timeline=(("DS_INIT", 1.0), ("DS_APP", 2.0)),
        partitions=(part, PartitionCheckpoint()),
    )
    assert DupRecord.from_json(json.loads(json.dumps(rec.to_json()))) == rec
    assert part.describe() == "ready@7"
    table = TableRecord(app_id=3, partition_count=4, status="AVAILABLE", create_time=2.0, envs={"a": "b"})
    assert TableRecord.from_json(json.loads(json.dumps(table.to_json()))) == table
    state = ClusterState(name="c", cluster_id=5, uid="u", next_app_id=4, tables={"t": table}, next_dupid=2)
    state = ClusterState(**{**state.__dict__, "duplications": {1: rec}})
    assert ClusterState.from_json(json.loads(json.dumps(state.to_json()))) == state
