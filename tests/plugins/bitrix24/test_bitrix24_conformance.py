"""The conformance table of docs/plugins/bitrix24.md, walked row by row against the plugin's code and the sandbox."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from bitrix24_testing import Portal

from crm_hub_plugins.bitrix24.inbound import READ
from crm_hub_plugins.bitrix24.sink import METHOD

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "plugins" / "bitrix24.md"
SOURCES = [
    ROOT / "plugins" / "bitrix24" / f"{name}.py"
    for name in ("client", "inbound", "sink", "cli", "connection", "offline")
]


def table() -> dict[str, list[str]]:
    """method → its required parameters, from the doc's conformance table."""
    text = DOC.read_text(encoding="utf-8").split("## Conformance with the portal", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`"):
            assert "https://dev.1c-bitrix.ru/rest_help/" in cells[1], f"{cells[0]} names no official page"
            rows[cells[0].strip("`")] = re.findall(r"`([^`]+)`", cells[2])
    return rows


def called_by_the_plugin() -> set[str]:
    pattern = re.compile(r"\"((?:crm|telephony|event)\.[a-z_.]+\.[a-z]+|batch|profile)\"")
    named = {m for path in SOURCES for m in pattern.findall(path.read_text(encoding="utf-8"))}
    named -= {prefix for prefix, _select, _stamp in READ.values()}  # prefixes, completed below
    named |= {f"{prefix}.list" for prefix, _select, _stamp in READ.values()}
    named |= {f"{prefix}.{action}" for prefix in METHOD.values() for action in ("get", "add", "update", "list")}
    return named


def test_every_method_the_plugin_calls_is_a_row() -> None:
    rows = table()
    assert len(rows) >= 20
    missing = sorted(called_by_the_plugin() - set(rows))
    assert missing == [], f"called but not in the conformance table: {missing}"


@pytest.mark.parametrize("method", sorted(table()))
def test_the_sandbox_serves_each_row_and_refuses_it_without_its_required_parameters(
    portal: Portal, method: str
) -> None:
    required = table()[method]
    answer = httpx.post(portal.webhook_url + method, json={})
    assert answer.status_code != 404, f"the sandbox does not serve {method}"
    if required:
        assert answer.status_code == 400 and "error" in answer.json(), f"{method} accepted a call without {required}"
    else:
        assert answer.status_code == 200, answer.text
