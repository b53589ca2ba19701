"""The pegasus-fast command: raw bytes from argv, and one error line instead of a traceback."""

from __future__ import annotations

import builtins
import io
import os
import subprocess
from pathlib import Path
from typing import Any

import pegasus_fast as pf
import pytest
from conftest import PYTHON, child_env
from pegasus_fast.cli.exits import EXIT_ERROR, EXIT_NOT_FOUND, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE


def cli(
    default_backend_name: str, cluster: Path, *args: str | bytes, debug: bool = False
) -> subprocess.CompletedProcess:
    env = child_env(default_backend_name)
    env.pop("PEGASUS_FAST_DEBUG", None)
    if debug:
        env["PEGASUS_FAST_DEBUG"] = "1"
    argv = [os.fsencode(a) for a in (PYTHON, "-m", "pegasus_fast", "--cluster", str(cluster), *args)]
    return subprocess.run(argv, env=env, capture_output=True, timeout=120)


def assert_one_error_line(done: subprocess.CompletedProcess, error: type, code: int) -> None:
    """One line, ``pegasus-fast: <ErrorClass>: message``, and the exit code of its kind."""
    assert done.returncode == code, (done.returncode, done.stderr)
    lines = done.stderr.decode("utf-8", "replace").splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pegasus-fast: {error.__name__}: "), lines
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
    ("args", "error", "code"),
    [
        (("get", "missing", "h", "s"), pf.TableNotFoundError, EXIT_NOT_FOUND),
        (("create", b"bad\xff"), pf.InvalidArgumentError, EXIT_USAGE),  # a name that is not text
        (("create", "t", "-p", "0"), pf.InvalidArgumentError, EXIT_USAGE),
        (("set", "t", "h", "s", "v", "--ttl", "-1"), pf.InvalidArgumentError, EXIT_USAGE),
        (("multi_set", "t", "h", "no-equals"), pf.InvalidArgumentError, EXIT_USAGE),
        (("pause_dup", "t", "9"), pf.DuplicationNotFoundError, EXIT_NOT_FOUND),
        (("balance",), pf.InvalidArgumentError, EXIT_USAGE),  # not a multi-node cluster
    ],
    ids=["missing-table", "non-utf8-name", "bad-partitions", "bad-ttl", "bad-pair", "no-dup", "not-multi"],
)
def test_expected_failures_print_one_line(
    default_backend_name: str, cluster_dir: Path, args: tuple, error: type, code: int
) -> None:
    assert cli(default_backend_name, cluster_dir, "create", "t", "-p", "1").returncode == 0
    assert_one_error_line(cli(default_backend_name, cluster_dir, *args), error, code)


def test_an_io_error_prints_one_line(default_backend_name: str, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_bytes(b"")
    done = cli(default_backend_name, not_a_dir / "c", "ls")
    name = done.stderr.decode().split(":")[1].strip()
    assert issubclass(getattr(builtins, name), OSError), done.stderr
    assert_one_error_line(done, getattr(builtins, name), EXIT_ERROR)


def test_a_usage_error_is_in_the_same_format(default_backend_name: str, cluster_dir: Path) -> None:
    done = cli(default_backend_name, cluster_dir, "get", "t")  # hash_key and sort_key missing
    assert done.returncode == EXIT_USAGE
    lines = done.stderr.decode().splitlines()
    assert lines[-1].startswith("pegasus-fast: UsageError: ") and lines[0].startswith("usage:"), lines


def test_exit_codes_of_not_found_and_failed_checks(default_backend_name: str, cluster_dir: Path) -> None:
    """0 ok; 1 a missing key, exist false, a check that failed (the table of --help)."""

    def code(*args: str) -> int:
        done = cli(default_backend_name, cluster_dir, *args)
        assert b"Traceback" not in done.stderr
        return done.returncode

    assert code("create", "t", "-p", "2") == EXIT_OK
    assert code("set", "t", "h", "a", "1") == EXIT_OK
    assert code("get", "t", "h", "a") == EXIT_OK
    assert code("get", "t", "h", "missing") == EXIT_NOT_FOUND
    assert code("exist", "t", "h", "a") == EXIT_OK
    assert code("exist", "t", "h", "missing") == EXIT_NOT_FOUND
    assert code("ttl", "t", "h", "missing") == EXIT_NOT_FOUND
    assert code("check_and_set", "t", "h", "a", "value_not_exist", "", "b", "2") == EXIT_NOT_FOUND
    assert code("check_and_set", "t", "h", "a", "value_exist", "", "b", "2") == EXIT_OK
    assert code("check_and_mutate", "t", "h", "a", "value_not_exist", "--del", "b") == EXIT_NOT_FOUND
    assert code("get", "t", "h", "b") == EXIT_OK  # the passed check did set it; the failed ones nothing


def test_the_global_options_go_after_the_verb_too(default_backend_name: str, tmp_path: Path) -> None:
    env = child_env(default_backend_name)
    c = str(tmp_path / "c")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [PYTHON, "-m", "pegasus_fast", *args], env=env, capture_output=True, timeout=120
        )

    assert run("create", "t", "-p", "1", "--cluster", c, "--name", "after").returncode == 0
    assert run("set", "t", "h", "s", "v", "--cluster", c).returncode == 0
    with pf.Cluster.open(c) as cluster:
        assert cluster.name == "after"
        server = pf.serve(cluster)
        try:
            done = run("get", "t", "h", "s", "--connect", server.url)
            assert done.returncode == 0 and done.stdout.strip() == b"v", done.stderr
            done = run("--connect", server.url, "get", "t", "h", "s")  # before it, as ever
            assert done.returncode == 0 and done.stdout.strip() == b"v", done.stderr
        finally:
            server.stop()


