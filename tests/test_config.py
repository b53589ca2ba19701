"""Every knob of Config is bounded when it is made: nonsense never reaches a running cluster."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pegasus_fast as pf
import pytest

OpenCluster = Callable[..., pf.Cluster]


@pytest.mark.parametrize(
    "kwargs",
    [
        # each would keep a core busy in the background
        {"gc_interval_ms": 0},
        {"checkpoint_interval_seconds": 0},
        {"checkpoint_interval_seconds": 0.0},
        {"checkpoint_interval_seconds": math.nan},
        {"checkpoint_interval_seconds": math.inf},
        {"trigger_checkpoint_retry_interval_ms": 0},
        # checkpoint() would delete its own result
        {"checkpoint_reserve_min_count": 0, "checkpoint_reserve_time_seconds": 0},
        {"checkpoint_reserve_min_count": 0},
        # no upper bound before
        {"background_workers": 65},
        {"background_workers": 10**6},
        {"log_private_file_size_mb": 1 << 20},
        {"duplicate_log_batch_bytes": (1 << 30) + 1},
        {"rocksdb_write_buffer_size": 0},
        # NaN slipped through every comparison
        {"checkpoint_max_interval_hours": math.nan},
        {"checkpoint_max_interval_hours": math.inf},
        {"checkpoint_max_interval_hours": 0.0},
        {"legacy_forced_checkpoint_delay_seconds": math.nan},
        {"legacy_forced_checkpoint_delay_seconds": -math.inf},
        # a lease or session that ends before it starts, or never
        {"fence_lease_seconds": 0},
        {"fence_lease_seconds": math.inf},
        {"zk_session_timeout_seconds": 0.1},
        {"zk_session_timeout_seconds": 601},
    ],
)
def test_config_refuses_nonsense(kwargs: dict) -> None:
    with pytest.raises(pf.InvalidArgumentError):
        pf.Config(**kwargs)


def test_config_bounds_are_inclusive() -> None:
    c = pf.Config(
        background_workers=64,
        gc_interval_ms=10,
        checkpoint_interval_seconds=0.01,
        checkpoint_reserve_min_count=1,
        checkpoint_reserve_time_seconds=0,
        trigger_checkpoint_retry_interval_ms=1,
        duplicate_log_batch_bytes=1 << 30,
        small_partition_max_bytes=0,
        fence_lease_seconds=0.1,
        zk_session_timeout_seconds=600,
    )
    assert c.background_workers == 64


@pytest.mark.parametrize("cluster_id", [1.5, 2.0, True, "3"])
def test_cluster_id_must_be_an_int(
    open_cluster_once: OpenCluster, cluster_dir: Path, cluster_id: object
) -> None:
    with pytest.raises(pf.InvalidTypeError):
        open_cluster_once(cluster_dir, cluster_id=cluster_id)
    # nothing was left locked: a valid open goes through
    c = open_cluster_once(cluster_dir, cluster_id=3)
    c.create_table("t", partition_count=1).set(b"k", b"", b"v")
    assert c.cluster_id == 3
