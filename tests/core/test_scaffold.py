"""``hub plugin new``: a package that lints, builds with its entry point, and passes its own tests as generated."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from hub.cli import cli
from hub.core.errors import BadInput
from hub.scaffold import new_plugin
from tests.test_quality import tool


@pytest.fixture(scope="module")
def scaffold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    parent = tmp_path_factory.mktemp("plugins")
    result = CliRunner().invoke(cli, ["plugin", "new", "acme-crm", "--dir", str(parent)])
    assert result.exit_code == 0, result.output
    assert "pip install -e" in result.output
    return parent / "hub-acme-crm"


def test_a_plugin_name_must_be_a_package_name(tmp_path):
    with pytest.raises(BadInput, match="lower-case"):
        new_plugin("My CRM", tmp_path)


def test_an_existing_folder_is_not_written_over(scaffold):
    with pytest.raises(BadInput, match="not empty"):
        new_plugin("acme-crm", scaffold.parent)


def test_the_scaffold_has_every_part_of_a_plugin_and_no_placeholder_left(scaffold):
    package = scaffold / "hub_acme_crm"
    for part in ("plugin", "settings", "client", "mapping", "webhooks", "sync", "sink", "sandbox"):
        assert (package / f"{part}.py").exists(), part
    leftovers = [p for p in scaffold.rglob("*") if p.is_file() and "{{" in p.read_text("utf-8") + p.name]
    assert leftovers == []
    assert 'acme-crm = "hub_acme_crm.plugin"' in (scaffold / "pyproject.toml").read_text()


def test_the_scaffold_lints_clean(scaffold):
    result = subprocess.run(
        [tool("ruff"), "check", "--no-cache", "--select", "E,F,W,B", "--line-length", "120", str(scaffold)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_the_scaffold_passes_its_own_tests_as_generated(scaffold):
    env = {**os.environ, "PYTHONPATH": str(scaffold)}
    env = {k: v for k, v in env.items() if not k.startswith("HUB_")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=scaffold,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "11 passed" in result.stdout and "skipped" not in result.stdout  # its 3 tests and the contract suite


@pytest.mark.slow
def test_the_scaffold_builds_a_wheel_that_registers_the_plugin(scaffold, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=scaffold,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [wheel] = tmp_path.glob("hub_acme_crm-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        entry_points = next(n for n in archive.namelist() if n.endswith("entry_points.txt"))
        text = archive.read(entry_points).decode()
    assert "[hub]" in text and "acme-crm = hub_acme_crm.plugin" in text
