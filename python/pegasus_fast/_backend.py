"""The one place that picks the hot-path implementation, once, at import.

The compiled ``pegasus_fast._rust`` when it is importable, the pure-Python twin
otherwise. ``PEGASUS_FAST_PURE_PYTHON=1`` forces Python;
``PEGASUS_FAST_REQUIRE_RUST=1`` makes a missing extension an ImportError.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _select() -> tuple[ModuleType, str]:
    if _truthy("PEGASUS_FAST_PURE_PYTHON"):
        if _truthy("PEGASUS_FAST_REQUIRE_RUST"):
            raise ImportError("PEGASUS_FAST_PURE_PYTHON and PEGASUS_FAST_REQUIRE_RUST are both set")
        from . import _pure

        return _pure, "python"
    try:
        from . import _rust  # type: ignore[attr-defined]
    except ImportError:
        if _truthy("PEGASUS_FAST_REQUIRE_RUST"):
            raise
        from . import _pure

        return _pure, "python"
    return _rust, "rust"


impl, name = _select()


def load(which: str) -> ModuleType:
    """A specific backend, for tests and benchmarks that compare the two."""
    if which == "python":
        from . import _pure

        return _pure
    if which == "rust":
        from . import _rust  # type: ignore[attr-defined]

        return _rust
    raise ValueError(f"unknown backend {which!r}")


@contextmanager
def use(which: str) -> Iterator[ModuleType]:
    """Run the store on one backend for a while (tests and benchmarks compare the two)."""
    global impl, name
    module = load(which)
    saved = impl, name
    impl, name = module, which
    try:
        yield module
    finally:
        impl, name = saved
