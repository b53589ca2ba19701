"""``serve --config-file serve.toml`` (issue #20 §3): every serve flag as a key, the command line
winning, unknown keys refused by name; docs/configuration.md generated from the code."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import ModuleType

import pegasus_fast as pf
import pytest
from conftest import PYTHON, child_env
from pegasus_fast.cli import config_doc, serve_file
from pegasus_fast.cli.exits import EXIT_USAGE
from pegasus_fast.cli.parser import given, parser, verb_parser
from pegasus_fast.cli.serve import _config
from pegasus_fast.config import Config

ROOT = Path(__file__).resolve().parent.parent


def _serve_parser():  # type: ignore[no-untyped-def]
    return verb_parser(parser(), "serve")


def _load(tmp_path: Path, text: str) -> dict[str, object]:
    path = tmp_path / "serve.toml"
    path.write_text(text)
    return serve_file.load(str(path), _serve_parser())


def test_the_committed_page_is_what_the_code_generates() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text() == config_doc.render()


def test_the_page_check_fails_on_a_stale_page(tmp_path: Path) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(config_doc.render().replace("wal_sync", "wal_synk"))
    assert config_doc.main(["--check", str(stale)]) == 1
    assert config_doc.main([str(stale)]) == 0
    assert config_doc.main(["--check", str(stale)]) == 0


def test_every_serve_flag_and_config_field_is_in_the_page() -> None:
    page = config_doc.render()
    for key in serve_file.serve_keys(_serve_parser()):
        if key != serve_file.CONFIG_TABLE:
            assert f"| `{key}` | `--{key}` |" in page
    for name in Config.__dataclass_fields__:
        assert f"| `[config] {name}` |" in page
        assert config_doc.field_docs()[name]  # every knob says what it does


def test_every_key_takes_its_flags_type(tmp_path: Path) -> None:
    values = _load(
        tmp_path,
        'listen = "127.0.0.1:0"\ninsecure = true\ntoken-file = "t"\nzk-auth-file = "a"\n'
        'cluster = "c"\nname = "n"\n[config]\nmax_tables = 3\nwal_sync = "none"\n',
    )
    assert values == {
        "listen": "127.0.0.1:0",
        "insecure": True,
        "token_file": "t",
        "zk_auth_file": "a",
        "cluster": "c",
        "name": "n",
        "config": {"max_tables": 3, "wal_sync": "none"},
    }
    assert _config([], values["config"]) == Config(max_tables=3, wal_sync="none")  # type: ignore[arg-type]
    # a --config item wins over the file's knob of that name
    assert _config(["max_tables=5"], {"max_tables": 3}).max_tables == 5


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('listen = "127.0.0.1:0"\nbogus = 1\n', "bogus"),
        ("connect = 'pegasus://x:1'\n", "connect"),  # a client's flag, not a server's
        ("config-file = 'other.toml'\n", "config-file"),
        ("insecure = 'yes'\n", "insecure"),
        ("listen = 34801\n", "listen"),
        ("listen = ['a']\n", "listen"),
        ("config = 'wal_sync=none'\n", "config"),
        ("[config]\nwal_synk = 'none'\n", "config.wal_synk"),
    ],
)
def test_a_bad_key_is_refused_by_name(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(serve_file.ConfigFileError) as info:
        _load(tmp_path, text)
    assert info.value.key == key
    assert info.value.path == str(tmp_path / "serve.toml")
    assert isinstance(info.value, pf.InvalidArgumentError)  # exit code 2


def test_a_file_that_is_no_toml_or_missing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(serve_file.ConfigFileError) as info:
        _load(tmp_path, "listen = \n")
    assert info.value.key is None
    with pytest.raises(serve_file.ConfigFileError) as info:
        serve_file.load(str(tmp_path / "absent.toml"), _serve_parser())
    assert info.value.key is None and info.value.path.endswith("absent.toml")


def test_given_is_what_the_command_line_typed() -> None:
    assert given(["--cluster", "d", "serve", "--config-file", "f", "--insecure"]) == {
        "cmd",
        "cluster",
        "config_file",
        "insecure",
    }
    assert given(["serve", "--cluster", "d", "--config", "a=1"]) == {"cmd", "cluster", "config"}


def test_the_example_serve_toml_is_valid() -> None:
    values = serve_file.load(str(ROOT / "deploy" / "serve.toml"), _serve_parser())
    assert values["cluster"] and values["listen"]
    _config([], values["config"])  # type: ignore[arg-type]


# -- a real server ----------------------------------------------------------------------------


def _wait_ready(proc: subprocess.Popen[str], ready: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None:
            raise AssertionError(
                f"serve exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
            )
        assert time.monotonic() < deadline, "serve did not become ready"
        time.sleep(0.02)
    return ready.read_text().strip()


def test_a_server_from_the_file_with_the_command_line_winning(
    default_backend_name: str, default_backend: ModuleType, tmp_path: Path
) -> None:
    cfg = tmp_path / "serve.toml"
    ready = tmp_path / "ready"
    # the file's listen address is refused by the command line's; its max_tables (1) by --config
    cfg.write_text(
        f'cluster = "{tmp_path / "c"}"\nname = "from-file"\nlisten = "127.0.0.1:1"\n'
        f'ready-file = "{ready}"\n[config]\nmax_tables = 1\nwal_sync = "always"\n'
    )
    proc = subprocess.Popen(
        [PYTHON, "-m", "pegasus_fast", "serve", "--config-file", str(cfg), "--listen", "127.0.0.1:0",
         "--config", "max_tables=2"],
        env=child_env(default_backend_name),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        url = _wait_ready(proc, ready)
        assert url.startswith("pegasus://127.0.0.1:") and not url.endswith(":1")
        with pf.connect(url, timeout=10) as rc:
            assert rc.info().name == "from-file"
            rc.create_table("a", partition_count=1)
            rc.create_table("b", partition_count=1)
            with pytest.raises(pf.ResourceExhaustedError):
                rc.create_table("c", partition_count=1)
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    with pf.Cluster.open(tmp_path / "c") as c:
        assert {i.name for i in c.list_tables()} == {"a", "b"}


def test_a_server_with_the_files_knob_when_none_on_the_command_line(
    default_backend_name: str, default_backend: ModuleType, tmp_path: Path
) -> None:
    cfg = tmp_path / "serve.toml"
    ready = tmp_path / "ready"
    cfg.write_text(
        f'cluster = "{tmp_path / "c"}"\nlisten = "127.0.0.1:0"\nready-file = "{ready}"\n'
        "[config]\nmax_tables = 1\n"
    )
    proc = subprocess.Popen(
        [PYTHON, "-m", "pegasus_fast", "serve", "--config-file", str(cfg)],
        env=child_env(default_backend_name),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with pf.connect(_wait_ready(proc, ready), timeout=10) as rc:
            rc.create_table("a", partition_count=1)
            with pytest.raises(pf.ResourceExhaustedError):
                rc.create_table("b", partition_count=1)
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_an_unknown_key_is_a_usage_error_and_nothing_starts(
    default_backend_name: str, default_backend: ModuleType, tmp_path: Path
) -> None:
    cfg = tmp_path / "serve.toml"
    cfg.write_text(f'cluster = "{tmp_path / "c"}"\nlisten = "127.0.0.1:0"\nlisten-port = 5\n')
    r = subprocess.run(
        [PYTHON, "-m", "pegasus_fast", "serve", "--config-file", str(cfg)],
        env=child_env(default_backend_name),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == EXIT_USAGE
    assert r.stderr.startswith("pegasus-fast: ConfigFileError: ") and "'listen-port'" in r.stderr
    assert not (tmp_path / "c").exists()


def test_check_config_prints_the_merged_settings_and_opens_nothing(
    default_backend_name: str, default_backend: ModuleType, tmp_path: Path
) -> None:
    cfg = tmp_path / "serve.toml"
    cfg.write_text(
        f'cluster = "{tmp_path / "c"}"\nlisten = "127.0.0.1:1"\nmetrics-listen = "127.0.0.1:0"\n'
        "[config]\nmax_tables = 1\nwal_sync = 'always'\n"
    )
    run = [PYTHON, "-m", "pegasus_fast", "serve", "--config-file", str(cfg), "--check-config"]
    r = subprocess.run(
        [*run, "--listen", "127.0.0.1:0", "--config", "max_tables=2"],
        env=child_env(default_backend_name),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "c").exists()  # nothing opened, nothing served
    # what it prints is a serve.toml of the settings a start would take, the command line's winning
    (tmp_path / "printed.toml").write_text(r.stdout)
    printed = serve_file.load(str(tmp_path / "printed.toml"), _serve_parser())
    assert printed["listen"] == "127.0.0.1:0" and printed["metrics_listen"] == "127.0.0.1:0"
    assert printed["config"] == {"max_tables": 2, "wal_sync": "always"}
    # a start would refuse a public address without TLS and a token: so does the check
    r = subprocess.run(
        [*run, "--listen", "0.0.0.0:0"],
        env=child_env(default_backend_name),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == EXIT_USAGE and r.stderr.startswith("pegasus-fast: InvalidArgumentError: ")
    r = subprocess.run(
        [*run, "--token-file", str(tmp_path / "absent")],
        env=child_env(default_backend_name),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == EXIT_USAGE
    assert not (tmp_path / "c").exists()
