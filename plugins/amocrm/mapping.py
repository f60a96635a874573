"""amoCRM entities ↔ the hub's vocabulary: contacts, companies, leads, notes and tasks in; clients, calls, notes,
deals and tasks out; and normalised comparisons that tell an echo of the hub's own write from real news."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from hub.core.errors import BadInput
from hub.core.events import (
    ClientKey,
    ClientObservation,
    ClientView,
    DealObservation,
    InteractionObservation,
    ItemView,
    SourceRef,
    TaskObservation,
)
from hub.core.identity import normalize_email, normalize_phone

SYSTEM = "amocrm"
WON_STATUS, LOST_STATUS = 142, 143
CALL_STATUS = {"answered": 4, "missed": 3, "no_answer": 3, "busy": 7, "failed": 6, "cancelled": 3}
NOTE_CHANNELS = {"common": "note", "call_in": "call", "call_out": "call", "sms_in": "message", "sms_out": "message"}


def ref(account: str, entity: str, entity_id: int | str) -> SourceRef:
    return SourceRef(system=SYSTEM, account=account, entity=entity, id=str(entity_id))


def _time(value: Any) -> datetime | None:
    if value in (None, "", 0):
        return None
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def field_texts(entity: dict[str, Any], code: str) -> list[str]:
    """The values of the custom field with ``field_code`` ``code`` (PHONE, EMAIL, POSITION...)."""
    return [
        str(v.get("value"))
        for cf in entity.get("custom_fields_values") or []
        if isinstance(cf, dict) and cf.get("field_code") == code
        for v in cf.get("values") or []
        if isinstance(v, dict) and v.get("value") not in (None, "")
    ]


# --- amoCRM → hub ---------------------------------------------------------------------------------------------
def client_observation(entity: dict[str, Any], *, account: str, company: bool = False) -> ClientObservation:
    """A contact (``company=False``) or company as the hub sees it; phones/emails from PHONE/EMAIL fields."""
    if not isinstance(entity.get("id"), int | str) or str(entity.get("id")) == "":
        raise BadInput("amoCRM entity has no id; re-read it through the API before mapping")
    kind = "company" if company else "contact"
    companies = ((entity.get("_embedded") or {}).get("companies")) or []
    company_key = None
    if not company and companies and isinstance(companies[0], dict) and companies[0].get("id"):
        company_key = ClientKey(ref=ref(account, "company", companies[0]["id"]), kind="company", create=False)
    positions = field_texts(entity, "POSITION")
    return ClientObservation(
        source=ref(account, kind, entity["id"]),
        observed_at=_time(entity.get("updated_at")) or datetime.now(UTC),
        client_kind="company" if company else "person",
        name=(entity.get("name") or None),
        first_name=(entity.get("first_name") or None) if not company else None,
        last_name=(entity.get("last_name") or None) if not company else None,
        position=positions[0] if positions else None,
        company=company_key,
        phones=field_texts(entity, "PHONE"),
        emails=field_texts(entity, "EMAIL"),
    )


@dataclass(frozen=True)
class Pipelines:
    """Pipeline and status names from ``/api/v4/leads/pipelines``."""

    names: dict[int, str] = field(default_factory=dict)
    statuses: dict[tuple[int, int], str] = field(default_factory=dict)

    @classmethod
    def from_response(cls, body: dict[str, Any] | None) -> Pipelines:
        names: dict[int, str] = {}
        statuses: dict[tuple[int, int], str] = {}
        for pipeline in ((body or {}).get("_embedded") or {}).get("pipelines") or []:
            names[int(pipeline["id"])] = str(pipeline.get("name", ""))
            for status in (pipeline.get("_embedded") or {}).get("statuses") or []:
                statuses[(int(pipeline["id"]), int(status["id"]))] = str(status.get("name", ""))
        return cls(names, statuses)


def deal_status(status_id: int | None) -> str:
    """142 is won and 143 is lost in every pipeline; every other status is open."""
    return {WON_STATUS: "won", LOST_STATUS: "lost"}.get(int(status_id or 0), "open")


def lead_client_key(lead: dict[str, Any], *, account: str) -> ClientKey | None:
    """The lead's main contact, else its first contact, else its company; ``None`` when it has neither."""
    embedded = lead.get("_embedded") or {}
    contacts = [c for c in embedded.get("contacts") or [] if isinstance(c, dict) and c.get("id")]
    contacts.sort(key=lambda c: not c.get("is_main"))
    if contacts:
        return ClientKey(ref=ref(account, "contact", contacts[0]["id"]), create=False)
    companies = [c for c in embedded.get("companies") or [] if isinstance(c, dict) and c.get("id")]
    if companies:
        return ClientKey(ref=ref(account, "company", companies[0]["id"]), kind="company", create=False)
    return None


