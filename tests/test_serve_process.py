"""``pegasus-fast serve`` as a real process: the URL, the ready file, graceful SIGTERM, refusals,
and the CLI's verbs with --connect."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
from conftest import PYTHON, child_env
from pegasus_fast.cli.exits import EXIT_ERROR, EXIT_NOT_FOUND, EXIT_USAGE


def _serve(
    default_backend_name: str, cluster: Path, ready: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-m", "pegasus_fast", "--cluster", str(cluster), "serve", "--listen", "127.0.0.1:0",
         "--ready-file", str(ready), *extra],
        env=env or child_env(default_backend_name),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _wait_ready(proc: subprocess.Popen[str], ready: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None:
            raise AssertionError(
                f"serve exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
            )
        assert time.monotonic() < deadline, "serve did not become ready"
        time.sleep(0.02)
    return ready.read_text().strip()


@pytest.fixture
def server(default_backend_name: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    ready = tmp_path / "ready"
    proc = _serve(default_backend_name, tmp_path / "c", ready)
    try:
        yield proc, _wait_ready(proc, ready)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def _cli(default_backend_name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "pegasus_fast", *args],
        env=child_env(default_backend_name),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_url_ready_file_and_graceful_sigterm(
    default_backend: ModuleType, server: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> None:
    proc, url = server
    assert url.startswith("pegasus://127.0.0.1:")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == url  # the first line on stdout
    with pf.connect(url, timeout=10) as rc:
        t = rc.create_table("t", partition_count=4)
        for i in range(100):
            t.set(b"k%d" % i, b"s", b"v")
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert time.monotonic() - start < 5.0
    # the cluster was closed cleanly: it opens here with everything acknowledged
    with pf.Cluster.open(tmp_path / "c") as c:
        assert c.table("t").count() == 100


def test_sigusr2_dumps_every_threads_stack_and_serving_goes_on(
    default_backend: ModuleType, server: tuple[subprocess.Popen[str], str]
) -> None:
    """An operator's look into a server that hangs (a stop, a call): ``kill -USR2``."""
    proc, url = server
    with pf.connect(url, timeout=10) as rc:
        t = rc.create_table("t", partition_count=2)
        t.set(b"k", b"s", b"v")
        proc.send_signal(signal.SIGUSR2)
        assert t.get(b"k", b"s") == b"v"  # answered after the dump: it went on serving
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert "Thread 0x" in err and "(most recent call first)" in err, err[-2000:]
    assert "serve.py" in err  # the main thread, waiting to be stopped


def test_sigint_with_a_client_mid_scan(
    default_backend: ModuleType, server: tuple[subprocess.Popen[str], str]
) -> None:
    proc, url = server
    with pf.connect(url, timeout=10) as rc:
        t = rc.create_table("t", partition_count=2)
        t.multi_set(b"h", {b"s%d" % i: b"x" * 1000 for i in range(3000)})
        it = t.scan()
        next(it)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert time.monotonic() - start < 5.0
        with pytest.raises((pf.RemoteUnavailableError, StopIteration)):
            for _ in range(10_000):
                next(it)


def test_refuses_non_loopback_without_tls_and_token(
    default_backend_name: str, default_backend: ModuleType, tmp_path: Path
) -> None:
    r = _cli(default_backend_name, "--cluster", str(tmp_path / "c"), "serve", "--listen", "0.0.0.0:0")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "loopback" in lines[0]
    assert not (tmp_path / "ready").exists()


