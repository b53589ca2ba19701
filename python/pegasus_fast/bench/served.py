"""``pegasus-fast bench served HOST:PORT``: load on a served cluster's Pegasus port, or on Redis.

A load generator in the spirit of redis-benchmark, written in Rust (tokio, ``front/bench.rs``)
so that it does not measure itself: ``--clients`` connections with one request in flight each
(or ``--rate`` requests per second in all, open loop, latency counted from when each was due),
``--value-size``-byte values over ``--keyspace`` keys, each ``--ops`` phase for ``--seconds``.
``--protocol redis`` speaks RESP (GET/SET) with the same generator, so both are driven alike.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from .. import _backend
from ..net.wire import parse_hostport


def parser(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    ap.add_argument("target", metavar="HOST:PORT", help="the Pegasus port (or Redis with --protocol redis)")
    ap.add_argument("--protocol", choices=("pegasus", "redis"), default="pegasus")
    ap.add_argument("--table", default="bench", help="the Pegasus table (created beforehand)")
    ap.add_argument("--clients", type=int, default=32, help="connections (default 32)")
    ap.add_argument("--ops", default="set,get", help="phases, in order: get, set (default set,get)")
    ap.add_argument("--seconds", type=float, default=5.0, help="each phase's length (default 5)")
    ap.add_argument("--warmup", type=float, default=1.0, help="not measured at a phase's start (default 1)")
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--keyspace", type=int, default=10000)
    ap.add_argument(
        "--rate", type=float, default=0.0, help="requests/s in all, open loop (default: closed loop)"
    )
    ap.add_argument("--threads", type=int, default=1, help="the generator's threads (default 1)")
    ap.add_argument("--prefill", action="store_true", help="write every key once before measuring")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    return ap


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    bench = getattr(_backend.impl, "bench_served", None)
    if bench is None:
        raise SystemExit(
            "pegasus-fast bench served: the load generator is Rust; this install runs pure Python"
        )
    addr = parse_hostport(args.target)
    out = []
    for i, op in enumerate(o.strip() for o in args.ops.split(",") if o.strip()):
        r = bench(
            addr.host,
            addr.port,
            op,
            protocol=args.protocol,
            table=args.table,
            clients=args.clients,
            seconds=args.seconds,
            warmup=args.warmup,
            value_size=args.value_size,
            keyspace=args.keyspace,
            rate=args.rate,
            threads=args.threads,
            prefill=args.prefill and i == 0,
        )
        out.append({"op": op, "protocol": args.protocol, "clients": args.clients, "rate": args.rate, **r})
    return out


def render(results: list[dict[str, Any]]) -> str:
    lines = [f"{'op':<5} {'ops/s':>10} {'p50 us':>8} {'p99 us':>8} {'p999 us':>8} {'errors':>7}"]
    for r in results:
        lines.append(
            f"{r['op']:<5} {r['ops_per_sec']:>10.0f} {r['p50_us']:>8.0f} {r['p99_us']:>8.0f} "
            f"{r['p999_us']:>8.0f} {r['errors']:>7}"
        )
    return "\n".join(lines)


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    results = run(args)
    print(render(results), file=out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


__all__ = ["main", "parser", "render", "run"]
