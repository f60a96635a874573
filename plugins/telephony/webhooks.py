"""Webhooks from the PBXs: Mango Office events, Zadarma notifications and the generic call-event form.

Each verified event is stored durably (``CallIntake.accept``) before the PBX gets its 200; the screen pop runs
right after the answer. A bad signature gets 401 and stores nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from hub.core.auth import bearer_matches
from hub.core.errors import BadInput
from hub.core.jsontext import BadJSON, parse_json
from hub.core.sources import SenderCheck, WebhookRoute

from . import openapi
from .calls import CallUpdate, RingingNotice
from .generic import GenericCallAssembler, GenericCallEvent
from .mango import MANGO_EVENT_PATHS, MangoCallAssembler, verify_mango_form
from .runtime import Telephony
from .zadarma import SIGNED_FIELDS, ZadarmaCallAssembler, verify_notification, zd_echo

log = structlog.get_logger("hub.telephony.webhooks")

MANGO_PATH = "/webhooks/telephony/mango/events/{kind}"
ZADARMA_PATH = "/webhooks/telephony/zadarma"
GENERIC_PATH = "/webhooks/telephony/generic"
MAX_CALL_ID = 255  # a call is keyed by its PBX id in the timeline (SourceRef.id)


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def _peer(request: Request) -> str | None:
    return request.client.host if request.client else None


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


async def _form(request: Request) -> dict[str, str]:
    try:
        form = await request.form()
    except Exception as exc:  # a body that is not a form at all
        raise BadInput(f"the body is not a form: {exc}") from exc
    fields = {key: str(value) for key, value in form.items()}
    if any("\x00" in key or "\x00" in value for key, value in fields.items()):
        raise BadInput("the form contains NUL characters")  # no PBX sends them; PostgreSQL cannot store them
    return fields


def routes(rt: Telephony) -> list[WebhookRoute]:
    """Every PBX webhook with its sender check; the core mounts only those whose check is configured."""
    cfg = rt.settings
    mango = SenderCheck(
        "the Mango Office signature",
        bool(cfg.mango.api_key and cfg.mango.api_salt.get_secret_value()),
        "set HUB_TELEPHONY__MANGO__API_KEY and HUB_TELEPHONY__MANGO__API_SALT",
    )
    zadarma_check = SenderCheck(
        "the Zadarma signature",
        bool(cfg.zadarma.secret.get_secret_value()),
        "set HUB_TELEPHONY__ZADARMA__KEY and HUB_TELEPHONY__ZADARMA__SECRET",
    )
    generic = SenderCheck(
        "the generic call-event token",
        bool(cfg.generic_token and cfg.generic_token.get_secret_value()),
        "set HUB_TELEPHONY__GENERIC_TOKEN (16+ characters) and send it as 'Authorization: Bearer <token>'",
    )
    zadarma = _zadarma_handler(rt)
    return [
        WebhookRoute(
            MANGO_PATH,
            _mango_handler(rt),
            ("POST",),
            "telephony_mango_event",
            sender=mango,
            openapi=openapi.MANGO_EVENT,
        ),
        WebhookRoute(
            ZADARMA_PATH,
            zadarma,
            ("GET",),
            "telephony_zadarma_url_check",
            sender=zadarma_check,
            openapi=openapi.ZADARMA_URL_CHECK,
        ),
        WebhookRoute(
            ZADARMA_PATH,
            zadarma,
            ("POST",),
            "telephony_zadarma",
            sender=zadarma_check,
            openapi=openapi.ZADARMA_NOTIFICATION,
        ),
        WebhookRoute(
            GENERIC_PATH,
            _generic_handler(rt),
            ("POST",),
            "telephony_generic",
            sender=generic,
            openapi=openapi.GENERIC_EVENT,
        ),
    ]


def _pop(rt: Telephony, updates: list[CallUpdate]) -> None:
    for update in updates:
        if isinstance(update, RingingNotice):
            rt.live.ring(update)


# --- Mango Office -----------------------------------------------------------------------------------------------


def mango_event_key(kind: str, payload: Mapping[str, Any]) -> str:
    """What makes one Mango delivery unique within its call (a retried delivery has the same key)."""
    if kind == "call":
        return f"call:{_text(payload.get('call_id'))}:{_text(payload.get('seq'))}:{_text(payload.get('call_state'))}"
    if kind == "recording":
        return f"recording:{_text(payload.get('recording_id'))}:{_text(payload.get('recording_state'))}"
    return kind


def _mango_handler(rt: Telephony) -> Any:
    async def mango_event(request: Request) -> Response:
        """Mango Office VPBX events (``events/call``, ``events/summary``, ``events/recording``)."""
        kind = request.path_params.get("kind", "")
        cfg = rt.settings.mango
        if not cfg.api_key:
            log.warning("mango_webhook_not_configured", peer=_peer(request))
            return _error(503, "not_configured", "set HUB_TELEPHONY__MANGO__API_KEY and HUB_TELEPHONY__MANGO__API_SALT")
        try:
            form = await _form(request)
            if "json" not in form:
                raise BadInput("no 'json' field: is this URL configured as the VPBX API endpoint?")
        except BadInput as exc:
            log.warning("mango_webhook_malformed", kind=kind, peer=_peer(request), problem=str(exc))
            return _error(400, "malformed", str(exc))
        try:
            payload = verify_mango_form(form, api_key=cfg.api_key, api_salt=cfg.api_salt)
        except BadInput as exc:
            log.warning("mango_webhook_rejected", kind=kind, peer=_peer(request), problem=str(exc))
            return _error(401, "bad_signature", str(exc))
        event_kind = MANGO_EVENT_PATHS.get(f"events/{kind}")
        entry_id = _text(payload.get("entry_id"))
        if event_kind is None or entry_id is None:
            log.info("mango_event_ignored", kind=kind, entry_id=entry_id, reason="not a call event or no entry_id")
            return JSONResponse({"status": "ignored"})
        key = mango_event_key(event_kind, payload)
        if len(entry_id) > MAX_CALL_ID or "\x00" in key + entry_id:
            log.warning("mango_webhook_malformed", kind=kind, problem="entry_id too long, or NUL in an id")
            return _error(400, "malformed", f"entry_id must be at most {MAX_CALL_ID} characters; no NUL in ids")
        event = {"kind": event_kind, "payload": payload}
        stored = await run_in_threadpool(rt.intake.accept, "mango", rt.account_mango, entry_id, key, event)
        task = BackgroundTask(_mango_live, rt, event_kind, payload, entry_id)
        return JSONResponse({"status": "stored" if stored else "duplicate"}, background=task)

    return mango_event


def _mango_live(rt: Telephony, kind: str, payload: Mapping[str, Any], entry_id: str) -> None:
    account = rt.account_mango
    if kind == "summary":
        rt.live.end("mango", account, entry_id)
        return
    if kind != "call":
        return
    state = payload.get("call_state")
    if state == "Appeared":
        if not rt.live.is_live("mango", account, entry_id):
            _pop(rt, MangoCallAssembler(account=account, region=rt.region).feed("call", payload))
    elif state == "Connected":
        target = payload.get("to")
        extension = _text(target.get("extension")) if isinstance(target, dict) else None
        rt.live.answered("mango", account, entry_id, extension)


# --- Zadarma -------------------------------------------------------------------------------------------------------


def _zadarma_handler(rt: Telephony) -> Any:
    async def zadarma_notification(request: Request) -> Response:
        """Zadarma NOTIFY_* notifications; ``GET ?zd_echo=X`` (the URL check) is answered with ``X``."""
        if request.method == "GET":
            echo = zd_echo(request.query_params)
            if echo is None:
                return _error(400, "malformed", "Zadarma checks this URL with ?zd_echo=<value>")
            return PlainTextResponse(echo)
        cfg = rt.settings.zadarma
        if not cfg.secret.get_secret_value():
            log.warning("zadarma_webhook_not_configured", peer=_peer(request))
            return _error(503, "not_configured", "set HUB_TELEPHONY__ZADARMA__KEY and HUB_TELEPHONY__ZADARMA__SECRET")
        try:
            form = await _form(request)
        except BadInput as exc:
            log.warning("zadarma_webhook_malformed", peer=_peer(request), problem=str(exc))
            return _error(400, "malformed", str(exc))
        event = form.get("event", "")
        if event not in SIGNED_FIELDS:
            # Events with no signature scheme (SMS, speech recognition...) cannot be trusted: answered, not stored.
            log.info("zadarma_event_ignored", zadarma_event=event or None, reason="not a call notification")
            return JSONResponse({"status": "ignored"})
        try:
            verify_notification(form, request.headers.get("Signature"), cfg.secret)
        except BadInput as exc:
            log.warning("zadarma_webhook_rejected", zadarma_event=event, peer=_peer(request), problem=str(exc))
            return _error(401, "bad_signature", str(exc))
        call_id = form.get("pbx_call_id")
        if not call_id:
            log.warning("zadarma_event_without_call_id", zadarma_event=event)
            return _error(400, "malformed", "the notification has no pbx_call_id")
        if len(call_id) > MAX_CALL_ID:
            log.warning("zadarma_webhook_malformed", zadarma_event=event, problem="pbx_call_id too long")
            return _error(400, "malformed", f"pbx_call_id is longer than {MAX_CALL_ID} characters")
        account = rt.account_zadarma
        # pbx_call_id is not signed: the signed fields decide whether this is new (see plugins/telephony/replay.py)
        try:
            verdict = await run_in_threadpool(rt.zadarma_replays.check, form)
        except BadInput as exc:
            log.warning("zadarma_webhook_malformed", peer=_peer(request), problem=str(exc))
            return _error(400, "malformed", str(exc))
        if verdict != "fresh":
            log.warning("zadarma_replay_refused", pbx_call_id=call_id, zadarma_event=event, verdict=verdict)
            return JSONResponse({"status": verdict})
        # A retry of the same call carries the same (call, event): stored once.
        key = zadarma_event_key(form)
        if await run_in_threadpool(rt.intake.already_filed, "zadarma", account, call_id, key):
            log.info("zadarma_replay_ignored", pbx_call_id=call_id, zadarma_event=event)
            return JSONResponse({"status": "duplicate"})
        stored = await run_in_threadpool(rt.intake.accept, "zadarma", account, call_id, key, form)
        if not stored:
            log.info("zadarma_replay_ignored", pbx_call_id=call_id, zadarma_event=event)
        task = BackgroundTask(_zadarma_live, rt, form)
        return JSONResponse({"status": "stored" if stored else "duplicate"}, background=task)

    return zadarma_notification


def zadarma_event_key(form: Mapping[str, str]) -> str:
    """What makes one Zadarma delivery unique within its call: the event, and for an answer who answered (a
    transfer answers the same call again at another extension)."""
    event = form.get("event", "")
    if event == "NOTIFY_ANSWER":
        return f"{event}:{form.get('destination') or form.get('internal') or ''}"
    return event


def _zadarma_live(rt: Telephony, form: Mapping[str, str]) -> None:
    account, event, call_id = rt.account_zadarma, form.get("event"), form.get("pbx_call_id", "")
    if event in ("NOTIFY_INTERNAL", "NOTIFY_OUT_START"):
        if not rt.live.is_live("zadarma", account, call_id):
            assembler = ZadarmaCallAssembler(account=account, region=rt.region, timezone=rt.settings.zadarma.timezone)
            _pop(rt, assembler.feed(form))
    elif event == "NOTIFY_ANSWER":
        rt.live.answered("zadarma", account, call_id, form.get("internal") or form.get("destination"))
    elif event in ("NOTIFY_END", "NOTIFY_OUT_END"):
        rt.live.end("zadarma", account, call_id)


# --- the generic form ---------------------------------------------------------------------------------------------


def _generic_handler(rt: Telephony) -> Any:
    async def generic_call_event(request: Request) -> Response:
        """One event of one call from any PBX (see docs/plugins/telephony.md, "generic call-event form")."""
        token = rt.settings.generic_token
        # mounted only with a token configured; checked again here so no setup ever serves it open
        if token is None or not bearer_matches(request.headers.get("authorization"), token):
            log.warning("generic_call_event_unauthorized", peer=_peer(request))
            return _error(401, "unauthorized", "send 'Authorization: Bearer <HUB_TELEPHONY__GENERIC_TOKEN>'")
        try:
            data = parse_json(await request.body())
        except BadJSON as exc:
            log.warning("generic_call_event_malformed", peer=_peer(request), problem=str(exc))
            return _error(400, exc.code, str(exc))
        try:
            if not isinstance(data, dict):
                raise BadInput("the body must be one JSON object")
            event = GenericCallEvent.model_validate(data)
        except (ValidationError, BadInput) as exc:
            detail = _problems(exc)
            log.warning("generic_call_event_rejected", peer=_peer(request), problem=detail)
            return _error(422, "bad_input", detail)
        stored_event = event.model_dump(mode="json", by_alias=True, exclude_none=True)
        stored = await run_in_threadpool(
            rt.intake.accept, "generic", event.account, event.call_id, event.event, stored_event
        )
        task = BackgroundTask(_generic_live, rt, event)
        return JSONResponse({"status": "stored" if stored else "duplicate"}, status_code=202, background=task)

    return generic_call_event


def _problems(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
    return str(exc)


def _generic_live(rt: Telephony, event: GenericCallEvent) -> None:
    if event.event == "ringing":
        if not rt.live.is_live("generic", event.account, event.call_id):
            _pop(rt, GenericCallAssembler(region=rt.region).feed(event))
    elif event.event == "answered":
        rt.live.answered("generic", event.account, event.call_id, event.extension)
    else:
        rt.live.end("generic", event.account, event.call_id)
