"""``pip install -e .`` prints no warning of the project's own (no licence deprecation, no layout guess)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_an_editable_install_is_quiet(tmp_path):
    # into a throw-away environment: the build is the real one, the test's own environment stays as it is
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True, timeout=120)
    result = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "python"), "-m", "pip", "install", "--no-deps", "-e", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    # pip's notes about this machine's index locations are not the project's
    own = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if not re.match(r"WARNING: Location '.*' is ignored", line)
    ]
    noisy = [line for line in own if re.search(r"warn|deprecat|!!", line, re.I)]
    assert not noisy, "\n".join(noisy)
