"""A faulty network between a duplication's source and its served follower (issue #9 §6).

The source (embedded here, to keep each run short) duplicates through
tests/netproxy.py to a served follower process; the proxy cuts, stalls and
slows connections at seeded points during APP (a checkpoint copy, a
logical snapshot or nothing, per partition) and LOG (a writer going on).
Once it heals: the follower's scan equals the source's, every acknowledged
write is there, and the follower's WAL recorded each source decree once
(0 lost, 0 duplicated). Also: a connection cut while the follower still
takes what it was sent, and a checkpoint stream that ends short.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pegasus_fast as pf
import pytest
from conftest import DEFAULT_BACKEND, load_backend
from dupharness import SOURCE_DECREE_OP, wait_until
from netproxy import FaultyProxy
from pegasus_fast import _backend
from pegasus_fast.duplication import checkpoints as ckpt_policy
from pegasus_fast.duplication.ports import SourceId
from pegasus_fast.net import pegasus_fast_pb2 as pb
from pegasus_fast.net import pegasus_fast_pb2_grpc as rpc
from pegasus_fast.net.follower import RemoteConnector
from pegasus_fast.net.wire import open_channel, parse_url
from served import Fleet, Served
from servedcheck import WAIT, Model, Writer, scan_of, wait_caught_up, write_table

pytestmark = [
    pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning"),
    # servers and processes: the backend does not matter, so these run once (conftest.py)
    pytest.mark.usefixtures("default_backend"),
]

PARTITIONS = 2
VALUE_BYTES = 64 << 10


#: CI runs seeds 0..19; PEGASUS_FAST_NET_SEEDS=FIRST:END runs others (a longer soak)
SEEDS = range(*map(int, os.environ.get("PEGASUS_FAST_NET_SEEDS", "0:20").split(":")))
#: the embedded source's knob: a partition past it learns from a RocksDB checkpoint
NET_SMALL_MAX = 256 << 10
#: what a partition may hold: nothing (no checkpoint), a logical snapshot, a RocksDB checkpoint of a
#: few 1 MiB chunks; every run has one of the last kind
NET_SIZES = (0, 96 << 10, 1 << 20)
NET_VALUE_BYTES = 16 << 10
QUIET = {"gc_interval_ms": 3_600_000, "checkpoint_interval_seconds": 3600.0}


@pytest.fixture(scope="module")
def net_follower(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One served follower for every seed (each seed duplicates its own table); these tests run
    once, on the default backend (conftest.py)."""
    load_backend(DEFAULT_BACKEND)
    f = Fleet(tmp_path_factory.mktemp("net"), DEFAULT_BACKEND)
    try:
        served = f.add("target")
        # no periodic checkpoint or GC: the WAL read by applied_source_decrees stays whole
        served.start(*(a for k, v in QUIET.items() for a in ("--config", f"{k}={v}")))
        yield served
    finally:
        f.close()


def applied_source_decrees(follower: Served, table: str) -> list[list[int]]:
    """Per partition, the source decrees the follower's WAL recorded, in log order (the follower
    is quiet: every write it acknowledged is in its files)."""
    with pf.connect(follower.url, timeout=30.0) as rc:
        info = rc.table_info(table)
    out = []
    for pidx in range(info.partition_count):
        wal = follower.dir / "tables" / f"{info.app_id}.{pidx}" / "wal"
        mutations, _infos = _backend.impl.scan_log_dir(str(wal), 0)
        out.append([op[1] for m in mutations for op in m[3] if op[0] == SOURCE_DECREE_OP])
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_faulty_network_loses_nothing_and_applies_once(
    net_follower: Served, tmp_path: Path, seed: int
) -> None:
    table = f"net{seed}"
    config = pf.Config(small_partition_max_bytes=NET_SMALL_MAX, **QUIET)
    rng = random.Random(seed)
    sizes = [rng.choice(NET_SIZES) for _ in range(PARTITIONS)]
    sizes[seed % PARTITIONS] = NET_SIZES[-1]
    model = Model()
    with pf.Cluster.open(tmp_path / "source", name="source", config=config) as src:
        model.values.update(write_table(src, table, sizes, NET_VALUE_BYTES, seed))
        t = src.table(table)
        with FaultyProxy(net_follower.port, seed) as proxy:
            d = src.add_duplication(table, proxy.url)
            writer = Writer(lambda: (t, lambda: None), model, wid=seed, seed=seed).start()
            try:
                d.wait_for(pf.DupStatus.LOG, WAIT)  # APP under faults
                writer.wait_acked(150)  # LOG under faults, writes going on
            finally:
                writer.stop()
            proxy.heal()
            wait_caught_up(d, f"seed {seed}, faults {proxy.stats.faults}")
            assert not writer.errors, writer.errors  # the source is embedded: every write is acknowledged
            want = {(hk, sk): v for hk, sk, v in t.scan()}
            got = scan_of(net_follower.url, table)
            assert got.keys() == want.keys(), (
                f"lost: {sorted(want.keys() - got.keys())[:5]}, extra: {sorted(got.keys() - want.keys())[:5]}"
            )
            assert got == want
            model.check(want)
            committed = [p.last_committed for p in t.partitions]
            for pidx, seq in enumerate(applied_source_decrees(net_follower, table)):
                assert all(a < b for a, b in zip(seq, seq[1:])), (
                    f"partition {pidx} applied a source decree twice: {seq}; faults {proxy.stats.faults}"
                )
                assert seq and seq[-1] == committed[pidx]
            d.remove()


