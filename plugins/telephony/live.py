"""Calls ringing or in progress right now, with the caller's client summary (the screen pop).

Each live call is written to ``hub.state`` (scope ``telephony.live``) so that a web process other than the one
that heard the PBX can serve it, and is pushed at once to subscribers in this process (server-sent events).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC
from typing import TYPE_CHECKING, Any

import structlog

from hub.core.errors import HubError

from .calls import RingingNotice

if TYPE_CHECKING:
    from hub.core.hub import Hub

log = structlog.get_logger("hub.telephony.live")

LIVE_SCOPE = "telephony.live"
LAST_INTERACTIONS = 5


def live_key(system: str, account: str, call_id: str) -> str:
    return f"{system}:{account}:{call_id}"


def client_summary(hub: Hub, phone: str | None) -> dict[str, Any] | None:
    """Who is calling: id, name, company, the last interactions and the open deals; ``None`` if unknown."""
    if not phone:
        return None
    found = hub.find_clients(phone=phone, limit=1)
    if not found:
        return None
    client = found[0]
    company = None
    if client.company_id is not None:
        try:
            company = hub.get_client(client.company_id).name
        except HubError:
            company = None
    recent = hub.timeline(client.id, limit=LAST_INTERACTIONS, kinds=["interaction"])
    deals = [
        d for d in hub.timeline(client.id, limit=100, kinds=["deal"]) if d.fields.get("status") not in ("won", "lost")
    ]
    return {
        "id": client.id,
        "name": client.name,
        "company": company,
        "phones": client.phones,
        "last_interactions": [
            {
                "id": i.id,
                "channel": i.channel,
                "occurred_at": i.occurred_at.isoformat(),
                "direction": i.fields.get("direction"),
                "status": i.fields.get("status"),
                "subject": i.fields.get("subject"),
                "summary": i.fields.get("summary"),
                "operator": i.fields.get("operator"),
            }
            for i in recent
        ],
        "open_deals": [
            {
                "id": d.id,
                "title": d.fields.get("title"),
                "stage": d.fields.get("stage"),
                "amount": d.fields.get("amount"),
                "currency": d.fields.get("currency"),
            }
            for d in deals
        ],
    }


class LiveCalls:
    """The live-call list of one hub: durable in ``hub.state``, pushed in-process to subscribers."""

    def __init__(self, hub: Hub, *, ring_max_s: float = 300.0, max_age_s: float = 4 * 3600.0) -> None:
        self.hub = hub
        self.ring_max_s = ring_max_s
        self.max_age_s = max_age_s
        self._subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]] = []
        self._lock = threading.Lock()
        self._snapshot: tuple[float, dict[str, dict[str, Any]]] = (0.0, {})

    # --- writers (any thread) ------------------------------------------------------------------------------
    def ring(self, notice: RingingNotice) -> dict[str, Any]:
        """A call started ringing: look the caller up, push it to subscribers, then store it."""
        phone = notice.number.e164 if notice.number is not None else None
        try:
            summary = client_summary(self.hub, phone)
        except Exception as exc:  # the pop must still show the number when the lookup fails
            log.warning("screen_pop_lookup_failed", call_id=notice.call_id, error=str(exc))
            summary = None
        now = time.time()
        call = {
            "key": live_key(notice.system, notice.account, notice.call_id),
            "call_id": notice.call_id,
            "system": notice.system,
            "account": notice.account,
            "direction": notice.direction,
            "number": phone or (notice.number.raw if notice.number is not None else None),
            "extension": notice.extension,
            "state": "ringing",
            "started_at": notice.at.astimezone(UTC).isoformat(),
            "updated": now,
            "client": summary,
        }
        self._publish("ringing", call)
        self._store(call)
        log.info(
            "call_ringing",
            system=notice.system,
            call_id=notice.call_id,
            extension=notice.extension,
            client_id=summary["id"] if summary else None,
        )
        return call

    def is_live(self, system: str, account: str, call_id: str) -> bool:
        return self.hub.state.get(LIVE_SCOPE, live_key(system, account, call_id)) is not None

    def answered(self, system: str, account: str, call_id: str, extension: str | None = None) -> None:
        """A live call was picked up: it stays in the list as ``active``."""
        key = live_key(system, account, call_id)
        call = self.hub.state.get(LIVE_SCOPE, key)
        if not call or call.get("state") == "active":
            return
        call = {**call, "state": "active", "updated": time.time()}
        if extension:
            call["extension"] = extension
        self._publish("active", call)
        self._store(call)

    def end(self, system: str, account: str, call_id: str) -> None:
        """A call is over: it leaves the list."""
        key = live_key(system, account, call_id)
        if self.hub.state.get(LIVE_SCOPE, key) is None:
            return
        self.hub.state.delete(LIVE_SCOPE, key)
        self._publish("ended", {"key": key, "call_id": call_id, "system": system, "account": account})

    def _store(self, call: dict[str, Any]) -> None:
        try:
            self.hub.state.put(LIVE_SCOPE, call["key"], call)
        except Exception as exc:
            log.warning("live_call_not_stored", key=call["key"], error=str(exc))

    # --- readers ----------------------------------------------------------------------------------------------
    def calls(self, *, max_staleness: float = 0.0) -> list[dict[str, Any]]:
        """Ringing and active calls, oldest first; expired ones are dropped (and removed) on the way."""
        taken, cached = self._snapshot
        now = time.time()
        if max_staleness and now - taken < max_staleness:
            return list(cached.values())
        live: dict[str, dict[str, Any]] = {}
        for key, call in self.hub.state.items(LIVE_SCOPE).items():
            age = now - float(call.get("updated", 0))
            if age > self.max_age_s or (call.get("state") == "ringing" and age > self.ring_max_s):
                log.info("live_call_expired", key=key, state=call.get("state"), age_s=round(age))
                self.hub.state.delete(LIVE_SCOPE, key)
                continue
            live[key] = call
        ordered = dict(sorted(live.items(), key=lambda kv: kv[1].get("started_at") or ""))
        self._snapshot = (now, ordered)
        return list(ordered.values())

    # --- in-process publish/subscribe -------------------------------------------------------------------------
    def subscribe(self) -> tuple[asyncio.Queue[dict[str, Any]], Callable[[], None]]:
        """A queue of ``{"event": ..., "call": ...}`` for the running event loop, and its unsubscribe function."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        entry = (loop, queue)
        with self._lock:
            self._subscribers.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)

        return queue, unsubscribe

    def _publish(self, event: str, call: dict[str, Any]) -> None:
        message = {"event": event, "call": call}
        with self._lock:
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            try:
                loop.call_soon_threadsafe(_offer, queue, message)
            except RuntimeError:  # the loop is closed: that subscriber is gone
                with self._lock:
                    if (loop, queue) in self._subscribers:
                        self._subscribers.remove((loop, queue))


def _offer(queue: asyncio.Queue[dict[str, Any]], message: dict[str, Any]) -> None:
    if queue.full():
        return  # a subscriber that stopped reading loses pushes, not the server
    queue.put_nowait(message)
