"""Inbound Bitrix24 events (``POST /webhooks/bitrix24``): parse the form body and verify its application token.

Bitrix24 sends ``event=ONCRMCONTACTADD&data[FIELDS][ID]=…&auth[application_token]=…``; the event names the entity
only, so the receiver reads the entity through the API afterwards. Keys not listed in the docs are tolerated.
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from hub.core import formcodec
from hub.core.errors import BadInput
from hub.core.formcodec import FormLimits
from hub.core.sources import WebhookRoute

log = structlog.get_logger("crm_hub_plugins.bitrix24")

# ONCRM<ENTITY><ACTION>; TIMELINECOMMENT before the shorter names so that the longest match wins.
_EVENT = re.compile(
    r"^ONCRM(?P<entity>TIMELINECOMMENT|CONTACT|COMPANY|DEAL|ACTIVITY|LEAD)(?P<action>ADD|UPDATE|DELETE)$"
)
ENTITY_NAMES = {
    "CONTACT": "contact",
    "COMPANY": "company",
    "DEAL": "deal",
    "ACTIVITY": "activity",
    "LEAD": "lead",
    "TIMELINECOMMENT": "timeline_comment",
}


@dataclass(frozen=True)
class InboundEvent:
    """One Bitrix24 event. ``entity_type``/``action`` are None for events other than CRM add/update/delete."""

    event: str
    entity_id: str
    entity_type: str | None
    action: str | None
    application_token: str = field(repr=False)
    domain: str
    member_id: str
    ts: datetime | None
    handler_id: str = ""
    fields: dict[str, Any] = field(default_factory=dict, repr=False)


# A Bitrix24 event is a few dozen pairs; these bounds leave a wide margin and stop a body built to stall the parser.
EVENT_LIMITS = FormLimits(max_pairs=2_000, max_depth=6, max_key_length=256)
TOKEN_KEY = "auth[application_token]"
# Event times the hub accepts: Bitrix24 started in 2012; a ts past 2100 is not a real event.
_TS_RANGE = (0, 4_102_444_800)


def parse_event(body: bytes | str) -> InboundEvent:
    """Parse an event body: form-encoded as Bitrix24 sends it (or its JSON rendering). Raise :class:`BadInput`."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput("Bitrix24 event body is not UTF-8; expected a URL-encoded form body") from None
    text = body.strip()
    if not text:
        raise BadInput("empty Bitrix24 event body: expected a form body with event=… and data[FIELDS][ID]=…")
    if text.startswith("{"):
        try:
            payload = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise BadInput(f"Bitrix24 event body is not valid JSON ({str(exc)[:120]})") from None
    else:
        payload = formcodec.decode(text, limits=EVENT_LIMITS, what="Bitrix24 event body")
    if not isinstance(payload, dict):
        raise BadInput("Bitrix24 event body must be a form or a JSON object")
    event = str(payload.get("event") or "").strip().upper()
    if not event:
        raise BadInput("Bitrix24 event body has no 'event' field; is this really a Bitrix24 event?")
    data = payload.get("data")
    fields = data.get("FIELDS") if isinstance(data, dict) else None
    if not isinstance(fields, dict) or not str(fields.get("ID") or "").strip():
        raise BadInput(f"Bitrix24 event {event} carries no data[FIELDS][ID]; cannot tell which entity changed")
    auth_value = payload.get("auth")
    auth: dict[str, Any] = auth_value if isinstance(auth_value, dict) else {}
    match = _EVENT.match(event)
    return InboundEvent(
        event=event,
        entity_id=str(fields["ID"]).strip(),
        entity_type=ENTITY_NAMES[match["entity"]] if match else None,
        action=match["action"].lower() if match else None,
        application_token=str(auth.get("application_token") or "").strip(),
        domain=str(auth.get("domain") or "").strip(),
        member_id=str(auth.get("member_id") or "").strip(),
        ts=_timestamp(payload.get("ts")),
        handler_id=str(payload.get("event_handler_id") or ""),
        fields=fields,
    )


