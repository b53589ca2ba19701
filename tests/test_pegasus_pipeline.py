"""Pipelined durable writes on the Pegasus port (issue #19): a batch is logged, applied and
read while the fsyncs of the batch before it run; answers go out in the order batches began,
each once its writes and every earlier batch's are durable. Checked at the handler, over
both front ends with a pipelining connection, and against ``kill -9`` of a real serve process."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pegasus_fast as pf
import pytest
from conftest import BACKENDS, PYTHON, child_env
from pegasus_fast.net.pegasus import codes
from pegasus_fast.net.pegasus.calls import decode_reply, encode_call
from pegasus_fast.net.pegasus.handler import BatchHandler
from pegasus_fast.records import encode_key

PUT, GET = "RPC_RRDB_RRDB_PUT", "RPC_RRDB_RRDB_GET"
#: (backend, pipeline depth of the Rust front end's batch loop; the asyncio one has none)
FRONTS = [(b, 1) for b in BACKENDS] + ([("rust", 3)] if "rust" in BACKENDS else [])


def _put(t: Any, seqid: int, hk: bytes, value: bytes) -> tuple[Any, ...]:
    return (codes.OP_PUT, seqid, t.app_id, t.partition_index(hk), PUT, (encode_key(hk, b""), value, 0))


def _get(t: Any, seqid: int, hk: bytes) -> tuple[Any, ...]:
    return (codes.OP_GET, seqid, t.app_id, t.partition_index(hk), GET, (encode_key(hk, b""),))


def test_a_later_batch_reads_an_earlier_batchs_write(default_backend: Any, tmp_path: Path) -> None:
    """begin_batch returns before the fsyncs; the next batch already sees the write (held by the
    front end until the first is finished); finish answers once the writes are durable."""
    with pf.Cluster.open(tmp_path / "c") as c:
        t = c.create_table("t", partition_count=8)
        h = BatchHandler(c)
        try:
            first = h.begin_batch([_put(t, i, b"k%d" % i, b"v%d" % i) for i in range(16)])
            second = h.begin_batch([_get(t, 100 + i, b"k%d" % i) for i in range(16)])
            out1 = first.finish()
            assert first.ready()
            assert [r[5] for r in out1] == [codes.ERR_OK] * 16
            for r in out1:
                assert t.partitions[r[3]].durable_decree >= r[6][1]
            out2 = second.finish()
            assert [(r[1], r[6]) for r in out2] == [(100 + i, (codes.K_OK, b"v%d" % i)) for i in range(16)]
            # the plain call is the two steps at once
            assert h.handle_batch([_get(t, 7, b"k3")])[0][6] == (codes.K_OK, b"v3")
        finally:
            h.close()


@pytest.fixture(params=FRONTS, ids=lambda f: f"{f[0]}-depth{f[1]}")
def port(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[int, Any]]:
    """The Pegasus port of a served cluster: the Rust front end (pipelined or not), or the
    asyncio one."""
    from pegasus_fast import _backend

    backend, depth = request.param
    monkeypatch.setenv("PEGASUS_FAST_FRONT_PIPELINE", str(depth))
    with _backend.use(backend):
        c = pf.Cluster.open(tmp_path / "c")
        t = c.create_table("t", partition_count=8)
        server = pf.serve(c, pegasus_listen="127.0.0.1:0")
        try:
            yield server.pegasus.address.port, t
        finally:
            server.stop()
            c.close()


def _read_reply(s: socket.socket, op: int) -> tuple[str, str, int, Any]:
    def exactly(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            assert chunk, "the server closed the connection"
            buf += chunk
        return buf

    head = exactly(4)
    return decode_reply(op, exactly(int.from_bytes(head, "big") - 4))


def test_pipelined_connections_read_their_writes_in_order(port: tuple[int, Any]) -> None:
    """Several connections each send puts and gets of their keys without waiting: every reply
    comes back in the order asked, and every get sees the put sent before it (in its batch or
    an earlier one)."""
    pnum, t = port
    errors: list[BaseException] = []

    def conn(n: int) -> None:
        try:
            with socket.create_connection(("127.0.0.1", pnum), timeout=30) as s:
                ops = []
                frames = b""
                for i in range(100):
                    hk = b"c%d-%d" % (n, i)
                    frames += encode_call(codes.OP_PUT, 2 * i, t.app_id, t.partition_index(hk),
                                          (encode_key(hk, b""), b"%d" % i, 0))  # fmt: skip
                    frames += encode_call(codes.OP_GET, 2 * i + 1, t.app_id, t.partition_index(hk),
                                          (encode_key(hk, b""),))  # fmt: skip
                    ops += [codes.OP_PUT, codes.OP_GET]
                s.sendall(frames)
                for seqid, op in enumerate(ops):
                    error, _, got, result = _read_reply(s, op)
                    assert (error, got) == (codes.ERR_OK, seqid)
                    if op == codes.OP_GET:
                        assert result == (codes.K_OK, b"%d" % (seqid // 2))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=conn, args=(n,)) for n in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors[0]


@pytest.mark.skipif("rust" not in BACKENDS, reason="the linger is the Rust front end's")
def test_the_group_commit_linger_never_delays_a_lone_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a batch with writes the loop lingers for as many requests as that batch and the
    queue held: a lone client's next request is all it waits for, so a linger of seconds
    costs it nothing; with several clients the linger ends when they are all back."""
    from pegasus_fast import _backend

    monkeypatch.setenv("PEGASUS_FAST_FRONT_LINGER_US", "3000000")
    with _backend.use("rust"):
        c = pf.Cluster.open(tmp_path / "c")
        c.create_table("t", partition_count=8)
        server = pf.serve(c, pegasus_listen="127.0.0.1:0")
        rc = pf.connect(server.url)
        try:
            t = rc.table("t")
            start = time.monotonic()
            for i in range(20):
                assert t.set(b"k%d" % i, b"", b"v") >= 1
            assert time.monotonic() - start < 3.0
            start = time.monotonic()
            errors: list[BaseException] = []

            def work(n: int) -> None:
                try:
                    for i in range(10):
                        t.set(b"w%d-%d" % (n, i), b"", b"v")
                except BaseException as exc:  # reported below
                    errors.append(exc)

            threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(120)
            assert not errors
            assert rc.table("t").count() == 60
        finally:
            rc.close()
            server.stop()
            c.close()


