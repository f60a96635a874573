"""A broken plugin is set aside with the reason; every other plugin and every command goes on."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner
from pydantic import BaseModel

from hub import hookimpl
from hub.cli import build_cli
from hub.core.events import ClientObservation, SourceRef
from hub.core.hub import Hub
from hub.core.plugins import PluginHost
from tests.core.sinks import RecordingSink, SinkPlugin


class Misspelt:
    @hookimpl
    def hub_register_sinkz(self, hub: Any, register: Any) -> None:  # one letter off
        raise AssertionError("never called")


class WrongArguments:
    @hookimpl
    def hub_register_sinks(self, hub: Any, register: Any, extra: Any) -> None:
        raise AssertionError("never called")


class Strict(BaseModel):
    port: int


class BadSettings:
    @hookimpl
    def hub_register_settings(self, register: Any) -> None:
        register("strict", Strict)

    @hookimpl
    def hub_register_sinks(self, hub: Any, register: Any) -> None:
        raise AssertionError("a plugin whose settings failed runs no more hooks")


def test_a_misspelt_hook_sets_its_plugin_aside_with_a_hint_and_the_others_load():
    good = RecordingSink("good", "crm")
    host = PluginHost(
        autoload=False, extra=[("typo", Misspelt()), ("wrong", WrongArguments()), ("ok", SinkPlugin(good))]
    )
    assert "did you mean hub_register_sinks?" in (host.info["typo"].error or "")
    assert "invalid hook" in (host.info["wrong"].error or "")
    assert host.info["ok"].error is None
    registered: list[Any] = []
    host.each("hub_register_sinks", hub=None, register=registered.append)
    assert registered == [good]


def test_a_module_that_does_not_import_is_reported_not_raised():
    host = PluginHost(autoload=False, modules=["no_such_module_for_the_hub"])
    assert "failed to import no_such_module_for_the_hub" in (host.info["no_such_module_for_the_hub"].error or "")


def test_invalid_settings_take_down_their_plugin_only(embedded, monkeypatch):
    monkeypatch.setenv("HUB_STRICT__PORT", "not a number")
    good = RecordingSink("good", "crm")
    hub = embedded.hub([("strict", BadSettings()), ("ok", SinkPlugin(good))])
    health = hub.health()["plugins"]
    assert health["strict"]["status"] == "down" and "HUB_STRICT__PORT" in health["strict"]["error"]
    hub.start("all")
    assert list(hub.sinks) == ["good"]
    assert hub.ingest(ClientObservation(source=SourceRef(system="x", entity="c", id="1"), name="Иван")).client_id


def test_commands_go_on_beside_a_broken_plugin_module(tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_DATABASE_URL", f"sqlite:///{tmp_path / 'hub.db'}")
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HUB_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("HUB_PLUGIN_MODULES", "no_such_module_for_the_hub")
    host = PluginHost(autoload=False, modules=["no_such_module_for_the_hub"])
    cli = build_cli(host)
    listed = CliRunner().invoke(cli, ["plugins", "list", "--json"], obj=host)
    assert listed.exit_code == 0, listed.output
    assert "failed to import" in listed.output
    found = CliRunner().invoke(cli, ["clients", "find", "--name", "Иван"], obj=host)
    assert found.exit_code == 0, found.output
    assert isinstance(Hub, type)