# -- a connection cut while the follower is still taking what it was sent ------------------------------


@pytest.mark.parametrize("kind", ["snapshot", "checkpoint"])
def test_cut_while_follower_learns_learns_once(net_follower: Served, tmp_path: Path, kind: str) -> None:
    """The source's call fails while the follower still decodes and writes what it received; the
    source calls again at once. The follower must not learn the same checkpoint twice side by side
    (a second snapshot written after shipping started would take newer values back)."""
    table = f"cut{kind}"
    small = 8 << 20 if kind == "snapshot" else 64 << 10
    config = pf.Config(small_partition_max_bytes=small, **QUIET)
    with pf.Cluster.open(tmp_path / "source", name="source", config=config) as src:
        records = write_table(src, table, [2 << 20] * PARTITIONS, NET_VALUE_BYTES, seed=3)
        t = src.table(table)
        size = sum(len(v) for v in records.values())
        with FaultyProxy(net_follower.port) as proxy:
            d = src.add_duplication(table, proxy.url)
            seen = [-1]

            def all_sent() -> bool:
                # every byte of the learning calls went through, and nothing more is coming
                now, seen[0] = proxy.stats.up_bytes, proxy.stats.up_bytes
                return now >= size and now == seen[0]

            wait_until(
                lambda: all_sent() and (time.sleep(0.02) or all_sent()), WAIT, "the learning calls sent"
            )
            # usually still in APP (the follower decoding and writing what arrived); the fast
            # backend can be done already, and a cut in LOG must hold the same invariants
            assert d.status in (pf.DupStatus.APP, pf.DupStatus.LOG)
            proxy.cut_all()
            d.wait_for(pf.DupStatus.LOG, WAIT)
            for i in range(20):
                t.set(b"after%d" % i, b"s", b"v%d" % i)
            wait_caught_up(d, f"after a cut while learning a {kind}")
            assert scan_of(net_follower.url, table) == {(hk, sk): v for hk, sk, v in t.scan()}
            committed = [p.last_committed for p in t.partitions]
            for pidx, seq in enumerate(applied_source_decrees(net_follower, table)):
                assert all(a < b for a, b in zip(seq, seq[1:])), f"partition {pidx} learned twice: {seq}"
                assert seq[-1] == committed[pidx]


# -- a checkpoint transfer cut short ------------------------------------------------------------------


def test_checkpoint_stream_cut_short_keeps_what_arrived(net_follower: Served, tmp_path: Path) -> None:
    """A source that dies mid-copy can look, to the follower's gRPC, like a stream that simply
    ended. The follower must keep the chunks that arrived (the copy resumes after them) rather
    than take the stream as complete, fail its verification and delete the partial file."""
    with pf.Cluster.open(tmp_path / "source", name="source") as src:
        write_table(src, "cutshort", [3 << 20], VALUE_BYTES, seed=5)
        info = src.table("cutshort").partitions[0].checkpoint()
    manifest = ckpt_policy.manifest_of(info.path)
    name, size, _ = max(manifest, key=lambda e: e[1])
    assert size > 2 * ckpt_policy.CHUNK_BYTES
    connector = RemoteConnector()
    try:
        source = SourceId("source", "uid-cutshort", "cutshort", 1)
        follower = connector.connect(net_follower.url, None, source)
        follower.ensure_table("cutshort", 1, source, True)
        assert follower.checkpoint_offsets("cutshort", 0, info.decree, manifest) == {}
        first = list(itertools.islice(ckpt_policy.read_chunks(info.path, manifest, {}), 2))
        header = pb.CheckpointRequest(
            table="cutshort",
            pidx=0,
            decree=info.decree,
            manifest=[pb.ManifestEntry(name=n, size=s, blake3=d) for n, s, d in manifest],
            source=pb.SourceId(cluster="source", cluster_uid="uid-cutshort", table="cutshort", dupid=1),
        )
        pieces = [pb.CheckpointPiece(header=header)] + [
            pb.CheckpointPiece(chunk=pb.Chunk(name=c.name, offset=c.offset, data=c.data, crc32c=c.crc32c))
            for c in first
        ]
        with open_channel(parse_url(net_follower.url)) as channel:
            # the stream ends after two chunks, as one whose sender died can
            with pytest.raises(grpc.RpcError):
                rpc.FollowerStub(channel).LearnCheckpoint(iter(pieces), timeout=WAIT)
        held = sum(len(c.data) for c in first if c.name == name)
        assert follower.checkpoint_offsets("cutshort", 0, info.decree, manifest).get(name) == held
        # the copy resumes after what arrived, and completes
        offsets = follower.checkpoint_offsets("cutshort", 0, info.decree, manifest)
        rest = ckpt_policy.read_chunks(info.path, manifest, offsets)
        follower.learn_checkpoint("cutshort", 0, info.decree, manifest, rest)
        follower.mark_learned("cutshort", [0])
    finally:
        connector.close()
    with pf.Cluster.open(tmp_path / "source", name="source") as src:
        assert scan_of(net_follower.url, "cutshort") == {
            (hk, sk): v for hk, sk, v in src.table("cutshort").scan()
        }