def test_token_file(default_backend_name: str, default_backend: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("file-token\n")
    (tmp_path / "token").chmod(0o600)  # a token file open to others is refused
    ready = tmp_path / "ready"
    proc = _serve(default_backend_name, tmp_path / "c", ready, "--token-file", str(tmp_path / "token"))
    try:
        url = _wait_ready(proc, ready)
        with pf.connect(url, token="file-token") as ok:
            ok.create_table("t", partition_count=1)
        with pf.connect(url) as missing:
            with pytest.raises(pf.AuthenticationError):
                missing.list_tables()
        env = child_env(default_backend_name)
        env["PEGASUS_FAST_TOKEN"] = "file-token"
        r = subprocess.run(
            [PYTHON, "-m", "pegasus_fast", "--connect", url, "ls"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0 and " t " in r.stdout
        r = _cli(default_backend_name, "--connect", url, "ls")
        assert r.returncode == EXIT_ERROR and r.stderr.startswith("pegasus-fast: AuthenticationError: ")
    finally:
        proc.terminate()
        proc.wait(10)


def test_cli_verbs_with_connect(
    default_backend_name: str,
    default_backend: ModuleType,
    server: tuple[subprocess.Popen[str], str],
    tmp_path: Path,
) -> None:
    _proc, url = server
    ok = [
        ("create", "t", "-p", "4"),
        ("set", "t", "h", "s", "v"),
        ("multi_set", "t", "h", "a=1", "b=2"),
        ("get", "t", "h", "s"),
        ("multi_get", "t", "h"),
        ("del", "t", "h", "a"),
        ("scan", "t"),
        ("count", "t"),
        ("app", "t"),
        ("ls", "-d"),
        ("checkpoint", "t"),
        ("compact", "t"),
        ("query_dup", "t"),
    ]
    out = {}
    for args in ok:
        r = _cli(default_backend_name, "--connect", url, *args)
        assert r.returncode == 0, (args, r.stderr)
        out[args[0]] = r.stdout
    assert out["get"].strip() == "v"
    assert out["count"].strip() == "2"
    r = _cli(default_backend_name, "--connect", url, "get", "missing", "h", "s")
    assert r.returncode == EXIT_NOT_FOUND and "Traceback" not in r.stderr
    assert r.stderr.startswith("pegasus-fast: TableNotFoundError: ")
    r = _cli(default_backend_name, "--connect", url, "compact", "missing")
    assert r.returncode == EXIT_NOT_FOUND and r.stderr.startswith("pegasus-fast: TableNotFoundError: ")
    r = _cli(default_backend_name, "--connect", url, "--cluster", str(tmp_path / "x"), "ls")
    assert r.returncode == EXIT_USAGE


def test_cli_add_dup_between_served_clusters(
    default_backend_name: str,
    default_backend: ModuleType,
    server: tuple[subprocess.Popen[str], str],
    tmp_path: Path,
) -> None:
    _proc, src_url = server
    ready = tmp_path / "ready2"
    dst = _serve(default_backend_name, tmp_path / "d", ready)
    try:
        dst_url = _wait_ready(dst, ready)
        assert _cli(default_backend_name, "--connect", src_url, "create", "t", "-p", "2").returncode == 0
        assert _cli(default_backend_name, "--connect", src_url, "set", "t", "h", "s", "v").returncode == 0
        r = _cli(default_backend_name, "--connect", src_url, "add_dup", "t", dst_url, "--timeout", "30")
        assert r.returncode == 0, r.stderr
        assert "DS_LOG" in r.stdout
        r = _cli(default_backend_name, "--connect", src_url, "query_dup", "t", "-d")
        assert r.returncode == 0 and dst_url in r.stdout
        deadline = time.monotonic() + 20
        while _cli(default_backend_name, "--connect", dst_url, "get", "t", "h", "s").stdout.strip() != "v":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for verb in ("pause_dup", "start_dup", "remove_dup"):
            r = _cli(default_backend_name, "--connect", src_url, verb, "t", "1")
            assert r.returncode == 0, r.stderr
    finally:
        dst.terminate()
        dst.wait(10)


def test_serve_on_a_locked_cluster_fails_cleanly(
    default_backend_name: str, default_backend: ModuleType, tmp_path: Path
) -> None:
    with pf.Cluster.open(tmp_path / "c"):
        r = _cli(default_backend_name, "--cluster", str(tmp_path / "c"), "serve", "--listen", "127.0.0.1:0")
    assert r.returncode == EXIT_ERROR and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith("pegasus-fast: ClusterLockedError: ")


def test_sigterm_lets_duplications_ship_what_is_durable(
    default_backend_name: str,
    default_backend: ModuleType,
    server: tuple[subprocess.Popen[str], str],
    tmp_path: Path,
) -> None:
    proc, url = server
    with pf.Cluster.open(tmp_path / "f", name="f") as follower, pf.serve(follower) as fsrv:
        with pf.connect(url, timeout=10) as rc:
            t = rc.create_table("t", partition_count=4)
            d = rc.add_duplication("t", fsrv.url)
            d.wait_for(pf.DupStatus.LOG, timeout=30)
            for i in range(300):
                t.set(b"k%d" % i, b"s", b"v%d" % i)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        # every acknowledged write reached the follower before the source stopped
        ft = follower.table("t")
        assert sum(1 for _ in ft.scan()) == 300


def test_a_serving_process_freezes_what_startup_made_out_of_the_collectors_reach() -> None:
    """settle_gc (once a process serves): a full collection, which holds the GIL while it walks
    every tracked object, no longer walks the modules and tables made at startup."""
    import gc

    from pegasus_fast.cli.serve import settle_gc

    try:
        settle_gc()
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
