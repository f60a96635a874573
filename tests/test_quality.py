"""The house rules that tools can check: lint, formatting, types, and the architecture's boundaries."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def tool(name: str) -> str:
    """The tool installed beside the interpreter running the tests (the project's venv), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return found


def test_ruff_finds_nothing():
    result = run(tool("ruff"), "check", "hub", "plugins", "tests", "bench", "examples")
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_is_formatted():
    result = run(tool("ruff"), "format", "--check", "hub", "plugins", "tests", "bench", "examples")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_core_imports_no_plugin_web_or_cli_and_plugins_do_not_import_each_other():
    result = run(tool("lint-imports"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_mypy_is_clean_on_hub_and_plugins():
    result = run(tool("mypy"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_test_reads_files_outside_the_repository():
    """A fresh clone has nothing beside it: every payload a test uses lives in tests/fixtures."""
    outside = ("../" + "shared", '"shared" / ' + '"fixtures"')  # spelt in two parts so this file is not a hit
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if any(word in line for word in outside):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
