"""Process metrics of a served process (issue #20 §2): memory, CPU, open fds, start time, read
from /proc and checked against what /proc says of the same pid."""

from __future__ import annotations

import os
import time

import pytest
from observe import METRICS_ARGS, metrics_url, scrape
from served import Fleet

pytestmark = [
    pytest.mark.usefixtures("default_backend"),
    pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="process metrics come from /proc"),
]


def test_process_metrics_are_present_and_sane(fleet: Fleet) -> None:
    s = fleet.add("a")
    launched = time.time()
    s.start(*METRICS_ARGS)
    m = scrape(metrics_url(s))
    assert s.proc is not None
    pid = s.proc.pid
    now = time.time()
    rss = m["process_resident_memory_bytes"]
    with open(f"/proc/{pid}/status") as f:
        vm_rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    assert 8 << 20 < rss < 4 << 30
    assert abs(rss - vm_rss) < 64 << 20  # the same process, read a moment apart
    assert launched - 2 <= m["process_start_time_seconds"] <= now + 1
    cpu = m["process_cpu_seconds_total"]
    assert 0 < cpu <= (now - launched) * (os.cpu_count() or 1) + 1
    fds = m["process_open_fds"]
    assert 0 < fds <= m["process_max_fds"]
    assert abs(fds - len(os.listdir(f"/proc/{pid}/fd"))) <= 16
    # CPU only grows
    later = scrape(metrics_url(s))
    assert later["process_cpu_seconds_total"] >= cpu
    assert s.stop() == 0
