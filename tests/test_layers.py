"""The embedded engine imports no network (DESIGN.md §10, issue #17): an embedded user's
``import pegasus_fast``, a cluster, writes, reads and a local duplication load neither grpc
nor kazoo; ``pf.connect`` and ``pf.serve`` load them when called."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pegasus_fast as pf
import pytest
from conftest import PACKAGE_ROOT
from pegasus_fast.engine.cluster import Cluster as EngineCluster

EMBEDDED = """
import sys, tempfile, pegasus_fast as pf
root = tempfile.mkdtemp()
src = pf.Cluster.open(root + "/src", name="source")
dst = pf.Cluster.open(root + "/dst", name="target")
t = src.create_table("t", partition_count=4)
t.set(b"h", b"s", b"v")
assert t.get(b"h", b"s") == b"v"
dup = src.add_duplication("t", dst)
dup.wait_for(pf.DupStatus.LOG, timeout=30)
assert list(t.scan()) == [(b"h", b"s", b"v")]
src.close(); dst.close()
loaded = sorted(m for m in ("grpc", "kazoo", "google.protobuf") if m in sys.modules)
print("LOADED", loaded)
pf.connect  # the name resolves lazily, still without importing the client
print("AFTER_NAME", "grpc" in sys.modules)
"""


def _run(code: str) -> str:
    env = {"PYTHONPATH": PACKAGE_ROOT, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_an_embedded_user_loads_neither_grpc_nor_kazoo() -> None:
    out = _run(EMBEDDED)
    assert "LOADED []" in out


def test_connect_loads_the_network_when_called() -> None:
    out = _run(
        "import sys, pegasus_fast as pf\n"
        "assert 'grpc' not in sys.modules\n"
        "try:\n    pf.connect('pegasus://127.0.0.1:1', timeout=0.2)\nexcept Exception:\n    pass\n"
        "print('GRPC', 'grpc' in sys.modules)\n"
    )
    assert "GRPC True" in out


def test_an_engine_cluster_without_a_network_refuses_a_url(tmp_path: Path) -> None:
    c = EngineCluster.open(tmp_path / "c")
    try:
        c.create_table("t", partition_count=1)
        with pytest.raises(pf.InvalidArgumentError):
            c.add_duplication("t", "pegasus://127.0.0.1:34567")
        assert c.duplications() == []
    finally:
        c.close()


def test_the_package_cluster_takes_urls(tmp_path: Path) -> None:
    c = pf.Cluster.open(tmp_path / "c")
    try:
        c.create_table("t", partition_count=1)
        with pytest.raises(pf.InvalidArgumentError):
            c.add_duplication("t", "pegasus://127.0.0.1:0")
        d = c.add_duplication("t", "pegasus://127.0.0.1:34567/")
        assert d.remote == "pegasus://127.0.0.1:34567"
        d.remove()
    finally:
        c.close()
