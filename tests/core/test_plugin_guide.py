"""The plugin author's guide names every public name of ``hub``, every field of its public models, every hook."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pydantic

import hub
from hub.core import hookspecs

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def documented() -> set[str]:
    """Every `name` in backticks in the guide (``hub.Name``, ``Name(...)`` and ``name:`` count as ``name``)."""
    text = GUIDE.read_text("utf-8")
    spans = re.findall(r"`([^`\n]+)`", text)
    return {re.split(r"[(:\[ =]", span.removeprefix("hub."), maxsplit=1)[0] for span in spans}


def test_every_public_name_of_hub_is_in_the_guide() -> None:
    missing = sorted(set(hub.__all__) - documented() - {"__version__"})
    assert missing == [], f"docs/plugins.md does not document: {missing}"


def test_every_hook_is_in_the_guide() -> None:
    hooks = {name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("hub_")}
    assert hooks, "no hookspecs found"
    assert sorted(hooks - documented()) == []


def section(title: str) -> str:
    """The text under the guide's heading ``### `title` `` up to the next heading."""
    text = GUIDE.read_text("utf-8")
    start = text.find(f"### `{title}`")
    assert start >= 0, f"docs/plugins.md has no section ### `{title}`"
    end = text.find("\n#", start + 1)
    return text[start : end if end > 0 else None]


def test_every_field_of_the_public_models_is_in_its_section_of_the_guide() -> None:
    missing = []
    for name in hub.__all__:
        value = getattr(hub, name)
        if inspect.isclass(value) and issubclass(value, pydantic.BaseModel):
            text = section(name)
            missing += [f"{name}.{field}" for field in value.model_fields if f"`{field}`" not in text]
    applied = section("Applied")
    missing += [f"Applied.{f}" for f in hub.Applied.__dataclass_fields__ if f"`{f}`" not in applied]
    assert missing == [], f"docs/plugins.md does not document: {missing}"
