"""The documented Bitrix24 payloads in ../shared/fixtures/bitrix24, loaded by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[4] / "shared" / "fixtures" / "bitrix24"


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def fixture_json(name: str) -> Any:
    return json.loads(fixture_text(name))
