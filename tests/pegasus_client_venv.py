"""A virtualenv holding the real Pegasus Python client, ``pypegasus3`` (from PyPI), kept apart
from the test environment (it pins an old Twisted and thrift) and cached between runs.

``client_python()`` returns its interpreter, making it on first use; when it cannot be made
the calling test is skipped with the reason, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = "pypegasus3==0.0.1.1"
VENV = Path(
    os.environ.get("PEGASUS_FAST_PYPEGASUS_VENV")
    or Path.home() / ".cache" / "pegasus-fast" / "pypegasus-venv"
)
#: the driver script the tests run in that venv
DRIVER = Path(__file__).parent / "pypegasus_driver.py"
_MARK = VENV / ".pegasus-fast-ready"


def _python() -> Path:
    return VENV / "bin" / "python"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the pypegasus3 client venv is required under CI: {reason}")
    pytest.skip(f"pypegasus3 client venv unavailable: {reason}")


def client_python() -> str:
    if _MARK.exists() and _python().exists():
        return str(_python())
    try:
        if VENV.exists():
            shutil.rmtree(VENV)
        VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=300
        )
        subprocess.run(
            [str(_python()), "-m", "pip", "install", "-q", PACKAGE],
            check=True,
            capture_output=True,
            timeout=600,
        )
        subprocess.run(
            [str(_python()), "-W", "ignore", "-c", "import pypegasus.pgclient"],
            check=True,
            capture_output=True,
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        _unavailable(f"{exc}: {detail.decode(errors='replace')[-800:]}")
    _MARK.write_text(PACKAGE + "\n")
    return str(_python())
