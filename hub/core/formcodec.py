"""PHP nested form encoding (``a[b][0][c]=v``), the one codec every connector uses: Bitrix24 parameters and events,
amoCRM webhooks.

Decoding is linear in the body size and bounded (pairs, depth, key length): a body beyond the bounds is a
:class:`BadInput`, never a frozen event loop. :func:`parse_off_loop` runs big bodies on a worker thread, and
:func:`find_pair` reads one key (an application token) without decoding the rest, so a sender can be refused first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, quote, unquote_plus

import anyio.to_thread

from .errors import BadInput

ListPolicy = Literal["dense", "sorted", "none"]
Body = TypeVar("Body", str, bytes)
Parsed = TypeVar("Parsed")


@dataclass(frozen=True)
class FormLimits:
    """Bounds a decoded body must keep; what real senders need, with a wide margin."""

    max_pairs: int = 20_000
    max_depth: int = 12
    max_key_length: int = 512
    max_list_index: int = 100_000


DEFAULT_LIMITS = FormLimits()
# Bodies above this size are decoded on a worker thread (a smaller one costs less than the thread hop).
OFFLOAD_BYTES = 16 * 1024


class _Node(dict[str, Any]):
    """A dict that remembers the next index ``[]`` appends at, so appending stays O(1) (PHP: max int key + 1)."""

    __slots__ = ("next_index",)

    def __init__(self) -> None:
        super().__init__()
        self.next_index = 0


_NESTED = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")


def _scalar(value: Any) -> str:
    if value is True:
        return "1"
    if value is False:
        return "0"
    return str(value)


def flatten(params: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Yield ``(key, value)`` pairs with bracketed keys; ``None`` values and empty containers are left out, as PHP
    does; booleans become ``1``/``0``."""
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, Mapping):
            yield from flatten(value, name)
        elif isinstance(value, list | tuple):
            yield from flatten({str(i): item for i, item in enumerate(value)}, name)
        elif value is not None:
            yield name, _scalar(value)


def encode(params: Mapping[str, Any]) -> str:
    """Encode nested params as ``application/x-www-form-urlencoded`` with PHP-style keys (``http_build_query``).

    Brackets stay readable in keys (``fields[NAME]=…``); every value is percent-encoded as UTF-8, so a value holding
    ``&``, ``=`` or ``$result[…]`` survives being embedded in a Bitrix24 ``batch`` command.
    """
    return "&".join(f"{quote(key, safe='[]')}={quote(value, safe='')}" for key, value in flatten(params))


def _text(body: str | bytes, what: str) -> str:
    if isinstance(body, str):
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{what} is not UTF-8 (byte {exc.start}); expected a URL-encoded form body") from None


def _split_key(key: str, limits: FormLimits, strict: bool, what: str) -> list[str] | None:
    """``a[b][]`` → ``["a", "b", ""]``; None for a key PHP would drop, ``[key]`` for one it would not nest (both
    refused when ``strict``)."""
    if len(key) > limits.max_key_length:
        raise BadInput(f"{what} has a key of {len(key)} characters (at most {limits.max_key_length})")
    match = _NESTED.fullmatch(key)
    if match is None:
        if strict:
            raise BadInput(f"{what} key {key[:80]!r} is not of the form name[part][part]")
        return None if not key or key.startswith("[") else [key]
    base, rest = match.groups()
    if not rest:
        return [base]
    parts = [base, *rest[1:-1].split("][")]
    if len(parts) > limits.max_depth + 1:
        raise BadInput(f"{what} nests keys deeper than {limits.max_depth} levels; refused")
    return parts


def _assign(root: _Node, parts: list[str], value: str, scalar_key: str | None) -> None:
    node = root
    last = len(parts) - 1
    for depth, part in enumerate(parts):
        if not part:
            part = str(node.next_index)
            node.next_index += 1
        elif part.isdigit() and len(part) < 10 and part.isascii():
            node.next_index = max(node.next_index, int(part) + 1)
        if depth == last:
            existing = node.get(part)
            if scalar_key is not None and isinstance(existing, _Node):
                existing[scalar_key] = value
            else:
                node[part] = value
            return
        child = node.get(part)
        if not isinstance(child, _Node):
            fresh = _Node()
            if scalar_key is not None and child is not None:
                fresh[scalar_key] = child
            node[part] = fresh
            child = fresh
        node = child


