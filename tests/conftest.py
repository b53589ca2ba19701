"""Shared fixtures: every store and codec test runs on both backends (multidict style).

``backend`` is session-scoped and parametrized over ``"rust"`` and ``"python"``;
while it is active, ``pegasus_fast._backend.impl``/``name`` point at that
backend, so the store (which reads ``_backend.impl`` at call time) really uses
it. A missing Rust extension skips the ``rust`` tests, except under ``CI=true``
or ``PEGASUS_FAST_REQUIRE_RUST=1``, where it fails them.
``PEGASUS_FAST_PURE_PYTHON=1`` runs only the ``python`` backend.

``backend`` is for tests where the backend matters (codecs, scans, recovery,
golden vectors, cross-backend files: STYLE.md #7). A test of servers, ZooKeeper,
the CLI or the duplication's state machine, whose backend calls the tests on
``backend`` already cover on both, runs once: it takes ``default_backend`` (or
``default_backend_name`` for a child process), which is the backend the package
picks by itself (``rust``; ``python`` under ``PEGASUS_FAST_PURE_PYTHON=1``, or
where the extension is not built and not required).

``zookeeper`` is one real ZooKeeper server for the session (tests/zkserver.py),
started by the first test that asks for it; ``zk_chroot`` gives each test its
own empty path in it. Where ZooKeeper is not installed they skip, saying why,
except under ``CI=true``, which must have installed it (.ci/run does).
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pegasus_fast as pf
import pytest
from pegasus_fast import _backend

if TYPE_CHECKING:
    from zkserver import ZooKeeperServer


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


PURE_ONLY = _truthy("PEGASUS_FAST_PURE_PYTHON")
RUST_REQUIRED = _truthy("CI") or _truthy("PEGASUS_FAST_REQUIRE_RUST")
BACKENDS = ["python"] if PURE_ONLY else ["rust", "python"]


def _default_backend() -> str:
    if PURE_ONLY:
        return "python"
    try:
        _backend.load("rust")
    except ImportError:
        # where rust is required, the ``default_backend`` fixture fails rather than fall back
        return "rust" if RUST_REQUIRED else "python"
    return "rust"


#: the backend of the tests that run once (those where the backend does not matter)
DEFAULT_BACKEND = _default_backend()
#: the directory holding the ``pegasus_fast`` package under test (for child processes)
PACKAGE_ROOT = str(Path(pf.__file__).resolve().parent.parent)


def load_backend(which: str) -> ModuleType:
    """The backend module, skipping (or failing under CI) when rust is not built."""
    if which not in BACKENDS:
        pytest.skip(f"backend {which!r} is not under test (PEGASUS_FAST_PURE_PYTHON=1)")
    try:
        return _backend.load(which)
    except ImportError as exc:
        if which == "rust" and not RUST_REQUIRED:
            pytest.skip(f"pegasus_fast._rust is not built: {exc}")
        pytest.fail(f"backend {which!r} is required but cannot be imported: {exc}")


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """The backend module; the store uses it while the fixture is active."""
    load_backend(request.param)  # skips (or fails) when it cannot be had
    with _backend.use(request.param) as module:
        yield module


@pytest.fixture
def backend_name(backend: ModuleType) -> str:
    return _backend.name


@pytest.fixture
def default_backend() -> Iterator[ModuleType]:
    """:data:`DEFAULT_BACKEND`'s module, the store's while the test runs (whichever ``backend``
    an earlier test left active): for a test that runs once, where the backend does not matter."""
    load_backend(DEFAULT_BACKEND)  # fails under CI when rust is required but not built
    with _backend.use(DEFAULT_BACKEND) as module:
        yield module


@pytest.fixture
def default_backend_name(default_backend: ModuleType) -> str:
    """For a child process of a test that runs once (``child_env(default_backend_name)``)."""
    return DEFAULT_BACKEND


@pytest.fixture
def other_backend(backend: ModuleType) -> ModuleType:
    """The backend that is not ``backend`` (for data written by one, read by the other)."""
    return load_backend("python" if _backend.name == "rust" else "rust")


@pytest.fixture
def cluster_dir(tmp_path: Path) -> Path:
    return tmp_path / "cluster"


def _cluster_opener() -> Iterator[Callable[..., pf.Cluster]]:
    opened: list[pf.Cluster] = []

    def _open(path: str | os.PathLike[str], **kwargs: Any) -> pf.Cluster:
        cluster = pf.Cluster.open(path, **kwargs)
        opened.append(cluster)
        return cluster

    yield _open
    for cluster in reversed(opened):
        cluster.close()


@pytest.fixture
def open_cluster(backend: ModuleType) -> Iterator[Callable[..., pf.Cluster]]:
    """``open_cluster(path, **kwargs)`` opens a Cluster that is closed at teardown."""
    yield from _cluster_opener()


@pytest.fixture
def open_cluster_once(default_backend: ModuleType) -> Iterator[Callable[..., pf.Cluster]]:
    """``open_cluster`` on :data:`DEFAULT_BACKEND`, for a test that runs once."""
    yield from _cluster_opener()


def child_env(backend_name: str) -> dict[str, str]:
    """Environment for a child process that must use ``backend_name``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    env.pop("PEGASUS_FAST_PURE_PYTHON", None)
    env.pop("PEGASUS_FAST_REQUIRE_RUST", None)
    if backend_name == "python":
        env["PEGASUS_FAST_PURE_PYTHON"] = "1"
    else:
        env["PEGASUS_FAST_REQUIRE_RUST"] = "1"
    return env


