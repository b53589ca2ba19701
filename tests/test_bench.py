"""``pegasus-fast bench``: both backends and a ratio for every hot path, and the seed scenario.

The bench compares the two backends itself, in one process, so it runs once (in the
pass over both backends), not again in the pure-Python pass.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import PACKAGE_ROOT, PURE_ONLY, PYTHON, load_backend
from pegasus_fast.bench import HOT_PATHS, stats


def bench_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    env.pop("PEGASUS_FAST_PURE_PYTHON", None)
    return env


@pytest.mark.skipif(PURE_ONLY, reason="the bench compares both backends itself; it runs in the main pass")
def test_bench_quick_reports_both_backends_and_ratios(tmp_path: Path) -> None:
    load_backend("rust")  # skips without the extension, fails under CI
    out = tmp_path / "bench.json"
    # outside any checkout: the bench needs nothing but the package
    done = subprocess.run(
        [PYTHON, "-m", "pegasus_fast", "bench", "--quick", "--json", str(out)],
        cwd=tmp_path,
        env=bench_env(),
        capture_output=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    results = json.loads(out.read_text())
    assert results["backends"] == ["rust", "python"] and results["quick"] is True
    by_key = {f["key"]: f for f in results["hot_paths"]}
    assert set(by_key) == set(HOT_PATHS)
    for key, fig in by_key.items():
        for name in ("rust", "python"):
            runs = fig[name]["runs"]
            assert runs and all(t > 0 for t in runs), (key, name)
            assert fig[name]["min"] <= fig[name]["median"] <= fig[name]["max"]
        assert fig["ratio"] == pytest.approx(fig["python"]["median"] / fig["rust"]["median"])
    dup = results["duplication"]
    for policy in ("adaptive", "legacy"):
        assert {"rust", "python", "ratio"} <= set(dup[policy]), policy
    # the legacy gating waits for the scaled emergency checkpoint; adaptive does not
    assert dup["legacy"]["rust"]["min"] > dup["adaptive"]["rust"]["max"]
    text = done.stdout.decode()
    assert all(f["label"] in text for f in results["hot_paths"])


def test_bench_plot_without_matplotlib_says_how_to_get_it(tmp_path: Path) -> None:
    from pegasus_fast.bench import plot

    if plot.available():
        pytest.skip("matplotlib is installed here")
    done = subprocess.run(
        [PYTHON, "-m", "pegasus_fast", "bench", "--quick", "--plot", str(tmp_path / "p.png")],
        cwd=tmp_path,
        env=bench_env(),
        capture_output=True,
        timeout=120,
    )
    # refused before any benchmarking, with the extra to install
    assert done.returncode == 2 and b"pegasus_fast[plot]" in done.stderr
    assert not (tmp_path / "p.png").exists()


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 99, 100])
def test_percentile_without_numpy_is_numpys(monkeypatch: pytest.MonkeyPatch, q: float) -> None:
    np = pytest.importorskip("numpy")
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.3, 5.8, 9.7, 0.2, 7.7]
    expected = float(np.percentile(values, q))
    monkeypatch.setattr(stats, "_np", None)
    assert stats.percentile(values, q) == pytest.approx(expected)
    xs, ys = stats.cdf(values)
    assert xs == sorted(values) and ys[-1] == 1.0
