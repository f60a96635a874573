"""Whether an amoCRM lead, note or task only reflects a hub item the sink wrote there: the same payload functions
that wrote it decide, so an echo of the hub's own write is recognised however quickly it comes back."""

from __future__ import annotations

from typing import Any

from hub.core.errors import BadInput
from hub.core.events import ClientView, ItemView
from hub.core.identity import normalize_email, normalize_phone

from .connection import Account
from .mapping import LeadMapping, lead_payload, note_payload, same_text, task_payload
from .settings import AmoCRMSettings
from .webhooks import WebhookHint


def hub_uniq(item: ItemView) -> str:
    """The ``uniq`` the sink gives a call it writes (amoCRM keeps it with the call note)."""
    return f"crm-hub-{item.source.system}-{item.source.id}"


def note_matches(item: ItemView, note: dict[str, Any], client: ClientView) -> bool:
    params = note.get("params") or {}
    if str(note.get("note_type")) in ("call_in", "call_out"):
        return item.channel == "call" and str(params.get("uniq") or "") == hub_uniq(item)
    if item.channel == "call" or note.get("note_type") != "common":
        return False
    return same_text(params.get("text"), note_payload(item, client, entity_id=0)["params"]["text"])


def lead_matches(item: ItemView, lead: dict[str, Any], settings: AmoCRMSettings) -> bool:
    payload = lead_payload(
        item, contact_id=None, mapping=LeadMapping(dict(settings.pipeline_map), dict(settings.status_map))
    )
    for name, value in payload.items():
        if name == "name":
            if not same_text(lead.get("name"), value):
                return False
        elif name in ("price", "pipeline_id", "status_id") and int(lead.get(name) or 0) != int(value):
            return False
    return True


def task_matches(item: ItemView, task: dict[str, Any]) -> bool:
    payload = task_payload(item, entity_id=0)
    if not same_text(task.get("text"), payload["text"]):
        return False
    if item.fields.get("due_at") and int(task.get("complete_till") or 0) != payload["complete_till"]:
        return False
    return "is_completed" not in payload or bool(task.get("is_completed")) == payload["is_completed"]


def counterpart_matches(
    entity: str, item: ItemView, record: dict[str, Any], client: ClientView, settings: AmoCRMSettings
) -> bool:
    """Whether amoCRM's ``record`` (a lead, note or task) holds exactly what the sink would write for ``item``."""
    if entity == "note":
        return item.kind == "interaction" and note_matches(item, record, client)
    if entity == "deal":
        return item.kind == "deal" and lead_matches(item, record, settings)
    if entity == "task":
        return item.kind == "task" and task_matches(item, record)
    return False


def client_values(name: Any, points: dict[str, list[str]], region: str) -> dict[str, Any]:
    """What the echo ledger compares of a contact or company: its name and normalised phones and emails."""
    phones, emails = [], []
    for raw in points.get("PHONE", []):
        try:
            phones.append(normalize_phone(raw, region))
        except BadInput:
            phones.append(raw)
    for raw in points.get("EMAIL", []):
        try:
            emails.append(normalize_email(raw))
        except BadInput:
            emails.append(raw)
    return {"name": name if isinstance(name, str) else None, "phones": phones, "emails": emails}


def payload_values(payload: dict[str, Any], region: str) -> dict[str, Any]:
    """:func:`client_values` of a contact the sink creates (its POST payload)."""
    points: dict[str, list[str]] = {}
    for cf in payload.get("custom_fields_values") or []:
        code = str(cf.get("field_code") or "")
        points[code] = [str(v.get("value")) for v in cf.get("values") or [] if v.get("value")]
    return client_values(payload.get("name"), points, region)


def hint_values(hint: WebhookHint, region: str) -> dict[str, Any]:
    """:func:`client_values` of a contact as a webhook renders it."""
    points: dict[str, list[str]] = {}
    for cf in hint.custom_fields:
        if cf.code:
            points.setdefault(cf.code, []).extend(cf.texts())
    return client_values(hint.data.get("name"), points, region)


def own_write(account: Account, hint: WebhookHint) -> bool:
    """A webhook that only announces a contact or company the hub's sink just created, with the values it wrote."""
    if hint.entity not in ("contact", "company") or hint.action not in ("add", "update"):
        return False
    plural = "companies" if hint.entity == "company" else "contacts"
    region = account.hub.settings.default_region
    return account.echoes.is_echo(plural, hint.id, hint_values(hint, region))