def test_a_reader_that_goes_away_early_is_no_error(default_backend_name: str, cluster_dir: Path) -> None:
    """``pegasus-fast full_scan t | head -1``: the rest of the output has nowhere to go; the
    command ends quietly with 0, not with a BrokenPipeError."""
    with pf.Cluster.open(cluster_dir) as c:
        t = c.create_table("t", partition_count=2)
        for i in range(2000):
            t.multi_set(b"h%05d" % i, {b"s%02d" % j: b"v" * 40 for j in range(10)})  # ~1.5 MB printed
    env = child_env(default_backend_name)
    env.pop("PEGASUS_FAST_DEBUG", None)
    argv = [PYTHON, "-m", "pegasus_fast", "--cluster", str(cluster_dir), "full_scan", "t"]
    head = [PYTHON, "-c", "import sys; sys.stdout.write(sys.stdin.readline())"]
    r, w = os.pipe()
    scan = subprocess.Popen(argv, env=env, stdout=w, stderr=subprocess.PIPE)
    reader = subprocess.Popen(head, stdin=r, stdout=subprocess.PIPE)
    os.close(r)
    os.close(w)
    first, _ = reader.communicate(timeout=120)
    _, err = scan.communicate(timeout=120)
    assert first.split() == [b"hash_key", b"sort_key", b"value"]
    assert err == b"" and scan.returncode == EXIT_OK, err


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


def test_every_verb_explains_itself_and_each_argument() -> None:
    """``pegasus-fast VERB --help``: what the verb does, and a help text for every argument (its
    default shown where it has one); the exit codes in ``pegasus-fast --help``."""
    import argparse

    from pegasus_fast.cli.parser import parser
    from pegasus_fast.cli.verbs import VERBS

    ap = parser()
    sub = next(a for a in ap._actions if a.dest == "cmd")
    for verb in VERBS:
        p = sub.choices[verb]
        assert p.description and len(p.description) > 10, verb
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help.strip(), (verb, action.dest)
        text = p.format_help()
        for action in p._actions:
            if action.option_strings and action.default not in (None, False, [], "", argparse.SUPPRESS):
                assert f"(default: {action.default})" in text, (verb, action.dest)
    epilog = ap.format_help()
    for code in (EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_ERROR):
        assert f"\n  {code}  " in epilog


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
    def run(*args: str, code: int = EXIT_OK) -> list[str]:
        env = child_env(name)
        argv = [PYTHON, "-m", "pegasus_fast", *target, *args]
        done = subprocess.run(argv, env=env, capture_output=True, timeout=120)
        assert done.returncode == code, done.stderr
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
            assert run("exist", "t", "h", "zz", code=EXIT_NOT_FOUND) == ["False"]
            assert run("ttl", "t", "h", "a") == ["no TTL"]
            assert 990 <= int(run("ttl", "t", "h", "t")[0]) <= 1000
            assert run("ttl", "t", "h", "zz", code=EXIT_NOT_FOUND) == ["(not found)"]
            assert run("sortkey_count", "t", "h") == ["5"]
            assert run("count", "t") == ["6"]  # count still counts the whole table
            assert run("incr", "t", "h", "n", "5") == ["5"]
            assert run("incr", "t", "h", "n", "--", "-7") == ["-2"]
            assert run("check_and_set", "t", "h", "n", "value_int_less", "0", "n", "10", "-r")[:1] == [
                "set succeed"
            ]
            out = run(
                "check_and_set", "t", "h", "n", "value_not_exist", "", "n", "11", "-r", code=EXIT_NOT_FOUND
            )
            assert out[0] == "set failed" and out[-1].split() == ["True", "10"]
            out = run(
                "check_and_mutate", "t", "h", "n", "value_bytes_equal", "10", "--set", "x=X", "--del", "a"
            )
            assert out == ["mutate succeed"]
            assert run(
                "check_and_mutate", "t", "h", "n", "value_not_exist", "--del", "b", code=EXIT_NOT_FOUND
            ) == ["mutate failed"]
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
    assert_one_error_line(done, pf.InvalidArgumentError, EXIT_USAGE)
