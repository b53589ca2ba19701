"""``pegasus-fast bench``: the native backend against the pure-Python twin, from an installed wheel.

Everything it needs ships in the package (inputs are generated in a temporary
directory), so it runs without a checkout. ``benches/`` in the repository reuses
the same code (``benches/report.py`` for docs/benchmarks.md).
"""

from __future__ import annotations

from .runner import HOT_PATHS, main, run

__all__ = ["HOT_PATHS", "main", "run"]
