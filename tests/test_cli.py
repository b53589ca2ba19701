"""The pegasus-fast command: raw bytes from argv, and one error line instead of a traceback."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path
from typing import Any

import pegasus_fast as pf
import pytest
from conftest import PYTHON, child_env


def cli(
    default_backend_name: str, cluster: Path, *args: str | bytes, debug: bool = False
) -> subprocess.CompletedProcess:
    env = child_env(default_backend_name)
    env.pop("PEGASUS_FAST_DEBUG", None)
    if debug:
        env["PEGASUS_FAST_DEBUG"] = "1"
    argv = [os.fsencode(a) for a in (PYTHON, "-m", "pegasus_fast", "--cluster", str(cluster), *args)]
    return subprocess.run(argv, env=env, capture_output=True, timeout=120)


def assert_one_error_line(done: subprocess.CompletedProcess) -> None:
    assert done.returncode != 0
    lines = done.stderr.decode("utf-8", "replace").splitlines()
    assert len(lines) == 1 and lines[0].startswith("pegasus-fast: error: "), lines
    assert b"Traceback" not in done.stderr


def test_non_utf8_arguments_are_the_bytes_typed(default_backend_name: str, cluster_dir: Path) -> None:
    assert cli(default_backend_name, cluster_dir, "create", "t", "-p", "2").returncode == 0
    done = cli(default_backend_name, cluster_dir, "set", "t", b"h\xff", b"s\xfe", b"v\xfd")
    assert done.returncode == 0, done.stderr
    done = cli(default_backend_name, cluster_dir, "multi_set", "t", b"m\xff", b"a\xfe=1", "b=2")
    assert done.returncode == 0, done.stderr
    with pf.Cluster.open(cluster_dir) as c:
        t = c.table("t")
        assert t.get(b"h\xff", b"s\xfe") == b"v\xfd"
        assert t.multi_get(b"m\xff") == {b"a\xfe": b"1", b"b": b"2"}
    done = cli(default_backend_name, cluster_dir, "get", "t", b"h\xff", b"s\xfe")
    assert done.returncode == 0 and done.stdout.strip() == b"v\xfd".hex().encode()
    done = cli(default_backend_name, cluster_dir, "del", "t", b"h\xff", b"s\xfe")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("get", "missing", "h", "s"),  # TableNotFoundError
        ("create", b"bad\xff"),  # a table name that is not text
        ("create", "t", "-p", "0"),  # InvalidArgumentError
        ("set", "t", "h", "s", "v", "--ttl", "-1"),
    ],
    ids=["missing-table", "non-utf8-name", "bad-partitions", "bad-ttl"],
)
def test_expected_failures_print_one_line(default_backend_name: str, cluster_dir: Path, args: tuple) -> None:
    if args[0] == "set":
        assert cli(default_backend_name, cluster_dir, "create", "t", "-p", "1").returncode == 0
    assert_one_error_line(cli(default_backend_name, cluster_dir, *args))


def test_an_io_error_prints_one_line(default_backend_name: str, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_bytes(b"")
    assert_one_error_line(cli(default_backend_name, not_a_dir / "c", "ls"))


def test_debug_keeps_the_traceback(default_backend_name: str, cluster_dir: Path) -> None:
    done = cli(default_backend_name, cluster_dir, "get", "missing", "h", "s", debug=True)
    assert done.returncode != 0
    assert b"Traceback" in done.stderr and b"TableNotFoundError" in done.stderr


def test_the_demo_runs_end_to_end(default_backend: Any) -> None:
    """The README's first command: the #2069 scenario, adaptive against the legacy gating."""
    from pegasus_fast.cli import demo

    # 0 only when every follower partition serves and both records are read back, both runs
    assert demo.main(compare_legacy=True, legacy_max_interval_seconds=0.5, out=io.StringIO()) == 0


def test_duplication_verbs(default_backend_name: str, tmp_path: Path) -> None:
    """add_dup, query_dup (and -d), pause_dup, start_dup, remove_dup, app on the follower."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    for args in (("create", "t", "-p", "4"), ("set", "t", "k", "s", "v")):
        assert cli(default_backend_name, src, *args).returncode == 0
    for args in (
        ("add_dup", "t", str(dst)),
        ("query_dup", "t"),
        ("query_dup", "t", "-d"),
        ("pause_dup", "t", "1"),
        ("start_dup", "t", "1"),
    ):
        done = cli(default_backend_name, src, *args)
        assert done.returncode == 0, (args, done.stderr)
        assert b"Traceback" not in done.stderr
    done = cli(default_backend_name, dst, "get", "t", "k", "s")
    assert done.returncode == 0 and done.stdout.strip() == b"v", done
    assert cli(default_backend_name, dst, "app", "t").returncode == 0
    assert cli(default_backend_name, src, "remove_dup", "t", "1").returncode == 0


def test_every_verb_has_a_one_line_help_and_a_function() -> None:
    from pegasus_fast.cli.parser import parser
    from pegasus_fast.cli.verbs import VERBS

    sub = next(a for a in parser()._actions if a.dest == "cmd")
    helps = {c.dest: c.help for c in sub._choices_actions}
    assert set(helps) == set(sub.choices)
    for verb, text in helps.items():
        assert text and "\n" not in text, verb
    # demo, serve and bench open no cluster: main.run runs them itself
    assert set(VERBS) == set(sub.choices) - {"demo", "serve", "bench"}


def test_add_dup_of_a_large_table_shows_each_partitions_copy(
    default_backend_name: str, tmp_path: Path
) -> None:
    """Partitions past small_partition_max_bytes copy checkpoint files: each gets a bar with
    its bytes, rate and ETA, from Duplication.progress()."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    rnd = os.urandom(1 << 20)
    with pf.Cluster.open(src, name="source") as c:
        t = c.create_table("t", partition_count=2)
        for i in range(120):  # ~12 MB of incompressible values: both partitions are large
            t.multi_set(b"h%05d" % i, {b"s%03d" % j: rnd[j * 1000 : (j + 1) * 1000] for j in range(100)})
    done = cli(default_backend_name, src, "add_dup", "t", str(dst))
    assert done.returncode == 0, done.stderr
    err = done.stderr.decode()
    for pidx in (0, 1):
        line = next(ln for ln in err.splitlines() if ln.startswith(f"partition {pidx}"))
        assert "MB" in line and "/s" in line, line
    # the figures the bars come from, through the API: after the copy, all of it, per partition
    with pf.Cluster.open(src) as c, pf.Cluster.open(tmp_path / "dst2", name="other") as other:
        dup = c.add_duplication("t", other)
        dup.wait_for(pf.DupStatus.LOG, timeout=60)
        for p in dup.progress():
            assert p.checkpoint_kind == "large"
            assert p.copy_total_bytes > 0 and p.copied_bytes == p.copy_total_bytes, p
            assert p.copy_seconds > 0


