"""The server's logs (issue #20 §2): levels, the JSON format, a duplication's outage logged once.

Real ``pegasus-fast serve`` processes on 127.0.0.1 (tests/served.py), stopped at teardown.
Records are checked by their fields (level, component, the event's keys), never by their text.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pegasus_fast as pf
import pytest
from dupharness import wait_until
from observe import JSON_LOGS, METRICS_ARGS, key, metrics_url, records, scrape
from pegasus_fast import logs
from pegasus_fast.errors import InvalidArgumentError
from served import Fleet
from servedcheck import TABLE, WAIT, free_port, wait_caught_up

pytestmark = pytest.mark.usefixtures("default_backend")

TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[a-z_.]+: "
)


@contextlib.contextmanager
def _installed(level: str, fmt: str, stream: io.StringIO) -> Iterator[None]:
    """logs.install, undone after (the test process's logging is pytest's)."""
    root = logging.getLogger()
    before, hook = root.level, threading.excepthook
    handler = logs.install(level, fmt, stream)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(before)
        logging.getLogger(logs.ROOT).setLevel(logging.NOTSET)
        logging.captureWarnings(False)
        threading.excepthook = hook


def _ts(rec: dict) -> float:
    return datetime.strptime(rec["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def test_json_lines_carry_ts_level_component_and_fields(fleet: Fleet) -> None:
    s = fleet.add("a")
    began = time.time()
    s.start(*JSON_LOGS)
    with pf.connect(s.url, timeout=10.0) as rc:
        rc.create_table(TABLE, 2)
    assert s.stop() == 0
    recs = records(s)
    assert recs, s.stderr()
    for r in recs:
        assert {"ts", "level", "component", "msg"} <= r.keys()
        assert r["level"] in logs.LEVELS
        assert began - 1 <= _ts(r) <= time.time() + 1
        assert not r["component"].startswith("pegasus_fast")
    serving = [r for r in recs if r["component"] == "cli.serve" and r.get("url") == s.url]
    assert len(serving) == 1 and serving[0]["level"] == "info"
    assert isinstance(serving[0]["pid"], int) and serving[0]["pid"] == s.proc.pid


def test_log_level_filters_and_text_lines_have_time_and_level(fleet: Fleet) -> None:
    quiet, text = fleet.add("quiet"), fleet.add("text")
    quiet.start("--log-format", "json", "--log-level", "warning")
    text.start("--log-level", "info")
    assert quiet.stop() == 0 and text.stop() == 0
    # nothing below warning: the info records (serving, stopping) are not written
    assert all(r["level"] in ("warning", "error", "critical") for r in records(quiet))
    lines = [ln for ln in text.stderr(1 << 20).splitlines() if ln.strip()]
    assert len(lines) >= 2  # serving, stopping
    for ln in lines:
        assert TEXT_LINE.match(ln), ln


def test_bad_log_level_is_a_usage_error(fleet: Fleet) -> None:
    s = fleet.add("bad")
    s.launch("--log-level", "loud")
    assert s.proc is not None and s.proc.wait(30) == 2


def test_install_levels_and_json_in_process() -> None:
    stream = io.StringIO()
    with _installed("warning", "json", stream):
        log = logs.get("pegasus_fast.duplication.driver")
        log.info("hidden")
        log.warning("shown", extra=logs.event(dupid=7, table="t"))
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    recs = [json.loads(ln) for ln in stream.getvalue().splitlines()]
    assert [r["level"] for r in recs] == ["warning", "error"]
    assert recs[0]["component"] == "duplication.driver"
    assert recs[0]["dupid"] == 7 and recs[0]["table"] == "t"
    assert "ValueError" in recs[1]["exc"]
    with pytest.raises(InvalidArgumentError):
        logs.install("loud")
    with pytest.raises(InvalidArgumentError):
        logs.install("info", "xml")


def test_libraries_install_no_handler() -> None:
    import pegasus_fast.server.app  # noqa: F401 - imported for its side effects, of which there are none

    for name in ("", logs.ROOT):
        assert not [h for h in logging.getLogger(name).handlers if getattr(h, "_pegasus_fast", False)]


def test_other_libraries_records_take_the_same_format() -> None:
    stream = io.StringIO()
    with _installed("info", "json", stream):
        logging.getLogger("kazoo.client").info("chatter")  # below warning: not written
        logging.getLogger("kazoo.client").warning("Connection dropped")
        died = threading.Thread(target=lambda: 1 / 0, name="doomed")
        died.start()
        died.join()
    recs = [json.loads(ln) for ln in stream.getvalue().splitlines()]
    assert [(r["component"], r["level"]) for r in recs] == [
        ("kazoo.client", "warning"),
        ("pegasus_fast", "error"),
    ]
    assert recs[1]["thread"] == "doomed" and "ZeroDivisionError" in recs[1]["exc"]


def test_duplication_outage_is_logged_once_with_its_count(fleet: Fleet) -> None:
    src, dst = fleet.add("source"), fleet.add("target")
    dst.port = free_port()
    src.start(*JSON_LOGS, *METRICS_ARGS)
    dst.start()
    url = metrics_url(src)
    with pf.connect(src.url, timeout=10.0) as rc:
        t = rc.create_table(TABLE, 2)
        t.set(b"a", b"s", b"v")
        d = rc.add_duplication(TABLE, dst.url)
        wait_caught_up(d, "before the outage")
        dst.kill9()
        for i in range(10):
            t.set(b"k%d" % i, b"s", b"v")
        lag = [key("dup_time_lag_ms", dupid=d.dupid, table=TABLE, pidx=i) for i in range(2)]

        # down for a while: the driver tried again and again (backoff 0.05 s doubling to 1 s)
        def long_down() -> bool:
            return max(scrape(url).get(k, 0.0) for k in lag) > 2500

        wait_until(long_down, WAIT, lambda: f"lag to grow: {[scrape(url).get(k) for k in lag]}")
        dst.start()
        wait_caught_up(d, "after the outage")

        def outage_records() -> list[dict]:
            return [
                r
                for r in records(src)
                if r.get("outage") and r.get("cause") == "remote" and r.get("dupid") == d.dupid
            ]

        wait_until(lambda: len(outage_records()) == 2, WAIT, lambda: str(outage_records()))
    begin, end = outage_records()
    assert (begin["outage"], begin["level"]) == ("begin", "warning")
    assert (end["outage"], end["level"]) == ("end", "info")
    assert begin["remote"] == end["remote"] == dst.url
    assert begin["table"] == TABLE and begin["component"] == "duplication.driver"
    # one line at each end of it, however many attempts failed in between (several, in 2.5 s)
    assert end["failed_attempts"] >= 3
    assert end["seconds"] >= 2.5
    assert _ts(begin) <= _ts(end)
    # every state change on the way to DS_LOG was logged, in order
    changes = [(r["old"], r["new"]) for r in records(src) if r.get("dupid") == d.dupid and "new" in r]
    assert changes[:3] == [("INIT", "PREPARE"), ("PREPARE", "APP"), ("APP", "LOG")]
    assert src.stop() == 0


def test_refusals_are_counted_and_rate_limited() -> None:
    stream = io.StringIO()
    with _installed("info", "json", stream):
        r = logs.Refusals(logs.get("pegasus_fast.server.app"), "calls", interval=0.3)
        for _ in range(50):
            r.refused("wrong token", "127.0.0.1:5")
        first = [json.loads(ln) for ln in stream.getvalue().splitlines()]
        assert [x["refused"] for x in first] == [1]  # the first at once, the rest held back
        began = time.monotonic()
        while time.monotonic() - began < 0.3:
            time.sleep(0.05)
        r.refused("wrong token")
    recs = [json.loads(ln) for ln in stream.getvalue().splitlines()]
    assert [x["refused"] for x in recs] == [1, 50]  # the 49 held back and this one
    assert recs[-1]["refused_total"] == r.total == 51


def test_refused_calls_of_a_served_process_are_logged_with_counts(fleet: Fleet, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("right-token\n")
    token.chmod(0o600)
    s = fleet.add("guarded")
    s.start(*JSON_LOGS, *METRICS_ARGS, "--token-file", str(token))
    with pf.connect(s.url, "wrong-token", timeout=10.0) as bad:
        for _ in range(20):
            with pytest.raises(pf.errors.AuthenticationError):
                bad.list_tables()
    m = scrape(metrics_url(s))
    assert m[key("requests_total", service="grpc", verb="Client/ListTables", code="UNAUTHENTICATED")] == 20
    assert s.stop() == 0
    refused = [r for r in records(s) if "refused" in r]
    # 20 refusals in well under the 10 s interval: a line for the first, one at the stop for the rest
    assert [r["refused"] for r in refused] == [1, 19]
    assert refused[-1]["refused_total"] == 20
    assert all(r["level"] == "warning" and r["component"] == "server.app" for r in refused)
