"""Back up a table of an open cluster, and restore a backup as a new table
(storage/backup_set.py has the format and its checks; docs/operations.md the procedure).

A backup is one fresh checkpoint per partition, copied and verified against the manifest each
checkpoint was published with. A restore verifies the whole backup first, so a damaged one is
refused before anything is created; it then makes a table of the same partition count and envs
and installs each partition's files (copied next to it, each hashed again as it is written)
in place of its empty store. A failure part-way drops the new table again.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from .. import fileio
from ..errors import BackupError, ChecksumMismatchError, PartitionUnavailableError, TableExistsError
from ..storage import backup_set
from ..storage.backup_set import BackupManifest
from ..storage.state import PartitionState

if TYPE_CHECKING:
    from .cluster import Cluster
    from .table import Table

#: where a partition's files are copied before they replace its store
RESTORE_STAGING = "restore.staging"


def backup_table(cluster: Cluster, name: str, directory: str) -> BackupManifest:
    """Checkpoint every partition of table ``name`` now and copy the checkpoints, verified,
    into ``directory`` (new or empty) with their manifest. Every partition must be serving
    (PartitionUnavailableError: a follower still learning, say)."""
    table = cluster.table(name)
    info = cluster.table_info(name)
    for p in table.partitions:
        # a follower partition still learning holds part of its data, or none: never a backup
        if p.state != PartitionState.SERVING:
            raise PartitionUnavailableError(name, p.pidx, p.state.value)
    infos = table.checkpoint()
    return backup_set.create(
        os.fspath(directory),
        name,
        table.partition_count,
        dict(info.envs),
        cluster.name,
        [(i.pidx, i.decree, i.path, i.manifest) for i in infos],
    )


def restore_table(cluster: Cluster, directory: str, name: str) -> Table:
    """The backup in ``directory`` as a new table ``name`` of ``cluster``, holding exactly the
    records it held. BackupError (naming the file) when the backup is damaged, TableExistsError
    when ``name`` is taken: either way nothing was created."""
    directory = os.fspath(directory)
    manifest = backup_set.verify(directory)
    if cluster.has_table(name):
        raise TableExistsError(name)
    table = cluster.create_table(name, partition_count=manifest.partition_count, envs=manifest.envs)
    try:
        for part in manifest.partitions:
            p = table.partitions[part.pidx]
            staging = os.path.join(p.path, RESTORE_STAGING)
            fileio.rmtree(staging, ignore_errors=True)
            fileio.makedirs(staging, exist_ok=False)
            try:
                try:
                    backup_set.copy_files(os.path.join(directory, str(part.pidx)), staging, part.files)
                except ChecksumMismatchError as exc:  # changed since it was verified
                    rel = f"{part.pidx}/{os.path.basename(exc.path)}"
                    raise BackupError(directory, rel, "hash", "changed while it was restored") from None
                p.install_rdb(staging)
            finally:
                fileio.rmtree(staging, ignore_errors=True)
            if p.last_committed != part.decree:
                raise BackupError(
                    directory,
                    str(part.pidx),
                    "decree",
                    f"its data holds decree {p.last_committed}, the manifest says {part.decree}",
                )
    except BaseException:
        with contextlib.suppress(Exception):
            cluster.drop_table(name)
        raise
    return table


__all__ = ["RESTORE_STAGING", "backup_table", "restore_table"]