PYTHON = sys.executable


# -- ZooKeeper (issue #11) -------------------------------------------------------------------


def require_zookeeper() -> None:
    """Skip (fail under CI, which installs it) when no ZooKeeper server can be run here."""
    from zkserver import zk_available  # tests that never ask for ZooKeeper never need kazoo

    ok, reason = zk_available()
    if ok:
        return
    if _truthy("CI"):
        pytest.fail(f"ZooKeeper is required under CI (.ci/run installs it) but is missing: {reason}")
    pytest.skip(f"ZooKeeper is not available: {reason}")


@pytest.fixture(scope="session")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    """One standalone ZooKeeper on 127.0.0.1 for the whole session; tests must not stop it
    (one that loses ZooKeeper starts its own with ``zookeeper_factory``)."""
    require_zookeeper()
    from zkserver import ZooKeeperServer

    server = ZooKeeperServer(tmp_path_factory.mktemp("zookeeper"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


_chroots = itertools.count(1)


@pytest.fixture
def fleet(tmp_path: Path, default_backend: ModuleType) -> Iterator[Any]:
    """A :class:`served.Fleet` of the default backend's processes under ``tmp_path``; every
    process it started is stopped at the end (a module that needs another fleet makes its own)."""
    from served import Fleet  # (served imports this module)

    f = Fleet(tmp_path, DEFAULT_BACKEND)
    try:
        yield f
    finally:
        f.close()


@pytest.fixture
def zk_chroot(zookeeper: ZooKeeperServer) -> Iterator[str]:
    """``127.0.0.1:PORT/tN``: a path of the session's server no other test uses, created empty
    (so a client with this chroot can write at once) and deleted after the test."""
    yield from _chroot(zookeeper)


@pytest.fixture(scope="module")
def zk_module_chroot(zookeeper: ZooKeeperServer) -> Iterator[str]:
    """``zk_chroot`` for a module's tests to share (nodes started once for several tests)."""
    yield from _chroot(zookeeper)


def _chroot(zookeeper: ZooKeeperServer) -> Iterator[str]:
    from kazoo.client import KazooClient

    if not zookeeper.running:
        pytest.fail(f"the session's ZooKeeper is not running (a test stopped it?):\n{zookeeper.log_tail()}")
    path = f"/t{next(_chroots)}"
    admin = KazooClient(hosts=zookeeper.hosts, timeout=10.0)
    admin.start(timeout=30.0)
    try:
        admin.create(path)
        yield f"{zookeeper.hosts}{path}"
        try:
            admin.delete(path, recursive=True)
        except Exception:  # noqa: BLE001 - best effort: a leftover path harms no later test
            pass
    finally:
        admin.stop()
        admin.close()


@pytest.fixture
def zookeeper_factory(tmp_path: Path) -> Iterator[Callable[[], ZooKeeperServer]]:
    """``zookeeper_factory()`` starts a server of this test's own (to stop, kill or restart);
    every one is stopped at teardown."""
    require_zookeeper()
    from zkserver import ZooKeeperServer

    started: list[ZooKeeperServer] = []

    def _start() -> ZooKeeperServer:
        server = ZooKeeperServer(tmp_path / f"zookeeper{len(started)}")
        started.append(server)
        server.start()
        return server

    yield _start
    for server in reversed(started):
        server.stop()
