"""Served clusters in child processes: ``pegasus-fast --cluster DIR serve``, started, killed, restarted.

A :class:`Served` is one cluster directory served by one process at a time,
on one port for its whole life (the first start picks a free one, every
restart binds it again), so a source duplicating to it finds it again at
the same URL. :class:`Fleet` (the ``fleet`` fixture of the tests using it)
remembers every process it started and stops each of them at teardown,
whatever the test did.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from conftest import PYTHON, child_env

#: how long a process may take to serve, and to exit once asked
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


class Served:
    """One cluster directory and the process serving it (when one is running)."""

    def __init__(self, root: Path, name: str, backend_name: str, extra_env: dict[str, str] | None = None):
        self.name = name
        #: the ``--name`` it serves under (a node of a multi-node cluster takes the cluster's)
        self.cluster_name = name
        self.dir = root / name
        self.logs = root / f"{name}.logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = child_env(backend_name)
        self.env.pop("PEGASUS_FAST_TOKEN", None)  # a token only where a test gives one
        self.env.update(extra_env or {})
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        #: arguments of ``serve`` given at every start (a restart serves the same way)
        self.args: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        assert self.port, "never started"
        return f"pegasus://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *extra: str) -> str:
        """Serve the directory (on the port of the first start); returns the URL once it serves."""
        self.launch(*extra)
        return self.wait_ready()

    def launch(self, *extra: str) -> None:
        """Start the process; :meth:`wait_ready` waits until it serves."""
        assert not self.running, f"{self.name} is running already"
        self.starts += 1
        ready = self.logs / f"ready.{self.starts}"
        argv = [
            PYTHON,
            "-m",
            "pegasus_fast",
            "--cluster",
            str(self.dir),
            "--name",
            self.cluster_name,
            "serve",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--ready-file",
            str(ready),
            *self.args,
            *extra,
        ]
        out = open(self.logs / f"out.{self.starts}", "wb")  # noqa: SIM115 - the child owns it
        err = open(self.logs / f"err.{self.starts}", "wb")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(argv, env=self.env, stdout=out, stderr=err)
        finally:
            out.close()
            err.close()

    def wait_ready(self) -> str:
        assert self.proc is not None
        ready = self.logs / f"ready.{self.starts}"
        deadline = time.monotonic() + START_TIMEOUT
        while not ready.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}: {self.stderr()}")
            if time.monotonic() > deadline:
                self.kill9()
                raise AssertionError(f"{self.name} did not serve within {START_TIMEOUT}s: {self.stderr()}")
            time.sleep(0.01)
        url = ready.read_text().strip()
        port = int(url.rsplit(":", 1)[1])
        assert self.port in (0, port), (self.port, port)
        self.port = port
        return url

    def kill9(self) -> None:
        """SIGKILL, as a crash: nothing is flushed or closed."""
        p = self.proc
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait(STOP_TIMEOUT)

    def stop(self) -> int | None:
        """SIGTERM, a graceful stop; SIGKILL when it does not exit in time. Returns its exit code."""
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGUSR2)  # serve dumps every thread's stack on stderr
                time.sleep(1.0)
                p.kill()
                p.wait(STOP_TIMEOUT)
                raise AssertionError(
                    f"{self.name} ignored SIGTERM for {STOP_TIMEOUT}s; its stderr ends:\n{self.stderr(12000)}"
                ) from None
        return p.returncode

    def restart(self, *extra: str) -> str:
        self.stop()
        return self.start(*extra)

    def stderr(self, tail: int = 4000) -> str:
        path = self.logs / f"err.{self.starts}"
        try:
            return path.read_bytes()[-tail:].decode("utf-8", "replace")
        except OSError:
            return ""


def start_all(*served: Served) -> None:
    """Start several at once (each takes a while to import and open)."""
    for s in served:
        s.launch()
    for s in served:
        s.wait_ready()


class Fleet:
    """Every served cluster of one test; :meth:`close` stops them all."""

    def __init__(self, root: Path, backend_name: str) -> None:
        self.root = root
        self.backend_name = backend_name
        self.members: list[Served] = []

    def add(self, name: str, extra_env: dict[str, str] | None = None) -> Served:
        s = Served(self.root, name, self.backend_name, extra_env)
        self.members.append(s)
        return s

    def close(self) -> None:
        for s in reversed(self.members):
            try:
                s.stop()
            except (AssertionError, OSError, subprocess.TimeoutExpired):
                if s.proc is not None and s.proc.poll() is None:
                    s.proc.kill()
                    s.proc.wait(STOP_TIMEOUT)


__all__ = ["Fleet", "Served", "start_all"]