@pytest.mark.parametrize("backend,depth", FRONTS, ids=lambda x: str(x))
def test_kill9_loses_no_acknowledged_write_and_no_value_read(
    tmp_path: Path, backend: str, depth: int
) -> None:
    """Writers on several connections and a reader of what they are writing, then ``kill -9``:
    after a restart every write that was acknowledged is there, and so is every value a read
    was answered with (a read waits until the write it saw is durable)."""
    with pf.Cluster.open(tmp_path / "c") as cluster:
        cluster.create_table("t", partition_count=8)
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [PYTHON, "-m", "pegasus_fast", "--cluster", str(tmp_path / "c"), "serve", "--listen", "127.0.0.1:0",
         "--ready-file", str(ready), "--pegasus-listen", "127.0.0.1:0", "--config", "wal_sync=group"],
        env={**child_env(backend), "PEGASUS_FAST_FRONT_PIPELINE": str(depth)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    acked: list[list[bytes]] = [[] for _ in range(4)]
    trying: list[bytes | None] = [None]
    seen: list[bytes] = []
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.02)
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        rc = pf.connect(url)
        t = rc.table("t")

        def writer(n: int) -> None:
            i = 0
            while not stop.is_set():
                key = b"w%d-%d" % (n, i)
                if n == 0:
                    trying[0] = key
                try:
                    t.set(key, b"", b"v")
                except Exception:  # the server is gone: this write was never acknowledged
                    return
                acked[n].append(key)
                i += 1

        def reader() -> None:
            while not stop.is_set():
                key = trying[0]
                if key is None:
                    continue
                try:
                    if t.get(key, b"") == b"v":
                        seen.append(key)
                except Exception:
                    return

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        threads.append(threading.Thread(target=reader))
        for th in threads:
            th.start()
        deadline = time.monotonic() + 30
        while sum(map(len, acked)) < 200:
            assert time.monotonic() < deadline and all(th.is_alive() for th in threads[:4])
            time.sleep(0.01)
        proc.kill()
        proc.wait(30)
        stop.set()
        for th in threads:
            th.join(60)
        try:
            rc.close()
        except Exception:
            pass
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    with pf.Cluster.open(tmp_path / "c") as cluster:
        table = cluster.table("t")
        missing = [k for keys in acked for k in keys if table.get(k, b"") != b"v"]
        assert not missing
        assert not [k for k in seen if table.get(k, b"") != b"v"]
        assert sum(map(len, acked)) >= 200
