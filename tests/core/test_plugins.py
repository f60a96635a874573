"""Plugins: installed with pip, registered by entry point, isolated when they fail, every hook documented."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hub import hookimpl
from hub.core import hookspecs
from hub.core.plugins import PluginHost
from hub.testing import free_port
from tests.conftest import wait_for
from tests.core.sinks import RecordingSink, SinkPlugin

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin installed by pip into its own directory, as a user would install a third-party plugin."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(ROOT / "examples" / "hub-example-plugin"),
        ],
        check=True,
    )
    return site


def hub_env(site: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update({"PYTHONPATH": f"{site}{os.pathsep}{ROOT}", "HUB_DATA_DIR": str(tmp_path), "HUB_LOG_FORMAT": "json"})
    env.update(extra)
    return env


EXAMPLE_TOKEN = "example-token-0123456789"
EXAMPLE_AUTH = {"Authorization": f"Bearer {EXAMPLE_TOKEN}"}


def test_a_webhook_without_its_sender_check_does_not_exist(example_site, tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        hub_cmd("run", "--port", str(port)),
        env=hub_env(example_site, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _up(base), timeout=30)
        r = httpx.post(f"{base}/webhooks/example", json={"id": "n1", "phone": "8 916 123-45-67", "text": "x"})
        assert r.status_code == 404
        assert "/webhooks/example" not in httpx.get(f"{base}/openapi.json").text
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output


def hub_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "hub.cli", *args]


def test_a_pip_installed_plugin_is_listed_with_version_hooks_and_health(example_site, tmp_path):
    out = subprocess.run(
        hub_cmd("plugins", "list", "--json"),
        env=hub_env(example_site, tmp_path),
        capture_output=True,
        text=True,
        check=True,
    )
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    example = plugins["example"]
    assert example["version"] == "1.0.0"
    assert {"hub_register_routes", "hub_register_sinks", "hub_register_commands", "hub_health"} <= set(example["hooks"])
    assert example["health"]["status"] == "degraded"  # its events file is not configured
    # no token configured: its webhook is not served, and the listing says what to set
    assert example["routes_not_mounted"] == [
        {
            "path": "/webhooks/example",
            "reason": "the example token is not configured: set HUB_EXAMPLE__TOKEN (16+ characters)",
        }
    ]


def test_a_plugin_adds_a_cli_command(example_site, tmp_path):
    out = subprocess.run(
        hub_cmd("example", "Иван"), env=hub_env(example_site, tmp_path), capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "Привет, Иван!"


def test_the_allowlist_keeps_other_plugins_out(example_site, tmp_path):
    out = subprocess.run(
        hub_cmd("plugins", "list", "--json"),
        env=hub_env(example_site, tmp_path, HUB_LOAD_PLUGINS="nothing-else"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert "example" not in {p["name"] for p in json.loads(out.stdout)}


def test_the_example_plugin_runs_in_the_daemon_and_sigterm_drains(example_site, tmp_path):
    events_file = tmp_path / "events.jsonl"
    port = free_port()
    env = hub_env(example_site, tmp_path, HUB_EXAMPLE__EVENTS_FILE=str(events_file), HUB_EXAMPLE__TOKEN=EXAMPLE_TOKEN)
    proc = subprocess.Popen(
        hub_cmd("run", "--port", str(port)), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _up(base), timeout=30)
        note = {"id": "n1", "phone": "8 916 123-45-67", "text": "Привет"}
        assert httpx.post(f"{base}/webhooks/example", json=note).status_code == 401  # no token, nothing stored
        r = httpx.post(f"{base}/webhooks/example", json=note, headers=EXAMPLE_AUTH)
        assert r.status_code == 200, r.text
        assert httpx.post(f"{base}/webhooks/example", json={"id": "n2"}, headers=EXAMPLE_AUTH).status_code == 422
        lines = wait_for(lambda: events_file.exists() and events_file.read_text("utf-8").splitlines(), timeout=30)
        types = [json.loads(line)["type"] for line in lines]
        wait_for(lambda: len(events_file.read_text("utf-8").splitlines()) == 2, timeout=10)
        types = [json.loads(line)["type"] for line in events_file.read_text("utf-8").splitlines()]
        assert types == ["client.changed", "interaction.added"]
        assert json.loads(events_file.read_text("utf-8").splitlines()[1])["item"]["fields"]["body"] == "Привет"
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert '"hub stopped"' in output


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        time.sleep(0.1)
        return False


class ExplodingPlugin:
    @hookimpl
    def hub_startup(self, hub):
        raise RuntimeError("cannot reach the PBX")

    @hookimpl
    def hub_register_sinks(self, hub, register):
        raise RuntimeError("bad sink config")


def test_a_plugin_whose_hooks_raise_is_isolated_and_the_others_go_on(embedded):
    good = RecordingSink("good", "amocrm")
    hub = embedded.hub([("broken", ExplodingPlugin()), ("fine", SinkPlugin(good))])
    hub.start("all")
    from hub.core.events import ClientObservation, SourceRef

    hub.ingest(ClientObservation(source=SourceRef(system="excel", entity="row", id="1"), phones=["+79161234567"]))
    wait_for(lambda: len(good.event_ids()) == 1)
    health = hub.health()["plugins"]
    assert health["broken"]["status"] == "down" and "bad sink config" in health["broken"]["error"]


def test_a_misspelled_hook_is_reported_with_a_hint_instead_of_crashing_every_command():
    class Typo:
        @hookimpl
        def hub_register_sink(self, hub, register):  # missing the final s
            pass

    host = PluginHost(autoload=False, extra=[("typo", Typo())])
    assert host.info["typo"].error == "unknown hook hub_register_sink (did you mean hub_register_sinks?)"
    assert host.pm.get_plugin("typo") is None


def test_the_core_starts_with_no_plugin_loaded(embedded):
    hub = embedded.hub()
    hub.start("all")
    assert hub.plugins.names() == [] and hub.sinks == {}


def test_every_hook_is_documented_for_plugin_authors():
    guide = (ROOT / "docs" / "plugins.md").read_text("utf-8")
    hooks = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("hub_")]
    assert hooks, "no hookspecs found"
    missing = [h for h in hooks if f"### `{h}" not in guide]
    assert not missing, f"hooks not documented in docs/plugins.md: {missing}"
    for name in hooks:
        assert (getattr(hookspecs, name).__doc__ or "").strip(), f"{name} has no docstring"


def test_a_plugin_runtime_is_made_once_per_hub_and_closed_on_release(embedded):
    hub = embedded.hub()
    made: list[object] = []

    class Connections:
        closed = False

        def close(self) -> None:
            self.closed = True

    def factory() -> Connections:
        made.append(Connections())
        return made[-1]

    first = hub.runtime("crm", factory)
    assert hub.runtime("crm", factory) is first and len(made) == 1
    hub.release_runtime("crm")
    assert first.closed and hub.runtime("crm", factory) is not first
