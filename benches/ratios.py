"""The issue's figures from ONE pytest-benchmark run, as ratios against their bars.

    python benches/ratios.py bench.json

Reads the JSON written by ``pytest benches --benchmark-enable --benchmark-json=bench.json``
and prints one line per figure with PASS/FAIL (``info`` lines have no bar). Ratios use
the median round of each benchmark, so every ratio compares two figures of the same run.
It is a report: the exit status is 0 whatever the figures say.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ENCODE_BLOCKS = "wal-encode: 10k mutations, one block each"
ENCODE_ONE = "wal-encode: 10k mutations in one block"
SCAN_8 = "log-scan: 8 MB"
SCAN_8_VERIFY = "log-scan: 8 MB, verify only (no mutations returned)"
SCAN_64 = "log-scan: 64 MB, Rust only"
SCAN_64_VERIFY = "log-scan: 64 MB, Rust only, verify only"
COPY = "checkpoint-copy: 256 MB, 4 x 64 MB"
SET = "table-set: one thread, 16 B keys, 100 B values"
MULTI = "table-multi_set: 100 records of 100 B"
REOPEN = "reopen: WAL replay of unflushed writes"


class Run:
    def __init__(self, data: dict[str, Any]) -> None:
        self.by_key: dict[tuple[str, str], dict[str, Any]] = {}
        for b in data.get("benchmarks", []):
            role = b.get("extra_info", {}).get("role") or b.get("param") or b["name"]
            self.by_key[(b.get("group") or "", role)] = b

    def get(self, group: str, role: str) -> dict[str, Any]:
        b = self.by_key.get((group, role))
        if b is None:
            raise LookupError(f"{role} in {group!r} not in this run")
        return b

    def seconds(self, group: str, role: str) -> float:
        return float(self.get(group, role)["stats"]["median"])

    def extra(self, group: str, role: str, key: str) -> float:
        return float(self.get(group, role)["extra_info"][key])

    def rate(self, group: str, role: str, key: str) -> float:
        """``extra_info[key]`` per second of the median round."""
        return self.extra(group, role, key) / self.seconds(group, role)


@dataclass
class Figure:
    name: str
    compute: Callable[[Run], tuple[float, str]]  # (value, how it was obtained)
    bar: float | None = None  # None: reported, no bar
    at_least: bool = True
    unit: str = "x"


def speedup(group: str) -> Callable[[Run], tuple[float, str]]:
    def f(run: Run) -> tuple[float, str]:
        r, p = run.seconds(group, "rust"), run.seconds(group, "python")
        return p / r, f"python {fmt_s(p)} / rust {fmt_s(r)}"

    return f


def mb_per_s(group: str, role: str) -> Callable[[Run], tuple[float, str]]:
    def f(run: Run) -> tuple[float, str]:
        size = run.extra(group, role, "bytes")
        return size / 1e6 / run.seconds(
            group, role
        ), f"{size / 1e6:.1f} MB in {fmt_s(run.seconds(group, role))}"

    return f


def time_ratio(group: str, role: str, base: str) -> Callable[[Run], tuple[float, str]]:
    def f(run: Run) -> tuple[float, str]:
        t, b = run.seconds(group, role), run.seconds(group, base)
        return t / b, f"{role} {fmt_s(t)} / {base} {fmt_s(b)}"

    return f


def ops_ratio(group: str, role: str, base: str) -> Callable[[Run], tuple[float, str]]:
    def f(run: Run) -> tuple[float, str]:
        mine, theirs = run.rate(group, role, "ops"), run.rate(group, base, "ops")
        return mine / theirs, f"{role} {mine:,.0f}/s vs {base} {theirs:,.0f}/s"

    return f


def replay_rate(role: str) -> Callable[[Run], tuple[float, str]]:
    def f(run: Run) -> tuple[float, str]:
        n = run.extra(REOPEN, role, "replayed")
        return n / run.seconds(REOPEN, role), f"{n:,.0f} replayed in {fmt_s(run.seconds(REOPEN, role))}"

    return f


def fmt_s(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


FIGURES = [
    Figure("WAL encode, 10k one-mutation blocks: rust speedup", speedup(ENCODE_BLOCKS), 20),
    Figure("WAL encode, one block of 10k: rust speedup", speedup(ENCODE_ONE), 20),
    Figure("log scan 8 MB: rust speedup", speedup(SCAN_8), 20),
    Figure("log scan 8 MB: rust MB/s", mb_per_s(SCAN_8, "rust"), 500, unit="MB/s"),
    Figure("log scan 64 MB: rust MB/s", mb_per_s(SCAN_64, "rust"), 500, unit="MB/s"),
    Figure("log scan 8 MB, GC off: rust MB/s", mb_per_s(SCAN_8, "rust gc-off"), unit="MB/s"),
    Figure("log scan 8 MB verify only: rust speedup", speedup(SCAN_8_VERIFY)),
    Figure("log scan 8 MB verify only: rust MB/s", mb_per_s(SCAN_8_VERIFY, "rust"), unit="MB/s"),
    Figure("log scan 64 MB verify only: rust MB/s", mb_per_s(SCAN_64_VERIFY, "rust"), unit="MB/s"),
    Figure("log scan 8 MB: python MB/s", mb_per_s(SCAN_8, "python"), unit="MB/s"),
    # like for like: the copy without fsync against shutil.copyfile (which does not sync),
    # and the durable copy (fsync of every file and the directory) against copyfile + fsync
    Figure(
        "copy 256 MB: rust learning copy (sync=False) / shutil.copyfile",
        time_ratio(COPY, "rust sync=False", "shutil"),
        1.5,
        at_least=False,
    ),
    Figure(
        "copy 256 MB: rust learning copy (sync=True) / shutil.copyfile+fsync",
        time_ratio(COPY, "rust", "shutil+fsync"),
        1.5,
        at_least=False,
    ),
    Figure(
        "copy 256 MB: rust learning copy (sync=True) / shutil.copyfile", time_ratio(COPY, "rust", "shutil")
    ),
    Figure(
        "copy 256 MB: python learning copy (sync=True) / shutil.copyfile+fsync",
        time_ratio(COPY, "python", "shutil+fsync"),
    ),
    Figure(
        "copy 256 MB: shutil.copyfile+fsync / shutil.copyfile", time_ratio(COPY, "shutil+fsync", "shutil")
    ),
    Figure("copy 256 MB: rust learning copy MB/s", mb_per_s(COPY, "rust"), unit="MB/s"),
    Figure("Table.set ops/s: rust / rocksdict put", ops_ratio(SET, "rust", "rocksdict"), 0.40),
    Figure("Table.set ops/s: python / rocksdict put", ops_ratio(SET, "python", "rocksdict"), 0.40),
    Figure("multi_set(100) ops/s: rust / rocksdict WriteBatch", ops_ratio(MULTI, "rust", "rocksdict"), 0.60),
    Figure(
        "multi_set(100) ops/s: python / rocksdict WriteBatch", ops_ratio(MULTI, "python", "rocksdict"), 0.60
    ),
    Figure("reopen replay (1M writes): rust mutations/s", replay_rate("rust"), 300_000, unit="/s"),
    Figure("reopen replay (100k writes): python mutations/s", replay_rate("python"), unit="/s"),
]


def fmt_value(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "/s":
        return f"{value:,.0f}/s"
    return f"{value:,.0f} {unit}"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[0])
        print(f"usage: {argv[0]} bench.json")
        return 0
    with open(argv[1]) as f:
        run = Run(json.load(f))
    rows = []
    for fig in FIGURES:
        try:
            value, how = fig.compute(run)
        except LookupError as exc:
            rows.append((fig.name, "n/a", "" if fig.bar is None else "", "not run", str(exc)))
            continue
        if fig.bar is None:
            bar, verdict = "", "info"
        else:
            bar = ("≥ " if fig.at_least else "≤ ") + fmt_value(fig.bar, fig.unit)
            ok = value >= fig.bar if fig.at_least else value <= fig.bar
            verdict = "PASS" if ok else "FAIL"
        rows.append((fig.name, fmt_value(value, fig.unit), bar, verdict, how))
    headers = ("figure", "measured", "bar", "result", "from")
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*headers))
    print(line.format(*("-" * w for w in widths)))
    for r in rows:
        print(line.format(*r).rstrip())
    fails = sum(r[3] == "FAIL" for r in rows)
    missing = sum(r[3] == "not run" for r in rows)
    print(f"\n{fails} below their bar, {missing} not in this run")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
