"""The unmodified Pegasus Python client (pypegasus3, in its own venv: pegasus_client_venv.py)
against our Pegasus-protocol front end, in a thread and behind ``pegasus-fast serve``.

Every method of pypegasus3's ``Pegasus`` class is driven (tests/pypegasus_driver.py); ranged and
reversed multi_get, get_scanner's batches and the unordered scanners of the whole table included.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pegasus_fast as pf
import pytest
from conftest import BACKENDS, PYTHON, child_env
from pegasus_client_venv import DRIVER, client_python
from pegasus_fast import _backend
from pegasus_fast.server.pegasus_native import open_front

# pypegasus3's error_types values (its return codes) and the rocksdb codes it passes through
ERR_OK, ERR_TIMEOUT, ERR_OBJECT_NOT_FOUND, ERR_INCOMPLETE_DATA = 0, 18, 23, 38


def _drive(target: str, table: str, scenario: str, *extra: str, timeout: float = 60) -> list[list[Any]]:
    proc = subprocess.run(
        [client_python(), str(DRIVER), target, table, scenario, *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tempfile.gettempdir(),  # pypegasus3's logging config writes pegasus.log in the cwd
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(params=["asyncio", "rust"])
def served(
    tmp_path: Path, request: pytest.FixtureRequest, default_backend: ModuleType
) -> Iterator[tuple[pf.Cluster, str]]:
    """Each front end: the Rust one (under the Rust backend, which it needs, whichever backend
    an earlier test left active) and its asyncio twin (under the default one)."""
    if request.param == "rust" and "rust" not in BACKENDS:
        pytest.skip("the Rust front end needs the Rust backend")
    client_python()  # skip before opening anything when the client cannot be had
    with _backend.use("rust" if request.param == "rust" else _backend.name):
        cluster = pf.Cluster.open(tmp_path / "c")
        cluster.create_table("temp", partition_count=8)
        front = open_front(cluster, "127.0.0.1:0", native=request.param == "rust")
        try:
            yield cluster, front.address.target
        finally:
            front.stop()
            cluster.close()


def test_every_pypegasus3_method(served: tuple[pf.Cluster, str]) -> None:
    cluster, target = served
    steps = {step: (code, value) for step, code, value in _drive(target, "temp", "everything")}
    assert steps.pop("init") == (True, None)
    expected = {
        "set": (ERR_OK, None),
        "get": (ERR_OK, "v1"),
        "get_missing": (ERR_OBJECT_NOT_FOUND, ""),
        "set_binary": (ERR_OK, None),
        "get_binary": (ERR_OK, "\x00\xff\x01"),
        "set_empty_sort_key": (ERR_OK, None),
        "get_empty_sort_key": (ERR_OK, "under empty"),
        "ttl_forever": (ERR_OK, -1),
        "set_ttl": (ERR_OK, None),
        "ttl_missing": (ERR_OBJECT_NOT_FOUND, 0),
        "exist": (ERR_OK, -1),
        "exist_missing": (ERR_OBJECT_NOT_FOUND, 0),
        "multi_set": (ERR_OK, None),
        "multi_get_keys": (ERR_OK, [["a", "1"], ["c", "3"]]),
        "multi_get_all": (ERR_OK, [["a", "1"], ["b", "2"], ["c", "3"], ["d", "4"]]),
        "multi_get_limited": (ERR_INCOMPLETE_DATA, [["a", "1"], ["b", "2"]]),
        "multi_get_no_value": (ERR_OK, [["b", ""]]),
        "get_sort_keys": (ERR_OK, [["a", ""], ["b", ""], ["c", ""], ["d", ""]]),
        "sort_key_count": (ERR_OK, 4),
        "sort_key_count_missing": (ERR_OK, 0),
        "multi_del": (ERR_OK, 2),
        "sort_key_count_after": (ERR_OK, 2),
        "remove": (ERR_OK, None),
        "get_removed": (ERR_OBJECT_NOT_FOUND, ""),
        "multi_set_ttl": (ERR_OK, None),
        "multi_get_opt": (ERR_OK, [["c", "3"], ["d", "4"]]),
        "multi_get_opt_reverse": (ERR_INCOMPLETE_DATA, [["d", "4"]]),
        "multi_set_scan": (ERR_OK, None),
        # k03 to k20 (stop exclusive), 4 a batch: one get_scanner and four scans
        "get_scanner": (0, [[f"k{i:02d}", f"v{i}"] for i in range(3, 20)]),
        # every record of the table, over 3 scanners of the 8 partitions
        "get_unordered_scanners": (3, 3 + 2 + 1 + 25),  # h1, h2, h3, h4
    }
    ttl_600, ttl_300 = steps.pop("ttl_600"), steps.pop("ttl_multi_set")
    assert steps == expected
    assert ttl_600[0] == ERR_OK and 595 <= ttl_600[1] <= 600
    assert ttl_300[0] == ERR_OK and 295 <= ttl_300[1] <= 300
    # what the client wrote is what the embedded API reads
    t = cluster.table("temp")
    assert t.get(b"h1", b"bin") == b"\x00\xff\x01"
    assert t.get(b"h1", b"") == b"under empty"
    assert t.get(b"h1", b"s1") is None
    assert t.multi_get(b"h2") == {b"c": b"3", b"d": b"4"}


def test_client_reads_what_the_table_wrote(served: tuple[pf.Cluster, str]) -> None:
    cluster, target = served
    # a record the table wrote shares its hash key with one the client writes (h3/x): both
    # land in the one partition both route h3 to
    t = cluster.table("temp")
    t.set(b"h3", b"y", b"from the table")
    steps = _drive(target, "temp", "everything")
    assert ["multi_set_ttl", ERR_OK, None] in steps
    assert t.multi_get(b"h3") == {b"x": b"1", b"y": b"from the table"}


def test_unknown_table(served: tuple[pf.Cluster, str]) -> None:
    _, target = served
    steps = _drive(target, "no_such_table", "everything")
    # the meta query answers ERR_OBJECT_NOT_FOUND: pypegasus3's init yields no configuration
    # (None), and its first call finds no partition count (its own AttributeError)
    assert steps[0] == ["init", None, None]
    assert steps[1][:2] == ["driver", "raised"] and "partition_count" in steps[1][2]


def _misrouted_hash_key(partition_count: int) -> str:
    """A hash key pypegasus3 routes to another partition than Pegasus: its crc64 is kept in a
    Python int made negative by ``~crc``, so ``hash % count`` differs when count is not a
    power of two (a pypegasus3 bug)."""
    from pegasus_fast import _backend

    for i in range(1000):
        hk = f"k{i}"
        crc = _backend.impl.crc64(hk.encode())
        signed = crc - (1 << 64) if crc >= 1 << 63 else crc
        if signed % partition_count != crc % partition_count:
            return hk
    raise AssertionError("no misrouted key found")


def test_pypegasus3_misrouted_key_is_refused_not_stored(tmp_path: Path) -> None:
    client_python()
    cluster = pf.Cluster.open(tmp_path / "c")
    cluster.create_table("three", partition_count=3)
    server = pf.serve(cluster, pegasus_listen="127.0.0.1:0")
    try:
        assert server.pegasus_address is not None
        hk = _misrouted_hash_key(3)
        steps = _drive(server.pegasus_address.target, "three", "misrouted", hk)
        # refused with ERR_PARENT_PARTITION_MISUSED, a name pypegasus3 does not know: it drops
        # the reply and its call times out
        assert steps[-1] == ["set_misrouted", ERR_TIMEOUT, None]
        assert cluster.table("three").count() == 0
        assert server.pegasus is not None and server.pegasus.stats["protocol_errors"] == 0
    finally:
        server.stop()
        cluster.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_pegasus_fast_serve_process(tmp_path: Path, backend: str) -> None:
    """``pegasus-fast serve``: the Rust front end with the Rust backend, asyncio's with Python's."""
    client_python()
    with pf.Cluster.open(tmp_path / "c") as cluster:
        cluster.create_table("temp", partition_count=4)
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [PYTHON, "-m", "pegasus_fast", "--cluster", str(tmp_path / "c"), "serve", "--listen", "127.0.0.1:0",
         "--ready-file", str(ready), "--pegasus-listen", "127.0.0.1:0"],
        env=child_env(backend),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.02)
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(2)]
        assert lines[1].startswith("pegasus: 127.0.0.1:")
        target = lines[1].removeprefix("pegasus: ")
        steps = _drive(target, "temp", "everything")
        assert ["get", ERR_OK, "v1"] in steps
        assert ["sort_key_count", ERR_OK, 4] in steps
    finally:
        proc.terminate()
        proc.wait(30)
    with pf.Cluster.open(tmp_path / "c") as cluster:
        assert cluster.table("temp").get(b"h1", b"bin") == b"\x00\xff\x01"
