"""Run the hot paths on both backends and the seed scenario; print one table, keep the JSON."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from .._version import __version__
from . import hotpaths, scenario, stats
from .inputs import available_backends

#: every hot path the bench compares (the JSON has rust, python and the ratio for each)
HOT_PATHS = ("wal_encode", "log_scan", "copy_hash", "replay", "snapshot_encode", "snapshot_apply")
DESCRIPTION = (
    "WAL encode, log scan with checksums, replay, learning copy, snapshot encode and apply on both "
    "backends in one process (rounds interleaved), and add_dup of the seed scenario, adaptive against "
    "legacy with scaled timers. Prints medians and python/rust."
)
PLOT_HINT = "plots need matplotlib: pip install 'pegasus_fast[plot]'"


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": model or platform.processor(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _hot_paths(root: Path, sizes: hotpaths.Sizes, names: list[str], say: TextIO) -> list[dict[str, Any]]:
    out = []
    with hotpaths.hot_paths(root, sizes) as paths:
        for hp in paths:
            times: dict[str, list[float]] = {n: [] for n in names}
            rounds = {"rust": sizes.rounds_rust, "python": sizes.rounds_python}
            for n in names:
                hp.measure(n, _module(n))  # warm-up, untimed
            for r in range(max(rounds[n] for n in names)):
                order = names if r % 2 == 0 else names[::-1]
                for n in order:
                    if len(times[n]) < rounds[n]:
                        times[n].append(hp.measure(n, _module(n)))
            fig: dict[str, Any] = {"key": hp.key, "label": hp.label, "work": hp.work}
            for n in names:
                s = stats.summary(times[n])
                s["runs"] = times[n]
                if hp.work.get("bytes"):
                    s["mb_per_s"] = hp.work["bytes"] / 1e6 / s["median"]
                s["items_per_s"] = hp.work["items"] / s["median"]
                fig[n] = s
            if "rust" in fig and "python" in fig:
                fig["ratio"] = fig["python"]["median"] / fig["rust"]["median"]
            out.append(fig)
            print(f"  {hp.label}: done", file=say, flush=True)
    return out


def _module(name: str) -> Any:
    from .. import _backend

    return _backend.load(name)


def _scenario(root: Path, names: list[str], quick: bool, say: TextIO) -> dict[str, Any]:
    """8 partitions, 2 records: adaptive against legacy (timers scaled), on each backend."""
    from .. import _backend

    legacy_s = 1.0 if quick else 2.0
    rounds = {"adaptive": 3 if quick else 5, "legacy": 2 if quick else 3}
    out: dict[str, Any] = {"partitions": 8, "records": 2, "legacy_max_interval_seconds": legacy_s}
    for policy in ("adaptive", "legacy"):
        row: dict[str, Any] = {}
        for n in names:
            cfg = scenario.adaptive_config() if policy == "adaptive" else scenario.legacy_config(legacy_s)
            runs = []
            with _backend.use(n):
                for _ in range(rounds[policy]):
                    runs.append(scenario.run_once(str(root / "dup"), 8, 2, cfg).seconds)
            row[n] = {**stats.summary(runs), "runs": runs}
        if "rust" in row and "python" in row:
            row["ratio"] = row["python"]["median"] / row["rust"]["median"]
        out[policy] = row
        print(f"  add_dup {policy}: done", file=say, flush=True)
    out["legacy_over_adaptive"] = {
        n: out["legacy"][n]["median"] / out["adaptive"][n]["median"] for n in names
    }
    return out


def run(quick: bool = False, say: TextIO | None = None) -> dict[str, Any]:
    """Every figure, as the JSON ``--json`` writes."""
    say = say or sys.stderr
    names = available_backends()
    sizes = hotpaths.QUICK if quick else hotpaths.FULL
    started = datetime.datetime.now(datetime.timezone.utc)
    with tempfile.TemporaryDirectory(prefix="pegasus-fast-bench-", dir=os.environ.get("PF_BENCH_DIR")) as d:
        figures = _hot_paths(Path(d), sizes, names, say)
        dup = _scenario(Path(d), names, quick, say)
    return {
        "version": __version__,
        "date": started.isoformat(timespec="seconds"),
        "quick": quick,
        "backends": names,
        "stats": stats.ENGINE,
        "machine": machine(),
        "hot_paths": figures,
        "duplication": dup,
    }


def _fmt_s(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


def _cell(fig: dict[str, Any], name: str) -> str:
    s = fig.get(name)
    if s is None:
        return "n/a"
    rate = f" ({s['mb_per_s']:,.0f} MB/s)" if "mb_per_s" in s else ""
    return _fmt_s(s["median"]) + rate


def render(results: dict[str, Any]) -> str:
    """The one table: each figure, both backends (median), python/rust."""
    rows = [(f["label"], _cell(f, "rust"), _cell(f, "python"), _ratio(f)) for f in results["hot_paths"]]
    dup = results["duplication"]
    for policy in ("adaptive", "legacy"):
        label = f"add_dup -> DS_LOG, 8 partitions, 2 records, {policy}"
        if policy == "legacy":
            label += f" (max interval scaled to {dup['legacy_max_interval_seconds']:g} s)"
        rows.append((label, _cell(dup[policy], "rust"), _cell(dup[policy], "python"), _ratio(dup[policy])))
    lo = dup["legacy_over_adaptive"]
    rows.append(
        (
            "add_dup legacy / adaptive (same backend)",
            f"{lo['rust']:.1f}x" if "rust" in lo else "n/a",
            f"{lo['python']:.1f}x" if "python" in lo else "n/a",
            "",
        )
    )
    headers = ("figure (median)", "rust", "python", "python/rust")
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(4)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    m = results["machine"]
    out = [
        f"pegasus-fast {results['version']} bench{' --quick' if results['quick'] else ''}: "
        f"{m['cores']} cores, {m['cpu']}, Python {m['python']}, {results['date']}",
        line.format(*headers),
        line.format(*("-" * w for w in widths)),
    ]
    out += [line.format(*r).rstrip() for r in rows]
    if "rust" not in results["backends"]:
        out.append("(the Rust extension is not importable here: only the pure-Python twin ran)")
    return "\n".join(out)


def _ratio(fig: dict[str, Any]) -> str:
    return f"{fig['ratio']:.1f}x" if "ratio" in fig else "n/a"


def parser(ap: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    ap = ap or argparse.ArgumentParser(prog="pegasus-fast bench", description=__doc__)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smaller inputs and fewer rounds (well under a minute on 2 cores)",
    )
    ap.add_argument("--json", metavar="PATH", help="write the raw results (every round) as JSON")
    ap.add_argument("--plot", metavar="PATH.png", help="draw the figures (needs pegasus_fast[plot])")
    ap.add_argument(
        "served",
        nargs=argparse.REMAINDER,
        help="served HOST:PORT [--protocol pegasus|redis] [--clients N] [--ops get,set] [--seconds S] "
        "[--json PATH] ...: load on a served cluster's Pegasus port, or on Redis (bench/served.py)",
    )
    return ap


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    rest = getattr(args, "served", None)
    if rest:
        # `bench served HOST:PORT ...`: the served data plane's load generator (served.py)
        if rest[0] != "served":
            raise SystemExit(f"pegasus-fast bench: unknown argument {rest[0]!r} (did you mean `served`?)")
        from . import served

        ap = served.parser(argparse.ArgumentParser(prog="pegasus-fast bench served"))
        return served.main(ap.parse_args(rest[1:]), out)
    if args.plot:
        from . import plot

        if not plot.available():
            # before a minute of benchmarking, not after
            print(f"pegasus-fast bench: {PLOT_HINT}", file=sys.stderr)
            return 2
    results = run(quick=args.quick)
    print(render(results), file=out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        print(f"raw results: {args.json}", file=out)
    if args.plot:
        from . import plot

        plot.hot_paths(results, args.plot)
        print(f"plot: {args.plot}", file=out)
    return 0
