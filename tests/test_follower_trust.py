"""Issue #20, Medium 2 and 3: a holder of a follower's token cannot make a source believe it
confirmed what it never shipped, nor wipe an ordinary table through the Follower service.

Every test serves a real cluster (``pf.serve`` on 127.0.0.1) and talks to it over gRPC as
a duplication's source would (net/follower.py), or as an attacker holding the token."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pegasus_fast as pf
import pytest
from dupharness import wait_until
from pegasus_fast.duplication.apply import MAX_DECREE_STEP
from pegasus_fast.duplication.ports import SourceId
from pegasus_fast.errors import DuplicationError, FollowerDecreeError, InvalidArgumentError
from pegasus_fast.net.follower import RemoteConnector

pytestmark = pytest.mark.usefixtures("default_backend")

TOKEN = "follower-secret"
WAIT = 30.0


def _source_of(src: pf.Cluster, dup: pf.Duplication) -> SourceId:
    return SourceId(src.name, src.info().uid, dup.table_name, dup.dupid)


def _served(open_cluster_once: Callable[..., pf.Cluster], path: Path, name: str, cid: int) -> pf.Cluster:
    return open_cluster_once(path, name=name, config=pf.Config(cluster_id=cid))


def test_a_follower_refuses_an_advance_or_skip_out_of_reach(
    open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    src = _served(open_cluster_once, tmp_path / "src", "src", 1)
    dst = _served(open_cluster_once, tmp_path / "dst", "dst", 2)
    t = src.create_table("t", 1)
    for i in range(20):
        t.set(b"h%d" % i, b"s", b"v")
    with pf.serve(dst, token=TOKEN) as server:
        dup = src.add_duplication("t", server.url, remote_token=TOKEN)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        wait_until(lambda: dup.progress()[0].pending_mutations == 0, WAIT, "caught up")
        attacker = RemoteConnector()
        try:
            # even naming the very duplication the table follows
            f = attacker.connect(server.url, TOKEN, _source_of(src, dup))
            with pytest.raises(InvalidArgumentError):
                f.advance("t", 0, 2**62)
            with pytest.raises(InvalidArgumentError):
                f.apply("t", 0, b"", 2**62)
            learned, held = f.partition_statuses("t", 1)[0]
            assert learned and held == 20
        finally:
            attacker.close()


def test_a_source_never_confirms_past_its_own_last_decree(
    open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    src = _served(open_cluster_once, tmp_path / "src", "src", 1)
    dst = _served(open_cluster_once, tmp_path / "dst", "dst", 2)
    t = src.create_table("t", 1)
    for i in range(20):
        t.set(b"h%d" % i, b"s", b"v")
    with pf.serve(dst, token=TOKEN) as server:
        dup = src.add_duplication("t", server.url, remote_token=TOKEN)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        wait_until(lambda: dup.progress()[0].pending_mutations == 0, WAIT, "caught up")
        attacker = RemoteConnector()
        try:
            # within the follower's sanity bound, still past anything the source wrote
            attacker.connect(server.url, TOKEN, _source_of(src, dup)).advance("t", 0, MAX_DECREE_STEP)
        finally:
            attacker.close()
        for i in range(20, 60):
            t.set(b"h%d" % i, b"s", b"v")
        wait_until(lambda: dup.error is not None, WAIT, "the duplication failed")
        assert isinstance(dup.error, FollowerDecreeError)
        assert dup.error.claimed >= MAX_DECREE_STEP and dup.error.last <= 60
        assert all(p.confirmed_decree <= 60 for p in dup.progress())


def test_the_follower_service_never_writes_or_wipes_an_ordinary_table(
    open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    dst = _served(open_cluster_once, tmp_path / "dst", "dst", 2)
    plain = dst.create_table("plain", 1)
    for i in range(50):
        plain.set(b"h%d" % i, b"s", b"v")
    with pf.serve(dst, token=TOKEN) as server:
        attacker = RemoteConnector()
        made_up = SourceId("made-up", "uid-x", "t", 7)
        try:
            f = attacker.connect(server.url, TOKEN, made_up)
            # before any EnsureTable: an ordinary table takes none of a duplication's calls
            with pytest.raises(DuplicationError):
                f.restart_learning("plain", [0])
            with pytest.raises(DuplicationError):
                f.apply("plain", 0, b"", 5)
            # adopting it as it is (master-master without checkpoint) stays possible...
            f.ensure_table("plain", 1, made_up, False)
            # ...but it is never re-learned, so never wiped
            with pytest.raises(DuplicationError):
                f.restart_learning("plain", [0])
            f.learn_empty("plain", {0: 0})
            f.mark_learned("plain", [0])
        finally:
            attacker.close()
        assert plain.count() == 50


def test_a_made_up_source_cannot_touch_a_table_another_source_feeds(
    open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    """Every Follower call names its duplication: a replication-token holder naming another
    source (or none, or the right one with the wrong uid or dupid) is refused on the table a
    real duplication feeds, and nothing there changes."""
    src = _served(open_cluster_once, tmp_path / "src", "src", 1)
    dst = _served(open_cluster_once, tmp_path / "dst", "dst", 2)
    t = src.create_table("t", 1)
    for i in range(20):
        t.set(b"h%d" % i, b"s", b"v")
    with pf.serve(dst, token="all-secret", replication_token=TOKEN) as server:
        dup = src.add_duplication("t", server.url, remote_token=TOKEN)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        wait_until(lambda: dup.progress()[0].pending_mutations == 0, WAIT, "caught up")
        real = _source_of(src, dup)
        forged = [
            SourceId("evil", "uid-evil", "t", 1),
            SourceId(real.cluster, "", real.table, real.dupid),  # the uid left out
            SourceId(real.cluster, "uid-other", real.table, real.dupid),
            SourceId(real.cluster, real.cluster_uid, real.table, real.dupid + 1),
            SourceId(real.cluster, real.cluster_uid, "other", real.dupid),
        ]
        attacker = RemoteConnector()
        try:
            for source in forged:
                f = attacker.connect(server.url, TOKEN, source)
                attacks: list[Callable[[], object]] = [
                    lambda f=f: f.partition_statuses("t", 1),
                    lambda f=f: f.restart_learning("t", [0]),
                    lambda f=f: f.learn_empty("t", {0: 0}),
                    lambda f=f: f.learn_snapshot("t", 0, 5, b""),
                    lambda f=f: f.checkpoint_offsets("t", 0, 5, []),
                    lambda f=f: f.learn_checkpoint("t", 0, 5, [], iter(())),
                    lambda f=f: f.mark_learned("t", [0]),
                    lambda f=f: f.apply("t", 0, b"", 21),
                    lambda f=f: list(f.apply_stream("t", 0, iter([(b"", 21)]))),
                    lambda f=f: f.advance("t", 0, 21),
                    # a view reads the records (VerifyRecords): only for the table's own source
                    lambda f=f: f.verify_view("t", 0, -1, 5.0),
                ]
                for attack in attacks:
                    with pytest.raises(DuplicationError):
                        attack()
            # a call that names no source at all
            unbound = attacker.connect(server.url, TOKEN)
            with pytest.raises(InvalidArgumentError):
                unbound.restart_learning("t", [0])
            with pytest.raises(InvalidArgumentError):
                unbound.advance("t", 0, 21)
            with pytest.raises(InvalidArgumentError):
                unbound.verify_view("t", 0, -1, 5.0)
            # the real duplication's own calls still go through
            assert attacker.connect(server.url, TOKEN, real).partition_statuses("t", 1) == [(True, 20)]
        finally:
            attacker.close()
        assert dst.table("t").count() == 20
        for i in range(20, 30):
            t.set(b"h%d" % i, b"s", b"v")
        wait_until(lambda: dup.progress()[0].pending_mutations == 0, WAIT, "still duplicating")
        assert dup.error is None
        assert dst.table("t").count() == 30


def test_request_streams_that_stall_after_their_first_request_are_cut(
    open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    """A replication-token holder naming the real source opens more apply streams than there
    are stream workers, sends each its first request and then nothing: each is cut once idle
    (twice the body timeout), so a checkpoint copy (a request stream too) still gets through."""
    import threading

    import grpc
    from pegasus_fast.net import pegasus_fast_pb2 as pb
    from pegasus_fast.server.front import STREAM_WORKERS

    src = _served(open_cluster_once, tmp_path / "src", "src", 1)
    dst = _served(open_cluster_once, tmp_path / "dst", "dst", 2)
    t = src.create_table("t", 1)
    t.set(b"h", b"s", b"v")
    src.create_table("u", 1).set(b"h", b"s", b"v")
    with pf.serve(dst, token=TOKEN, body_timeout=1.0) as server:
        dup = src.add_duplication("t", server.url, remote_token=TOKEN)
        dup.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        real = _source_of(src, dup)
        first = pb.ApplyRequest(
            table="t",
            pidx=0,
            source=pb.SourceId(
                cluster=real.cluster, cluster_uid=real.cluster_uid, table=real.table, dupid=real.dupid
            ),
        )
        release = threading.Event()

        def stalled() -> Iterator[pb.ApplyRequest]:
            yield first
            release.wait()

        channel = grpc.insecure_channel(
            server.address.target, options=[("grpc.use_local_subchannel_pool", 1)]
        )
        try:
            stream = channel.stream_stream(
                "/pegasus_fast.v1.Follower/ApplyStream",
                request_serializer=pb.ApplyRequest.SerializeToString,
                response_deserializer=pb.ApplyReply.FromString,
            )
            calls = [
                stream(stalled(), metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=60)
                for _ in range(2 * STREAM_WORKERS)
            ]
            # a checkpoint copy waits for a stream worker: it gets one as the stalls are cut
            copy = src.add_duplication("u", server.url, remote_token=TOKEN)
            copy.wait_for(pf.DupStatus.LOG, timeout=WAIT)
            for c in calls:
                with pytest.raises(grpc.RpcError) as cut:
                    list(c)
                assert cut.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            release.set()
            channel.close()
        assert dst.table("u").get(b"h", b"s") == b"v"
