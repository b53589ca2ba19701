"""The example systemd unit (deploy/pegasus-fast.service): `systemd-analyze verify` accepts it
without a warning (.ci/check-systemd, the step .ci/run runs), and it keeps its hardening."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest
from pegasus_fast.storage.open_slots import FD_RESERVE, FDS_PER_OPEN_PARTITION

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "pegasus-fast.service"
CHECK = ROOT / ".ci" / "check-systemd"

needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here"
)


def _service() -> configparser.SectionProxy:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text())
    return unit["Service"]


def _check(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHECK), str(unit)], capture_output=True, text=True, timeout=60)


@needs_systemd
def test_systemd_analyze_verify_accepts_the_unit() -> None:
    r = _check(UNIT)
    assert r.returncode == 0, r.stdout + r.stderr


@needs_systemd
@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("Restart=on-failure", "Restart=sometimes"),
        ("NoNewPrivileges=yes", "NoNewPrivileges=yes\nNoSuchKey=1"),
    ],
)
def test_the_check_fails_a_unit_with_a_warning(tmp_path: Path, old: str, new: str) -> None:
    bad = tmp_path / "pegasus-fast.service"
    bad.write_text(UNIT.read_text().replace(old, new))
    assert _check(bad).returncode == 1


def test_the_unit_is_hardened() -> None:
    s = _service()
    assert s["User"] and s["User"] != "root"
    assert s["NoNewPrivileges"] == "yes" and s["ProtectSystem"] == "strict"
    assert s["Restart"] == "on-failure" and s["RestartPreventExitStatus"] == "2"  # usage: no loop
    assert "--config-file" in s["ExecStart"].split()
    # room for partitions under the fd bound the server checks at start (storage/open_slots.py)
    assert (int(s["LimitNOFILE"]) - FD_RESERVE) // FDS_PER_OPEN_PARTITION >= 1024
