"""Plots of the bench results; matplotlib is the ``plot`` extra (``pip install 'pegasus_fast[plot]'``)."""

from __future__ import annotations

import importlib.util
from typing import Any


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def hot_paths(results: dict[str, Any], path: str) -> None:
    """Rust against the twin for every hot path: median time per backend (log scale), ratio on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = results["hot_paths"]
    names = results["backends"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.38
    colors = {"rust": "#b7410e", "python": "#3572a5"}
    for k, n in enumerate(names):
        xs = [i + (k - (len(names) - 1) / 2) * width for i in range(len(figs))]
        med = [f[n]["median"] * 1e3 for f in figs]
        lo = [m - f[n]["min"] * 1e3 for m, f in zip(med, figs)]
        hi = [f[n]["max"] * 1e3 - m for m, f in zip(med, figs)]
        ax.bar(xs, med, width, yerr=[lo, hi], capsize=3, label=n, color=colors.get(n))
    for i, f in enumerate(figs):
        if "ratio" in f:
            top = max(f[n]["max"] for n in names) * 1e3
            ax.annotate(f"{f['ratio']:.0f}x", (i, top), ha="center", va="bottom", fontsize=9)
    ax.set_yscale("log")
    ax.set_ylabel("time per round, ms (median; bars: min-max)")
    ax.set_xticks(range(len(figs)))
    ax.set_xticklabels([f["label"].split(":")[0] for f in figs], rotation=20, ha="right", fontsize=8)
    ax.set_title(f"Rust vs pure-Python twin ({'quick' if results['quick'] else 'full'} sizes)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
