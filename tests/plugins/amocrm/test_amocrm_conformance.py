"""The conformance table of docs/plugins/amocrm.md, walked row by row against the sandbox."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from amocrm_testing import Running

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "plugins" / "amocrm.md"


def table() -> dict[str, str]:
    """``"POST /api/v4/contacts"`` → its required column, from the doc's conformance table."""
    text = DOC.read_text(encoding="utf-8").split("## Conformance with the account", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.match(r"^`(GET|POST|PATCH) /api/v4/", cells[0]):
            assert "https://www.amocrm.ru/developers/" in cells[1], f"{cells[0]} names no official page"
            rows[cells[0].strip("`")] = cells[2]
    return rows


def test_the_table_covers_what_the_plugin_reads_and_writes() -> None:
    rows = table()
    assert len(rows) >= 15
    for call in ("POST /api/v4/contacts", "PATCH /api/v4/contacts", "POST /api/v4/calls", "GET /api/v4/events"):
        assert call in rows


@pytest.mark.parametrize("call", sorted(table()))
def test_the_sandbox_serves_each_row_and_refuses_a_body_without_its_required_fields(
    sandbox: Running, call: str
) -> None:
    verb, path = call.split(" ", 1)
    headers = {"authorization": f"Bearer {sandbox.sandbox.long_lived_token}"}

    if verb == "GET":
        answer = httpx.get(sandbox.url + path, headers=headers)
        assert answer.status_code in (200, 204), answer.text
        return
    empty = httpx.request(verb, sandbox.url + path, json=[], headers=headers)
    assert empty.status_code == 400, f"{call} accepted an empty array"
    if "in each" in table()[call]:
        missing = httpx.request(verb, sandbox.url + path, json=[{"name": "x"}], headers=headers)
        assert missing.status_code == 400, f"{call} accepted an item without {table()[call]}"
