"""Inputs for the hot paths: WAL mutations and directories in the real log layout."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from .. import _backend


def fastest_backend() -> ModuleType:
    """For generating inputs (both backends write identical bytes)."""
    try:
        return _backend.load("rust")
    except ImportError:
        return _backend.load("python")


def available_backends() -> list[str]:
    out = []
    for name in ("rust", "python"):
        try:
            _backend.load(name)
        except ImportError:
            continue
        out.append(name)
    return out


def make_mutation(decree: int, hash_key: bytes, value: bytes) -> tuple:
    """One PUT as Table.set builds it: 16 B hash key, sort key b"s", no TTL."""
    return (decree, 1_700_000_000_000_000 + decree, 1, [(0, hash_key, b"s", value, 0)])


def mutations(n: int) -> list[tuple]:
    rnd = os.urandom(1 << 20)
    out = []
    for i in range(n):
        o = (i * 116) % (len(rnd) - 116)
        out.append(make_mutation(i + 1, rnd[o : o + 16], rnd[o + 16 : o + 116]))
    return out


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


def write_random_files(directory: Path, files: int, size: int) -> list[str]:
    """``files`` files of ``size`` random bytes (incompressible, like SST data), page cache warm."""
    directory.mkdir(parents=True, exist_ok=True)
    names = [f"{i:06d}.sst" for i in range(files)]
    chunk = os.urandom(min(size, 1 << 20))
    for n, name in enumerate(names):
        with open(directory / name, "wb") as f:
            left = size
            while left > 0:
                # a different prefix per file and chunk: no two files share content
                piece = (b"%08d%08d" % (n, left) + chunk)[: min(left, len(chunk))]
                f.write(piece)
                left -= len(piece)
    return names
