"""Table envs (Pegasus app envs): kept across reopen, listed, validated, shown by the CLI."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pegasus_fast as pf
import pytest
from conftest import PYTHON, child_env
from pegasus_fast.engine.table import TableInfo

OpenCluster = Callable[..., pf.Cluster]
ENVS = {"default_ttl": "86400", "rocksdb.usage_scenario": "bulk_load", "note": "héllo, wörld = 1"}


def test_envs_kept_across_reopen(open_cluster: OpenCluster, cluster_dir: Path) -> None:
    c = open_cluster(cluster_dir)
    given = dict(ENVS)
    c.create_table("with", partition_count=2, envs=given)
    c.create_table("without", partition_count=1)
    given["default_ttl"] = "1"  # the table keeps what it was given, not the caller's dict
    infos = c.list_tables()
    assert [(i.name, i.envs) for i in infos] == [("with", ENVS), ("without", {})]
    c.close()
    c2 = open_cluster(cluster_dir)
    assert c2.list_tables() == infos
    assert c2.table_info("with").envs == ENVS


def test_table_info_without_envs_still_builds() -> None:
    info = TableInfo(1, "t", 4, "AVAILABLE", 0.0)
    assert info.envs == {}


BAD_ENVS: list[tuple[str, object, type[Exception]]] = [
    ("list", [("k", "v")], pf.InvalidTypeError),
    ("str", "k=v", pf.InvalidTypeError),
    ("int value", {"k": 1}, pf.InvalidTypeError),
    ("bytes value", {"k": b"v"}, pf.InvalidTypeError),
    ("None value", {"k": None}, pf.InvalidTypeError),
    ("int key", {1: "v"}, pf.InvalidTypeError),
    ("bytes key", {b"k": "v"}, pf.InvalidTypeError),
    ("nested", {"k": {"a": "b"}}, pf.InvalidTypeError),
    ("empty key", {"": "v"}, pf.InvalidArgumentError),
    ("surrogate value", {"k": "\udc80"}, pf.InvalidArgumentError),
    ("surrogate key", {"k\ud800": "v"}, pf.InvalidArgumentError),
]


@pytest.mark.parametrize(("envs", "error"), [b[1:] for b in BAD_ENVS], ids=[b[0] for b in BAD_ENVS])
def test_bad_envs_refused_and_nothing_changes(
    open_cluster: OpenCluster, cluster_dir: Path, envs: object, error: type[Exception]
) -> None:
    c = open_cluster(cluster_dir)
    c.create_table("kept", partition_count=1, envs={"a": "b"})
    before = c.list_tables()
    with pytest.raises(error):
        c.create_table("t", partition_count=2, envs=envs)  # type: ignore[arg-type]
    assert c.list_tables() == before
    assert "t" not in [i.name for i in c.list_tables()]
    c.close()
    c2 = open_cluster(cluster_dir)  # the journal still reads back
    assert c2.list_tables() == before
    c2.create_table("t", partition_count=2)


def cli(default_backend_name: str, cluster: Path, *args: str) -> str:
    out = subprocess.run(
        [PYTHON, "-m", "pegasus_fast", "--cluster", str(cluster), *args],
        env=child_env(default_backend_name),
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
    )
    return out.stdout


def test_cli_creates_and_shows_envs(default_backend_name: str, cluster_dir: Path) -> None:
    cli(
        default_backend_name,
        cluster_dir,
        "create",
        "t",
        "-p",
        "2",
        "-e",
        "default_ttl=86400,a=b",
        "-e",
        "c=d=e",
    )
    cli(default_backend_name, cluster_dir, "create", "plain", "-p", "1")
    with pf.Cluster.open(cluster_dir) as c:
        assert c.table_info("t").envs == {"default_ttl": "86400", "a": "b", "c": "d=e"}
    shown = "a=b, c=d=e, default_ttl=86400"
    assert shown not in cli(default_backend_name, cluster_dir, "ls")
    lines = cli(default_backend_name, cluster_dir, "ls", "-d").splitlines()
    assert lines[0].split()[-1] == "envs"
    row = {line.split()[1]: line for line in lines[2:]}
    assert row["t"].endswith(shown)
    assert row["plain"].split()[-1] == "-"
    assert f"envs: {shown}" in cli(default_backend_name, cluster_dir, "app", "t").splitlines()
    assert "envs: -" in cli(default_backend_name, cluster_dir, "app", "plain").splitlines()
