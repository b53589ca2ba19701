"""Issue #20 (Medium 1, message size): ``max_message_bytes`` (Config, ``serve(...)``,
``serve --max-message-bytes``) bounds every gRPC message a served cluster takes or sends; a larger
one is refused as it arrives, never buffered whole, and the client gets ResourceExhaustedError."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pegasus_fast as pf
import pytest
from attacker import PeakRss, huge_calls
from dupharness import wait_until
from pegasus_fast.errors import DuplicationError, InvalidArgumentError, ResourceExhaustedError
from pegasus_fast.net.follower import RemoteConnector
from test_serve_stall import TOKEN, _health, _served

pytestmark = pytest.mark.usefixtures("default_backend")

WAIT = 30.0


def test_the_default_refuses_a_250_mib_message_unbuffered(default_backend_name: str, tmp_path: Path) -> None:
    """Four 250 MiB messages WITH the token: refused as they arrive, the server grows < 64 MiB."""
    with _served(default_backend_name, tmp_path) as (proc, target):
        check = _health(target)
        check()
        peak = PeakRss(proc.pid)
        codes = huge_calls(target, 4, 250 << 20, token=TOKEN)
        growth = peak.stop()
        assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 4
        assert growth < 64 << 20, f"the server grew by {growth >> 20} MiB"
        check()


def test_the_flag_bounds_messages_and_the_client_gets_a_typed_error(
    default_backend_name: str, tmp_path: Path
) -> None:
    limit = 8 << 20
    with _served(default_backend_name, tmp_path, "--max-message-bytes", str(limit)) as (_proc, target):
        url = f"pegasus://{target}"
        with pf.connect(url, token=TOKEN, timeout=30) as rc:
            t = rc.create_table("t", 1)
            t.set(b"h", b"small", bytes(limit // 2))
            with pytest.raises(ResourceExhaustedError) as e:
                t.set(b"h", b"big", bytes(2 * limit))
            assert e.value.resource == "max_message_bytes"
            assert e.value.limit == limit
            assert e.value.requested > limit
            assert t.get(b"h", b"big") is None
            assert t.get(b"h", b"small") == bytes(limit // 2)
        # a duplication source learns the follower's limit and ships within it
        conn = RemoteConnector()
        try:
            follower = conn.connect(url, TOKEN)
            follower.identity()
            assert follower.max_batch_bytes() < limit
        finally:
            conn.close()


def test_serve_takes_the_knob_and_checks_it(
    open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    c = open_cluster_once(tmp_path / "c", name="c", config=pf.Config(max_message_bytes=8 << 20))
    t = c.create_table("t", 1)
    with pf.serve(c) as s, pf.connect(s.url) as rc:
        assert s.max_message_bytes == 8 << 20
        with pytest.raises(ResourceExhaustedError):
            rc.table("t").set(b"h", b"s", bytes(16 << 20))
    with pf.serve(c, max_message_bytes=32 << 20) as s, pf.connect(s.url) as rc:
        rc.table("t").set(b"h", b"s", bytes(16 << 20))
    assert t.get(b"h", b"s") == bytes(16 << 20)
    for bad in (10, 2 << 30, "big"):
        with pytest.raises((InvalidArgumentError, pf.InvalidTypeError)):
            pf.serve(c, max_message_bytes=bad)  # type: ignore[arg-type]


def test_a_write_past_the_followers_limit_stops_the_duplication_typed(
    open_cluster_once: Callable[..., pf.Cluster], tmp_path: Path
) -> None:
    """A follower tells its source its limit (Identity): a WAL block larger than it could never
    be shipped, so the duplication stops with DuplicationError instead of retrying forever."""
    src = open_cluster_once(tmp_path / "src", name="src", config=pf.Config(cluster_id=1))
    dst = open_cluster_once(tmp_path / "dst", name="dst", config=pf.Config(cluster_id=2))
    t = src.create_table("t", 1)
    t.set(b"small", b"s", b"v")
    with pf.serve(dst, max_message_bytes=8 << 20) as s:
        d = src.add_duplication("t", s.url)
        d.wait_for(pf.DupStatus.LOG, timeout=WAIT)
        t.set(b"big", b"s", bytes(12 << 20))
        wait_until(lambda: d.error is not None, WAIT, "the duplication stopped")
        assert isinstance(d.error, DuplicationError)
        assert dst.table("t").get(b"small", b"s") == b"v"
        assert dst.table("t").get(b"big", b"s") is None
