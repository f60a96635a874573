"""The public plugin API: every name ``from hub import …`` promises resolves, and HUB_TRACE_PLUGINS traces hooks."""

from __future__ import annotations

import pytest
import structlog

import hub
from hub import hookimpl
from hub.core.plugins import PluginHost


def test_every_public_name_resolves() -> None:
    for name in hub.__all__:
        assert getattr(hub, name) is not None, name
    assert hub.Account.__module__ == "hub.core.accounts" and hub.formcodec.decode("a[]=1") == {"a": ["1"]}


class Greeter:
    @hookimpl
    def hub_register_commands(self, register: hub.RegisterCommand) -> None:
        register("greet")


def test_hub_trace_plugins_logs_every_hook_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_TRACE_PLUGINS", "1")
    host = PluginHost(autoload=False, extra=[("greeter", Greeter())])
    seen: list[str] = []
    with structlog.testing.capture_logs() as logs:
        host.each("hub_register_commands", register=seen.append)
    assert seen == ["greet"]
    traced = " ".join(str(e.get("trace")) for e in logs if e["event"] == "hook")
    assert "hub_register_commands" in traced
