"""``pip install -e .`` prints no warning of the project's own (no licence deprecation, no layout guess)."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
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


@pytest.mark.slow
def test_the_wheel_installs_the_built_in_plugins_under_the_projects_own_name(tmp_path):
    # a top-level package called `plugins` would collide in site-packages with any other distribution's
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("crm_hub-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"hub", "crm_hub_plugins"}
    for plugin in ("amocrm", "bitrix24", "email", "excel", "reminders", "telegram", "telephony"):
        assert f"crm_hub_plugins/{plugin}/plugin.py" in names
        assert f"{plugin} = crm_hub_plugins.{plugin}.plugin" in entry_points
    assert "hub/core/migrations/versions/0001_initial.py" in names
    assert any(name.startswith("hub/web/console/static/") for name in names)


def test_no_code_imports_the_plugins_folder_by_its_name():
    # inside plugins/ imports are relative; everywhere else the installed name is used
    pattern = re.compile(r"^\s*(from|import)\s+plugins(\.|\s|$)", re.M)
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("hub", "plugins", "tests", "bench", "examples")
        for path in (ROOT / folder).rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert not offenders
