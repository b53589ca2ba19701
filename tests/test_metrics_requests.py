"""Requests by verb and code, and their latency histograms (issue #20 §2), from a served process's
/metrics: gRPC calls, calls refused for their token, and the Pegasus port's requests (counted per
batch)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pegasus_fast as pf
import pytest
from observe import METRICS_ARGS, key, metrics_url, scrape
from pegasus_fast.errors import AuthenticationError, TableNotFoundError
from pegasus_fast.request_metrics import BUCKETS
from served import Fleet

pytestmark = pytest.mark.usefixtures("default_backend")

TOKEN = "metrics-test-token"


def _hist(m: dict[str, float], name: str, **labels: str) -> tuple[list[float], float, float]:
    """(cumulative bucket counts in bound order, +Inf last; count; sum)."""
    bounds = [repr(b) for b in BUCKETS] + ["+Inf"]
    buckets = [m.get(key(f"{name}_bucket", le=b, **labels), 0.0) for b in bounds]
    return buckets, m.get(key(f"{name}_count", **labels), 0.0), m.get(key(f"{name}_sum", **labels), 0.0)


def test_grpc_calls_are_counted_by_verb_and_code_and_timed(fleet: Fleet, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    os.chmod(token_file, 0o600)
    s = fleet.add("a")
    s.start(*METRICS_ARGS, "--token-file", str(token_file))
    url = metrics_url(s)
    with pf.connect(s.url, TOKEN, timeout=10.0) as rc:
        t = rc.create_table("t", 2)
        before = scrape(url)
        for i in range(25):
            t.set(b"h%d" % i, b"s", b"v")
        for i in range(10):
            assert t.get(b"h%d" % i, b"s") == b"v"
        with pytest.raises(TableNotFoundError):
            rc.table("nope").get(b"h", b"s")
        after = scrape(url)
    set_ok = key("requests_total", service="grpc", verb="Client/Set", code="OK")
    get_ok = key("requests_total", service="grpc", verb="Client/Get", code="OK")
    assert after[set_ok] - before.get(set_ok, 0) == 25
    assert after[get_ok] - before.get(get_ok, 0) == 10
    assert after[key("requests_total", service="grpc", verb="Client/GetTable", code="NOT_FOUND")] >= 1
    buckets, count, total = _hist(after, "request_duration_seconds", service="grpc", verb="Client/Set")
    assert buckets == sorted(buckets)  # cumulative
    assert buckets[-1] == count == after[set_ok]
    assert 0 < total < count * 10  # seconds, each far below 10
    # refused for a wrong token: counted under its code, not run
    with pf.connect(s.url, "wrong-token", timeout=10.0) as bad, pytest.raises(AuthenticationError):
        bad.list_tables()
    refused = scrape(url)
    assert (
        refused.get(
            key("requests_total", service="grpc", verb="Client/ListTables", code="UNAUTHENTICATED"), 0
        )
        >= 1
    )
    assert s.stop() == 0


def test_pegasus_port_requests_are_counted_per_batch(fleet: Fleet) -> None:
    s = fleet.add("p")
    s.start(*METRICS_ARGS, "--pegasus-listen", "127.0.0.1:0")
    url = metrics_url(s)
    with pf.connect(s.url, timeout=10.0) as rc:
        t = rc.create_table("t", 4)
        before = scrape(url)
        for i in range(30):
            t.set(b"h%d" % i, b"s", b"v")
        for i in range(12):
            t.get(b"h%d" % i, b"s")
        # a batch_get goes there too, one request per partition its keys fall in
        keys = [(b"h%d" % i, b"s") for i in range(12)] + [(b"none", b"s")]
        assert t.batch_get(keys) == [b"v"] * 12 + [None]
        partitions = {t.partition_index(hk, sk) for hk, sk in keys}
        after = scrape(url)
    put = key("requests_total", service="pegasus", verb="RPC_RRDB_RRDB_PUT", code="ERR_OK")
    get = key("requests_total", service="pegasus", verb="RPC_RRDB_RRDB_GET", code="ERR_OK")
    batch_get = key("requests_total", service="pegasus", verb="RPC_RRDB_RRDB_BATCH_GET", code="ERR_OK")
    assert after[put] - before.get(put, 0) == 30
    assert after[get] - before.get(get, 0) == 12
    assert after[batch_get] - before.get(batch_get, 0) == len(partitions) > 1
    assert key("requests_total", service="grpc", verb="Client/BatchGet", code="OK") not in after
    # every request the port read was counted once, whatever its batch
    served = sum(
        v for k, v in after.items() if k.startswith("requests_total{code=") and 'service="pegasus"' in k
    )
    assert served == after["pegasus_front_requests_total"]
    buckets, count, total = _hist(
        after, "request_duration_seconds", service="pegasus", verb="RPC_RRDB_RRDB_PUT"
    )
    assert buckets == sorted(buckets) and buckets[-1] == count == after[put]
    assert total > 0
    assert s.stop() == 0


def test_calls_answered_on_the_loop_are_counted_too(fleet: Fleet) -> None:
    """The handlers that run on the front's asyncio loop (health's Check, a coroutine; the
    replication stream, an async generator) are counted and timed like the others."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    s = fleet.add("h")
    s.start(*METRICS_ARGS)
    url = metrics_url(s)
    check_ok = key("requests_total", service="grpc", verb="Health/Check", code="OK")
    unknown = key("requests_total", service="grpc", verb="Health/Check", code="NOT_FOUND")
    before = scrape(url)
    with grpc.insecure_channel(s.url.removeprefix("pegasus://")) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for _ in range(7):
            assert stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status == 1
        with pytest.raises(grpc.RpcError) as e:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    # a refused call's status can reach the client a moment before its handler's count ends
    deadline = time.monotonic() + 5
    while True:
        after = scrape(url)
        if after.get(unknown, 0) - before.get(unknown, 0) >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert after[check_ok] - before.get(check_ok, 0) == 7
    assert after[unknown] - before.get(unknown, 0) == 1
    _buckets, count, total = _hist(after, "request_duration_seconds", service="grpc", verb="Health/Check")
    assert count == after[check_ok] + after[unknown] and total > 0
    assert s.stop() == 0
