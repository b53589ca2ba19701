"""``backup TABLE DIR`` and ``restore DIR TABLE`` (docs/operations.md, "Backup and restore"):
over an embedded cluster (``--cluster``) DIR is a path and the engine's backup.py does the work;
over a served one (``--connect pegasus://``) DIR is a name under the server's --backup-dir, and
the server does it. A multi-node cluster has no backup yet."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..engine.backup import backup_table, restore_table
from ..engine.cluster import Cluster
from ..errors import InvalidArgumentError
from .format import table


def _check(c: Any, args: argparse.Namespace) -> None:
    if not isinstance(c, Cluster) and not hasattr(c, "backup_table"):
        raise InvalidArgumentError(
            f"{args.cmd} runs on one cluster: --cluster DIR, or --connect pegasus://HOST:PORT of a "
            "server with --backup-dir; a multi-node cluster has no backup yet"
        )


def backup(c: Any, args: argparse.Namespace) -> None:
    _check(c, args)
    start = time.perf_counter()
    if isinstance(c, Cluster):
        m = backup_table(c, args.table, args.dir).summary()
    else:
        m = c.backup_table(args.table, args.dir)
    ms = (time.perf_counter() - start) * 1000
    print(
        f"backed up {m.table} into {args.dir}: {m.partition_count} partitions, {m.file_count} files, "
        f"{m.size_bytes} bytes in {ms:.1f} ms"
    )
    print(table(["pidx", "decree", "files", "bytes"], list(m.partitions)))


def restore(c: Any, args: argparse.Namespace) -> None:
    _check(c, args)
    start = time.perf_counter()
    t = (
        restore_table(c, args.dir, args.table)
        if isinstance(c, Cluster)
        else c.restore_table(args.dir, args.table)
    )
    ms = (time.perf_counter() - start) * 1000
    print(
        f"restored {args.dir} as table {t.name} (app_id {t.app_id}, {t.partition_count} partitions) "
        f"in {ms:.1f} ms"
    )


def add_parsers(verb: Any) -> None:
    p = verb(
        "backup",
        "back up a table: a fresh checkpoint of every partition, copied and verified, with its "
        "manifest (per-file size and BLAKE3)",
        "DIR must be new or empty. Writes go on meanwhile; the backup holds each partition as of "
        "its checkpoint.",
    )
    p.add_argument("table", help="the table to back up")
    p.add_argument(
        "dir",
        help="the backup directory (made if missing); with --connect, a name under the server's --backup-dir",
    )
    p = verb(
        "restore",
        "restore a backup as a new table of this cluster (same partition count, envs and records)",
        "The whole backup is verified first: a damaged one (a file missing, changed or truncated, "
        "a manifest naming paths outside it) is refused with the file named, and nothing is created.",
    )
    p.add_argument("dir", help="the backup directory; with --connect, a name under the server's --backup-dir")
    p.add_argument("table", help="the new table's name (must not exist)")


BACKUP_VERBS = {"backup": backup, "restore": restore}

__all__ = ["BACKUP_VERBS", "add_parsers"]
