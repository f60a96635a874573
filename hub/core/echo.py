"""The echo ledger: what the hub wrote to external systems, so a read-back or a webhook of its own write is
recognised as such (DESIGN §4 invariant 5) without an API call.

A sink records each write as ``(system, account, entity, id)`` with a :func:`fingerprint` of the values it sent;
an inbound path asks :meth:`EchoLedger.is_echo` with the values it sees: a match emits nothing and costs no API
re-read. A later change by a person has other values, so it never matches.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hub.core.hubapi import StateStore

LEDGER_TTL = 24 * 3600.0  # seconds a write is remembered: echoes come back within minutes, hours at worst


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple | set | frozenset):
        return sorted((_canonical(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True, default=str))
    if isinstance(value, str):
        return " ".join(value.split()).casefold()
    return value


def fingerprint(values: Mapping[str, Any]) -> str:
    """A short digest of ``values`` that ignores order in lists, key order, case and runs of spaces; ``None`` and
    empty values are left out, so a field the remote adds empty does not hide an echo."""
    kept = {k: v for k, v in values.items() if v not in (None, "", [], {}, ())}
    text = json.dumps(_canonical(kept), ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Written:
    """One write the hub made outside."""

    entity: str
    id: str
    values: Mapping[str, Any]


class EchoLedger:
    """The writes of one external account (``system``, ``account``), kept in ``hub.state``."""

    def __init__(self, state: StateStore, system: str, account: str, *, ttl: float = LEDGER_TTL) -> None:
        self.state, self.ttl = state, ttl
        self.scope = f"echo:{system}:{account}"

    def wrote(self, writes: Iterable[Written]) -> None:
        """Record what the sink just wrote (after the remote confirmed it)."""
        now = time.time()
        entries = {f"{w.entity}:{w.id}": {"fingerprint": fingerprint(w.values), "at": now} for w in writes}
        self.state.put_many(self.scope, entries)  # one transaction for the whole batch

    def is_echo(self, entity: str, entity_id: str, values: Mapping[str, Any]) -> bool:
        """Whether ``values`` seen on ``entity`` ``entity_id`` are exactly what the hub last wrote there."""
        entry = self.state.get(self.scope, f"{entity}:{entity_id}")
        if not isinstance(entry, dict) or time.time() - float(entry.get("at") or 0) > self.ttl:
            return False
        return bool(entry.get("fingerprint") == fingerprint(values))
