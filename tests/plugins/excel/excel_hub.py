"""A hub with the Excel plugin for the tests, the `hub` command line pointed at it, and views of what it holds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from crm_hub_plugins.excel import plugin as excel_plugin
from hub.cli import build_cli
from hub.core import schema as s
from hub.core.hub import Hub
from hub.core.plugins import PluginHost

PLUGINS = [("excel", excel_plugin)]


@dataclass
class ExcelHub:
    hub: Hub
    host: PluginHost

    def cli(self, *args: str | Path) -> Result:
        """Run ``hub <args>`` against the same database, as a user would."""
        return CliRunner().invoke(build_cli(self.host), [str(a) for a in args], obj=self.host, catch_exceptions=False)

    def import_json(self, *args: str | Path) -> dict[str, Any]:
        result = self.cli("excel", "import", *args, "--json")
        assert result.exit_code == 0, result.output
        report: dict[str, Any] = json.loads(result.stdout)
        return report["summary"]

    def count(self, table: Any) -> int:
        with self.hub.store.read() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    @property
    def events(self) -> int:
        return self.count(s.outbox)

    @property
    def clients(self) -> int:
        return self.count(s.clients)


def excel_hub(backend: Any, monkeypatch: pytest.MonkeyPatch, **settings: str) -> ExcelHub:
    for key, value in backend.env().items():
        monkeypatch.setenv(key, value)
    for key, value in settings.items():
        monkeypatch.setenv(f"HUB_EXCEL__{key.upper()}", value)
    monkeypatch.setenv("COLUMNS", "200")
    return ExcelHub(backend.hub(PLUGINS), PluginHost(autoload=False, extra=PLUGINS))


def snapshot(hub: Hub) -> list[tuple[Any, ...]]:
    """Every client without ids or times: what a person checking the record would compare."""
    clients = list(hub.iter_clients())
    names = {c.id: c.name for c in clients}
    return sorted(
        (
            c.kind,
            c.name or "",
            tuple(c.phones),
            tuple(c.emails),
            names.get(c.company_id) or "" if c.company_id else "",
            json.dumps(c.fields, ensure_ascii=False, sort_keys=True),
            len(c.refs),
        )
        for c in clients
    )
