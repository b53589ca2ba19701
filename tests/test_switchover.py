"""Switch over, with nothing lost (issue #21 §2): the source is fenced (TableMovedError naming the
new primary, durable across a restart), the follower confirms the source's last decree, takes
client writes and duplicates back without a checkpoint; every acknowledged write is on the new
primary; a second switchover switches back; one that cannot finish unfences the source."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pegasus_fast as pf
import pytest
from conftest import DEFAULT_BACKEND, PYTHON, child_env
from dupharness import wait_until
from served import Fleet, Served, start_all

WAIT = 20.0

pytestmark = pytest.mark.usefixtures("default_backend")


class Writer:
    """Writes key i = i to a table from a thread, as fast as it is answered, following a
    TableMovedError to the primary it names; remembers every acknowledged key."""

    def __init__(self, connect: Any, url: str, table: str) -> None:
        self._connect = connect
        self.url = url
        self.table = table
        self.acked: list[int] = []
        self.moved: list[pf.TableMovedError] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(WAIT)

    def _run(self) -> None:
        i = 0
        c = self._connect(self.url)
        try:
            t = c.table(self.table)
            while not self._stop.is_set():
                try:
                    t.set(f"w{i}", "s", str(i))
                except pf.FollowerTableError:
                    # moved to the new primary before it took over: not acknowledged, try again
                    time.sleep(0.001)
                    continue
                except pf.TableMovedError as exc:
                    self.moved.append(exc)
                    c.close()
                    self.url = exc.primary
                    c = self._connect(self.url)
                    t = c.table(self.table)
                    continue
                self.acked.append(i)
                i += 1
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            self.error = exc
        finally:
            c.close()

    def wait_for(self, n: int) -> None:
        wait_until(lambda: len(self.acked) >= n or self.error is not None, WAIT, f"{n} writes")
        assert self.error is None, self.error


def missing(t: Any, keys: list[int]) -> list[int]:
    found = t.batch_get([(f"w{i}", "s") for i in keys])
    return [i for i, v in zip(keys, found) if v != str(i).encode()]


# -- embedded ----------------------------------------------------------------------------------


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[pf.Cluster, pf.Cluster]]:
    a = pf.Cluster.open(tmp_path / "a", name="a", config=pf.Config(cluster_id=1))
    b = pf.Cluster.open(tmp_path / "b", name="b", config=pf.Config(cluster_id=2))
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _embedded(path: str) -> Any:
    """An embedded cluster open in this process, as the writer connects to one by its path."""
    from pegasus_fast.engine.open_clusters import open_cluster_at

    c = open_cluster_at(path)
    assert c is not None

    class Handle:
        def table(self, name: str) -> Any:
            return c.table(name)

        def close(self) -> None:
            pass

    return Handle()


def test_embedded_switchover_loses_nothing_and_switches_back(two: tuple[pf.Cluster, pf.Cluster]) -> None:
    a, b = two
    ta = a.create_table("t", partition_count=8)
    for i in range(50):
        ta.set(f"pre{i}", "s", "v")
    dup = a.add_duplication("t", b)
    dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    with Writer(_embedded, a.path, "t") as w:
        w.wait_for(200)
        report = dup.switchover(timeout=WAIT)
        wait_until(lambda: bool(w.moved) and len(w.acked) > 0, WAIT, "the writer moved")
        w.wait_for(len(w.acked) + 100)  # and it writes on the new primary
    assert report.rpo_mutations == 0
    assert (report.table, report.old_dupid, report.new_primary) == ("t", dup.dupid, b.path)
    assert report.write_unavailable_ms > 0 and report.catch_up_ms <= report.write_unavailable_ms
    assert w.moved[0].primary == b.path and w.moved[0].table == "t"
    tb = b.table("t")
    assert missing(tb, w.acked) == []
    # the source is fenced, the follower took over and duplicates back
    with pytest.raises(pf.TableMovedError) as info:
        ta.set("x", "s", "v")
    assert info.value.primary == b.path
    assert a.table_role("t").moved_to == b.path
    assert dup.status == pf.DupStatus.REMOVED
    back = b.duplication(report.new_dupid)
    back.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    assert (back.remote, back.with_checkpoint) == (a.path, False)
    role = b.table_role("t")
    assert (role.kind, role.writable, role.follows, role.source_of) == ("source", True, "", (back.dupid,))
    tb.set("after", "s", "on b")
    wait_until(lambda: ta.get("after", "s") == b"on b", WAIT, "the old source following")
    assert a.table_role("t").follows == f"b.t#{back.dupid}"
    # a second switchover switches back
    again = back.switchover(timeout=WAIT)
    assert again.rpo_mutations == 0 and again.new_primary == a.path
    ta.set("home", "s", "again")
    with pytest.raises(pf.TableMovedError):
        tb.set("x", "s", "v")
    a.duplication(again.new_dupid).wait_for(pf.DupStatus.LOG, timeout=WAIT)
    ta.set("home2", "s", "again")
    wait_until(lambda: tb.get("home2", "s") == b"again", WAIT, "b following a again")
    assert tb.get("home", "s") == b"again" and missing(ta, w.acked) == []


def test_the_fence_survives_a_restart_of_the_old_source(tmp_path: Path) -> None:
    cfg = pf.Config(cluster_id=1)
    a = pf.Cluster.open(tmp_path / "a", name="a", config=cfg)
    b = pf.Cluster.open(tmp_path / "b", name="b", config=pf.Config(cluster_id=2))
    try:
        a.create_table("t", partition_count=2).set("k", "s", "v")
        dup = a.add_duplication("t", b)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        report = dup.switchover(timeout=WAIT)
        a.close()
        a = pf.Cluster.open(tmp_path / "a", name="a", config=cfg)
        with pytest.raises(pf.TableMovedError):
            a.table("t").set("k", "s", "lost")
        # the reverse duplication still applies into it
        b.table("t").set("k", "s", "from b")

        def arrived() -> bool:
            try:
                return a.table("t").get("k", "s") == b"from b"
            except pf.PartitionUnavailableError:
                return False  # adopted, not yet started again by the reverse duplication

        wait_until(arrived, WAIT, "the reverse duplication")
        assert b.duplication(report.new_dupid).status == pf.DupStatus.LOG
    finally:
        a.close()
        b.close()


def test_a_switchover_that_cannot_finish_unfences_the_source(tmp_path: Path) -> None:
    a = pf.Cluster.open(tmp_path / "a", name="a", config=pf.Config(cluster_id=1))
    cfg_b = pf.Config(cluster_id=2)
    b = pf.Cluster.open(tmp_path / "b", name="b", config=cfg_b)
    try:
        ta = a.create_table("t", partition_count=4)
        dup = a.add_duplication("t", b)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        ta.set("k", "s", "v")
        b.close()  # the follower is gone: nothing can confirm the source's last decree
        ta.set("k2", "s", "v")
        with pytest.raises(pf.SwitchoverError) as info:
            dup.switchover(timeout=0.5)
        assert (info.value.stage, info.value.unfenced, info.value.dupid) == ("catch_up", True, dup.dupid)
        ta.set("k3", "s", "written")  # unfenced
        assert a.table_role("t").moved_to == ""
        assert dup.status == pf.DupStatus.LOG
        # a paused duplication cannot switch over: refused before anything is fenced
        dup.pause()
        with pytest.raises(pf.SwitchoverError) as info:
            dup.switchover(timeout=1)
        assert info.value.stage == "check"
        dup.resume()
        b = pf.Cluster.open(tmp_path / "b", name="b", config=cfg_b)
        # nothing was done on the follower: it still follows, and catches up
        assert b.table_role("t").kind == "follower"
        wait_until(lambda: b.table("t").get("k3", "s") == b"written", WAIT, "the follower catching up")
        assert dup.switchover(timeout=WAIT).rpo_mutations == 0
    finally:
        a.close()
        b.close()


# -- served ------------------------------------------------------------------------------------


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(tmp_path, DEFAULT_BACKEND)
    try:
        yield f
    finally:
        f.close()


def _served_pair(fleet: Fleet) -> tuple[Served, Served]:
    east, west = fleet.add("east"), fleet.add("west")  # distinct cluster ids (38, 123)
    for s in (east, west):
        s.args = ("--pegasus-listen", "127.0.0.1:0")
    start_all(east, west)
    return east, west


def test_served_switchover_under_writes_and_back(fleet: Fleet) -> None:
    east, west = _served_pair(fleet)
    with pf.connect(east.url) as c:
        c.create_table("t", partition_count=8)
        dup = c.add_duplication("t", west.url)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        with Writer(pf.connect, east.url, "t") as w:
            w.wait_for(300)
            report = dup.switchover(timeout=WAIT)
            wait_until(lambda: bool(w.moved), WAIT, "the writer moved")
            w.wait_for(len(w.acked) + 100)
        assert w.moved[0].primary == west.url
        assert report.rpo_mutations == 0 and report.new_primary == west.url
        with pytest.raises(pf.TableMovedError) as info:
            c.table("t").set("x", "s", "v")
        assert info.value.primary == west.url
    with pf.connect(west.url) as wc:
        assert missing(wc.table("t"), w.acked) == []
        back = wc.duplication(report.new_dupid)
        back.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        assert back.remote == east.url
        wc.table("t").set("after", "s", "on west")
    # the old source follows, and a restart of it keeps the fence
    east.restart()
    with pf.connect(east.url) as c:
        wait_until(lambda: c.table("t").get("after", "s") == b"on west", WAIT, "east following west")
        with pytest.raises(pf.TableMovedError):
            c.table("t").set("x", "s", "v")
    # switch back, from the command line
    done = cli("--connect", west.url, "switchover", "t", str(report.new_dupid), "--timeout", str(WAIT))
    assert done.returncode == 0, done.stderr
    assert "rpo_mutations 0" in done.stdout
    with pf.connect(west.url) as wc:
        assert wc.table_role("t").moved_to == east.url
        with pytest.raises(pf.TableMovedError):
            wc.table("t").set("x", "s", "v")
        assert [d.dupid for d in wc.duplications("t")] == []
    with pf.connect(east.url) as c:
        c.table("t").set("home", "s", "east")
        assert missing(c.table("t"), w.acked) == []
        (back_again,) = c.duplications("t")
        back_again.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        assert back_again.remote == west.url and not back_again.with_checkpoint
    done = cli("--connect", east.url, "ls", "-d")
    assert done.returncode == 0 and f"source dups {back_again.dupid}" in done.stdout


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = child_env(DEFAULT_BACKEND)
    argv = [PYTHON, "-m", "pegasus_fast", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def test_served_switchover_to_an_unreachable_follower_unfences(fleet: Fleet) -> None:
    east, west = _served_pair(fleet)
    with pf.connect(east.url) as c:
        c.create_table("t", partition_count=4)
        dup = c.add_duplication("t", west.url)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        west.stop()
        c.table("t").set("k", "s", "v")
        started = time.monotonic()
        with pytest.raises(pf.SwitchoverError) as info:
            dup.switchover(timeout=1.0)
        assert time.monotonic() - started < WAIT
        assert info.value.unfenced and info.value.stage in ("catch_up", "take_over")
        c.table("t").set("k", "s", "still here")
        assert c.table_role("t").moved_to == ""


def test_a_drain_ships_a_tail_once_and_the_driver_goes_on_after_it(
    two: tuple[pf.Cluster, pf.Cluster],
) -> None:
    from pegasus_fast.duplication.drain import drain

    a, b = two
    ta = a.create_table("t", partition_count=1)
    dup = a.add_duplication("t", b)
    dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    dup.pause()
    for i in range(50):
        ta.set(f"k{i}", "s", str(i))
    p = ta.partitions[0]
    start = dup.progress()[0].confirmed_decree + 1
    follower = a.remotes.connect(b.path)
    cid, _uid = follower.identity()
    # batches of one block at a time (the smallest size): many applies, in order
    assert drain(p, follower, "t", start, p.last_committed, 1, cid) == p.last_committed
    tb = b.table("t")
    assert [tb.get(f"k{i}", "s") for i in range(50)] == [str(i).encode() for i in range(50)]
    held = tb.partitions[0].last_committed
    # again, overlapping what the follower holds: nothing is applied twice
    assert drain(p, follower, "t", start, p.last_committed, 1 << 20, cid) == p.last_committed
    assert tb.partitions[0].last_committed == held
    # the driver carries on from the decree the follower answers
    dup.resume()
    ta.set("after", "s", "v")
    wait_until(lambda: tb.get("after", "s") == b"v", WAIT, "the driver shipping after the drain")
    wait_until(lambda: dup.progress()[0].pending_mutations == 0, WAIT, "the driver confirming")


def test_a_switchover_cut_short_by_a_restart_is_finished_by_running_it_again(tmp_path: Path) -> None:
    from pegasus_fast.engine.switchover import fence

    cfg = pf.Config(cluster_id=1)
    a = pf.Cluster.open(tmp_path / "a", name="a", config=cfg)
    b = pf.Cluster.open(tmp_path / "b", name="b", config=pf.Config(cluster_id=2))
    try:
        ta = a.create_table("t", partition_count=4)
        dup = a.add_duplication("t", b)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        for i in range(20):
            ta.set(f"k{i}", "s", "v")
        fence(a, "t", dup.remote)  # the first step, then the source stops
        a.close()
        a = pf.Cluster.open(tmp_path / "a", name="a", config=cfg)
        with pytest.raises(pf.TableMovedError):
            a.table("t").set("x", "s", "v")
        dup = a.duplication(dup.dupid)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        report = dup.switchover(timeout=WAIT)
        assert report.rpo_mutations == 0
        assert [b.table("t").get(f"k{i}", "s") for i in range(20)] == [b"v"] * 20
        b.table("t").set("x", "s", "on b")
    finally:
        a.close()
        b.close()


def test_a_follower_behind_refuses_the_take_over_and_changes_nothing(
    two: tuple[pf.Cluster, pf.Cluster],
) -> None:
    a, b = two
    ta = a.create_table("t", partition_count=2)
    dup = a.add_duplication("t", b)
    dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    dup.pause()
    ta.set("k", "s", "not shipped")
    source = pf.duplication.ports.SourceId("a", a.info().uid, "t", dup.dupid)
    decrees = {p.pidx: p.last_committed for p in ta.partitions}
    with pytest.raises(pf.SwitchoverError) as info:
        b.take_over("t", source, decrees, a.path)
    assert info.value.stage == "take_over"
    assert b.table_role("t").kind == "follower" and b.duplications("t") == []
    with pytest.raises(pf.FollowerTableError):
        b.table("t").set("x", "s", "v")


def test_embedded_source_to_a_served_follower_and_back(tmp_path: Path, fleet: Fleet) -> None:
    west = fleet.add("west")  # cluster id 123
    west.start()
    a = pf.Cluster.open(tmp_path / "a", name="a", config=pf.Config(cluster_id=1))
    try:
        with pf.serve(a) as server:  # so that the new primary can duplicate back to it
            ta = a.create_table("t", partition_count=8)
            for i in range(100):
                ta.set(f"k{i}", "s", "v")
            dup = a.add_duplication("t", west.url)
            dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
            report = dup.switchover(timeout=WAIT, reverse_remote=server.url)
            assert report.rpo_mutations == 0 and report.new_primary == west.url
            with pytest.raises(pf.TableMovedError) as info:
                ta.set("x", "s", "v")
            assert info.value.primary == west.url
            with pf.connect(west.url) as wc:
                assert [wc.table("t").get(f"k{i}", "s") for i in range(100)] == [b"v"] * 100
                back = wc.duplication(report.new_dupid)
                back.wait_for(pf.DupStatus.LOG, timeout=WAIT)
                assert back.remote == server.url
                wc.table("t").set("after", "s", "west")
                wait_until(lambda: ta.get("after", "s") == b"west", WAIT, "a following west")
                again = back.switchover(timeout=WAIT)
                assert again.rpo_mutations == 0
            ta.set("home", "s", "a")
            assert a.table_role("t").writable
    finally:
        a.close()


def test_an_embedded_source_must_name_how_a_served_follower_reaches_it(tmp_path: Path, fleet: Fleet) -> None:
    west = fleet.add("west")
    west.start()
    a = pf.Cluster.open(tmp_path / "a", name="a", config=pf.Config(cluster_id=1))
    try:
        a.create_table("t", partition_count=2)
        dup = a.add_duplication("t", west.url)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        with pytest.raises(pf.SwitchoverError) as info:
            dup.switchover(timeout=WAIT)  # by its path, which the follower's process cannot open
        assert info.value.stage == "check"
        with pytest.raises(pf.SwitchoverError) as info:
            dup.switchover(timeout=WAIT, reverse_remote=str(tmp_path / "a"))
        assert info.value.stage == "check"
        a.table("t").set("k", "s", "still writable")
    finally:
        a.close()


def test_served_switchover_between_clusters_with_tokens(fleet: Fleet) -> None:
    east, west = fleet.add("east"), fleet.add("west")
    tokens = {}
    for s in (east, west):
        tokens[s.name] = f"{s.name}-s3cret-token"
        path = fleet.root / f"{s.name}.token"
        path.write_text(tokens[s.name] + "\n")
        path.chmod(0o600)
        s.args = ("--token-file", str(path))
    start_all(east, west)
    with pf.connect(east.url, token=tokens["east"]) as c:
        c.create_table("t", partition_count=4).set("k", "s", "v")
        dup = c.add_duplication("t", west.url, remote_token=tokens["west"])
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        report = dup.switchover(timeout=WAIT, reverse_token=tokens["east"])
        assert report.rpo_mutations == 0
    with pf.connect(west.url, token=tokens["west"]) as wc:
        wc.table("t").set("k", "s", "west")
        back = wc.duplication(report.new_dupid)
        back.wait_for(pf.DupStatus.LOG, timeout=WAIT)
    with pf.connect(east.url, token=tokens["east"]) as c:
        wait_until(lambda: c.table("t").get("k", "s") == b"west", WAIT, "east following west with its token")


def test_a_reverse_remote_that_refuses_the_new_primary_stops_the_switchover(fleet: Fleet) -> None:
    east, west = fleet.add("east"), fleet.add("west")
    path = fleet.root / "east.token"
    path.write_text("east-s3cret-token\n")
    path.chmod(0o600)
    east.args = ("--token-file", str(path))
    start_all(east, west)
    with pf.connect(east.url, token="east-s3cret-token") as c:
        c.create_table("t", partition_count=4).set("k", "s", "v")
        dup = c.add_duplication("t", west.url)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        # west would duplicate back without east's token: refused before anything changed
        with pytest.raises(pf.SwitchoverError) as info:
            dup.switchover(timeout=WAIT)
        assert (info.value.stage, info.value.unfenced) == ("take_over", True)
        c.table("t").set("k", "s", "still east")
        assert dup.status == pf.DupStatus.LOG
    with pf.connect(west.url) as wc:
        assert wc.table_role("t").kind == "follower" and wc.duplications("t") == []


def test_no_write_is_acknowledged_past_the_fenced_decree(tmp_path: Path) -> None:
    from pegasus_fast.engine.switchover import fence

    a = pf.Cluster.open(tmp_path / "a", name="a", config=pf.Config(cluster_id=1))
    try:
        t = a.create_table("t", partition_count=4)
        acked: list[tuple[int, int]] = []  # (partition, decree) of every acknowledged write
        refused: list[BaseException] = []
        go = threading.Barrier(9)

        def write(w: int) -> None:
            go.wait()
            for i in range(100_000):
                key = f"w{w}-{i}"
                try:
                    decree = t.set(key, "s", "v")
                except pf.TableMovedError as exc:
                    refused.append(exc)
                    return
                acked.append((t.partition_index(key, "s"), decree))

        threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
        for th in threads:
            th.start()
        go.wait()
        wait_until(lambda: len(acked) > 500, WAIT, "writes under way")
        decrees = fence(a, "t", "pegasus://elsewhere:1")
        for th in threads:
            th.join(WAIT)
        assert len(refused) == 8  # every writer met the fence
        assert all(d <= decrees[p] for p, d in acked)
        assert [p.last_committed for p in t.partitions] == [decrees[i] for i in range(4)]
        assert all(p.durable_decree >= decrees[p.pidx] for p in t.partitions)
    finally:
        a.close()
