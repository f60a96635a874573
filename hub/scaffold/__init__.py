"""``hub plugin new NAME``: a new plugin package that installs, loads and passes its tests as generated.

The template under ``template/`` (files ending in ``.tmpl``, so that no tool takes them for the hub's own code) is
a complete small connector: settings, client, mapping, webhook with a sender check, reconciliation with a cursor,
an idempotent sink, a sandbox and tests. ``{{name}}``, ``{{NAME}}``, ``{{Name}}``, ``{{Class}}`` and
``{{module}}`` in file names and contents are replaced by the plugin's names.
"""

from __future__ import annotations

import re
from pathlib import Path

from hub.core.errors import BadInput

TEMPLATE = Path(__file__).parent / "template"
NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")


def names(name: str) -> dict[str, str]:
    if not NAME.match(name) or len(name) > 40:
        raise BadInput(f"plugin name {name!r}: use lower-case letters, digits and single dashes (e.g. 'my-crm')")
    module = name.replace("-", "_")
    words = name.split("-")
    return {
        "{{name}}": name,
        "{{NAME}}": module.upper(),
        "{{Name}}": " ".join(w.capitalize() for w in words),
        "{{Class}}": "".join(w.capitalize() for w in words),
        "{{module}}": module,
    }


def _render(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def new_plugin(name: str, parent: Path, *, force: bool = False) -> Path:
    """Write the package ``hub-NAME`` under ``parent``; return its folder. Refuses to overwrite unless ``force``."""
    values = names(name)
    target = parent / f"hub-{name}"
    if target.exists() and any(target.iterdir()) and not force:
        raise BadInput(f"{target} exists and is not empty (use --force to write over it)")
    for source in sorted(TEMPLATE.rglob("*")):
        if source.is_dir() or "__pycache__" in source.parts:
            continue
        relative = source.relative_to(TEMPLATE).as_posix().removesuffix(".tmpl")
        relative = relative.replace("hub_plugin", f"hub_{values['{{module}}']}")
        path = target / _render(relative, values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_render(source.read_text("utf-8"), values), "utf-8")
    return target
