"""Duplication and partition metrics that tell the truth (issue #20 §2), from served processes:
pending mutations and time lag grow while the follower is down, and return to 0 after; the
follower exports its applied decree and lag; partitions by state; the series of a removed
duplication and of a dropped table go away."""

from __future__ import annotations

import pegasus_fast as pf
import pytest
from dupharness import wait_until
from observe import METRICS_ARGS, key, metrics_url, scrape
from served import Fleet
from servedcheck import TABLE, WAIT, free_port, wait_caught_up

pytestmark = pytest.mark.usefixtures("default_backend")

PARTITIONS = 2


def _dup(m: dict[str, float], name: str, dupid: int, pidx: int) -> float:
    return m[key(name, dupid=dupid, table=TABLE, pidx=pidx)]


def test_pending_and_lag_grow_while_the_follower_is_down(fleet: Fleet) -> None:
    src, dst = fleet.add("source"), fleet.add("target")
    dst.port = free_port()
    src.start(*METRICS_ARGS)
    dst.start(*METRICS_ARGS)
    surl, durl = metrics_url(src), metrics_url(dst)
    with pf.connect(src.url, timeout=10.0) as rc:
        t = rc.create_table(TABLE, PARTITIONS)
        d = rc.add_duplication(TABLE, dst.url)
        for i in range(20):
            t.set(b"k%d" % i, b"s", b"v")
        wait_caught_up(d, "before the outage")
        m = scrape(surl)
        for i in range(PARTITIONS):
            assert _dup(m, "dup_pending_mutations", d.dupid, i) == 0
            assert _dup(m, "dup_time_lag_ms", d.dupid, i) == 0
        # the follower's view: the source decree each partition holds, and its lag
        f = scrape(durl)
        confirmed = [_dup(m, "dup_confirmed_decree", d.dupid, i) for i in range(PARTITIONS)]
        applied = [f[key("follower_applied_decree", table=TABLE, pidx=i)] for i in range(PARTITIONS)]
        assert applied == confirmed and sum(applied) >= 20
        for i in range(PARTITIONS):
            assert 0 <= f[key("follower_lag_ms", table=TABLE, pidx=i)] < 60_000
            assert f[key("follower_last_apply_timestamp_seconds", table=TABLE, pidx=i)] > 0
        assert f[key("partitions", table=TABLE, state="serving")] == PARTITIONS

        dst.kill9()
        for i in range(40):
            t.set(b"down%d" % i, b"s", b"v")
        progress = {p.pidx: p for p in d.progress()}
        first = scrape(surl)
        pending = [_dup(first, "dup_pending_mutations", d.dupid, i) for i in range(PARTITIONS)]
        assert sum(pending) == 40  # what query_dup says, not 0
        assert pending == [progress[i].pending_mutations for i in range(PARTITIONS)]
        lag0 = max(_dup(first, "dup_time_lag_ms", d.dupid, i) for i in range(PARTITIONS))
        assert lag0 > 0

        # the lag keeps growing while nothing ships
        def grew() -> bool:
            m = scrape(surl)
            return max(_dup(m, "dup_time_lag_ms", d.dupid, i) for i in range(PARTITIONS)) > lag0 + 1000

        wait_until(grew, WAIT, lambda: str(scrape(surl)))
        assert sum(_dup(scrape(surl), "dup_pending_mutations", d.dupid, i) for i in range(PARTITIONS)) == 40
        dst.start(*METRICS_ARGS)
        wait_caught_up(d, "after the outage")

        def settled() -> bool:
            m = scrape(surl)
            return all(
                _dup(m, "dup_pending_mutations", d.dupid, i) == 0
                and _dup(m, "dup_time_lag_ms", d.dupid, i) == 0
                for i in range(PARTITIONS)
            )

        wait_until(settled, WAIT, lambda: str(scrape(surl)))
    assert src.stop() == 0 and dst.stop() == 0


def test_series_go_with_a_removed_duplication_and_a_dropped_table(fleet: Fleet) -> None:
    src, dst = fleet.add("source"), fleet.add("target")
    src.start(*METRICS_ARGS)
    dst.start()
    url = metrics_url(src)
    with pf.connect(src.url, timeout=10.0) as rc:
        t = rc.create_table(TABLE, PARTITIONS)
        t.set(b"a", b"s", b"v")
        d = rc.add_duplication(TABLE, dst.url)
        wait_caught_up(d, "first")
        label = f'dupid="{d.dupid}"'
        m = scrape(url)
        assert m[key("dup_status", dupid=d.dupid, table=TABLE, status="DS_LOG")] == 1
        assert m[key("dup_failed", dupid=d.dupid, table=TABLE)] == 0
        assert [k for k in m if k.startswith("dup_status{")] == [
            key("dup_status", dupid=d.dupid, table=TABLE, status="DS_LOG")
        ]
        d.remove()
        left = [k for k in scrape(url) if label in k]
        assert left == []
        m = scrape(url)
        assert m[key("partitions", table=TABLE, state="serving")] == PARTITIONS
        assert m[key("partition_last_committed_decree", table=TABLE, pidx=0)] >= 0
        rc.drop_table(TABLE)
        left = [k for k in scrape(url) if f'table="{TABLE}"' in k]
        assert left == []
    assert src.stop() == 0