def deal_observation(
    lead: dict[str, Any], *, account: str, pipelines: Pipelines | None = None, currency: str | None = None
) -> DealObservation | None:
    """A lead as a deal; ``None`` when it is linked to no contact or company (nothing to attach it to)."""
    client = lead_client_key(lead, account=account)
    if client is None:
        return None
    pipelines = pipelines or Pipelines()
    pipeline_id, status_id = int(lead.get("pipeline_id") or 0), int(lead.get("status_id") or 0)
    try:
        amount = Decimal(str(lead["price"])) if lead.get("price") not in (None, "") else None
    except InvalidOperation:
        amount = None
    return DealObservation(
        source=ref(account, "lead", lead["id"]),
        observed_at=_time(lead.get("updated_at")) or datetime.now(UTC),
        client=client,
        title=lead.get("name") or None,
        pipeline=pipelines.names.get(pipeline_id) or (str(pipeline_id) if pipeline_id else None),
        stage=pipelines.statuses.get((pipeline_id, status_id)) or (str(status_id) if status_id else None),
        status=deal_status(status_id),
        amount=amount,
        currency=currency,
        fields={"amocrm_pipeline_id": pipeline_id or None, "amocrm_status_id": status_id or None},
    )


def interaction_observation(note: dict[str, Any], *, account: str, client: ClientKey) -> InteractionObservation | None:
    """A common note as a note, call_in/call_out as calls; ``None`` for note types the hub does not keep."""
    note_type = str(note.get("note_type") or "")
    channel = NOTE_CHANNELS.get(note_type)
    if channel is None:
        return None
    params = note.get("params") or {}
    when = _time(note.get("created_at"))
    obs: dict[str, Any] = {
        "source": ref(account, "note", note["id"]),
        "observed_at": _time(note.get("updated_at")) or when or datetime.now(UTC),
        "channel": channel,
        "client": client,
        "occurred_at": when,
    }
    if channel == "call":
        phone = str(params.get("phone") or "")
        if phone and not client.phones:
            obs["client"] = client.model_copy(update={"phones": [phone]})
        duration = params.get("duration")
        obs.update(
            direction="in" if note_type == "call_in" else "out",
            duration_s=float(duration) if duration not in (None, "") else None,
            recording_url=params.get("link") or None,
            status="answered" if duration not in (None, "", 0, "0") else "missed",
            summary=params.get("call_result") or None,
            fields={"phone": phone or None, "uniq": params.get("uniq"), "source": params.get("source")},
        )
    else:
        direction = "internal" if channel == "note" else ("in" if note_type.endswith("_in") else "out")
        obs.update(direction=direction, body=str(params.get("text") or ""))
    return InteractionObservation(**obs)


def task_observation(task: dict[str, Any], *, account: str, client: ClientKey) -> TaskObservation:
    result = task.get("result")
    return TaskObservation(
        source=ref(account, "task", task["id"]),
        observed_at=_time(task.get("updated_at")) or datetime.now(UTC),
        client=client,
        title=task.get("text") or None,
        due_at=_time(task.get("complete_till")),
        assignee=str(task["responsible_user_id"]) if task.get("responsible_user_id") else None,
        done=bool(task.get("is_completed")),
        fields={
            "task_type_id": task.get("task_type_id"),
            "result": (result or {}).get("text") if isinstance(result, dict) else None,
        },
    )


# --- hub → amoCRM -----------------------------------------------------------------------------------------------
def _phone_key(value: str, region: str = "RU") -> str:
    try:
        return normalize_phone(value, region)
    except BadInput:
        return re.sub(r"\D", "", value)


