"""Inputs shared by the benchmarks: mutations, WAL directories, child-process environments."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from pegasus_fast import _backend

#: the directory holding the ``pegasus_fast`` package under test (for child processes)
PACKAGE_ROOT = str(Path(_backend.__file__).resolve().parent.parent)


def fastest_backend() -> ModuleType:
    """For generating inputs (both backends write identical bytes)."""
    try:
        return _backend.load("rust")
    except ImportError:
        return _backend.load("python")


def child_env(backend_name: str) -> dict[str, str]:
    """Environment for a child process that must use ``backend_name``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    env.pop("PEGASUS_FAST_PURE_PYTHON", None)
    env.pop("PEGASUS_FAST_REQUIRE_RUST", None)
    env["PEGASUS_FAST_PURE_PYTHON" if backend_name == "python" else "PEGASUS_FAST_REQUIRE_RUST"] = "1"
    return env


def make_mutation(decree: int, hash_key: bytes, value: bytes) -> tuple:
    """One PUT as Table.set builds it: 16 B hash key, sort key b"s", no TTL."""
    return (decree, 1_700_000_000_000_000 + decree, 1, [(0, hash_key, b"s", value, 0)])


def write_wal_dir(path: Path, total_bytes: int, file_limit: int = 32 << 20) -> tuple[int, int]:
    """A WAL directory in the real layout, one mutation per block as the write path writes it.

    Returns (mutations, bytes). Files rotate at ``file_limit`` like ``Wal`` does.
    """
    impl = fastest_backend()
    path.mkdir(parents=True, exist_ok=True)
    rnd = os.urandom(1 << 20)
    decree, written, index, start, size = 0, 0, 1, 0, 0
    f = open(path / f"log.{index}.{start}", "wb")
    try:
        while written < total_bytes:
            decree += 1
            o = (decree * 116) % (len(rnd) - 116)
            block = impl.encode_block([make_mutation(decree, rnd[o : o + 16], rnd[o + 16 : o + 116])])
            if size and size + len(block) > file_limit:
                f.close()
                index, start, size = index + 1, start + size, 0
                f = open(path / f"log.{index}.{start}", "wb")
            f.write(block)
            size += len(block)
            written += len(block)
    finally:
        f.close()
    return decree, written
