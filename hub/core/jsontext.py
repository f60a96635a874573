"""JSON text read within bounds: a limit on nesting, no NaN or Infinity, and a clear :class:`BadJSON` for
anything else, instead of a crash.

Python's JSON parser recurses once per level, so a text nested thousands deep ends in ``RecursionError``; it
also reads ``Infinity`` and ``NaN``, which are not JSON and which no JSON writer downstream accepts. (A number
such as ``1E+400`` reads as infinity and is refused by the model that receives it, naming the field.)
"""

from __future__ import annotations

import json
from typing import Any

from hub.core.errors import BadInput

MAX_DEPTH = 32


class BadJSON(BadInput):
    """The text is not JSON the hub accepts; ``code`` is the error code an API answers with."""

    def __init__(self, message: str, code: str = "malformed_json") -> None:
        super().__init__(message)
        self.code = code


def _no_constant(name: str) -> Any:
    raise BadJSON(f"not valid JSON: {name} is not a number in JSON; send a finite number or null")


def too_deep(value: Any, max_depth: int) -> bool:
    """Whether ``value`` nests arrays and objects more than ``max_depth`` levels (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def parse_json(raw: bytes | str, *, max_depth: int = MAX_DEPTH, what: str = "the body") -> Any:
    """Parse JSON text or raise :class:`BadJSON` naming the problem (never RecursionError or ValueError)."""
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except BadJSON as exc:
        raise BadJSON(f"{what} is {exc}") from None
    except RecursionError:
        raise BadJSON(f"{what} is nested too deep: at most {max_depth} levels", "too_deep") from None
    except UnicodeDecodeError as exc:
        raise BadJSON(f"{what} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except ValueError as exc:  # JSONDecodeError, and integers of more than 4,300 digits
        raise BadJSON(f"{what} is not valid JSON: {exc}") from None
    if too_deep(value, max_depth):
        raise BadJSON(f"{what} is nested too deep: at most {max_depth} levels", "too_deep")
    return value
