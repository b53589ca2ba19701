"""Pegasus's own client protocol on a multi-node cluster (issue #19 §3): every ``serve --zk`` node
serves its own partitions on its ``--pegasus-listen``; the real pypegasus3 client given any node's
address routes by the meta answer and follows a partition move after querying it again.

Two nodes, four partitions (pypegasus3 hashes right only for power-of-two counts, see
docs/pegasus-protocol.md §5); ZooKeeper and the nodes are real processes on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
from conftest import BACKENDS
from multinode import Nodes, owners, registered_pegasus
from pegasus_client_venv import DRIVER, client_python
from pegasus_fast.client.native import PyClientCore
from pegasus_fast.net.pegasus import codes
from pegasus_fast.records import encode_key
from served import Fleet

pytestmark = pytest.mark.usefixtures("default_backend")

TABLE = "pt"
PARTITIONS = 4
KEYS = 24
SHORT = ("--config", "fence_lease_seconds=3", "--config", "zk_session_timeout_seconds=3")


@pytest.fixture(params=BACKENDS)
def fleet(tmp_path: Path, request: pytest.FixtureRequest, default_backend: ModuleType) -> Iterator[Fleet]:
    """Nodes of each backend: each serves its own front end (the Rust one under the Rust backend,
    the asyncio one under the Python one)."""
    f = Fleet(tmp_path, request.param)
    try:
        yield f
    finally:
        f.close()


def _driver(target: str, retry_for: float = 30) -> subprocess.Popen[str]:
    """pypegasus3 on ``target``: it writes and reads KEYS keys (a refused call retried for up to
    ``retry_for`` seconds), prints a line, waits for one on stdin, does it again (see
    pypegasus_driver.py's ``moves``)."""
    return subprocess.Popen(
        [client_python(), str(DRIVER), target, TABLE, "moves", str(KEYS), str(retry_for)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tempfile.gettempdir(),  # pypegasus3's logging config writes pegasus.log in the cwd
    )


def _line(proc: subprocess.Popen[str]) -> list[list[object]]:
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the driver's own deadlines (30 s a phase) bound this
    assert line, proc.stderr.read()[-2000:] if proc.stderr else ""
    return json.loads(line)


def _finish(proc: subprocess.Popen[str]) -> list[list[object]]:
    try:
        out, err = proc.communicate("\n", timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


def _phase(result: list[list[object]], phase: str) -> tuple[int, list[list[object]], dict[str, str]]:
    (step,) = [s for s in result if s[0] == phase]
    _, refused, (codes, parts) = step
    return refused, codes, parts


def _expected(table: pf.RoutedTable, pegasus: dict[str, str]) -> dict[str, str]:
    return {str(p): pegasus[o] for p, o in enumerate(owners(table))}


def _check_raw(t: pf.RoutedTable, pegasus: dict[str, str]) -> None:
    """Each node's Pegasus port, by hand: its meta answer carries each partition's ballot (as in
    ZooKeeper); it serves a partition it owns and refuses one it does not with
    ERR_INVALID_STATE, writing nothing."""
    cfg = t._config(fresh=True)
    for node in ("n1", "n2"):
        host, port = pegasus[node].rsplit(":", 1)
        core = PyClientCore(host, int(port), timeout=10)
        try:
            err, (qerr, app_id, count, parts) = core.call(codes.OP_QUERY_CFG, 0, 0, (TABLE, []))
            assert (err, qerr, count) == (codes.ERR_OK, codes.ERR_OK, PARTITIONS)
            assert [(p[0], p[1]) for p in parts] == [(pc.pidx, pc.ballot) for pc in cfg.partitions]
            for i in range(KEYS):
                hk = b"hk%d" % i
                pidx = t.partition_index(hk, b"s")
                key = encode_key(hk, b"s")
                want = codes.ERR_OK if cfg.partitions[pidx].owner == node else codes.ERR_INVALID_STATE
                assert core.call(codes.OP_PUT, app_id, pidx, (key, b"by " + node.encode(), 0))[0] == want
                assert core.call(codes.OP_GET, app_id, pidx, (key,))[0] == want
        finally:
            core.close()
    for i in range(KEYS):
        hk = b"hk%d" % i
        assert t.get(hk, b"s") == b"by " + cfg.partitions[t.partition_index(hk, b"s")].owner.encode()


def test_pypegasus3_on_any_node_routes_to_owners_and_follows_moves(fleet: Fleet, zk_chroot: str) -> None:
    client_python()  # skip before starting anything when the client cannot be had
    nodes = Nodes(fleet, zk_chroot, "--pegasus-listen", "127.0.0.1:0", *SHORT)
    nodes.start("n1", "n2")
    with nodes.client() as c:
        pegasus = registered_pegasus(zk_chroot)
        assert set(pegasus) == {"n1", "n2"}
        assert all(a.startswith("127.0.0.1:") and not a.endswith(":0") for a in pegasus.values()), pegasus
        assert pegasus["n1"] != pegasus["n2"]
        # one copy each: a dead owner's partitions have no primary (nothing fails over)
        t = c.create_table(TABLE, PARTITIONS, replica_count=1)
        if len(set(owners(t))) == 1:  # each node owns something
            c.move_partition(TABLE, 0, "n2" if owners(t)[0] == "n1" else "n1")
        assert set(owners(t)) == {"n1", "n2"}
        assert {t.partition_index(b"hk%d" % i, b"s") for i in range(KEYS)} == set(range(PARTITIONS))

        # given either node, the client reaches every partition's owner: no refusal
        for node in ("n1", "n2"):
            result = _finish(_driver(pegasus[node]))
            assert result[0] == ["init", True, None], result
            for phase in ("before", "after"):
                refused, codes, parts = _phase(result, phase)
                assert parts == _expected(t, pegasus)
                assert codes == [[0, 0, True]] * KEYS
                assert refused == 0
        for i in range(KEYS):
            assert t.get(b"hk%d" % i, b"s") == b"after%d" % i
        _check_raw(t, pegasus)

        # a client of n1 keeps working when every partition changes hands under it
        proc = _driver(pegasus["n1"])
        try:
            first = _line(proc)
            refused, codes, parts = _phase(first, "before")
            assert parts == _expected(t, pegasus) and codes == [[0, 0, True]] * KEYS
            before = owners(t)
            for pidx, owner in enumerate(before):
                c.move_partition(TABLE, pidx, "n2" if owner == "n1" else "n1")
            assert all(a != b for a, b in zip(before, owners(t)))
            result = _finish(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        refused, codes, parts = _phase(result, "after")
        assert codes == [[0, 0, True]] * KEYS
        assert refused >= 1  # the old owners refused, and the client asked the meta query again
        assert parts == _expected(t, pegasus)
        for i in range(KEYS):
            assert t.get(b"hk%d" % i, b"s") == b"after%d" % i

        # a dead owner's partitions have no primary in the meta answer (Pegasus's invalid address)
        nodes["n2"].kill9()
        nodes.wait_live(c, {"n1"})
        own = owners(t)
        result = _finish(_driver(pegasus["n1"], retry_for=3))
        assert result[0] == ["init", True, None], result
        _, codes, parts = _phase(result, "before")
        assert parts == {str(p): pegasus["n1"] if o == "n1" else "" for p, o in enumerate(own)}
        for i, (put, get, same) in enumerate(codes):
            if own[t.partition_index(b"hk%d" % i, b"s")] == "n1":
                # written and read back (pypegasus3 queries the meta again every 2 s while a
                # partition has no primary, closing its sessions: a put's answer may be lost)
                assert (get, same) == (0, True)
            else:
                assert put != 0 and get != 0


def test_node_doc_pegasus_address_is_optional() -> None:
    from pegasus_fast.coord.layout import NodeDoc
    from pegasus_fast.errors import CoordinationError

    # a registration written before nodes had a Pegasus address reads as one without
    old = b'{"node_id": "n1", "uid": "u", "url": "pegasus://127.0.0.1:1"}'
    assert NodeDoc.decode(old) == NodeDoc("n1", "pegasus://127.0.0.1:1", "u", "")
    doc = NodeDoc("n1", "pegasus://127.0.0.1:1", "u", "127.0.0.1:2")
    assert NodeDoc.decode(doc.encode()) == doc
    with pytest.raises(CoordinationError):
        NodeDoc.decode(b'{"node_id": "n1", "url": "u", "pegasus": 5}')
