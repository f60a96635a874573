"""Settings typos are errors: every ``HUB_*`` variable and every TOML key must name a setting that exists.

A mistyped ``HUB_DATABSE_URL`` would otherwise be ignored and the hub would quietly run on SQLite. Keys are
checked against the core's models and, once plugins are loaded, against each plugin's settings model; the
error says "did you mean ..." with the closest known name.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from hub.core.errors import ConfigError

PREFIX = "HUB_"
# HUB_* variables read directly rather than settings fields (the config path, plugin tracing), and the
# namespaces kept for test and benchmark harnesses (the database URLs of a test run).
NOT_SETTINGS = frozenset({"HUB_CONFIG", "HUB_TRACE_PLUGINS"})
RESERVED_PREFIXES = ("HUB_TEST_", "HUB_BENCH_")


@dataclass(frozen=True)
class Key:
    """One setting as the user wrote it: where (``environment``, ``.env``, ``hub.toml``) and its parts."""

    origin: str
    parts: tuple[str, ...]
    env: bool

    def show(self, parts: Iterable[str]) -> str:
        parts = list(parts)
        return PREFIX + "__".join(parts).upper() if self.env else ".".join(parts)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The settings model behind a field type (``X``, ``X | None``), or None for plain values and dicts."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        models = [m for m in (_model_of(a) for a in typing.get_args(annotation)) if m is not None]
        return models[0] if len(models) == 1 else None
    if origin is typing.Annotated:
        return _model_of(typing.get_args(annotation)[0])
    return None


def field_names(model: type[BaseModel]) -> dict[str, str]:
    """Lower-case name (and alias) -> field name; pydantic-settings matches names case-insensitively."""
    found: dict[str, str] = {}
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        found[name.lower()] = name
        if info.alias:
            found[info.alias.lower()] = name
    return found


def _first_unknown(model: type[BaseModel], parts: tuple[str, ...]) -> tuple[int, list[str]] | None:
    """Index of the first part that names no field, with the names it could have been; None if all are known
    (a path that reaches a plain value, a dict or a model with ``extra="allow"`` is known from there on)."""
    current: type[BaseModel] | None = model
    for depth, part in enumerate(parts):
        if current is None or current.model_config.get("extra") == "allow":
            return None
        names = field_names(current)
        if part not in names:
            return depth, sorted(set(names))
        current = _model_of(current.model_fields[names[part]].annotation)
    return None


@dataclass
class SettingsCheck:
    """Collects unknown keys; ``raise_if_any`` turns them into one ``ConfigError`` naming each."""

    problems: list[str] = field(default_factory=list)

    def check(self, key: Key, model: type[BaseModel], *, skip: int = 0, also: Iterable[str] = ()) -> None:
        """Check ``key.parts[skip:]`` against ``model``; ``also`` are more names allowed at the first level."""
        found = _first_unknown(model, key.parts[skip:])
        if found is None:
            return
        depth, candidates = found
        at = skip + depth
        if depth == 0:
            candidates = sorted({*candidates, *also})
        self.unknown(key, at, candidates)

    def unknown(self, key: Key, at: int, candidates: Iterable[str]) -> None:
        written = key.show(key.parts[: at + 1])
        close = difflib.get_close_matches(key.parts[at], list(candidates), n=1, cutoff=0.6)
        hint = f"; did you mean {key.show([*key.parts[:at], close[0]])}?" if close else ""
        self.problems.append(f"unknown setting {written} in {key.origin}{hint}")

    def raise_if_any(self) -> None:
        if self.problems:
            raise ConfigError("; ".join(self.problems) + " (see docs/operations.md for every setting)")


def env_keys(env_file: Path | None) -> list[Key]:
    """Every ``HUB_*`` setting variable in the environment and in ``env_file`` (``.env``)."""
    names = [("environment", k) for k in os.environ]
    if env_file is not None and env_file.is_file():
        from dotenv import dotenv_values

        names += [(str(env_file), k) for k in dotenv_values(env_file)]
    keys = []
    for origin, name in names:
        upper = name.upper()
        if upper.startswith(PREFIX) and upper not in NOT_SETTINGS and not upper.startswith(RESERVED_PREFIXES):
            keys.append(Key(origin, tuple(p.lower() for p in upper[len(PREFIX) :].split("__")), env=True))
    return keys


def toml_keys(data: Mapping[str, Any], origin: str, prefix: tuple[str, ...] = ()) -> list[Key]:
    """Every leaf key of a TOML document, tables walked."""
    keys: list[Key] = []
    for name, value in data.items():
        here = (*prefix, str(name).lower())
        if isinstance(value, dict) and value:
            keys.extend(toml_keys(value, origin, here))
        else:
            keys.append(Key(origin, here, env=False))
    return keys


def check_core(keys: Iterable[Key], core: type[BaseModel]) -> None:
    """The core's part: a key under a core setting must exist in its model (``HUB_HTTP__PORTT``), and a
    top-level key that is no core setting but one letter away from one is a typo (``HUB_DATABSE_URL``).
    Other top-level names may be plugin sections, checked once plugins are loaded."""
    check = SettingsCheck()
    names = field_names(core)
    for key in keys:
        if key.parts[0] in names:
            check.check(key, core)
        elif difflib.get_close_matches(key.parts[0], list(names), n=1, cutoff=0.85):
            check.unknown(key, 0, names)
    check.raise_if_any()


def check_sections(
    keys: Iterable[Key],
    core: type[BaseModel],
    sections: Mapping[str, type[BaseModel]],
    installed: Iterable[str] = (),
) -> list[str]:
    """The plugins' part: ``HUB_<SECTION>__*`` and ``[section]`` keys against each plugin's settings model.

    Return the sections of plugins that are installed but not loaded (their keys are not checked: the caller
    warns). Raise ``ConfigError`` for a key that names neither a core setting nor a plugin's.
    """
    check = SettingsCheck()
    core_names = set(field_names(core))
    lowered = {name.lower(): model for name, model in sections.items()}
    not_loaded = {name.lower() for name in installed} - set(lowered)
    idle: set[str] = set()
    for key in keys:
        first = key.parts[0]
        if first in core_names:
            continue
        if first in lowered and len(key.parts) > 1:
            check.check(key, lowered[first], skip=1)
        elif first in not_loaded:
            idle.add(first)
        else:
            check.unknown(key, 0, {*core_names, *lowered})
    check.raise_if_any()
    return sorted(idle)
