"""PHP-style nested form encoding, the way Bitrix24 writes and reads parameters: ``fields[PHONE][0][VALUE]=…``.

``encode`` turns nested dicts and lists into a query string (PHP's ``http_build_query``); ``decode`` parses a form
body such as ``data[FIELDS][ID]=1&auth[application_token]=x`` back into nested dicts (PHP's ``parse_str``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote

_KEY = re.compile(r"^(?P<base>[^\[]*)(?P<rest>(?:\[[^\]]*\])*)(?P<tail>.*)$")
_PART = re.compile(r"\[([^\]]*)\]")


def _scalar(value: Any) -> str:
    if value is True:
        return "1"
    if value is False:
        return "0"
    return str(value)


def flatten(params: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Yield ``(key, value)`` pairs with bracketed keys; ``None`` values and empty containers are left out, as PHP
    does."""
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, Mapping):
            yield from flatten(value, name)
        elif isinstance(value, list | tuple):
            yield from flatten({str(i): item for i, item in enumerate(value)}, name)
        elif value is not None:
            yield name, _scalar(value)


def encode(params: Mapping[str, Any]) -> str:
    """Encode nested params as an ``application/x-www-form-urlencoded`` string with PHP-style keys.

    Brackets stay readable in keys (``fields[NAME]=…``), every value is percent-encoded as UTF-8, so a value holding
    ``&``, ``=`` or ``$result[…]`` survives being embedded in a ``batch`` command.
    """
    return "&".join(f"{quote(key, safe='[]')}={quote(value, safe='')}" for key, value in flatten(params))


def _listify(node: Any) -> Any:
    """Dicts keyed ``0..n-1`` become lists: PHP does not tell the two apart, Python code expects lists."""
    if not isinstance(node, dict):
        return node
    items = {key: _listify(value) for key, value in node.items()}
    keys = list(items)
    if keys and keys == [str(i) for i in range(len(keys))]:
        return [items[k] for k in keys]
    return items


def decode(body: str | bytes, *, lists: bool = True) -> dict[str, Any]:
    """Parse a form body into nested dicts, PHP ``parse_str`` style.

    ``a[b][c]=1`` → ``{"a": {"b": {"c": "1"}}}``; ``a[]=x&a[]=y`` appends; a later scalar replaces an earlier one.
    With ``lists`` (the default), containers keyed ``0..n-1`` come back as lists. Values stay strings.
    """
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    root: dict[str, Any] = {}
    for raw_key, value in parse_qsl(text, keep_blank_values=True):
        match = _KEY.match(raw_key)
        if not match or not match["base"]:
            continue
        parts = [match["base"], *_PART.findall(match["rest"])] if not match["tail"] else [raw_key]
        node: dict[str, Any] = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":
                part = str(sum(1 for k in node if k.isdigit()))
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    return {key: _listify(value) for key, value in root.items()} if lists else root