def _timestamp(value: Any) -> datetime | None:
    """The event's ``ts`` (Unix seconds); absent is None, anything else that is not a plausible time is refused."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 12 and _TS_RANGE[0] <= int(text) <= _TS_RANGE[1]):
        raise BadInput(f"Bitrix24 event ts {text[:24]!r} is not a Unix time in seconds")
    return datetime.fromtimestamp(int(text), UTC)


def token_of(body: bytes | str) -> str:
    """The ``auth[application_token]`` of a form body, read without decoding it; "" when absent or JSON."""
    return (formcodec.find_pair(body, TOKEN_KEY) or "").strip()


def verify_event(event: InboundEvent, application_token: str) -> None:
    """Raise :class:`BadInput` unless the event's ``auth[application_token]`` equals the configured token."""
    if not application_token:
        raise BadInput("no Bitrix24 application token is configured: set HUB_BITRIX24__APPLICATION_TOKEN")
    if not event.application_token:
        raise BadInput(f"Bitrix24 event {event.event} has no auth[application_token]; refused")
    if not hmac.compare_digest(event.application_token.encode(), application_token.encode()):
        raise BadInput(
            f"Bitrix24 event {event.event} from {event.domain or 'an unknown portal'} has a wrong application token; "
            "refused (check HUB_BITRIX24__APPLICATION_TOKEN against the portal's outgoing webhook)"
        )


def parse_and_verify(body: bytes | str, application_token: str) -> InboundEvent:
    """Parse an event body and verify its token in one step: what the webhook route calls."""
    event = parse_event(body)
    verify_event(event, application_token)
    return event


# --- the hub's route --------------------------------------------------------------------------------------------
INBOX_KIND = "bitrix24.event"
READABLE = ("contact", "company", "deal", "activity", "timeline_comment")


def event_payload(event: InboundEvent, portal: str) -> tuple[dict[str, Any], str]:
    """What the inbox keeps of an event (no body data: the entity is read afterwards) and its dedup key."""
    ts = event.ts.isoformat() if event.ts else ""
    payload = {
        "portal": portal,
        "event": event.event,
        "entity": event.entity_type,
        "action": event.action,
        "id": event.entity_id,
        "ts": ts,
    }
    return payload, f"bitrix24:{portal}:{event.event}:{event.entity_type}:{event.entity_id}:{ts}"


def webhook_route(hub: Any, portals: Any) -> WebhookRoute:
    """``POST /webhooks/bitrix24``: verify the application token, store the event in the durable inbox and answer at
    once. A wrong token is a 401 and stores nothing; an event the hub does not read is answered 200 and logged."""

    def store(portal: Any, event: InboundEvent) -> JSONResponse:
        if event.member_id and not portal.claim(event.member_id):
            log.error(
                "bitrix24.portal_connected_twice",
                portal=portal.key,
                member_id=event.member_id,
                owner=portal.owner_of(event.member_id),
            )
            detail = "this portal is already connected to the hub under another name; events refused"
            return JSONResponse({"error": "conflict", "detail": detail}, status_code=409)
        payload, key = event_payload(event, portal.key)
        stored = hub.inbox.put(INBOX_KIND, payload, dedup_key=key)
        return JSONResponse({"received": event.event, "stored": int(stored)})

    def unauthorized(domain: str | None, event_name: str | None, reason: str) -> JSONResponse:
        # The token itself is never logged: only that it matched no portal, and where the event said it came from.
        log.warning("bitrix24.event_unauthorized", event_name=event_name, domain=domain, reason=reason)
        detail = "auth[application_token] does not match any connected portal"
        return JSONResponse({"error": "unauthorized", "detail": detail}, status_code=401)

    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        # A form body names its token: refuse a stranger before spending anything on decoding the rest.
        if not body.lstrip().startswith(b"{") and portals.for_token(token_of(body)) is None:
            reason = "auth[application_token] missing" if not token_of(body) else "unknown application token"
            return unauthorized(None, None, reason)
        try:
            event = await formcodec.parse_off_loop(parse_event, body)
        except BadInput as exc:
            log.warning("bitrix24.event_rejected", reason="malformed event body", problem=str(exc))
            return JSONResponse({"error": "bad_input", "detail": str(exc)}, status_code=400)
        portal = portals.for_token(event.application_token)
        if portal is None:
            return unauthorized(event.domain or None, event.event, "unknown application token")
        if event.entity_type not in READABLE or event.action not in ("add", "update"):
            # Answered 200 all the same: Bitrix24 would otherwise count the handler as failing.
            log.info(
                "bitrix24.event_ignored",
                portal=portal.key,
                event_name=event.event,
                id=event.entity_id,
                reason="deleted upstream" if event.action == "delete" else "not an event the hub reads",
            )
            return JSONResponse({"received": event.event, "stored": 0, "ignored": True})
        answer: JSONResponse = await run_in_threadpool(store, portal, event)
        return answer

    return WebhookRoute("/webhooks/bitrix24", receive, methods=("POST",), name="bitrix24-webhook")
