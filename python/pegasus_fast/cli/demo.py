"""The apache/incubator-pegasus#2069 scenario, end to end, in a temporary directory.

Create an 8-partition table, write 2 records, add a duplication with a
checkpoint, and show how fast every partition's checkpoint is ready and the
follower serves. With ``compare_legacy`` the same runs under the pre-fix
gating with its timers scaled down, so the difference is measured.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from typing import TextIO

from ..config import Config
from ..duplication import DupStatus
from ..engine.cluster import Cluster
from .format import table


@dataclass
class DemoResult:
    policy: str
    seconds_to_log: float
    follower_healthy: int
    partitions: int
    records_on_follower: int


def run_scenario(
    root: str,
    config: Config,
    partitions: int = 8,
    records: int = 2,
    out: TextIO | None = None,
    timeout: float = 60.0,
) -> DemoResult:
    def say(text: str = "") -> None:
        if out is not None:
            print(text, file=out)

    src = Cluster.open(os.path.join(root, "src"), name="source", config=config)
    dst = Cluster.open(os.path.join(root, "dst"), name="target", config=config)
    try:
        t = src.create_table("test1", partition_count=partitions)
        sample = [(b"a", b"b", b"c"), (b"x", b"y", b"z")]
        for i in range(records):
            hk, sk, v = sample[i] if i < len(sample) else (b"k%d" % i, b"s", b"v%d" % i)
            t.set(hk, sk, v)
        say(
            f"source: table test1, {partitions} partitions, {records} records; policy={config.checkpoint_policy}"
        )
        start = time.perf_counter()
        dup = src.add_duplication("test1", dst, with_checkpoint=True)
        dup.wait_for(DupStatus.LOG, timeout=timeout)
        elapsed = time.perf_counter() - start
        health = dst.table("test1").health()
        say(f"add_dup -> {dup.status} with the follower serving in {elapsed * 1000:.1f} ms\n")
        rows = []
        for p in dup.progress():
            rows.append(
                (
                    p.pidx,
                    p.checkpoint_kind,
                    p.checkpoint_decree,
                    f"{p.checkpoint_duration_ms:.2f}",
                    p.checkpoint_state,
                    health.partitions[p.pidx][1],
                )
            )
        say(table(["pidx", "checkpoint", "decree", "ckpt ms", "state", "follower"], rows))
        t0 = dup.timeline[0][1]
        say("\nstatus timeline:")
        for status, ts in dup.timeline:
            say(f"  +{(ts - t0) * 1000:8.1f} ms  {status}")
        say(
            f"\nfollower health: {health.fully_healthy}/{len(health.partitions)} fully healthy, "
            f"{health.unhealthy} unhealthy"
        )
        found = list(dst.table("test1").scan())
        say("records on the follower:")
        for hk, sk, v in found:
            say(f"  {hk.decode()} : {sk.decode()} => {v.decode()}")
        return DemoResult(config.checkpoint_policy, elapsed, health.fully_healthy, partitions, len(found))
    finally:
        src.close()
        dst.close()


def main(
    compare_legacy: bool = False, legacy_max_interval_seconds: float = 2.0, out: TextIO | None = None
) -> int:
    import sys

    out = out or sys.stdout
    with tempfile.TemporaryDirectory(prefix="pegasus-fast-demo-") as root:
        adaptive = run_scenario(os.path.join(root, "adaptive"), Config(), out=out)
        ok = adaptive.follower_healthy == adaptive.partitions and adaptive.records_on_follower == 2
        if compare_legacy:
            print("\n--- the same under the legacy (pre-#2054) checkpoint gating ---", file=out)
            print(
                f"(checkpoint_max_interval_hours scaled from 2 h to {legacy_max_interval_seconds} s)\n",
                file=out,
            )
            legacy_cfg = Config(
                checkpoint_policy="legacy",
                checkpoint_max_interval_hours=legacy_max_interval_seconds / 3600.0,
                checkpoint_interval_seconds=0.05,
            )
            legacy = run_scenario(os.path.join(root, "legacy"), legacy_cfg, out=out)
            ratio = legacy.seconds_to_log / adaptive.seconds_to_log
            print(
                f"\nadaptive: {adaptive.seconds_to_log * 1000:.1f} ms   legacy (timers scaled): "
                f"{legacy.seconds_to_log * 1000:.1f} ms   legacy/adaptive = {ratio:.0f}x",
                file=out,
            )
            print(
                "unscaled, the legacy wait is rand(1 h, 2 h): what apache/incubator-pegasus#2069 reported.",
                file=out,
            )
            ok = ok and legacy.follower_healthy == legacy.partitions
        return 0 if ok else 1
