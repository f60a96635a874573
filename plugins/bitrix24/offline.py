"""Bitrix24 offline events: for a hub behind NAT, the portal keeps the events and the hub fetches them.

``event.offline.get`` with ``clear=0`` marks a page of the queue with a ``process_id``; each event is stored in the
durable inbox (the same hint a webhook stores), and only then is the page cleared with ``event.offline.clear``.
A crash in between leaves the page on the portal: the next fetch (same ``process_id``) gets it again, and the
inbox's dedup key keeps it once. Events the hub does not read are cleared too; none is ever lost unseen.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog

from .connection import Portal
from .webhooks import _EVENT, ENTITY_NAMES, INBOX_KIND, READABLE

log = structlog.get_logger("crm_hub_plugins.bitrix24")

PAGE = 50
PROCESS_KEY = "offline_process_id"


class OfflineEvents:
    """Fetches one portal's offline event queue into the inbox; ``tick`` is a Poller's callable."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def tick(self) -> None:
        """The Poller's tick: drain the queue and log what was stored."""
        stored = self.drain()
        if stored:
            log.info("bitrix24.offline_events", portal=self.portal.key, stored=stored)

    def drain(self) -> int:
        """Drain the queue page by page; return how many events were stored."""
        stored = 0
        while True:
            process_id = self.portal.load_token(PROCESS_KEY) or ""
            answer = self.portal.client.call(
                "event.offline.get", {"clear": 0, "limit": PAGE, **({"process_id": process_id} if process_id else {})}
            )
            answer = answer if isinstance(answer, dict) else {}
            events = [e for e in answer.get("events") or [] if isinstance(e, dict)]
            process_id = str(answer.get("process_id") or process_id)
            if not events:
                return stored
            self.portal.store_token(PROCESS_KEY, process_id)  # a crash before clearing re-fetches this page
            stored += sum(self._store(event) for event in events)
            self.portal.client.call(
                "event.offline.clear", {"process_id": process_id, "id": [str(e.get("ID")) for e in events]}
            )
            if len(events) < PAGE:
                return stored

    def _store(self, event: dict[str, Any]) -> bool:
        name = str(event.get("EVENT_NAME") or "").upper()
        data = event.get("EVENT_DATA")
        fields = data.get("FIELDS") if isinstance(data, dict) else None
        entity_id = str(fields.get("ID") or "").strip() if isinstance(fields, dict) else ""
        match = _EVENT.match(name)
        entity = ENTITY_NAMES[match["entity"]] if match else None
        action = match["action"].lower() if match else None
        if not entity_id or entity not in READABLE or action not in ("add", "update"):
            log.info("bitrix24.offline_event_ignored", portal=self.portal.key, event_name=name, id=entity_id or None)
            return False
        payload = {
            "portal": self.portal.key,
            "event": name,
            "entity": entity,
            "action": action,
            "id": entity_id,
            "ts": str(event.get("TIMESTAMP_X") or datetime.now(UTC).isoformat(timespec="seconds")),
        }
        key = f"bitrix24:{self.portal.key}:offline:{event.get('MESSAGE_ID') or event.get('ID')}"
        return bool(self.portal.hub.inbox.put(INBOX_KIND, payload, dedup_key=key))