# -- the data API's verbs (issue #18) ---------------------------------------------------------


def _data_cli(name: str, target: list[str]) -> Any:
    def run(*args: str) -> list[str]:
        env = child_env(name)
        argv = [PYTHON, "-m", "pegasus_fast", *target, *args]
        done = subprocess.run(argv, env=env, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.decode().splitlines()

    return run


@pytest.mark.parametrize("how", ["cluster", "connect"])
def test_the_data_api_verbs(default_backend_name: str, tmp_path: Path, how: str) -> None:
    """Each verb of the data API, on a cluster directory and on a served cluster alike."""
    with pf.Cluster.open(tmp_path / "c", name="c") as c:
        t = c.create_table("t", partition_count=2)
        t.multi_set(b"h", {b"a": b"1", b"b": b"2", b"c": b"3", b"ab": b"4"})
        t.set(b"h", b"t", b"v", ttl_seconds=1000)
        t.set(b"g", b"b", b"other")
        if how == "connect":
            server = pf.serve(c)
            target = ["--connect", server.url]
        else:
            c.close()
            target = ["--cluster", str(tmp_path / "c")]
        try:
            run = _data_cli(default_backend_name, target)
            assert run("exist", "t", "h", "a") == ["True"]
            assert run("exist", "t", "h", "zz") == ["False"]
            assert run("ttl", "t", "h", "a") == ["no TTL"]
            assert 990 <= int(run("ttl", "t", "h", "t")[0]) <= 1000
            assert run("ttl", "t", "h", "zz") == ["(not found)"]
            assert run("sortkey_count", "t", "h") == ["5"]
            assert run("count", "t") == ["6"]  # count still counts the whole table
            assert run("incr", "t", "h", "n", "5") == ["5"]
            assert run("incr", "t", "h", "n", "--", "-7") == ["-2"]
            assert run("check_and_set", "t", "h", "n", "value_int_less", "0", "n", "10", "-r")[:1] == [
                "set succeed"
            ]
            out = run("check_and_set", "t", "h", "n", "value_not_exist", "", "n", "11", "-r")
            assert out[0] == "set failed" and out[-1].split() == ["True", "10"]
            out = run(
                "check_and_mutate", "t", "h", "n", "value_bytes_equal", "10", "--set", "x=X", "--del", "a"
            )
            assert out == ["mutate succeed"]
            assert run("check_and_mutate", "t", "h", "n", "value_not_exist", "--del", "b") == [
                "mutate failed"
            ]
            out = run("multi_get_range", "t", "h", "ab", "c", "-b", "--reverse", "--max-count", "2")
            assert [line.split() for line in out[2:]] == [
                ["c", "3"],
                ["b", "2"],
                ["2", "records", "(incomplete:", "more", "in", "the", "range)"],
            ]
            out = run("multi_get_range", "t", "h", "-s", "prefix", "-y", "a", "--no-value")
            assert [line.split() for line in out[2:]] == [["ab"], ["1", "records"]]
            assert run("multi_get_sortkeys", "t", "h")[2:] == ["ab", "b", "c", "n", "t", "x", "6 sort keys"]
            out = run("hash_scan", "t", "h", "b", "n", "-b", "-i")
            assert [line.split() for line in out[2:]] == [
                ["h", "b"],
                ["h", "c"],
                ["h", "n"],
                ["3", "records"],
            ]
            out = run("full_scan", "t", "-s", "postfix", "-y", "b")
            assert sorted(line.split() for line in out[2:-1]) == [
                ["g", "b", "other"],
                ["h", "ab", "4"],
                ["h", "b", "2"],
            ]
            assert run("full_scan", "t", "-x", "prefix", "-z", "g", "-n", "5")[-1] == "1 records"
        finally:
            if how == "connect":
                server.stop()
    done = cli(default_backend_name, tmp_path / "c", "incr", "t", "h", "b", "1")  # "2" is an int
    assert done.returncode == 0 and done.stdout.strip() == b"3"
    done = cli(default_backend_name, tmp_path / "c", "incr", "t", "h", "x")  # "X" is not
    assert_one_error_line(done)
