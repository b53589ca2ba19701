"""Duplication between real processes (issue #9 §6): crashes, stops, a remote that is down.

Every test starts its own ``pegasus-fast serve`` processes on 127.0.0.1
(tests/served.py) and stops them at teardown, whatever happened. The faulty
network is in test_served_network.py.

- ``kill -9`` of the follower, and separately of the source, in PREPARE, in
  APP (mid-copy of a RocksDB checkpoint: the source ships through a proxy
  that paces it, so the copy is in flight long enough to be hit) and in LOG,
  with a writer writing through ``pf.connect`` all along. The killed side is
  started again on the same port; the duplication resumes (it is persisted
  in the source cluster), and then the source and follower scans are equal,
  every acknowledged write is there, the follower's WAL applied each source
  decree once, and the persisted timeline shows the kill landed in the state
  it meant to hit. A copy cut by a kill resumes after what the follower held.
- SIGTERM of either side, and remove(), while a copy crawls over a slow
  link: neither waits for the copy.
- A remote that is down: progress() says ``remote unavailable: ...``, the
  status stays, wait_for times out naming the remote, and it resumes when
  the remote is back on its port. A token the follower wants survives a
  source restart.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pegasus_fast as pf
import pytest
from conftest import DEFAULT_BACKEND, PYTHON, child_env, load_backend
from dupharness import wait_until
from netproxy import FaultyProxy
from pegasus_fast import _backend
from pegasus_fast.cli.exits import EXIT_USAGE
from served import Fleet, Served, start_all
from servedcheck import (
    TABLE,
    WAIT,
    Key,
    Model,
    Writer,
    check_offline,
    copying,
    free_port,
    remote_table,
    scan_of,
    wait_caught_up,
    write_table,
)

pytestmark = [
    pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning"),
    # servers and processes: the backend does not matter, so these run once (conftest.py)
    pytest.mark.usefixtures("default_backend"),
]

PARTITIONS = 2
#: the served source runs with this knob (``serve --config``): a partition past it learns from a
#: RocksDB checkpoint copied file by file, in 1 MiB chunks
SOURCE_SMALL_MAX = 1 << 20
SOURCE_ARGS = ("--config", f"small_partition_max_bytes={SOURCE_SMALL_MAX}")
#: PREPARE under the adaptive policy lasts a few milliseconds, too short to be hit for sure; the
#: legacy policy (the pre-#2054 gating) waits this long for a forced checkpoint: a window to kill in
LEGACY_ARGS = (
    "--config",
    "checkpoint_policy=legacy",
    "--config",
    "legacy_forced_checkpoint_delay_seconds=1.0",
)
LARGE_PARTITION_BYTES = (2 << 20) + (512 << 10)
VALUE_BYTES = 64 << 10
#: bytes a second the proxy forwards while a copy must still be in flight when a side is killed
COPY_RATE = 2 << 20
#: a copy is "mid-way" once this much of the checkpoints went through (of about 5 MiB)
MID_COPY_BYTES = (2 << 20) + (512 << 10)


@dataclass(frozen=True)
class Template:
    path: Path
    records: dict[Key, bytes]


@pytest.fixture(scope="session")
def source_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """A source cluster directory, made once and copied by each test (these tests run once, on
    the default backend: see conftest.py)."""
    load_backend(DEFAULT_BACKEND)
    path = tmp_path_factory.mktemp("source-template") / "source"
    with _backend.use(DEFAULT_BACKEND), pf.Cluster.open(path, name="source") as c:
        records = write_table(c, TABLE, [LARGE_PARTITION_BYTES] * PARTITIONS, VALUE_BYTES, seed=1)
    return Template(path, records)


# -- kill -9 of either side, in each state ---------------------------------------------------------

PHASE_STATUS = {"prepare": "DS_PREPARE", "app": "DS_APP", "log": "DS_LOG"}
NEXT_STATUS = {"prepare": "DS_APP", "app": "DS_LOG", "log": None}


def _landed_in(timeline: list[tuple[str, float]], phase: str, killed_at: float) -> None:
    """The persisted timeline shows the duplication had entered ``phase`` and not left it when the
    killed process was gone."""
    entered = [t for s, t in timeline if s == PHASE_STATUS[phase]]
    assert entered and entered[0] <= killed_at, (phase, timeline, killed_at)
    nxt = NEXT_STATUS[phase]
    if nxt is not None:
        left = [t for s, t in timeline if s == nxt]
        assert left and left[0] > killed_at, (
            f"the kill landed after {phase}: {timeline}, killed at {killed_at}"
        )


@pytest.mark.parametrize("phase", ["prepare", "app", "log"])
@pytest.mark.parametrize("side", ["source", "follower"])
def test_kill9_then_restart_converges(fleet: Fleet, source_template: Template, side: str, phase: str) -> None:
    src, dst = fleet.add("source"), fleet.add("target")
    shutil.copytree(source_template.path, src.dir)
    model = Model(values=dict(source_template.records))
    src.args = SOURCE_ARGS + (LEGACY_ARGS if phase == "prepare" else ())
    start_all(src, dst)
    victim: Served = src if side == "source" else dst
    # the source ships through a proxy: paced while a copy must be in flight when the kill lands
    with (
        FaultyProxy(dst.port, rate=COPY_RATE if phase == "app" else None) as proxy,
        pf.connect(src.url, timeout=10.0) as rc,
    ):
        d = rc.add_duplication(TABLE, proxy.url)
        # writes go on all along, except when the source is killed mid-copy: then it must find the
        # same checkpoint again for the copy to resume (new writes would make it checkpoint anew)
        writer = None
        if not (side == "source" and phase == "app"):
            writer = Writer(remote_table(src.url), model, wid=1, seed=len(side + phase)).start()
        total = 0
        if phase == "prepare":
            d.wait_for(pf.DupStatus.PREPARE, WAIT)
        elif phase == "app":
            # progress counts what the source handed to gRPC; the proxy, what really went
            wait_until(
                lambda: proxy.stats.up_bytes >= MID_COPY_BYTES and len(copying(d)) == PARTITIONS,
                WAIT,
                lambda: f"a copy mid-way: {[p.checkpoint_state for p in d.progress()]}",
            )
            total = sum(y for _, y in copying(d))
        else:
            d.wait_for(pf.DupStatus.LOG, WAIT)
            assert writer is not None
            writer.wait_acked(40)
        victim.kill9()
        killed_at = time.time()
        if writer is not None:
            # the source goes on taking writes while the follower is down; writes to a dead source fail
            if side == "follower":
                writer.wait_acked(20)
            else:
                wait_until(lambda: model.failed >= 3, WAIT, "writes to the killed source to fail")
        if side == "follower" and phase != "prepare":
            # the remote is down: the status stays where it was, and progress says why
            wait_until(
                lambda: all(p.reason.startswith("remote unavailable: ") for p in d.progress()),
                WAIT,
                lambda: f"progress to say the remote is down: {[p.reason for p in d.progress()]}",
            )
            assert d.status.value == PHASE_STATUS[phase]
        # what the dead side's connection still carried is through; count from here
        wait_until(lambda: proxy.open_connections() == 0, WAIT, "the killed connection to close")
        sent_before = proxy.stats.up_bytes
        proxy.rate = None
        victim.start()
        if writer is not None:
            writer.wait_acked(20)
            writer.stop()
        wait_caught_up(d, f"after kill -9 of the {side} in {phase}")
        if phase == "app":
            # the copy resumed after the bytes the follower held, it did not start again
            resent = proxy.stats.up_bytes - sent_before
            assert resent < total, (resent, total)
        assert scan_of(src.url) == scan_of(dst.url)
    assert src.stop() == 0, src.stderr()
    assert dst.stop() == 0, dst.stderr()
    timeline = check_offline(fleet.root, TABLE, model)
    _landed_in(timeline, phase, killed_at)


#: the proxy's pace when a copy must outlast a graceful stop by far (5 MiB would take ~40 s)
CRAWL_RATE = 128 << 10


@pytest.mark.parametrize("side", ["source", "follower"])
def test_sigterm_mid_copy_stops_and_resumes(fleet: Fleet, source_template: Template, side: str) -> None:
    """SIGTERM stops a served cluster whose checkpoint copy is in flight over a slow link, without
    waiting for the copy to end (Served.stop gives it far less time than the copy needs); once
    started again, the copy resumes and the two sides converge."""
    src, dst = fleet.add("source"), fleet.add("target")
    shutil.copytree(source_template.path, src.dir)
    model = Model(values=dict(source_template.records))
    src.args = SOURCE_ARGS
    start_all(src, dst)
    with FaultyProxy(dst.port, rate=CRAWL_RATE) as proxy, pf.connect(src.url, timeout=10.0) as rc:
        d = rc.add_duplication(TABLE, proxy.url)
        wait_until(
            lambda: proxy.stats.up_bytes >= 128 << 10 and len(copying(d)) == PARTITIONS,
            WAIT,
            lambda: f"a copy under way: {[p.checkpoint_state for p in d.progress()]}",
        )
        victim = src if side == "source" else dst
        assert victim.stop() == 0, victim.stderr()
        proxy.rate = None
        victim.start()
        wait_caught_up(d, f"after SIGTERM of the {side} mid-copy")
        assert scan_of(src.url) == scan_of(dst.url)
    assert src.stop() == 0, src.stderr()
    assert dst.stop() == 0, dst.stderr()
    check_offline(fleet.root, TABLE, model)


def test_remove_mid_copy_does_not_wait_for_the_copy(fleet: Fleet, source_template: Template) -> None:
    """Removing a duplication whose checkpoint copy crawls over a slow link gives up the copy: the
    call returns (well within the client's deadline, which is far shorter than the copy), the
    duplication is gone, and the source goes on serving."""
    src, dst = fleet.add("source"), fleet.add("target")
    shutil.copytree(source_template.path, src.dir)
    src.args = SOURCE_ARGS
    start_all(src, dst)
    with FaultyProxy(dst.port, rate=CRAWL_RATE) as proxy, pf.connect(src.url, timeout=20.0) as rc:
        d = rc.add_duplication(TABLE, proxy.url)
        wait_until(
            lambda: proxy.stats.up_bytes >= 128 << 10 and len(copying(d)) == PARTITIONS,
            WAIT,
            lambda: f"a copy under way: {[p.checkpoint_state for p in d.progress()]}",
        )
        d.remove()
        assert rc.duplications() == []
        rc.table(TABLE).set(b"after", b"s", b"v")
        assert rc.table(TABLE).get(b"after", b"s") == b"v"
    assert src.stop() == 0, src.stderr()


def test_remote_token_survives_a_source_restart(fleet: Fleet) -> None:
    """The token shown to a follower that wants one is kept with the duplication: a source
    killed and restarted (without that token in its environment) goes on shipping."""
    src, dst = fleet.add("source"), fleet.add("target")
    token_file = fleet.root / "follower.token"
    token_file.write_text("s3cret-follower-token\n")
    token_file.chmod(0o600)  # a token file open to others is refused
    src.launch()
    dst.launch("--token-file", str(token_file))
    src.wait_ready()
    dst.wait_ready()
    model = Model()
    with pf.connect(src.url, timeout=10.0) as rc:
        rc.create_table(TABLE, PARTITIONS)
        d = rc.add_duplication(TABLE, dst.url, remote_token="s3cret-follower-token")
        writer = Writer(remote_table(src.url), model, wid=7, seed=7).start()
        try:
            d.wait_for(pf.DupStatus.LOG, WAIT)
            writer.wait_acked(20)
            src.kill9()
            wait_until(lambda: model.failed >= 3, WAIT, "writes to the killed source to fail")
            src.start()
            writer.wait_acked(20)
        finally:
            writer.stop()
        wait_caught_up(d, "after the source restarted")
        assert d.error is None
        assert scan_of(src.url) == scan_of(dst.url, token="s3cret-follower-token")
    assert src.stop() == 0, src.stderr()
    assert dst.stop() == 0, dst.stderr()
    check_offline(fleet.root, TABLE, model)


# -- a remote that is down ---------------------------------------------------------------------------


def test_remote_down_keeps_status_says_why_and_resumes(fleet: Fleet) -> None:
    src, dst = fleet.add("source"), fleet.add("target")
    dst.port = free_port()  # where the follower will serve, once it is started
    src.start()
    model = Model()
    with pf.connect(src.url, timeout=10.0) as rc:
        t = rc.create_table(TABLE, PARTITIONS)
        for i in range(20):
            t.set(b"k%d" % i, b"s", b"v%d" % i)
            model.values[(b"k%d" % i, b"s")] = b"v%d" % i
        d = rc.add_duplication(TABLE, dst.url)

        def all_unavailable() -> bool:
            return all(p.reason.startswith("remote unavailable: ") for p in d.progress())

        # down from the start: it waits in DS_INIT and says why
        wait_until(all_unavailable, WAIT, lambda: f"the reason: {[p.reason for p in d.progress()]}")
        assert d.status == pf.DupStatus.INIT
        with pytest.raises(TimeoutError) as exc:
            d.wait_for(pf.DupStatus.LOG, 0.5)
        assert dst.url in str(exc.value)
        assert d.status == pf.DupStatus.INIT
        dst.start()
        wait_caught_up(d, "once the follower served")
        assert all(p.reason == "" for p in d.progress())

        # down in DS_LOG, while the source takes writes: it stays in DS_LOG and says why
        dst.kill9()
        for i in range(20, 40):
            t.set(b"k%d" % i, b"s", b"v%d" % i)
            model.values[(b"k%d" % i, b"s")] = b"v%d" % i
        wait_until(all_unavailable, WAIT, lambda: f"the reason: {[p.reason for p in d.progress()]}")
        assert d.status == pf.DupStatus.LOG
        assert sum(p.pending_mutations for p in d.progress()) > 0
        with pytest.raises(TimeoutError) as exc:
            d.wait_for(pf.DupStatus.PAUSE, 0.5)
        assert dst.url in str(exc.value)
        assert d.status == pf.DupStatus.LOG
        dst.start()
        wait_caught_up(d, "once the follower served again")
        assert all(p.reason == "" for p in d.progress())
        assert scan_of(src.url) == scan_of(dst.url)
    assert src.stop() == 0, src.stderr()
    assert dst.stop() == 0, dst.stderr()
    check_offline(fleet.root, TABLE, model)


# -- serve --config -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "knob", ["no_such_knob=1", "small_partition_max_bytes", "small_partition_max_bytes=x", "gc_interval_ms=1"]
)
def test_serve_refuses_a_bad_config_knob(tmp_path: Path, knob: str) -> None:
    """A knob that is not a Config field, has no value, is not of its type or out of its bounds:
    one error line and a non-zero exit, before anything is opened or served."""
    cluster = tmp_path / "bad"
    argv = [PYTHON, "-m", "pegasus_fast", "--cluster", str(cluster), "serve", "--listen", "127.0.0.1:0"]
    done = subprocess.run(
        [*argv, "--config", knob], env=child_env("python"), capture_output=True, timeout=WAIT
    )
    assert done.returncode == EXIT_USAGE, done
    lines = done.stderr.decode("utf-8", "replace").splitlines()
    assert len(lines) == 1 and lines[0].startswith("pegasus-fast: InvalidArgumentError: "), lines
    assert not cluster.exists()