def _email_key(value: str) -> str:
    try:
        return normalize_email(value)
    except BadInput:
        return value.strip().lower()


def merged_contact_points(
    existing: dict[str, Any] | None, code: str, wanted: list[str], *, region: str = "RU"
) -> list[dict[str, Any]] | None:
    """The values to send for PHONE or EMAIL: every existing value kept as it is (with its enum), then the hub's
    values amoCRM does not have yet. ``None`` when nothing would change (send nothing, wipe nothing)."""
    key = _phone_key if code == "PHONE" else _email_key
    current: list[dict[str, Any]] = []
    for cf in (existing or {}).get("custom_fields_values") or []:
        if cf.get("field_code") == code:
            current = [
                {k: v for k, v in value.items() if k in ("value", "enum_id", "enum_code")}
                for value in cf.get("values") or []
            ]
    known = {key(str(v["value"])) for v in current if v.get("value") not in (None, "")}
    added = []
    for value in wanted:
        k = key(value) if code == "EMAIL" else _phone_key(value, region)
        if k not in known:
            known.add(k)
            added.append({"value": value, "enum_code": "WORK"})
    return current + added if added else None


def client_payload(view: ClientView, *, existing: dict[str, Any] | None = None, region: str = "RU") -> dict[str, Any]:
    """A contact (person) or company payload for POST/PATCH; with ``existing`` (the entity as read from amoCRM)
    it carries its ``id`` and only the fields that change, merged so no value is wiped."""
    payload: dict[str, Any] = {}
    if existing is not None:
        payload["id"] = existing["id"]
    if view.name and (existing is None or not same_text(existing.get("name"), view.name)):
        payload["name"] = view.name
    fields = []
    for code, values in (("PHONE", view.phones), ("EMAIL", view.emails)):
        merged = merged_contact_points(existing, code, values, region=region)
        if merged is not None:
            fields.append({"field_code": code, "values": merged})
    if fields:
        payload["custom_fields_values"] = fields
    return payload


def client_entity(view: ClientView) -> str:
    """Where a client lives in amoCRM: ``contacts`` or ``companies``."""
    return "companies" if view.kind == "company" else "contacts"


def _epoch(value: Any) -> int | None:
    if isinstance(value, datetime):
        return int(value.timestamp())
    if isinstance(value, str) and value:
        try:
            return int(datetime.fromisoformat(value).timestamp())
        except ValueError:
            return None
    return None


def call_phone(item: ItemView, client: ClientView) -> str | None:
    phone = item.fields.get("phone")
    return str(phone) if phone else (client.phones[0] if client.phones else None)


def call_payload(item: ItemView, client: ClientView, *, source: str = "crm-hub") -> dict[str, Any]:
    """A call for POST /api/v4/calls; amoCRM attaches it by phone (and drops it when no contact matches)."""
    phone = call_phone(item, client)
    if phone is None:
        raise BadInput(f"call {item.id} has no phone number; amoCRM attaches calls by phone")
    fields = item.fields
    payload: dict[str, Any] = {
        "direction": "inbound" if fields.get("direction") == "in" else "outbound",
        "uniq": f"crm-hub-{item.source.system}-{item.source.id}",
        "duration": int(float(fields.get("duration_s") or 0)),
        "source": source,
        "phone": phone,
        "call_status": CALL_STATUS.get(str(fields.get("status") or "answered"), 4),
        "created_at": int(item.occurred_at.timestamp()),
        "request_id": str(item.id),
    }
    if fields.get("recording_url"):
        payload["link"] = fields["recording_url"]
    if fields.get("summary"):
        payload["call_result"] = str(fields["summary"])[:255]
    return payload


