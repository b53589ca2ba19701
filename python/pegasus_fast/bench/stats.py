"""Medians, percentiles and CDFs: numpy when it is installed, the same definitions without it.

``pegasus-fast bench`` must run from a bare wheel, so numpy is an extra
(``pegasus_fast[bench]``); without it the percentile is numpy's default
("linear") interpolation written out, so figures do not depend on which is used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

try:
    import numpy as _np
except ImportError:  # pragma: no cover - exercised in a venv without numpy
    _np = None

#: which implementation computed the statistics (recorded in the JSON)
ENGINE = "numpy" if _np is not None else "python"


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    if _np is not None:
        return float(_np.percentile(_np.asarray(values, dtype=float), q))
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50.0)


def summary(values: Sequence[float]) -> dict[str, float]:
    """What the JSON and the report keep of a list of timings."""
    return {
        "median": median(values),
        "min": min(values),
        "max": max(values),
        "p25": percentile(values, 25.0),
        "p75": percentile(values, 75.0),
    }


def cdf(values: Sequence[float]) -> tuple[list[float], list[float]]:
    """(sorted values, cumulative fraction at each) for an empirical CDF plot."""
    if _np is not None:
        xs = _np.sort(_np.asarray(values, dtype=float))
        ys = _np.arange(1, len(xs) + 1) / len(xs)
        return xs.tolist(), ys.tolist()
    xs = sorted(float(v) for v in values)
    return xs, [(i + 1) / len(xs) for i in range(len(xs))]
