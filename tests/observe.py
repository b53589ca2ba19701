"""What a served process says about itself: its /metrics scraped and parsed, its JSON log records.

Shared by tests/test_logging.py and tests/test_metrics_*.py. A served process (tests/served.py)
started with ``--metrics-listen 127.0.0.1:0`` prints ``metrics: URL`` on stdout;
``--log-format json`` makes every stderr line one JSON object.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from served import START_TIMEOUT, Served

METRICS_ARGS = ("--metrics-listen", "127.0.0.1:0")
JSON_LOGS = ("--log-format", "json", "--log-level", "debug")


def metrics_url(s: Served) -> str:
    """The URL the process printed (``metrics: URL``), once it has."""
    deadline = time.monotonic() + START_TIMEOUT
    path = s.logs / f"out.{s.starts}"
    while time.monotonic() < deadline:
        for line in path.read_text().splitlines():
            if line.startswith("metrics: "):
                return line.split(" ", 1)[1].strip()
        time.sleep(0.01)
    raise AssertionError(f"{s.name} printed no metrics URL: {s.stderr()}")


def scrape(url: str) -> dict[str, float]:
    """Every sample, ``name{k="v",...}`` (labels sorted) -> value, as Cluster.metrics() keys them."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def key(name: str, **labels: Any) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}" if inner else name


def records(s: Served, start: int | None = None) -> list[dict[str, Any]]:
    """The JSON log records of start ``start`` (default: the latest); every line must parse."""
    path = s.logs / f"err.{start or s.starts}"
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(json.loads(line))  # a line that is not one JSON object fails the test
    return out


__all__ = ["JSON_LOGS", "METRICS_ARGS", "key", "metrics_url", "records", "scrape"]
