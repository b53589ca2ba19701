"""A primary's links to its secondaries (multinode/links.py) are stopped once no partition sends
over them: a secondary gone from every configuration, or back at another address, must not
leave two threads and a connection behind for the life of the process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inprocess_replication import in_process_replication
from pegasus_fast.coord.layout import PartitionDoc
from pegasus_fast.engine.cluster import Cluster
from pegasus_fast.multinode.replication import Replication
from pegasus_fast.net.peer import Peers
from servedcheck import free_port


@pytest.fixture
def replication(tmp_path: Path) -> Iterator[tuple[Replication, Cluster]]:
    cluster = Cluster.open(str(tmp_path / "c"), name="c")
    cluster.create_table("t", 2)
    peers = Peers()
    # nothing listens at the secondaries' URLs: the links keep failing and trying again,
    # threads alive, as they do for a node that died
    r = in_process_replication(cluster, peers)
    try:
        yield r, cluster
    finally:
        r.close()
        peers.close()
        cluster.close()


def _url() -> str:
    """A URL nothing listens at."""
    return f"pegasus://127.0.0.1:{free_port()}"


def _adopt(r: Replication, parts: list[Any], ballot: int, urls: dict[str, str], owner: str = "n1") -> None:
    """Every partition of ``parts`` at ``ballot``, led by ``owner``, the nodes of ``urls`` its
    secondaries."""
    for p in parts:
        r.adopt(p, PartitionDoc(owner=owner, ballot=ballot, secondaries=tuple(urls)), urls)


def _gone(link: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while link.alive():  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_secondary_at_another_address_leaves_no_link_behind(
    replication: tuple[Replication, Cluster],
) -> None:
    r, cluster = replication
    parts = cluster.table("t").partitions
    old, new = _url(), _url()
    _adopt(r, parts, 2, {"n2": old})
    first = r.links[("n2", old)]
    assert first.alive()
    r.reap()
    assert set(r.links) == {("n2", old)}, "a link in use is kept"
    # n2 back at another address: only one partition has read it so far
    _adopt(r, parts[:1], 2, {"n2": new})
    r.reap()
    assert set(r.links) == {("n2", old), ("n2", new)}, "the old link still carries partition 1"
    _adopt(r, parts[1:], 2, {"n2": new})
    r.reap()
    assert set(r.links) == {("n2", new)}
    assert _gone(first), "the old link's threads still run"
    assert r.links[("n2", new)].alive()


def test_a_secondary_removed_from_every_partition_leaves_no_link(
    replication: tuple[Replication, Cluster],
) -> None:
    r, cluster = replication
    parts = cluster.table("t").partitions
    url2, url3 = _url(), _url()
    _adopt(r, parts, 2, {"n2": url2, "n3": url3})
    dead = r.links[("n3", url3)]
    # the failover takes n3 out (ballot + 1), partition by partition
    _adopt(r, parts, 3, {"n2": url2})
    r.reap()
    assert set(r.links) == {("n2", url2)}
    assert _gone(dead)
    # and the primary role moves away: no link at all
    kept = r.links[("n2", url2)]
    _adopt(r, parts, 4, {"n1": _url()}, owner="n2")
    r.reap()
    assert r.links == {}
    assert _gone(kept)


def test_a_dropped_tables_links_are_stopped(replication: tuple[Replication, Cluster]) -> None:
    r, cluster = replication
    url = _url()
    _adopt(r, cluster.table("t").partitions, 2, {"n2": url})
    link = r.links[("n2", url)]
    r.forget("t")
    r.reap()
    assert r.links == {}
    assert _gone(link)
