"""Bitrix24 fields ↔ the hub's unified record: entities to Observations, hub views to Bitrix24 ``fields``.

Writes never wipe what the hub does not know: multi-field values (PHONE, EMAIL) are only ever added. Comparison
helpers normalise both sides so that Bitrix24 echoing back what the hub wrote is recognised as nothing new.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from hub.core.errors import BadInput
from hub.core.events import (
    ClientKey,
    ClientObservation,
    ClientView,
    DealObservation,
    InteractionObservation,
    ItemView,
    SourceRef,
)
from hub.core.identity import normalize_email, normalize_phone

SYSTEM = "bitrix24"
ORIGINATOR_ID = "crm-hub"

# crm.activity TYPE_ID and OWNER_TYPE_ID (CRM entity type ids), as documented.
ACTIVITY_CHANNELS = {"1": "meeting", "2": "call", "4": "email"}
CHANNEL_ACTIVITY_TYPES = {"meeting": 1, "call": 2, "email": 4}
OWNER_TYPE_IDS = {"lead": 1, "deal": 2, "contact": 3, "company": 4}
OWNER_ENTITIES = {str(v): k for k, v in OWNER_TYPE_IDS.items()}
DIRECTIONS = {"1": "in", "2": "out"}
DIRECTION_IDS = {"in": 1, "out": 2}
# telephony.externalcall.register TYPE: 1 outgoing, 2 incoming; finish STATUS_CODE (SIP-like).
CALL_TYPES = {"out": 1, "in": 2}
CALL_STATUS_CODES = {
    "answered": "200",
    "missed": "304",
    "no_answer": "304",
    "busy": "486",
    "cancelled": "603",
    "failed": "603",
}

log = logging.getLogger(__name__)


def source_ref(account: str, entity: str, entity_id: Any) -> SourceRef:
    return SourceRef(system=SYSTEM, account=account, entity=entity, id=str(entity_id))


def _text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _when(value: Any) -> datetime | None:
    """Bitrix24 dates are ISO 8601 with the portal's offset (``2026-11-23T10:00:00+03:00``)."""
    text = _text(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(value: Any) -> str | None:
    """An ISO date for Bitrix24 from a datetime or an ISO string stored in an item's fields."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.isoformat(timespec="seconds")
    parsed = _when(value)
    return parsed.isoformat(timespec="seconds") if parsed else None


def multifield_values(values: Any) -> list[str]:
    """The raw ``VALUE`` strings of a multi-field (PHONE, EMAIL) as crm.*.get returns it."""
    items = values.values() if isinstance(values, dict) else values if isinstance(values, list) else []
    return [str(m.get("VALUE")).strip() for m in items if isinstance(m, dict) and _text(m.get("VALUE"))]


def normal_phones(values: Iterable[str], region: str = "RU") -> list[str]:
    """E.164 numbers, in order, without duplicates; numbers that cannot be parsed are left out (and logged)."""
    out: list[str] = []
    for raw in values:
        try:
            phone = normalize_phone(raw, region)
        except BadInput:
            log.info("bitrix24: skipping a phone that is not a valid number", extra={"value_len": len(raw)})
            continue
        if phone not in out:
            out.append(phone)
    return out


def normal_emails(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for raw in values:
        try:
            email = normalize_email(raw)
        except BadInput:
            log.info("bitrix24: skipping an email that is not a valid address")
            continue
        if email not in out:
            out.append(email)
    return out


def _custom_fields(entity: Mapping[str, Any]) -> dict[str, str | int | float | bool | None]:
    return {k: v for k, v in entity.items() if k.startswith("UF_") and (v is None or isinstance(v, str | int | float))}


# --- Bitrix24 → hub -------------------------------------------------------------------------------------------


def contact_observation(contact: Mapping[str, Any], account: str, *, region: str = "RU") -> ClientObservation:
    """A crm.contact.get answer as a person. The hub composes the display name from the parts."""
    company_id = _text(contact.get("COMPANY_ID"))
    return ClientObservation(
        source=source_ref(account, "contact", contact["ID"]),
        observed_at=_when(contact.get("DATE_MODIFY")) or datetime.now(UTC),
        client_kind="person",
        first_name=_text(contact.get("NAME")),
        last_name=_text(contact.get("LAST_NAME")),
        middle_name=_text(contact.get("SECOND_NAME")),
        position=_text(contact.get("POST")),
        company=ClientKey(ref=source_ref(account, "company", company_id), kind="company", create=False)
        if company_id and company_id != "0"
        else None,
        phones=normal_phones(multifield_values(contact.get("PHONE")), region),
        emails=normal_emails(multifield_values(contact.get("EMAIL"))),
        fields=_custom_fields(contact),
    )


def company_observation(company: Mapping[str, Any], account: str, *, region: str = "RU") -> ClientObservation:
    """A crm.company.get answer as a company client; its TITLE is the name."""
    return ClientObservation(
        source=source_ref(account, "company", company["ID"]),
        observed_at=_when(company.get("DATE_MODIFY")) or datetime.now(UTC),
        client_kind="company",
        name=_text(company.get("TITLE")),
        phones=normal_phones(multifield_values(company.get("PHONE")), region),
        emails=normal_emails(multifield_values(company.get("EMAIL"))),
        fields=_custom_fields(company),
    )


def _owner_key(account: str, owner_type_id: Any, owner_id: Any) -> ClientKey | None:
    entity = OWNER_ENTITIES.get(str(owner_type_id or ""))
    if entity in ("contact", "company") and _text(owner_id):
        return ClientKey(ref=source_ref(account, entity, owner_id), kind="company" if entity == "company" else "person")
    return None


def _client_from_communications(account: str, communications: Any, region: str) -> ClientKey:
    phones: list[str] = []
    emails: list[str] = []
    for comm in communications if isinstance(communications, list) else []:
        if not isinstance(comm, dict):
            continue
        key = _owner_key(account, comm.get("ENTITY_TYPE_ID"), comm.get("ENTITY_ID"))
        if key is not None:
            return key
        value = _text(comm.get("VALUE")) or ""
        if str(comm.get("TYPE", "")).upper() == "EMAIL" or "@" in value:
            emails += normal_emails([value])
        elif value:
            phones += normal_phones([value], region)
    return ClientKey(phones=phones, emails=emails, create=bool(phones or emails))


def activity_observation(
    activity: Mapping[str, Any], account: str, *, region: str = "RU"
) -> InteractionObservation | None:
    """A crm.activity as a call, email or meeting; None for other types (tasks live elsewhere)."""
    channel = ACTIVITY_CHANNELS.get(str(activity.get("TYPE_ID") or ""))
    if channel is None:
        return None
    client = _owner_key(account, activity.get("OWNER_TYPE_ID"), activity.get("OWNER_ID"))
    if client is None:
        client = _client_from_communications(account, activity.get("COMMUNICATIONS"), region)
    started = _when(activity.get("START_TIME")) or _when(activity.get("CREATED"))
    ended = _when(activity.get("END_TIME"))
    duration = (ended - started).total_seconds() if started and ended and ended >= started else None
    return InteractionObservation(
        source=source_ref(account, "activity", activity["ID"]),
        observed_at=_when(activity.get("LAST_UPDATED")) or started or datetime.now(UTC),
        channel=channel,
        client=client,
        direction=DIRECTIONS.get(str(activity.get("DIRECTION") or "")),
        occurred_at=started,
        ended_at=ended if channel != "email" else None,
        duration_s=duration if channel == "call" else None,
        subject=_text(activity.get("SUBJECT")),
        body=_text(activity.get("DESCRIPTION")),
    )


def comment_observation(comment: Mapping[str, Any], account: str) -> InteractionObservation:
    """A timeline comment (crm.timeline.comment.list) as a note on its contact or company."""
    entity = str(comment.get("ENTITY_TYPE") or "").lower()
    client = (
        ClientKey(
            ref=source_ref(account, entity, comment["ENTITY_ID"]), kind="company" if entity == "company" else "person"
        )
        if entity in ("contact", "company")
        else ClientKey(create=False)
    )
    created = _when(comment.get("CREATED"))
    return InteractionObservation(
        source=source_ref(account, "timeline_comment", comment["ID"]),
        observed_at=created or datetime.now(UTC),
        channel="note",
        client=client,
        direction="internal",
        occurred_at=created,
        body=_text(comment.get("COMMENT")),
    )


def deal_status(deal: Mapping[str, Any]) -> Literal["open", "won", "lost"]:
    semantic = str(deal.get("STAGE_SEMANTIC_ID") or "")
    if semantic == "S":
        return "won"
    if semantic == "F":
        return "lost"
    stage = str(deal.get("STAGE_ID") or "").split(":")[-1]
    return "won" if stage == "WON" else "lost" if stage == "LOSE" else "open"


def deal_observation(
    deal: Mapping[str, Any], account: str, *, stage_map: Mapping[str, str] | None = None
) -> DealObservation:
    """A crm.deal with its stage, amount and currency. ``stage_map`` (hub stage → Bitrix24 STAGE_ID) is read
    backwards, so a portal's ``C2:EXECUTING`` comes in as the hub's name for it; unmapped stages pass as they are."""
    stage_id = _text(deal.get("STAGE_ID"))
    reverse = {bitrix: hub for hub, bitrix in (stage_map or {}).items()}
    contact_id, company_id = _text(deal.get("CONTACT_ID")), _text(deal.get("COMPANY_ID"))
    if contact_id and contact_id != "0":
        client = ClientKey(ref=source_ref(account, "contact", contact_id), create=False)
    elif company_id and company_id != "0":
        client = ClientKey(ref=source_ref(account, "company", company_id), kind="company", create=False)
    else:
        client = ClientKey(create=False)
    try:
        amount = Decimal(str(deal["OPPORTUNITY"])) if _text(deal.get("OPPORTUNITY")) else None
    except InvalidOperation:
        amount = None
    category = _text(deal.get("CATEGORY_ID"))
    return DealObservation(
        source=source_ref(account, "deal", deal["ID"]),
        observed_at=_when(deal.get("DATE_MODIFY")) or datetime.now(UTC),
        client=client,
        title=_text(deal.get("TITLE")),
        stage=reverse.get(stage_id, stage_id) if stage_id else None,
        pipeline=category if category not in (None, "0") else None,
        status=deal_status(deal),
        amount=amount,
        currency=_text(deal.get("CURRENCY_ID")),
        fields=_custom_fields(deal),
    )


# --- hub → Bitrix24 -------------------------------------------------------------------------------------------


def multifield_additions(
    current: Any,
    wanted: Iterable[str],
    kind: Literal["PHONE", "EMAIL"],
    *,
    region: str = "RU",
    value_type: str = "WORK",
) -> list[dict[str, str]]:
    """The PHONE or EMAIL entries to send so that every ``wanted`` value exists, given the entity's ``current``
    multi-field. Only additions (no ``ID``): values the hub does not know are left untouched, never wiped."""
    have = set(_normal(kind, multifield_values(current), region))
    additions: list[dict[str, str]] = []
    for value in wanted:
        normal = _normal(kind, [value], region)
        key = normal[0] if normal else value.strip()
        if key and key not in have:
            have.add(key)
            additions.append({"VALUE": key, "VALUE_TYPE": value_type})
    return additions


def _normal(kind: str, values: Iterable[str], region: str) -> list[str]:
    return normal_phones(values, region) if kind == "PHONE" else normal_emails(values)


def _set_multifields(fields: dict[str, Any], view: ClientView, current: Mapping[str, Any] | None, region: str) -> None:
    for kind, wanted in (("PHONE", view.phones), ("EMAIL", view.emails)):
        additions = multifield_additions((current or {}).get(kind), wanted, kind, region=region)  # type: ignore[arg-type]
        if additions:
            fields[kind] = additions


def contact_fields(view: ClientView, current: Mapping[str, Any] | None = None, *, region: str = "RU") -> dict[str, Any]:
    """``fields`` for crm.contact.add (``current`` None) or crm.contact.update (``current`` = crm.contact.get).

    Names go to NAME / LAST_NAME / SECOND_NAME when the hub knows the parts, else the display name to NAME; fields
    equal to the current ones are left out, so an update sends only what changed.
    """
    parts = {
        "NAME": view.fields.get("first_name"),
        "LAST_NAME": view.fields.get("last_name"),
        "SECOND_NAME": view.fields.get("middle_name"),
        "POST": view.fields.get("position"),
    }
    if not (parts["NAME"] or parts["LAST_NAME"]) and view.name:
        parts["NAME"] = view.name
    fields: dict[str, Any] = {}
    for key, value in parts.items():
        if _text(value) and not _same_text(value, (current or {}).get(key)):
            fields[key] = _text(value)
    if current is None:
        fields["ORIGINATOR_ID"] = ORIGINATOR_ID
        fields["ORIGIN_ID"] = str(view.id)
    _set_multifields(fields, view, current, region)
    return fields


def company_fields(view: ClientView, current: Mapping[str, Any] | None = None, *, region: str = "RU") -> dict[str, Any]:
    """``fields`` for crm.company.add/update: TITLE and added PHONE/EMAIL values."""
    fields: dict[str, Any] = {}
    if view.name and not _same_text(view.name, (current or {}).get("TITLE")):
        fields["TITLE"] = view.name
    if current is None:
        fields["ORIGINATOR_ID"] = ORIGINATOR_ID
        fields["ORIGIN_ID"] = str(view.id)
    _set_multifields(fields, view, current, region)
    return fields


def activity_fields(
    item: ItemView,
    *,
    owner_type: Literal["contact", "company", "deal"],
    owner_id: Any,
    communication: str,
    responsible_id: int = 1,
) -> dict[str, Any]:
    """``fields`` for crm.activity.add from a call, email or meeting. ``communication`` is the client's phone or
    email. ORIGINATOR_ID/ORIGIN_ID carry the hub item id, so a retried add can be found instead of repeated."""
    channel = item.channel or "note"
    if channel not in CHANNEL_ACTIVITY_TYPES:
        raise BadInput(f"a {channel} cannot be written as a Bitrix24 activity; use a timeline comment")
    f = item.fields
    started = item.occurred_at
    ended = _when(f.get("ended_at"))
    if ended is None and f.get("duration_s"):
        ended = started + timedelta(seconds=float(f["duration_s"]))
    subject = _text(f.get("subject")) or _default_subject(channel, f.get("direction"))
    fields: dict[str, Any] = {
        "OWNER_TYPE_ID": OWNER_TYPE_IDS[owner_type],
        "OWNER_ID": owner_id,
        "TYPE_ID": CHANNEL_ACTIVITY_TYPES[channel],
        "SUBJECT": subject,
        "START_TIME": _iso(started),
        "END_TIME": _iso(ended or started),
        "COMPLETED": "Y",
        "RESPONSIBLE_ID": responsible_id,
        "DESCRIPTION": _text(f.get("body")) or _text(f.get("summary")) or "",
        "DESCRIPTION_TYPE": 1,
        "COMMUNICATIONS": [
            {
                "VALUE": communication,
                "ENTITY_ID": owner_id,
                "ENTITY_TYPE_ID": OWNER_TYPE_IDS[owner_type],
                "TYPE": "EMAIL" if channel == "email" else "PHONE",
            }
        ],
        "ORIGINATOR_ID": ORIGINATOR_ID,
        "ORIGIN_ID": str(item.id),
    }
    if f.get("direction") in DIRECTION_IDS:
        fields["DIRECTION"] = DIRECTION_IDS[f["direction"]]
    if f.get("recording_url"):
        fields["DESCRIPTION"] = (fields["DESCRIPTION"] + "\n" + str(f["recording_url"])).strip()
    return fields


def _default_subject(channel: str, direction: Any) -> str:
    words = {"call": "call", "email": "email", "meeting": "meeting"}[channel]
    side = {"in": "Incoming ", "out": "Outgoing "}.get(str(direction), "")
    return (side + words).capitalize() if not side else side + words


def externalcall_params(
    item: ItemView,
    *,
    user_id: int,
    phone: str,
    crm_entity_type: Literal["CONTACT", "COMPANY"] | None = None,
    crm_entity_id: Any = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(register, finish)`` params for telephony.externalcall.register/finish (finish still needs CALL_ID).

    EXTERNAL_CALL_ID is the hub item id, so registering the same call again returns the same CALL_ID.
    """
    f = item.fields
    register: dict[str, Any] = {
        "USER_ID": user_id,
        "PHONE_NUMBER": phone,
        "TYPE": CALL_TYPES.get(str(f.get("direction")), 2),
        "CALL_START_DATE": _iso(item.occurred_at),
        "CRM_CREATE": 0,
        "SHOW": 0,
        "EXTERNAL_CALL_ID": f"crm-hub-{item.id}",
    }
    if crm_entity_type and crm_entity_id:
        register.update({"CRM_ENTITY_TYPE": crm_entity_type, "CRM_ENTITY_ID": crm_entity_id})
    duration = f.get("duration_s")
    status = str(f.get("status") or ("answered" if duration else "missed"))
    finish: dict[str, Any] = {
        "USER_ID": user_id,
        "DURATION": round(float(duration)) if duration else 0,
        "STATUS_CODE": CALL_STATUS_CODES.get(status, "200"),
        "ADD_TO_CHAT": 0,
    }
    if f.get("recording_url"):
        finish["RECORD_URL"] = str(f["recording_url"])
    return register, finish


TODO_TYPE_ID = 6  # crm.activity TYPE_ID of a provider activity; CRM_TODO is Bitrix24's own to-do provider


def task_fields(
    item: ItemView,
    *,
    owner_type: Literal["contact", "company", "deal"],
    owner_id: Any,
    responsible_id: int = 1,
) -> dict[str, Any]:
    """``fields`` for crm.activity.add of a to-do (a call-back after a missed call, say) from a hub task.

    DEADLINE is the task's due time (now when it has none); COMPLETED follows ``done``. ORIGINATOR_ID/ORIGIN_ID
    carry the hub item id, as for every activity the hub adds."""
    f = item.fields
    due = _iso(f.get("due_at")) or _iso(item.occurred_at)
    title = _text(f.get("title")) or "Task"
    return {
        "OWNER_TYPE_ID": OWNER_TYPE_IDS[owner_type],
        "OWNER_ID": owner_id,
        "TYPE_ID": TODO_TYPE_ID,
        "PROVIDER_ID": "CRM_TODO",
        "PROVIDER_TYPE_ID": "TODO",
        "SUBJECT": title,
        "DESCRIPTION": title,
        "START_TIME": due,
        "END_TIME": due,
        "DEADLINE": due,
        "COMPLETED": "Y" if f.get("done") else "N",
        "RESPONSIBLE_ID": responsible_id,
        "ORIGINATOR_ID": ORIGINATOR_ID,
        "ORIGIN_ID": str(item.id),
    }


def comment_fields(
    item: ItemView, *, entity_type: Literal["contact", "company", "deal"], entity_id: Any
) -> dict[str, Any]:
    """``fields`` for crm.timeline.comment.add from a note (or any interaction worth a line on the timeline)."""
    f = item.fields
    text = _text(f.get("body")) or _text(f.get("summary")) or _text(f.get("subject")) or ""
    if not text:
        raise BadInput(f"item {item.id} has no text to write as a Bitrix24 timeline comment")
    return {"ENTITY_ID": entity_id, "ENTITY_TYPE": entity_type, "COMMENT": text}


def deal_fields(
    item: ItemView,
    *,
    stage_map: Mapping[str, str] | None = None,
    contact_id: Any = None,
    company_id: Any = None,
    current: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``fields`` for crm.deal.add/update. The hub's stage goes through ``stage_map`` (hub stage → STAGE_ID);
    without a mapping, won/lost map to WON/LOSE and an unmapped open stage is left for Bitrix24 to default."""
    f = item.fields
    stage = _text(f.get("stage"))
    stage_id = (stage_map or {}).get(stage or "") if stage else None
    if stage_id is None:
        status = f.get("status")
        stage_id = "WON" if status == "won" else "LOSE" if status == "lost" else None
    fields: dict[str, Any] = {}
    wanted: dict[str, Any] = {
        "TITLE": _text(f.get("title")),
        "STAGE_ID": stage_id,
        "OPPORTUNITY": _text(f.get("amount")),
        "CURRENCY_ID": _text(f.get("currency")),
        "CONTACT_ID": contact_id,
        "COMPANY_ID": company_id,
    }
    for key, value in wanted.items():
        if value is None or value == "":
            continue
        if key == "OPPORTUNITY" and current is not None and _same_amount(value, current.get(key)):
            continue
        if current is None or not _same_text(value, current.get(key)):
            fields[key] = value
    if current is None:
        fields["ORIGINATOR_ID"] = ORIGINATOR_ID
        fields["ORIGIN_ID"] = str(item.id)
    return fields


# --- echo recognition -----------------------------------------------------------------------------------------


def _same_text(a: Any, b: Any) -> bool:
    return " ".join(str(a or "").split()).casefold() == " ".join(str(b or "").split()).casefold()


def _same_amount(a: Any, b: Any) -> bool:
    try:
        return Decimal(str(a or 0)) == Decimal(str(b or 0))
    except InvalidOperation:
        return _same_text(a, b)


def client_echoes(view: ClientView, observation: ClientObservation, *, region: str = "RU") -> bool:
    """True when ``observation`` (read back from Bitrix24) says nothing the hub's ``view`` does not already hold.

    Names compare case- and space-insensitively part by part; phones and emails after normalisation, as sets.
    """
    for part in ("first_name", "last_name", "middle_name", "position"):
        theirs = getattr(observation, part)
        # A contact the hub created with only a display name has that name in NAME.
        name_in_first = part == "first_name" and not view.fields.get("first_name") and _same_text(theirs, view.name)
        if theirs and not _same_text(theirs, view.fields.get(part)) and not name_in_first:
            return False
    if observation.name and not _same_text(observation.name, view.name):
        return False
    if set(normal_phones(observation.phones, region)) != set(normal_phones(view.phones, region)):
        return False
    return set(normal_emails(observation.emails)) == set(normal_emails(view.emails))


def deal_echoes(item: ItemView, observation: DealObservation) -> bool:
    """True when a deal read back from Bitrix24 matches the hub's item (title, stage, amount, currency)."""
    f = item.fields
    return (
        _same_text(observation.title, f.get("title"))
        and _same_text(observation.stage, f.get("stage"))
        and _same_amount(observation.amount, f.get("amount"))
        and _same_text(observation.currency, f.get("currency"))
    )
