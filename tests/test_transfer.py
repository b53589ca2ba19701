"""Moving a partition between two served nodes (multinode/transfer.py): Learn, Fence, CatchUp, Unfence.

Two plain clusters served in-process on 127.0.0.1 with the Client and Node services stand in
for two nodes; the ZooKeeper side (who owns what, Sync) is not needed for the data plane, so
the Node stubs are called directly, in the order the meta leader calls them.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import grpc
import pegasus_fast as pf
import pytest
from netproxy import FaultyProxy
from pegasus_fast import _backend
from pegasus_fast.config import Config
from pegasus_fast.errors import (
    ChecksumMismatchError,
    InvalidArgumentError,
    PartitionUnavailableError,
    RemoteUnavailableError,
    WalGapError,
)
from pegasus_fast.multinode.transfer import STAGING, NodeTransfer, receive_checkpoint
from pegasus_fast.net import pegasus_fast_pb2 as pb
from pegasus_fast.net import pegasus_fast_pb2_grpc as rpc
from pegasus_fast.net.wire import CHANNEL_OPTIONS, call, error_from_rpc
from pegasus_fast.server.client_service import ClientService
from pegasus_fast.storage.log_read import LogCursor, log_batches
from pegasus_fast.storage.partition import LEARNING, MOVING, SERVING, Partition

PIDX = 2


@dataclass
class Node:
    cluster: pf.Cluster
    server: grpc.Server
    transfer: NodeTransfer
    url: str
    stub: rpc.NodeStub
    channel: grpc.Channel

    def p(self, pidx: int = PIDX) -> Partition:
        return self.cluster.table("t").partitions[pidx]

    def close(self) -> None:
        self.channel.close()
        self.server.stop(0).wait()
        self.transfer.close()
        self.cluster.close()


def _node(
    path: Path, name: str, config: Config | None = None, transfer_class: type[NodeTransfer] = NodeTransfer
) -> Node:
    cluster = pf.Cluster.open(path, name=name, config=config)
    if not cluster.has_table("t"):
        cluster.create_table("t", partition_count=4)
    server = grpc.server(ThreadPoolExecutor(max_workers=16), options=CHANNEL_OPTIONS)
    rpc.add_ClientServicer_to_server(ClientService(cluster), server)
    transfer = transfer_class(cluster)
    rpc.add_NodeServicer_to_server(transfer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS)
    url = f"pegasus://127.0.0.1:{port}"
    return Node(cluster, server, transfer, url, rpc.NodeStub(channel), channel)


@pytest.fixture
def nodes(backend: ModuleType, tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    a, b = _node(tmp_path / "a", "a"), _node(tmp_path / "b", "b")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _keys(t: pf.Table, n: int, start: int = 0, pidx: int = PIDX) -> list[bytes]:
    """``n`` hash keys of partition ``pidx``."""
    out, i = [], start
    while len(out) < n:
        hk = b"k%06d" % i
        if t.partition_index(hk) == pidx:
            out.append(hk)
        i += 1
    return out


def _fill(t: pf.Table, keys: list[bytes], tag: bytes = b"") -> None:
    for i, hk in enumerate(keys):
        t.set(hk, b"s", b"v" + tag + hk)
        if i % 3 == 0:
            t.set(hk, b"ttl", b"x" + tag, ttl_seconds=3600)
        if i % 5 == 0:
            t.delete(hk, b"s")


def _rpc(node: Node, method: str, request: object) -> object:
    return call(node.url, getattr(node.stub, method), request)


def _learn(b: Node, source_url: str) -> int:
    r = _rpc(b, "Learn", pb.LearnPartitionRequest(table="t", pidx=PIDX, source_url=source_url))
    return r.decree  # type: ignore[attr-defined]


def _same(a: Partition, b: Partition) -> None:
    assert b.last_committed == a.last_committed
    assert list(b.raw_view()) == list(a.raw_view())  # values with their timetags and expiry


def test_move_keeps_data_decrees_and_timetags(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    t = a.cluster.table("t")
    keys = _keys(t, 60)
    _fill(t, keys[:40])
    assert _learn(b, a.url) == a.p().last_committed
    assert b.p().state == LEARNING
    _fill(t, keys[30:], tag=b"2")  # writes go on at the source
    fenced = _rpc(a, "Fence", pb.PartitionRef(table="t", pidx=PIDX)).decree  # type: ignore[attr-defined]
    assert fenced == a.p().last_committed == a.p().durable_decree
    req = pb.LearnPartitionRequest(table="t", pidx=PIDX, source_url=a.url, through=fenced)
    assert _rpc(b, "CatchUp", req).decree == fenced  # type: ignore[attr-defined]
    assert _rpc(b, "CatchUp", req).decree == fenced  # type: ignore[attr-defined]  # a retry
    _same(a.p(), b.p())
    # the other partitions of the target were not touched
    assert all(b.p(i).last_committed == 0 for i in (0, 1, 3))
    with pf.connect(a.url) as ra, pf.connect(b.url) as rb:
        with pytest.raises(PartitionUnavailableError) as err:
            ra.table("t").set(keys[0], b"s", b"refused")
        assert (err.value.table, err.value.pidx, err.value.state) == ("t", PIDX, MOVING)
        assert ra.table("t").get(keys[31], b"s") == b"v2" + keys[31]  # reads go on
        with pytest.raises(PartitionUnavailableError) as err:
            rb.table("t").get(keys[31], b"s")  # learning until the node agent serves it
        assert err.value.state == LEARNING
        b.p().serve_learned()
        assert rb.table("t").get(keys[31], b"s") == b"v2" + keys[31]
        assert rb.table("t").set(keys[0], b"s", b"new owner") == fenced + 1
        _rpc(a, "Unfence", pb.PartitionRef(table="t", pidx=PIDX))
        assert a.p().state == SERVING
        assert ra.table("t").set(keys[0], b"s", b"again") == fenced + 1


def test_nothing_acknowledged_is_lost_under_a_writer(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    t = a.cluster.table("t")
    keys = _keys(t, 200)
    _fill(t, keys)
    acked: dict[bytes, bytes] = {}
    errors: list[BaseException] = []

    def writer() -> None:
        i = 0
        while True:
            hk, v = keys[i % len(keys)], b"w%d" % i
            try:
                t.set(hk, b"w", v)
            except PartitionUnavailableError as exc:
                if exc.state != MOVING:
                    errors.append(exc)
                return
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return
            acked[hk] = v
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        learned = _learn(b, a.url)
        decree = _rpc(a, "Fence", pb.PartitionRef(table="t", pidx=PIDX)).decree  # type: ignore[attr-defined]
    finally:
        a.p().fence()  # (again: a no-op) the writer stops at its first refused write
        thread.join()
    assert not errors
    assert decree > learned  # the writer wrote during the learn, and after it
    req = pb.LearnPartitionRequest(table="t", pidx=PIDX, source_url=a.url, through=decree)
    assert _rpc(b, "CatchUp", req).decree == decree  # type: ignore[attr-defined]
    _same(a.p(), b.p())
    b.p().serve_learned()
    tb = b.cluster.table("t")
    assert {hk: tb.get(hk, b"w") for hk in acked} == acked


def test_source_cut_off_mid_learn(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    t = a.cluster.table("t")
    keys = _keys(t, 400)
    for hk in keys:
        t.set(hk, b"big", os.urandom(8 << 10))  # ~3 MiB: a copy at 1 MiB/s is cut mid-way
    with FaultyProxy(int(a.url.rsplit(":", 1)[1]), rate=1 << 20) as proxy:
        got: list[BaseException] = []

        def learn() -> None:
            try:
                _learn(b, proxy.url)
            except BaseException as exc:  # noqa: BLE001 - checked below
                got.append(exc)

        thread = threading.Thread(target=learn)
        thread.start()
        staging = os.path.join(b.p().path, STAGING)
        while thread.is_alive() and not (
            os.path.isdir(staging) and sum(e.stat().st_size for e in os.scandir(staging)) > (256 << 10)
        ):
            thread.join(0.01)
        proxy.close()  # the source is gone mid-copy
        thread.join()
    assert len(got) == 1 and isinstance(got[0], RemoteUnavailableError), got
    assert b.p().state == LEARNING
    with pf.connect(b.url) as rb, pytest.raises(PartitionUnavailableError):
        rb.table("t").get(keys[0], b"big")
    assert _learn(b, a.url) == a.p().last_committed  # a second learn, from the source itself
    _same(a.p(), b.p())


def test_learn_an_untouched_partition(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    assert _learn(b, a.url) == 0
    assert b.p().last_committed == 0 and b.p().state == LEARNING
    fenced = _rpc(a, "Fence", pb.PartitionRef(table="t", pidx=PIDX)).decree  # type: ignore[attr-defined]
    req = pb.LearnPartitionRequest(table="t", pidx=PIDX, source_url=a.url, through=fenced)
    assert _rpc(b, "CatchUp", req).decree == 0  # type: ignore[attr-defined]


def test_a_learning_source_hands_nothing_out(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    _fill(a.cluster.table("t"), _keys(a.cluster.table("t"), 5))
    assert _learn(b, a.url) > 0
    # b's copy is learning: neither a checkpoint nor its log can be pulled from it
    with pytest.raises(PartitionUnavailableError) as err:
        _learn(a, b.url)
    assert err.value.state == LEARNING
    with pytest.raises(PartitionUnavailableError):
        _rpc(b, "Fence", pb.PartitionRef(table="t", pidx=PIDX))


def test_pull_log_past_what_the_wal_holds_is_a_gap(backend: ModuleType, tmp_path: Path) -> None:
    config = Config(log_private_file_size_mb=1)
    a = _node(tmp_path / "a", "a", config)
    try:
        t = a.cluster.table("t")
        for hk in _keys(t, 300):
            t.set(hk, b"big", os.urandom(8 << 10))
        a.p().checkpoint()  # the WAL files it covers are collected
        first = a.p().wal.snapshot_files()[0].first_decree
        assert first > 1
        stream = a.stub.PullLog(pb.PullLogRequest(table="t", pidx=PIDX, after=0))
        with pytest.raises(grpc.RpcError) as err:
            list(stream)
        gap = error_from_rpc(err.value, a.url)
        assert isinstance(gap, WalGapError)
        assert (gap.expected_decree, gap.found_decree) == (1, first)
        # from where it holds, the log comes whole
        stream = a.stub.PullLog(pb.PullLogRequest(table="t", pidx=PIDX, after=first - 1))
        assert max(b.last_decree for b in stream) == a.p().last_committed
    finally:
        a.close()


class _CollectsOnce(NodeTransfer):
    """A source whose WAL after the checkpoint it sent is collected before the first PullLog (a
    periodic flush and GC during a long copy), by writes, a checkpoint and a GC of its own."""

    collected = 0

    def PullLog(self, request: pb.PullLogRequest, context: grpc.ServicerContext) -> Iterator[pb.LogBatch]:  # noqa: N802
        if not self.collected:
            t = self.c.table("t")
            p = t.partitions[PIDX]
            for hk in _keys(t, 300, start=50_000):
                t.set(hk, b"big", os.urandom(8 << 10))
            p.checkpoint()  # GC runs after it
            self.collected = p.wal.snapshot_files()[0].first_decree
            assert self.collected > request.after + 1
        return super().PullLog(request, context)


def test_learn_again_when_the_wal_after_its_checkpoint_is_gone(backend: ModuleType, tmp_path: Path) -> None:
    a = _node(tmp_path / "a", "a", Config(log_private_file_size_mb=1), _CollectsOnce)
    b = _node(tmp_path / "b", "b")
    try:
        _fill(a.cluster.table("t"), _keys(a.cluster.table("t"), 20))
        assert _learn(b, a.url) == a.p().last_committed
        assert isinstance(a.transfer, _CollectsOnce) and a.transfer.collected
        _same(a.p(), b.p())
    finally:
        a.close()
        b.close()


def test_catch_up_past_the_source_is_refused(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    _fill(a.cluster.table("t"), _keys(a.cluster.table("t"), 5))
    _learn(b, a.url)
    last = a.p().last_committed
    req = pb.LearnPartitionRequest(table="t", pidx=PIDX, source_url=a.url, through=last + 5)
    with pytest.raises(InvalidArgumentError):
        _rpc(b, "CatchUp", req)
    assert b.p().last_committed == last


def test_a_log_cursor_is_a_hint_only(backend: ModuleType, tmp_path: Path) -> None:
    p = Partition(str(tmp_path / "p"), "t", 1, PIDX, Config(log_private_file_size_mb=1), 1)
    try:
        for i in range(200):
            p.write([(0, b"k%d" % i, b"s", os.urandom(8 << 10), 0)])  # a PUT; ~1.6 MB: two WAL files
        assert len(p.wal.snapshot_files()) > 1
        last = p.last_committed

        def pull(after: int, cursor: LogCursor | None) -> bytes:
            return b"".join(blocks for blocks, _ in log_batches(p, after, 0, 64 << 10, cursor))

        whole = pull(0, None)
        cursor = LogCursor()
        first_half = b"".join(b for b, _ in log_batches(p, 0, 150, 64 << 10, cursor))
        assert cursor.next_decree == 151 and cursor.offset > 0
        assert first_half + pull(150, cursor) == whole  # from where the last pull ended
        assert cursor.next_decree == last + 1
        for bogus in (
            LogCursor(cursor.name, 7, 101),  # inside a block
            LogCursor(cursor.name, 0, 101),  # the start of another file
            LogCursor("log.9.0", 0, 101),  # no such file
            LogCursor(p.wal.snapshot_files()[0].name, 0, 101),  # blocks before the decree
        ):
            assert pull(100, bogus) == pull(100, None)
            assert bogus.next_decree == last + 1
        with pytest.raises(InvalidArgumentError):
            list(log_batches(p, 0, last + 1))
    finally:
        p.close()


# -- a hostile source, at the function level -------------------------------------------------


def _learning(tmp_path: Path) -> Partition:
    return Partition(str(tmp_path / "p"), "t", 1, PIDX, Config(), 2, learning=True)


def _header(decree: int, manifest: list[tuple[str, int, str]], pidx: int = PIDX) -> pb.CheckpointPiece:
    entries = [pb.ManifestEntry(name=n, size=s, blake3=d) for n, s, d in manifest]
    return pb.CheckpointPiece(
        header=pb.CheckpointRequest(table="t", pidx=pidx, decree=decree, manifest=entries)
    )


def _chunk(name: str, data: bytes, crc: int | None = None, offset: int = 0) -> pb.CheckpointPiece:
    crc = _backend.impl.crc32c(data) if crc is None else crc
    return pb.CheckpointPiece(chunk=pb.Chunk(name=name, offset=offset, data=data, crc32c=crc))


END = pb.CheckpointPiece(end=pb.Empty())


@pytest.mark.parametrize(
    ("pieces", "error"),
    [
        ([_chunk("a", b"x")], InvalidArgumentError),  # no header first
        ([_header(1, [("t", 1, "0" * 64)], pidx=3), END], InvalidArgumentError),  # another partition
        ([_header(1, [("../evil", 1, "0" * 64)]), END], InvalidArgumentError),
        ([_header(1, [("a/b", 1, "0" * 64)]), END], InvalidArgumentError),
        ([_header(1, [("a", 1, "0" * 64)]), _chunk("b", b"x"), END], InvalidArgumentError),
        ([_header(1, [("a", 1, "0" * 64)]), _chunk("a", b"x", crc=1), END], ChecksumMismatchError),
        ([_header(1, [("a", 1, "0" * 64)]), _chunk("a", b"xy"), END], ChecksumMismatchError),
        ([_header(1, [("a", 2, "0" * 64)]), _chunk("a", b"x", offset=1), END], InvalidArgumentError),
        ([_header(1, [("a", 1, "0" * 64)]), _chunk("a", b"x"), END], ChecksumMismatchError),  # BLAKE3
        ([_header(1, [("a", 1, "0" * 64)]), _chunk("a", b"x")], RemoteUnavailableError),  # cut short
        ([_header(1, [("a", 1, "0" * 64)]), _header(1, []), END], InvalidArgumentError),
    ],
)
def test_a_hostile_checkpoint_is_refused(
    backend: ModuleType, tmp_path: Path, pieces: list[pb.CheckpointPiece], error: type[Exception]
) -> None:
    p = _learning(tmp_path)
    try:
        with pytest.raises(error):
            receive_checkpoint(p, iter(pieces), "pegasus://hostile")
        assert p.state == LEARNING and p.last_committed == 0
        assert not os.path.exists(os.path.join(p.path, "rdb"))
        assert not os.path.exists(os.path.join(p.path, STAGING))
        assert sorted(os.listdir(tmp_path)) == ["p"]  # nothing written outside the partition
    finally:
        p.close()


def test_a_serving_partition_takes_no_checkpoint(backend: ModuleType, tmp_path: Path) -> None:
    p = Partition(str(tmp_path / "p"), "t", 1, PIDX, Config(), 2)
    try:
        p.write([(0, b"k", b"s", b"v", 0)])
        held = list(p.raw_view())
        with pytest.raises(PartitionUnavailableError) as err:
            receive_checkpoint(p, iter([_header(1, []), END]), "pegasus://x")
        assert err.value.state == SERVING
        assert p.last_committed == 1 and list(p.raw_view()) == held
    finally:
        p.close()


def test_a_checkpoint_whose_decree_lies_is_refused(nodes: tuple[Node, Node], tmp_path: Path) -> None:
    a, _b = nodes
    _fill(a.cluster.table("t"), _keys(a.cluster.table("t"), 5))
    pieces = list(a.stub.PullCheckpoint(pb.PartitionRef(table="t", pidx=PIDX)))
    h = pieces[0].header
    h.decree += 7
    p = _learning(tmp_path / "x")
    try:
        with pytest.raises(InvalidArgumentError):
            receive_checkpoint(p, iter(pieces), a.url)
        assert p.state == LEARNING
    finally:
        p.close()


def test_a_follower_partition_moves_with_its_source_decrees(backend: ModuleType, tmp_path: Path) -> None:
    """A duplication's follower table moved between nodes keeps the source decrees it applied:
    the source resumes after them (PartitionStatus), never re-sends from 0 into the new owner."""
    source = pf.Cluster.open(tmp_path / "s", name="s")
    follower = pf.Cluster.open(tmp_path / "a", name="a")
    try:
        st = source.create_table("t", partition_count=4)
        _fill(st, _keys(st, 30))
        d = source.add_duplication("t", follower)
        d.wait_for(pf.DupStatus.LOG, timeout=60)
        want = st.partitions[PIDX].last_committed
        deadline = time.monotonic() + 60
        while follower.table("t").partitions[PIDX].source_decree != want:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        source.close()
        follower.close()
    a, b = _node(tmp_path / "a", "a"), _node(tmp_path / "b", "b")
    try:
        assert a.p().source_decree == want > 0
        _learn(b, a.url)
        assert (b.p().source_decree, b.p().source_seen) == (a.p().source_decree, a.p().source_seen)
        b.cluster.close()
        b.cluster = pf.Cluster.open(tmp_path / "b", name="b")  # and after a reopen
        assert b.p().source_decree == want
    finally:
        a.close()
        b.close()


def test_only_the_owner_hands_a_partition_out(nodes: tuple[Node, Node]) -> None:
    """multinode/admission.py: a partition's data is pulled from, and fenced on, its owner only,
    while it serves or is fenced; a node replaces only a copy it does not own."""
    from pegasus_fast.errors import NotOwnerError
    from pegasus_fast.multinode.admission import check_hand_out, check_replace

    a, _b = nodes
    p = a.p()
    a.cluster.table("t").set(_keys(a.cluster.table("t"), 1)[0], b"s", b"v")
    assert p.state == SERVING
    check_hand_out(p, True, "n1")
    with pytest.raises(NotOwnerError) as e:
        check_hand_out(p, False, "n1")
    assert (e.value.table, e.value.pidx, e.value.node) == ("t", PIDX, "n1")
    p.fence()
    assert p.state == MOVING
    check_hand_out(p, True, "n1")  # fenced for this move: its last decrees are still pulled
    p.unfence()
    p.restart_learning()
    assert p.state == LEARNING
    with pytest.raises(PartitionUnavailableError) as u:
        check_hand_out(p, True, "n1")  # a copy being learned is never handed on
    assert u.value.state == LEARNING
    check_replace(p, False, "n1")
    with pytest.raises(InvalidArgumentError):
        check_replace(p, True, "n1")
