"""Render docs/grafana-dashboard.json's panels from a real run: docs/grafana-dashboard.png.

Grafana is not installable here, so this draws what the dashboard would show:
it serves a source and a follower cluster (``pegasus-fast serve`` processes on
127.0.0.1, each with ``--metrics-listen``), duplicates a table from one to the
other, drives gRPC and Pegasus-port traffic at the source, kills the follower
(``kill -9``) for a while and starts it again, scrapes both /metrics once a
second all along, and evaluates every panel's query over the scrapes
(benches/promql.py: the subset of PromQL the dashboard uses). The PNG is that
rendering, not a Grafana screenshot.

    pip install matplotlib     # the plot extra; not a runtime dependency
    PYTHONPATH=python python benches/dashboard.py [--seconds 75] [--out docs/grafana-dashboard.png]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))
from promql import Samples, compile_query  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
#: what the dashboard's ``$__rate_interval`` stands for here (Grafana picks it from the scrape interval)
RATE_INTERVAL = 10.0


def _serve(root: Path, name: str, *extra: str) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    ready = root / f"{name}.ready"
    ready.unlink(missing_ok=True)
    out = open(root / f"{name}.out", "wb")  # noqa: SIM115 - the child owns it
    err = open(root / f"{name}.err", "wb")  # noqa: SIM115
    argv = [sys.executable, "-m", "pegasus_fast", "--cluster", str(root / name), "--name", name, "serve"]
    listen = [] if "--listen" in extra else ["--listen", "127.0.0.1:0"]
    argv += ["--ready-file", str(ready), "--metrics-listen", "127.0.0.1:0", *listen, *extra]
    proc = subprocess.Popen(argv, stdout=out, stderr=err)
    out.close()
    err.close()
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not serve: {(root / f'{name}.err').read_text()}")
        time.sleep(0.05)
    info = {}
    for line in (root / f"{name}.out").read_text().splitlines():
        if line.startswith(("metrics: ", "pegasus: ")):
            k, v = line.split(": ", 1)
            info[k] = v.strip()
        elif line.startswith("pegasus://"):
            info["url"] = line.strip()
    return proc, info


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def run(seconds: float, root: Path) -> tuple[Samples, list[tuple[float, str]]]:
    """Serve both, scrape both every second from the start, and play the scenario: a table
    written, a duplication added, steady load, a second table duplicated at 15 % of the run,
    the follower killed at 35 % and started again (same port) at 60 %."""
    import pegasus_fast as pf

    token = root / "token"
    token.write_text("dashboard-token\n")
    token.chmod(0o600)
    src, sinfo = _serve(root, "source", "--pegasus-listen", "127.0.0.1:0", "--token-file", str(token))
    dst, dinfo = _serve(root, "follower")
    port = dinfo["url"].rsplit(":", 1)[1]
    events: list[tuple[float, str]] = []
    samples: Samples = []
    stop = threading.Event()
    t0 = time.time()

    def scraper() -> None:
        while not stop.is_set():
            began = time.time()
            scrape: dict[Any, float] = {}
            for inst, info in (("source", sinfo), ("follower", dinfo)):
                try:
                    for (n, lb), v in _scrape(info["metrics"]).items():
                        scrape[(n, tuple(sorted((*lb, ("instance", inst)))))] = v
                except OSError:
                    pass  # down: no samples, as Prometheus would have none
            samples.append((began - t0, scrape))
            stop.wait(max(0.0, 1.0 - (time.time() - began)))

    scraping = threading.Thread(target=scraper, daemon=True)
    scraping.start()
    try:
        with (
            pf.connect(sinfo["url"], "dashboard-token", timeout=10.0) as rc,
            pf.connect(sinfo["url"], "a-wrong-token", timeout=10.0) as intruder,
        ):
            t = rc.create_table("orders", 8)
            for i in range(3000):
                t.set(b"user%d" % (i % 500), b"item%d" % i, b"x" * 100)
            time.sleep(2)
            d = rc.add_duplication("orders", dinfo["url"])
            events.append((time.time() - t0, "dup added"))

            def load() -> None:
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        t.set(b"user%d" % (i % 500), b"item%d" % i, b"x" * 100)
                        t.get(b"user%d" % (i % 500), b"item%d" % (i - 1))
                        if i % 10 == 0:
                            t.multi_get(b"user%d" % (i % 500))
                        if i % 50 == 0:
                            rc.list_tables()
                        if i % 200 == 0:
                            try:
                                rc.table("missing")
                            except pf.errors.TableNotFoundError:
                                pass
                        if i % 150 == 0:
                            try:
                                intruder.list_tables()
                            except pf.errors.AuthenticationError:
                                pass
                    except pf.errors.PegasusFastError:
                        pass
                    time.sleep(0.002)

            loader = threading.Thread(target=load, daemon=True)
            loader.start()
            down_at, up_at = seconds * 0.35, seconds * 0.6
            # a second table duplicated a while in: its checkpoints fall inside the scrapes
            while time.time() - t0 < seconds * 0.15:
                time.sleep(0.1)
            events_table = rc.create_table("events", 4)
            for i in range(10):
                events_table.set(b"e%d" % i, b"s", b"x" * 100)
            rc.add_duplication("events", dinfo["url"]).wait_for(pf.DupStatus.LOG, 30)
            events.append((time.time() - t0, "2nd dup"))
            while time.time() - t0 < down_at:
                time.sleep(0.1)
            dst.send_signal(signal.SIGKILL)
            dst.wait()
            events.append((time.time() - t0, "follower killed"))
            while time.time() - t0 < up_at:
                time.sleep(0.1)
            dst, back = _serve(root, "follower", "--listen", f"127.0.0.1:{port}")
            dinfo["metrics"] = back["metrics"]
            events.append((time.time() - t0, "follower back"))
            while time.time() - t0 < seconds:
                time.sleep(0.1)
            stop.set()
            loader.join(10)
            scraping.join(10)
            d.wait_for(pf.DupStatus.LOG, 30)
    finally:
        stop.set()
        for p in (src, dst):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(30)
    return samples, events


def render(samples: Samples, events: list[tuple[float, str]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dash = json.loads(DASHBOARD.read_text())
    panels = dash["panels"]
    cols = 3
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.2 * rows))
    fig.patch.set_facecolor("#111217")
    windows = {"$__rate_interval": RATE_INTERVAL}
    for ax, panel in zip(axes.flat, panels):
        ax.set_facecolor("#181b1f")
        for spine in ax.spines.values():
            spine.set_color("#444")
        ax.tick_params(colors="#ccc", labelsize=7)
        ax.set_title(panel["title"], color="#eee", fontsize=9, loc="left")
        unit = panel["fieldConfig"]["defaults"].get("unit", "")
        for target in panel["targets"]:
            q = compile_query(target["expr"], windows)
            values = [q(samples, k) for k in range(len(samples))]
            xs = [t for t, _ in samples]
            series: dict[Any, list[float]] = {}
            for lb in sorted({lb for v in values for lb in v}):
                # a scrape without the series is a gap in its line, as in Grafana
                series[lb] = [v.get(lb, math.nan) for v in values]
            for lb, ys in series.items():
                d = dict(lb)
                label = target.get("legendFormat", "")
                for name, value in d.items():
                    label = label.replace("{{" + name + "}}", value)
                scale = 1000.0 if unit == "s" else 1.0
                ax.plot(xs, [y * scale for y in ys], linewidth=1.1, label=label.strip() or str(d))
        if unit == "s":
            ax.set_ylabel("ms", color="#aaa", fontsize=7)
        elif unit not in ("short", ""):
            ax.set_ylabel(unit, color="#aaa", fontsize=7)
        for at, _what in events:
            ax.axvline(at, color="#e0b400", linestyle="--", linewidth=0.8)
        ax.set_xlim(0, samples[-1][0] if samples else 1)
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            # the six series that reach highest, as a legend sorted by them
            peak = {id(h): max((y for y in h.get_ydata() if not math.isnan(y)), default=0) for h in handles}
            keep = sorted(zip(labels, handles), key=lambda lh: -peak[id(lh[1])])[:6]
            ax.legend(
                [h for _, h in keep],
                [lb for lb, _ in keep],
                fontsize=6,
                loc="upper left",
                facecolor="#222",
                edgecolor="#444",
                labelcolor="#ddd",
            )
        else:
            ax.text(0.5, 0.5, "no data", color="#888", ha="center", va="center", transform=ax.transAxes)
        ax.grid(color="#2a2d33", linewidth=0.5)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    marks = ", ".join(f"{what} at {at:.0f} s" for at, what in events)
    fig.suptitle(
        f"pegasus_fast dashboard (docs/grafana-dashboard.json) rendered from a real run's /metrics by "
        f"benches/dashboard.py, not a Grafana screenshot; x: seconds; dashed: {marks}",
        color="#eee",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(out, dpi=90, facecolor=fig.get_facecolor())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=75.0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "grafana-dashboard.png"))
    ap.add_argument("--samples", help="also write the scrapes here (JSON)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pf-dashboard-") as tmp:
        samples, events = run(args.seconds, Path(tmp))
    if args.samples:
        rows = [(t, [[n, list(lb), v] for (n, lb), v in s.items()]) for t, s in samples]
        Path(args.samples).write_text(json.dumps({"events": events, "samples": rows}))
    render(samples, events, Path(args.out))
    print(f"{args.out}: {len(samples)} scrapes; {events}", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
