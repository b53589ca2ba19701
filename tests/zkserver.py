"""A real standalone ZooKeeper in a child process, for the multi-node tests (issue #11).

It runs Debian's ``zookeeper`` package (``apt-get install zookeeper``: the jar,
and through its manifest's ``Class-Path`` every library it needs) with the JVM
on ``PATH``, bound to 127.0.0.1 on a free port, with its data in a directory
of the caller's. The same port and data directory serve every restart, so the
clients of a test find the same ensemble again with the same data, the way a
restarted production server is found.

``PEGASUS_FAST_ZOOKEEPER_JAR`` points at another ``zookeeper.jar`` (one from an
Apache tarball, say); its dependencies must then be on its manifest too, or in
``CLASSPATH``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

#: Debian's jar (libzookeeper-java); its manifest's Class-Path names its dependencies
DEFAULT_JAR = "/usr/share/java/zookeeper.jar"
#: an SLF4J binding from libslf4j-java (a dependency of libzookeeper-java): without one on the
#: class path the server logs nothing at all, and a server that fails to start says why only here
SLF4J_SIMPLE = "/usr/share/java/slf4j-simple.jar"
MAIN_CLASS = "org.apache.zookeeper.server.ZooKeeperServerMain"

#: how long a start may take before it is reported as failed (it takes about 1 s here)
START_TIMEOUT = 30.0
#: how long a SIGTERM may take before the SIGKILL
STOP_GRACE = 5.0
#: the first start binds a port found free a moment earlier; another process may take it between
START_ATTEMPTS = 3


class ZooKeeperStartError(RuntimeError):
    """The server did not accept a client in time, or exited; ``log_tail`` says why."""

    def __init__(self, message: str, *, returncode: int | None, log_tail: str) -> None:
        super().__init__(f"{message}\n--- the end of the ZooKeeper log ---\n{log_tail}")
        self.returncode = returncode
        self.log_tail = log_tail


def zookeeper_jar() -> str:
    return os.environ.get("PEGASUS_FAST_ZOOKEEPER_JAR") or DEFAULT_JAR


def zk_available() -> tuple[bool, str]:
    """Whether a server can be started here; when not, the reason and how to fix it."""
    install = "install it with: apt-get install -y zookeeper (Debian), or set PEGASUS_FAST_ZOOKEEPER_JAR"
    if shutil.which("java") is None:
        return False, f"no `java` on PATH; {install}"
    jar = zookeeper_jar()
    if not os.path.isfile(jar):
        return False, f"no ZooKeeper jar at {jar}; {install}"
    try:
        import kazoo  # noqa: F401 - the client every test and the cluster use
    except ImportError:
        return False, "the Python package `kazoo` is not installed (a runtime dependency: pip install kazoo)"
    return True, f"java at {shutil.which('java')}, ZooKeeper at {jar}"


def _die_with_parent() -> list[str]:
    """A prefix that makes a test run that is killed take its server with it, on a shared
    machine (util-linux's setpriv: Linux's PR_SET_PDEATHSIG; elsewhere the fixtures' teardown
    is all there is). Not a preexec_fn: forking a process that runs gRPC's threads, to run
    Python in the child, can abort the child."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL"] if setpriv else []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ZooKeeperServer:
    """One standalone server; :meth:`stop` (or :meth:`kill`) always reaps the process."""

    def __init__(self, tmp_dir: str | os.PathLike[str]) -> None:
        self.root = Path(tmp_dir)
        self.data_dir = self.root / "data"
        self.config = self.root / "zoo.cfg"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def hosts(self) -> str:
        """``127.0.0.1:PORT``, what kazoo's ``hosts=`` (and a ``zk://`` URL) takes."""
        assert self.port, "never started"
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def log_path(self) -> Path:
        return self.root / f"zookeeper.{self.starts}.log"

    def start(self) -> str:
        """Start it and wait until a client connects; returns :attr:`hosts`."""
        assert not self.running, "running already"
        ok, reason = zk_available()
        if not ok:
            raise FileNotFoundError(reason)
        first = self.port == 0
        for attempt in range(START_ATTEMPTS if first else 1):
            if first:
                self.port = _free_port()
            self._launch()
            try:
                self._wait_serving()
                return self.hosts
            except ZooKeeperStartError:
                self._reap(signal.SIGKILL)
                # only a lost race for the port is worth another port: anything else fails alike
                if not first or attempt + 1 == START_ATTEMPTS or "BindException" not in self.log_tail():
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after :data:`STOP_GRACE` s; returns the exit code."""
        return self._reap(signal.SIGTERM)

    def kill(self) -> int | None:
        """SIGKILL, as a crash (for tests in which the cluster loses ZooKeeper)."""
        return self._reap(signal.SIGKILL)

    def restart(self) -> str:
        """Stop it if it runs, and start it again on the same port with the same data."""
        self.stop()
        return self.start()

    def log_tail(self, nbytes: int = 6000) -> str:
        try:
            return self.log_path.read_bytes()[-nbytes:].decode("utf-8", "replace")
        except OSError:
            return ""

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # a short minSessionTimeout lets the tests lose a session in well under a second; a
        # short tick expires it on time (ZooKeeper expires sessions a tick at a time: with
        # its default 2000 ms, a 2 s session is expired 2 to 4 s after its last ping)
        self.config.write_text(
            "\n".join(
                [
                    "tickTime=200",
                    f"dataDir={self.data_dir}",
                    f"clientPort={self.port}",
                    "clientPortAddress=127.0.0.1",
                    "admin.enableServer=false",
                    "minSessionTimeout=200",
                    "maxSessionTimeout=60000",
                    # `conf` tells this server from another one that holds the port (_serves_us)
                    "4lw.commands.whitelist=conf,ruok,srvr,stat",
                    "",
                ]
            )
        )

    def _launch(self) -> None:
        self._write_config()
        self.starts += 1
        classpath = [zookeeper_jar()]
        if os.path.isfile(SLF4J_SIMPLE):
            classpath.append(SLF4J_SIMPLE)
        if os.environ.get("CLASSPATH"):
            classpath.append(os.environ["CLASSPATH"])
        argv = [
            *_die_with_parent(),
            shutil.which("java") or "java",
            # the JVM would size its heap by the machine's memory; a test server holds kilobytes
            "-Xmx256m",
            "-cp",
            os.pathsep.join(classpath),
            "-Dzookeeper.admin.enableServer=false",
            MAIN_CLASS,
            str(self.config),
        ]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )

    def _wait_serving(self) -> None:
        # kazoo, not a port probe: the port listens before the server takes sessions
        from kazoo.client import KazooClient
        from kazoo.exceptions import KazooException
        from kazoo.handlers.threading import KazooTimeoutError

        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise ZooKeeperStartError(
                    f"ZooKeeper exited with {self.proc.returncode} before serving on {self.hosts}",
                    returncode=self.proc.returncode,
                    log_tail=self.log_tail(),
                )
            client = KazooClient(hosts=self.hosts, timeout=2.0)
            try:
                client.start(timeout=1.0)
                client.get("/")
                if self._serves_us(client.command(b"conf")):
                    return
                why = "another server answers there, and ours neither serves nor exits"
            # not yet serving, or serving and gone again (then poll() above says so next time)
            except (KazooTimeoutError, KazooException, OSError):
                why = "it did not accept a client"
            finally:
                client.stop()
                client.close()
            if time.monotonic() > deadline:
                raise ZooKeeperStartError(
                    f"ZooKeeper on {self.hosts}: {why} within {START_TIMEOUT:.0f} s",
                    returncode=None,
                    log_tail=self.log_tail(),
                )
            time.sleep(0.05)

    def _serves_us(self, conf: str) -> bool:
        """Whether the server that answered keeps its data in our directory (and is not some other
        process that held the port when ours tried to bind it; ours then exits, and says why)."""
        for line in conf.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "dataDir":
                return Path(value.strip()).parent == self.data_dir or Path(value.strip()) == self.data_dir
        return False

    def _reap(self, sig: signal.Signals) -> int | None:
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode


__all__ = ["ZooKeeperServer", "ZooKeeperStartError", "zk_available"]