def note_payload(item: ItemView, client: ClientView, *, entity_id: int, source: str = "crm-hub") -> dict[str, Any]:
    """A note for POST /api/v4/{entity}/notes: calls as call_in/call_out, everything else as a common note."""
    fields = item.fields
    if item.channel == "call":
        params = {
            "uniq": f"crm-hub-{item.source.system}-{item.source.id}",
            "duration": int(float(fields.get("duration_s") or 0)),
            "source": source,
            "link": fields.get("recording_url") or "",
            "phone": call_phone(item, client) or "",
        }
        note_type = "call_in" if fields.get("direction") == "in" else "call_out"
        return {"entity_id": entity_id, "note_type": note_type, "params": params, "request_id": str(item.id)}
    parts = [str(fields[k]) for k in ("subject", "body", "summary") if fields.get(k)]
    label = {"email": "Письмо", "message": "Сообщение", "meeting": "Встреча"}.get(item.channel or "", "")
    text = "\n\n".join(parts) or label or "—"
    if label and parts:
        text = f"{label}: {text}"
    return {"entity_id": entity_id, "note_type": "common", "params": {"text": text}, "request_id": str(item.id)}


@dataclass(frozen=True)
class LeadMapping:
    """Which amoCRM pipeline/status a hub deal goes to: ``pipeline_map`` by the hub's pipeline name,
    ``status_map`` by stage name; won and lost always go to 142 and 143."""

    pipeline_map: dict[str, int] = field(default_factory=dict)
    status_map: dict[str, int] = field(default_factory=dict)


def lead_payload(
    item: ItemView, *, contact_id: int | None, mapping: LeadMapping | None = None, lead_id: int | None = None
) -> dict[str, Any]:
    mapping = mapping or LeadMapping()
    fields = item.fields
    payload: dict[str, Any] = {}
    if lead_id is not None:
        payload["id"] = lead_id
    if fields.get("title"):
        payload["name"] = str(fields["title"])
    if fields.get("amount") not in (None, ""):
        payload["price"] = int(Decimal(str(fields["amount"])))
    pipeline = fields.get("pipeline")
    if pipeline and str(pipeline) in mapping.pipeline_map:
        payload["pipeline_id"] = mapping.pipeline_map[str(pipeline)]
    status = fields.get("status")
    if status == "won":
        payload["status_id"] = WON_STATUS
    elif status == "lost":
        payload["status_id"] = LOST_STATUS
    elif fields.get("stage") and str(fields["stage"]) in mapping.status_map:
        payload["status_id"] = mapping.status_map[str(fields["stage"])]
    if contact_id is not None and lead_id is None:
        payload["_embedded"] = {"contacts": [{"id": contact_id}]}
    return payload


def task_payload(
    item: ItemView, *, entity_id: int, entity_type: str = "contacts", now: datetime | None = None
) -> dict[str, Any]:
    """A task (a call-back after a missed call, say): task type 1 is a call."""
    fields = item.fields
    due = _epoch(fields.get("due_at")) or int(((now or datetime.now(UTC)) + timedelta(hours=1)).timestamp())
    payload: dict[str, Any] = {
        "text": str(fields.get("title") or "Перезвонить клиенту"),
        "complete_till": due,
        "entity_id": entity_id,
        "entity_type": entity_type,
        "task_type_id": int(fields.get("task_type_id") or 1),
        "request_id": str(item.id),
    }
    if str(fields.get("assignee") or "").isdigit():
        payload["responsible_user_id"] = int(fields["assignee"])
    if fields.get("done") is not None:
        payload["is_completed"] = bool(fields["done"])
    return payload


# --- echo detection -------------------------------------------------------------------------------------------
def same_text(a: Any, b: Any) -> bool:
    """Names compare without case, surrounding space or repeated inner spaces."""
    return " ".join(str(a or "").split()).casefold() == " ".join(str(b or "").split()).casefold()


def phone_set(values: list[str], region: str = "RU") -> frozenset[str]:
    return frozenset(_phone_key(v, region) for v in values if v)


def email_set(values: list[str]) -> frozenset[str]:
    return frozenset(_email_key(v) for v in values if v)


def reflects_hub(obs: ClientObservation, view: ClientView, *, region: str = "RU") -> bool:
    """Whether a client read back from amoCRM only reflects what the hub already holds (an echo of its write):
    the same name and no phone or email the hub lacks."""
    if obs.name and view.name and not same_text(obs.name, view.name):
        return False
    if not phone_set(obs.phones, region) <= phone_set(view.phones, region):
        return False
    return email_set(obs.emails) <= email_set(view.emails)