def _finish(node: Any, lists: ListPolicy, limits: FormLimits) -> Any:
    """Turn nodes into plain dicts, and into lists where ``lists`` says (PHP does not tell the two apart)."""
    if not isinstance(node, _Node):
        return node
    items = {key: _finish(value, lists, limits) for key, value in node.items()}
    # next_index > 0 tells cheaply that some key is an index; only then look at every key.
    if lists == "none" or not node.next_index or len(items) > node.next_index:
        return items
    if lists == "dense":
        return list(items.values()) if list(items) == [str(i) for i in range(len(items))] else items
    if node.next_index > limits.max_list_index or not all(key.isdigit() and key.isascii() for key in items):
        return items
    return [items[key] for key in sorted(items, key=int)]


def decode(
    body: str | bytes,
    *,
    limits: FormLimits = DEFAULT_LIMITS,
    lists: ListPolicy = "dense",
    scalar_key: str | None = None,
    strict: bool = False,
    what: str = "form body",
) -> dict[str, Any]:
    """Parse a form body into nested dicts, PHP ``parse_str`` style, in time linear in its size.

    ``a[b][c]=1`` → ``{"a": {"b": {"c": "1"}}}``; ``a[]=x&a[]=y`` appends. ``lists``: ``"dense"`` turns containers
    keyed exactly ``0..n-1`` into lists, ``"sorted"`` any all-numeric container (ordered by index, gaps closed),
    ``"none"`` keeps dicts. When a key is both a value and a container (``t=3&t[uuid]=…``) a later one replaces the
    earlier, unless ``scalar_key`` names where the scalar is kept. ``strict`` refuses malformed pairs and keys
    instead of keeping them flat. Raise :class:`BadInput` (its message starts with ``what``) beyond ``limits``.
    """
    text = _text(body, what)
    if text.count("&") >= limits.max_pairs:
        raise BadInput(f"{what} has more than {limits.max_pairs} key=value pairs; refused")
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=strict,
            encoding="utf-8",
            errors="strict",
            max_num_fields=limits.max_pairs,
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"{what} is not form-encoded ({str(exc)[:120]}); expected key=value pairs") from None
    root = _Node()
    for key, value in pairs:
        parts = _split_key(key, limits, strict, what)
        if parts is not None:
            _assign(root, parts, value, scalar_key)
    # The top level is always a mapping, whatever its keys look like.
    return {key: _finish(value, lists, limits) for key, value in root.items()}


async def parse_off_loop(parse: Callable[[Body], Parsed], body: Body) -> Parsed:
    """``parse(body)`` on a worker thread when the body is big, so the event loop keeps answering meanwhile.

    ``parse`` is :func:`decode` or a plugin's parser built on it; small bodies are parsed in place.
    """
    if len(body) <= OFFLOAD_BYTES:
        return parse(body)
    return await anyio.to_thread.run_sync(parse, body)


_ENCODED_BRACKETS = {"[": r"(?:\[|%5[bB])", "]": r"(?:\]|%5[dD])"}


def find_pair(body: str | bytes, key: str) -> str | None:
    """The value of one key (``auth[application_token]``) read without decoding the body: a single linear scan.

    The key may be sent with its brackets percent-encoded; the last occurrence wins, as in :func:`decode`. None
    when the key is absent or its value is not UTF-8 (bytes elsewhere in the body are left to :func:`decode`).
    """
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    # A literal start lets the regex engine skip ahead fast; "starts a pair" is checked on the few hits.
    pattern = re.compile("".join(_ENCODED_BRACKETS.get(ch, re.escape(ch)) for ch in key) + "=([^&]*)")
    found = None
    for match in pattern.finditer(text):
        if match.start() == 0 or text[match.start() - 1] == "&":
            found = match.group(1)
    if found is None:
        return None
    try:
        return unquote_plus(found, errors="strict")
    except UnicodeDecodeError:
        return None
