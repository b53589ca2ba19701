"""Inputs shared by the benchmarks: mutations, WAL directories, child-process environments.

The generators live in the package (``pegasus_fast.bench.inputs``) so ``pegasus-fast bench``
and these benchmarks measure the same inputs.
"""

from __future__ import annotations

import os
from pathlib import Path

from pegasus_fast import _backend
from pegasus_fast.bench.inputs import fastest_backend, make_mutation, write_wal_dir

__all__ = ["PACKAGE_ROOT", "child_env", "fastest_backend", "make_mutation", "write_wal_dir"]

#: the directory holding the ``pegasus_fast`` package under test (for child processes)
PACKAGE_ROOT = str(Path(_backend.__file__).resolve().parent.parent)


def child_env(backend_name: str) -> dict[str, str]:
    """Environment for a child process that must use ``backend_name``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    env.pop("PEGASUS_FAST_PURE_PYTHON", None)
    env.pop("PEGASUS_FAST_REQUIRE_RUST", None)
    env["PEGASUS_FAST_PURE_PYTHON" if backend_name == "python" else "PEGASUS_FAST_REQUIRE_RUST"] = "1"
    return env
