"""amoCRM webhooks: the form-encoded v2 body (PHP-style nested keys) parsed into hints.

A hint names what changed (entity, action, id); it is never applied as it is: the entity is re-read through
the API first, so a forged body cannot inject data.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from hub.core import formcodec
from hub.core.errors import BadInput
from hub.core.formcodec import FormLimits
from hub.core.sources import WebhookRoute

log = structlog.get_logger("crm_hub_plugins.amocrm")

EntityKind = Literal["contact", "company", "lead", "note", "task", "customer"]

# Scalar and nested values can share a path in real bodies (``[note][type]=3`` and ``[note][type][uuid]=…``).
SCALAR_KEY = "_value"
_MAX_INDEX = 10_000

# The top-level sections amoCRM sends and the entity each one names.
_SECTIONS: dict[str, EntityKind] = {
    "contacts": "contact",
    "companies": "company",
    "leads": "lead",
    "task": "task",
    "tasks": "task",
    "customers": "customer",
}
_NOTE_PARENTS: dict[str, str] = {"1": "contacts", "2": "leads", "3": "companies", "4": "tasks", "12": "customers"}
_NOTE_TYPES: dict[str, str] = {"4": "common", "10": "call_in", "11": "call_out", "25": "service_message"}


@dataclass(frozen=True)
class CustomFieldValue:
    """One custom field as a webhook renders it: values are always strings."""

    id: str
    code: str | None
    name: str | None
    values: tuple[dict[str, str], ...]

    def texts(self) -> list[str]:
        return [v["value"] for v in self.values if v.get("value")]


@dataclass(frozen=True)
class WebhookHint:
    """Something changed in amoCRM: re-read ``entity`` ``id`` before applying anything."""

    entity: EntityKind
    action: str  # add, update, delete, status, restore, responsible, note
    id: str
    account_id: str | None
    subdomain: str | None
    parent_entity: str | None = None  # notes and tasks: contacts, leads, companies
    parent_id: str | None = None
    note_type: str | None = None
    data: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    custom_fields: tuple[CustomFieldValue, ...] = field(default=(), compare=False, repr=False)

    @property
    def account(self) -> str:
        """The account key used in SourceRefs: the subdomain, else the numeric id."""
        return self.subdomain or self.account_id or ""


# amoCRM batches entities into one webhook, a few dozen pairs each; 10,000 pairs leave a wide margin.
WEBHOOK_LIMITS = FormLimits(max_pairs=10_000, max_depth=8, max_key_length=256, max_list_index=_MAX_INDEX)


def parse_nested_form(body: bytes | str) -> dict[str, Any]:
    """Parse ``a[b][0][c]=v`` pairs into nested dicts and lists, as PHP's ``parse_str`` does (the core codec).

    Numeric keys become list positions (in key order, so gaps close up); ``a[]=x`` appends; a key that is both a
    value and a container keeps the value under :data:`SCALAR_KEY`. Raise :class:`BadInput` beyond the bounds.
    """
    return formcodec.decode(
        body, limits=WEBHOOK_LIMITS, lists="sorted", scalar_key=SCALAR_KEY, strict=True, what="amoCRM webhook body"
    )


def encode_nested_form(data: dict[str, Any]) -> str:
    """The inverse of :func:`parse_nested_form`: ``{"a": [{"b": "1"}]}`` → ``a[0][b]=1``."""
    return formcodec.encode(data)


def _as_list(value: Any) -> list[Any]:
    """A list stays a list; a single object or a bare value is a list of one."""
    if value is None or value == "":
        return []
    return value if isinstance(value, list) else [value]


def parse_custom_fields(raw: Any) -> tuple[CustomFieldValue, ...]:
    """Accept ``custom_fields`` as a list of fields or one field, and each field's ``values`` as a list of
    ``{value, enum}`` objects, one such object, or bare values (``values][0]=1542067200``)."""
    out: list[CustomFieldValue] = []
    for item in _as_list(raw):
        if not isinstance(item, dict):
            raise BadInput("amoCRM webhook custom_fields entry is not an object; expected [id], [values] keys")
        values: list[dict[str, str]] = []
        raw_values = item.get("values")
        if isinstance(raw_values, dict) and ("value" in raw_values or "enum" in raw_values):
            raw_values = [raw_values]
        for value in _as_list(raw_values):
            if isinstance(value, dict):
                values.append({k: str(v) for k, v in value.items() if isinstance(v, str)})
            else:
                values.append({"value": str(value)})
        out.append(
            CustomFieldValue(
                id=str(item.get("id", "")), code=item.get("code") or None, name=item.get("name"), values=tuple(values)
            )
        )
    return tuple(out)


def parse_webhook(body: bytes | str) -> list[WebhookHint]:
    """Parse one amoCRM webhook body into hints; raise :class:`BadInput` when it is not one."""
    data = parse_nested_form(body)
    account = data.get("account")
    account_id = subdomain = None
    if isinstance(account, dict):
        account_id = account.get("id") if isinstance(account.get("id"), str) else None
        subdomain = account.get("subdomain") if isinstance(account.get("subdomain"), str) else None
    hints: list[WebhookHint] = []
    known = False
    for section, entity in _SECTIONS.items():
        actions = data.get(section)
        if actions is None:
            continue
        known = True
        if not isinstance(actions, dict):
            raise BadInput(f"amoCRM webhook section {section!r} has no actions; expected {section}[add][0][id]=…")
        for action, items in actions.items():
            for item in _as_list(items):
                if not isinstance(item, dict):
                    raise BadInput(f"amoCRM webhook {section}[{action}] entry is not an object")
                if action == "note":
                    hints.append(_note_hint(section, item, account_id, subdomain))
                else:
                    hints.append(_entity_hint(section, entity, action, item, account_id, subdomain))
    if not known:
        raise BadInput(
            "amoCRM webhook names no known entity (contacts, companies, leads, task, customers); "
            f"top-level keys were {sorted(data)[:10]}"
        )
    return hints


def _require_id(item: dict[str, Any], where: str) -> str:
    value = item.get("id")
    if isinstance(value, dict):
        value = value.get(SCALAR_KEY)
    if not isinstance(value, str) or not value.strip().isdigit():
        raise BadInput(f"amoCRM webhook {where} has no numeric id (got {str(value)[:40]!r})")
    return value.strip()


def _entity_hint(
    section: str, entity: EntityKind, action: str, item: dict[str, Any], account_id: str | None, subdomain: str | None
) -> WebhookHint:
    kind: EntityKind = entity
    # Companies arrive as contacts with type=company.
    if section == "contacts" and item.get("type") == "company":
        kind = "company"
    parent_entity = parent_id = None
    if kind == "task":
        parent_id = item.get("element_id") if isinstance(item.get("element_id"), str) else None
        element_type = item.get("element_type")
        parent_entity = _NOTE_PARENTS.get(element_type) if isinstance(element_type, str) else None
    return WebhookHint(
        entity=kind,
        action=action,
        id=_require_id(item, f"{section}[{action}]"),
        account_id=account_id,
        subdomain=subdomain,
        parent_entity=parent_entity,
        parent_id=parent_id,
        data=item,
        custom_fields=parse_custom_fields(item.get("custom_fields")),
    )


def _note_hint(section: str, item: dict[str, Any], account_id: str | None, subdomain: str | None) -> WebhookHint:
    note = item.get("note", item)
    if not isinstance(note, dict):
        raise BadInput(f"amoCRM webhook {section}[note] entry is not an object")
    raw_type = note.get("note_type", note.get("type"))
    if isinstance(raw_type, dict):
        raw_type = raw_type.get(SCALAR_KEY)
    note_type = _NOTE_TYPES.get(raw_type, raw_type) if isinstance(raw_type, str) else None
    element_type = note.get("element_type")
    parent = _NOTE_PARENTS.get(element_type) if isinstance(element_type, str) else None
    element_id = note.get("element_id")
    return WebhookHint(
        entity="note",
        action="add",
        id=_require_id(note, f"{section}[note]"),
        account_id=account_id,
        subdomain=subdomain,
        parent_entity=parent or section,
        parent_id=element_id if isinstance(element_id, str) else None,
        note_type=note_type,
        data=note,
    )


# --- the hub's route ------------------------------------------------------------------------------------------
INBOX_KIND = "amocrm.hint"


def hint_payload(hint: WebhookHint, account: str) -> tuple[dict[str, Any], str]:
    """What the inbox keeps of a hint (no body data: the entity is re-read) and its dedup key."""
    stamp = hint.data.get("last_modified") or hint.data.get("updated_at") or hint.data.get("date_create") or ""
    if isinstance(stamp, dict):
        stamp = stamp.get(SCALAR_KEY, "")
    payload = {
        "account": account,
        "entity": hint.entity,
        "action": hint.action,
        "id": hint.id,
        "parent_entity": hint.parent_entity,
        "parent_id": hint.parent_id,
        "note_type": hint.note_type,
    }
    return payload, f"amocrm:{account}:{hint.entity}:{hint.id}:{hint.action}:{stamp}"


def webhook_route(
    hub: Any, secrets_by_account: dict[str, str], is_echo: Callable[[str, WebhookHint], bool] | None = None
) -> WebhookRoute:
    """``POST /webhooks/amocrm/<secret>``: store each hint in the durable inbox and answer at once (amoCRM
    gives up after 2 s). An unknown secret is a 404 and stores nothing. A hint that ``is_echo`` recognises as the
    hub's own write is dropped here, before it costs an API re-read."""

    def account_for(secret: str) -> str | None:
        found = None
        for account, expected in secrets_by_account.items():
            if hmac.compare_digest(secret.encode(), expected.encode()):
                found = account
        return found

    def store(hints: list[WebhookHint], account: str) -> int:
        stored = echoes = 0
        for hint in hints:
            if is_echo is not None and is_echo(account, hint):
                echoes += 1
                continue
            payload, key = hint_payload(hint, account)
            stored += bool(hub.inbox.put(INBOX_KIND, payload, dedup_key=key))
        if echoes:
            log.info(
                "amocrm.webhook_echoes", account=account, echoes=echoes, detail="the hub's own writes; not re-read"
            )
        return stored

    async def receive(request: Request) -> JSONResponse:
        account = account_for(str(request.path_params.get("secret", "")))
        if account is None:
            log.warning("amocrm.webhook_unknown_path", client=request.client.host if request.client else None)
            return JSONResponse({"error": "not_found", "detail": "no such webhook"}, status_code=404)
        body = await request.body()
        try:
            hints = await formcodec.parse_off_loop(parse_webhook, body)
        except BadInput as exc:
            log.warning("amocrm.webhook_rejected", account=account, problem=str(exc))
            return JSONResponse({"error": "bad_input", "detail": str(exc)}, status_code=400)
        stored = await run_in_threadpool(store, hints, account)
        return JSONResponse({"received": len(hints), "stored": stored})

    return WebhookRoute("/webhooks/amocrm/{secret}", receive, methods=("POST",), name="amocrm-webhook")
