"""The report's PNGs, drawn from the JSON of one report.py run (matplotlib: pegasus_fast[plot])."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from pegasus_fast.bench import plot as bench_plot  # noqa: E402
from pegasus_fast.bench import stats  # noqa: E402

UPSTREAM = "from upstream issue apache/incubator-pegasus#2069, not measured"
COLORS = {"adaptive": "#b7410e", "legacy": "#3572a5", "large-only": "#777777"}


def add_dup_vs_size(data: dict[str, Any], path: str) -> None:
    sweep = data["sweep"]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    # log-log cannot show 0 records: it sits at 0.5 on the axis, labelled as 0
    xs = [p["records"] or 0.5 for p in sweep]
    labels = {
        "adaptive": "adaptive",
        "legacy": f"legacy (max interval scaled 1 h -> {data['legacy_seconds']:g} s)",
        "large-only": "adaptive, small_partition_max_bytes=0 (checkpoint copy only)",
    }
    for policy, label in labels.items():
        pts = [(x, p[policy]) for x, p in zip(xs, sweep) if policy in p]
        if not pts:
            continue
        med = [s["median"] for _, s in pts]
        lo = [m - s["min"] for m, (_, s) in zip(med, pts)]
        hi = [s["max"] - m for m, (_, s) in zip(med, pts)]
        ax.errorbar(
            [x for x, _ in pts],
            med,
            yerr=[lo, hi],
            marker="o",
            capsize=3,
            label=label + " (median; bars: min-max)",
            color=COLORS[policy],
            ls="--" if policy == "large-only" else "-",
            ms=4 if policy == "large-only" else 6,
        )
    ax.axhline(3600, ls=":", color="grey")
    ax.text(xs[0], 3600 * 1.15, f"Pegasus before the fix: ~1 h ({UPSTREAM})", fontsize=7, color="dimgrey")
    ax.axhline(10, ls="--", color="grey")
    ax.text(xs[0], 10 * 1.15, f"Pegasus after the fix: >= 10 s ({UPSTREAM})", fontsize=7, color="dimgrey")
    b = data["boundary_records"]
    ax.axvline(b, ls="-.", color="green")
    ax.text(
        b * 1.1,
        2e-3,
        f"small/large boundary\n~{b:,.0f} records\n(4 MiB per partition)",
        fontsize=7,
        color="green",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 2e4)
    ax.set_xticks(xs)
    ax.set_xticklabels([_records_label(p) for p in sweep], rotation=30, fontsize=7)
    ax.set_xlabel(f"table size, records of ~100 B ({data['partitions']} partitions)")
    ax.set_ylabel("add_duplication -> DS_LOG, seconds")
    ax.set_title("add_duplication time against table size (embedded follower)")
    # between the two reference lines, clear of the curves
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, 0.87))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _records_label(p: dict[str, Any]) -> str:
    n = p["records"]
    if n >= 1_000_000:
        text = f"{n / 1e6:.3g}M"
    elif n >= 1000:
        text = f"{n / 1e3:g}k"
    else:
        text = str(n)
    return text + (f"\n{p['data_bytes'] / 1e9:.2f} GB" if p["data_bytes"] >= 1e9 else "")


def lag_cdf(data: dict[str, Any], path: str) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for lat in data["lag"].values():
        xs, ys = stats.cdf([v * 1e3 for v in lat["seconds"]])
        ax.step(xs, ys, where="post", label=lat["label"])
    ax.set_xscale("log")
    ax.set_xlabel("write -> visible on the follower / replica, ms (log)")
    ax.set_ylabel("fraction of writes")
    n = max(len(v["seconds"]) for v in data["lag"].values())
    ax.set_title(f"Replication lag, {n:,} writes at 1,000/s, from the first write")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def hot_paths(data: dict[str, Any], path: str) -> None:
    bench_plot.hot_paths(data["bench"], path)


def cost_growth(data: dict[str, Any], path: str) -> None:
    pts = [p for p in data["sweep"] if p["records"] >= 10_000]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.2))
    for policy in ("adaptive", "large-only", "legacy"):
        have = [p for p in pts if policy in p]
        xs = [p["records"] for p in have]
        a1.plot(
            xs,
            [p[policy]["median"] / (p["data_bytes"] / 1e6) * 1e3 for p in have],
            "o-",
            color=COLORS[policy],
            label=policy,
        )
        a2.plot(
            xs,
            [p[policy]["median"] / p["records"] * 1e6 for p in have],
            "o-",
            color=COLORS[policy],
            label=policy,
        )
    for ax, unit in ((a1, "ms per MB"), (a2, "us per record")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("table size, records")
        ax.set_ylabel(f"add_dup -> DS_LOG, {unit}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Cost growth of add_duplication for large tables (median of the runs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
