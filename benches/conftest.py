"""Shared fixtures for the benchmarks (multidict style, as in tests/conftest.py).

``backend`` is session-scoped and parametrized over ``"rust"`` and ``"python"``;
while it is active ``pegasus_fast._backend.impl``/``name`` point at it, so the
store really runs on it. A missing Rust extension skips the ``rust`` params.

Baselines that do not depend on the backend (``shutil.copyfile``, a bare
``rocksdict.Rdict``) run once, in the same group as the two backends they are
compared with; ``benches/ratios.py`` tells them apart by ``extra_info["role"]``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

try:
    import pegasus_fast  # noqa: F401
except ImportError:  # not installed: run against the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

from pegasus_fast import _backend  # noqa: E402

BACKENDS = ["rust", "python"]


def load_backend(which: str) -> ModuleType:
    try:
        return _backend.load(which)
    except ImportError as exc:
        pytest.skip(f"pegasus_fast._rust is not built: {exc}")


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """The backend module; the store uses it while the fixture is active."""
    load_backend(request.param)  # skips (or fails) when it cannot be had
    with _backend.use(request.param) as module:
        yield module


@pytest.fixture(scope="session")
def smoke(request: pytest.FixtureRequest) -> bool:
    """True when benchmarks are disabled (the default): tiny inputs, each target runs once."""
    cfg = request.config
    return bool(cfg.getoption("benchmark_disable")) and not cfg.getoption("benchmark_enable")


@pytest.fixture(scope="session")
def bench_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench")
