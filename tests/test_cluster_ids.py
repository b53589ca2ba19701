"""Cluster ids (Pegasus [duplication-group]): configured 1..127, derived by default, reported,
fixed once the cluster exists, and never shared by the two sides of a duplication."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pegasus_fast as pf
import pytest
from pegasus_fast import _backend


def _derived(name: str) -> int:
    return _backend.impl.crc64(name.encode()) % 127 + 1


@pytest.mark.parametrize("bad", [0, 128, -1, 1000])
def test_config_cluster_id_out_of_range(bad: int) -> None:
    with pytest.raises(pf.InvalidArgumentError):
        pf.Config(cluster_id=bad)


@pytest.mark.parametrize("bad", [1.5, "5", True, b"5"])
def test_config_cluster_id_wrong_type(bad: Any) -> None:
    with pytest.raises(pf.InvalidTypeError):
        pf.Config(cluster_id=bad)


def test_configured_and_derived_ids_are_reported(tmp_path: Path, backend: Any) -> None:
    with pf.Cluster.open(tmp_path / "a", name="alpha", config=pf.Config(cluster_id=42)) as c:
        info = c.info()
        assert (info.cluster_id, info.cluster_id_derived, info.name) == (42, False, "alpha")
        assert c.cluster_id == 42
    with pf.Cluster.open(tmp_path / "b", name="beta") as c:
        info = c.info()
        assert (info.cluster_id, info.cluster_id_derived) == (_derived("beta"), True)
    # stored: reopening without configuring keeps it, and so does the derived flag
    with pf.Cluster.open(tmp_path / "a") as c:
        assert (c.info().cluster_id, c.info().cluster_id_derived) == (42, False)
    with pf.Cluster.open(tmp_path / "b") as c:
        assert c.info().cluster_id_derived


def test_cluster_id_cannot_change_once_stored(tmp_path: Path, backend: Any) -> None:
    with pf.Cluster.open(tmp_path / "a", config=pf.Config(cluster_id=7)) as c:
        c.create_table("t", partition_count=1).set("k", "s", "v")
    with pytest.raises(pf.InvalidArgumentError):
        pf.Cluster.open(tmp_path / "a", config=pf.Config(cluster_id=8))
    with pytest.raises(pf.InvalidArgumentError):
        pf.Cluster.open(tmp_path / "a", cluster_id=8)
    with pytest.raises(pf.InvalidArgumentError):  # the two ways of saying it disagree
        pf.Cluster.open(tmp_path / "a", cluster_id=7, config=pf.Config(cluster_id=9))
    with pf.Cluster.open(tmp_path / "a", config=pf.Config(cluster_id=7)) as c:
        assert c.table("t").get("k", "s") == b"v"


def test_two_names_can_derive_one_id_and_a_duplication_between_them_is_refused(
    tmp_path: Path, backend: Any
) -> None:
    # find two names that collide under the derived default
    seen: dict[int, str] = {}
    pair = None
    for i in range(1000):
        name = f"cluster-{i}"
        cid = _derived(name)
        if cid in seen:
            pair = (seen[cid], name)
            break
        seen[cid] = name
    assert pair is not None
    with (
        pf.Cluster.open(tmp_path / "a", name=pair[0]) as a,
        pf.Cluster.open(tmp_path / "b", name=pair[1]) as b,
    ):
        assert a.cluster_id == b.cluster_id
        a.create_table("t", partition_count=2).set("k", "s", "v")
        with pytest.raises(pf.DuplicationError):
            a.add_duplication("t", b)
        # by path, the driver finds out when it reaches the remote, and stops: no retry can fix it
        dup = a.add_duplication("t", str(tmp_path / "b"), fail_mode="slow")
        with pytest.raises(pf.DuplicationError):
            dup.wait_for(pf.DupStatus.LOG, timeout=10)
        assert isinstance(dup.error, pf.DuplicationError)
        assert not b.list_tables()


def test_distinct_configured_ids_duplicate(tmp_path: Path, backend: Any) -> None:
    with (
        pf.Cluster.open(tmp_path / "a", config=pf.Config(cluster_id=1)) as a,
        pf.Cluster.open(tmp_path / "b", config=pf.Config(cluster_id=2)) as b,
    ):
        a.create_table("t", partition_count=2).set("k", "s", "v")
        a.add_duplication("t", b).wait_for(pf.DupStatus.LOG, timeout=10)
        assert b.table("t").get("k", "s") == b"v"
