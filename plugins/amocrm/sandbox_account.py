"""The emulated amoCRM account behind the sandbox: entities, links, custom fields, pipelines, notes, tasks,
calls and the events feed, with amoCRM's validation and its HAL renderings. No HTTP here."""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

WON, LOST = 142, 143
ENTITIES = ("contacts", "companies", "leads", "tasks")
NOTE_PARENTS = ("contacts", "companies", "leads", "customers")
NOTE_TYPES = {"common", "call_in", "call_out", "service_message", "sms_in", "sms_out", "attachment"}
NOTE_TYPE_CODES = {"common": "4", "call_in": "10", "call_out": "11", "service_message": "25"}
ELEMENT_TYPES = {"contacts": "1", "leads": "2", "companies": "3", "tasks": "4", "customers": "12"}
SINGULAR = {"contacts": "contact", "companies": "company", "leads": "lead", "tasks": "task", "customers": "customer"}
PHONE_ENUMS = ("WORK", "WORKDD", "MOB", "FAX", "HOME", "OTHER")
EMAIL_ENUMS = ("WORK", "PRIV", "OTHER")


class ValidationFailed(Exception):
    """A request did not pass validation: ``errors`` maps request_id → list of {code, path, detail}."""

    def __init__(self, errors: dict[str, list[dict[str, str]]]) -> None:
        super().__init__("validation failed")
        self.errors = errors


class TooMany(Exception):
    """More entities in one request than amoCRM takes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"limit {limit}")
        self.limit = limit


def digits(text: Any) -> str:
    return re.sub(r"\D", "", str(text))


@dataclass
class CustomField:
    id: int
    name: str
    code: str | None
    type: str
    entity_type: str
    enums: dict[str, int] = field(default_factory=dict)  # enum code → enum id

    def render(self, sort: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "account_id": 0,
            "code": self.code,
            "sort": sort,
            "is_api_only": False,
            "enums": [{"id": i, "value": code, "sort": n} for n, (code, i) in enumerate(self.enums.items())] or None,
            "group_id": None,
            "required_statuses": [],
            "is_deletable": self.code is None,
            "is_predefined": self.code is not None,
            "entity_type": self.entity_type,
        }


@dataclass
class Change:
    """What a write did, for the webhook and events feeds."""

    entity: str  # contacts, companies, leads, tasks, notes
    action: str  # add, update, status, delete, note
    record: dict[str, Any]
    old_status_id: int | None = None
    changed: tuple[str, ...] = ()


class SandboxAccount:
    """One account's data. Every method is called under ``lock`` by the HTTP layer."""

    def __init__(self, *, account_id: int, subdomain: str, clock: Callable[[], float] = time.time) -> None:
        self.account_id = account_id
        self.subdomain = subdomain
        self.clock = clock
        self.lock = threading.RLock()
        self.reset()

    def now(self) -> int:
        return int(self.clock())

    def reset(self) -> None:
        self._ids = itertools.count(1_000_001)
        self.records: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in ENTITIES}
        self.notes: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.links: set[tuple[str, int, str, int]] = set()
        self.fields: dict[str, list[CustomField]] = {
            "contacts": [
                CustomField(100, "Телефон", "PHONE", "multitext", "contacts", _enums(PHONE_ENUMS, 1001)),
                CustomField(101, "Email", "EMAIL", "multitext", "contacts", _enums(EMAIL_ENUMS, 1011)),
                CustomField(102, "Должность", "POSITION", "text", "contacts"),
            ],
            "companies": [
                CustomField(200, "Телефон", "PHONE", "multitext", "companies", _enums(PHONE_ENUMS, 2001)),
                CustomField(201, "Email", "EMAIL", "multitext", "companies", _enums(EMAIL_ENUMS, 2011)),
                CustomField(202, "Web", "WEB", "url", "companies"),
            ],
            "leads": [CustomField(300, "Источник", None, "text", "leads")],
        }
        self.pipelines: list[dict[str, Any]] = [
            _pipeline(7000001, "Воронка", True, [(7100001, "Первичный контакт"), (7100002, "Переговоры")]),
            _pipeline(7000002, "Партнёры", False, [(7200001, "Новая заявка"), (7200002, "Договор")]),
        ]

    def next_id(self) -> int:
        return next(self._ids)

    # --- custom fields ------------------------------------------------------------------------------------
    def _field(self, entity: str, ref: dict[str, Any]) -> CustomField | None:
        for cf in self.fields.get(entity, []):
            if ("field_id" in ref and ref["field_id"] == cf.id) or (
                "field_id" not in ref and ref.get("field_code") and ref["field_code"] == cf.code
            ):
                return cf
        return None

    def _custom_values(
        self, entity: str, raw: Any, errors: list[dict[str, str]], existing: list[dict[str, Any]] | None
    ) -> list[dict[str, Any]] | None:
        """Sent fields replace that field's values; fields not sent keep theirs (as amoCRM does)."""
        if not isinstance(raw, list):
            errors.append(_type_error("custom_fields_values", "array"))
            return existing
        merged = {cf["field_id"]: cf for cf in existing or []}
        for i, item in enumerate(raw):
            cf = self._field(entity, item) if isinstance(item, dict) else None
            if cf is None:
                errors.append(
                    {
                        "code": "NotSupportedChoice",
                        "path": f"custom_fields_values.{i}.field_id",
                        "detail": "The value you selected is not a valid choice.",
                    }
                )
                continue
            values = item.get("values")
            if values is None:
                merged.pop(cf.id, None)
                continue
            if not isinstance(values, list):
                errors.append(_type_error(f"custom_fields_values.{i}.values", "array"))
                continue
            rendered = []
            for j, value in enumerate(values):
                if not isinstance(value, dict) or not isinstance(value.get("value"), str | int | float | bool):
                    errors.append(_type_error(f"custom_fields_values.{i}.values.{j}.value", "string"))
                    continue
                one: dict[str, Any] = {"value": value["value"]}
                if cf.enums:
                    code = value.get("enum_code") or next(
                        (c for c, eid in cf.enums.items() if eid == value.get("enum_id")), "WORK"
                    )
                    if code not in cf.enums:
                        errors.append(
                            {
                                "code": "NotSupportedChoice",
                                "path": f"custom_fields_values.{i}.values.{j}.enum_code",
                                "detail": "The value you selected is not a valid choice.",
                            }
                        )
                        continue
                    one.update(enum_id=cf.enums[code], enum_code=code)
                rendered.append(one)
            merged[cf.id] = {
                "field_id": cf.id,
                "field_name": cf.name,
                "field_code": cf.code,
                "field_type": cf.type,
                "values": rendered,
            }
        return list(merged.values()) or None

    # --- writes -------------------------------------------------------------------------------------------
    def write(self, entity: str, items: Any, *, update: bool) -> tuple[list[dict[str, Any]], list[Change]]:
        """Validate a whole batch, then apply it; return the rendered results and the changes made."""
        if not isinstance(items, list):
            raise ValidationFailed({"0": [_type_error("", "array")]})
        if len(items) > 250:
            raise TooMany(250)
        errors: dict[str, list[dict[str, str]]] = {}
        prepared = []
        for index, item in enumerate(items):
            problems: list[dict[str, str]] = []
            prepared.append(self._prepare(entity, item, problems, update=update))
            if problems:
                errors[str(index)] = problems
        if errors:
            raise ValidationFailed(errors)
        results, changes = [], []
        for index, (item, values) in enumerate(zip(items, prepared, strict=True)):
            change = self._apply(entity, values, update=update)
            changes.append(change)
            result = {"id": change.record["id"], "request_id": str(item.get("request_id", index))}
            if update:
                result.update(name=change.record.get("name"), updated_at=change.record["updated_at"])
            results.append(result)
        return results, changes

    def _prepare(self, entity: str, item: Any, errors: list[dict[str, str]], *, update: bool) -> dict[str, Any]:
        if not isinstance(item, dict):
            errors.append(_type_error("", "object"))
            return {}
        current: dict[str, Any] | None = None
        if update:
            raw_id = item.get("id")
            current = self.records[entity].get(raw_id) if isinstance(raw_id, int) else None
            if current is None:
                errors.append({"code": "NotFound", "path": "id", "detail": "Entity not found"})
                return {}
        values: dict[str, Any] = {}
        for name in ("name", "first_name", "last_name", "text", "result"):
            if name in item:
                if name == "result" and isinstance(item[name], dict):
                    values[name] = item[name]
                elif not isinstance(item[name], str):
                    errors.append(_type_error(name, "string"))
                else:
                    values[name] = item[name]
        for name in (
            "price",
            "responsible_user_id",
            "status_id",
            "pipeline_id",
            "complete_till",
            "task_type_id",
            "duration",
            "entity_id",
            "created_at",
            "updated_at",
            "loss_reason_id",
        ):
            if name in item and item[name] is not None:
                if isinstance(item[name], bool) or not isinstance(item[name], int):
                    errors.append(_type_error(name, "int"))
                else:
                    values[name] = item[name]
        if "is_completed" in item:
            values["is_completed"] = bool(item["is_completed"])
        if "entity_type" in item:
            values["entity_type"] = item["entity_type"]
        if "custom_fields_values" in item:
            values["custom_fields_values"] = self._custom_values(
                entity, item["custom_fields_values"], errors, (current or {}).get("custom_fields_values")
            )
        embedded = item.get("_embedded") or {}
        if isinstance(embedded, dict):
            for other in ("contacts", "companies"):
                linked = embedded.get(other)
                if isinstance(linked, list):
                    ids = [x.get("id") for x in linked if isinstance(x, dict)]
                    if any(i not in self.records[other] for i in ids):
                        errors.append({"code": "NotFound", "path": f"_embedded.{other}", "detail": "Entity not found"})
                    values[f"_{other}"] = ids
        if entity == "leads":
            self._check_status(values, current, errors)
        if entity == "tasks":
            self._check_task(values, current, errors)
        if current is not None:
            values["id"] = current["id"]
        return values

    def _check_status(
        self, values: dict[str, Any], current: dict[str, Any] | None, errors: list[dict[str, str]]
    ) -> None:
        pipeline_id = values.get("pipeline_id", (current or {}).get("pipeline_id", self.pipelines[0]["id"]))
        pipeline = next((p for p in self.pipelines if p["id"] == pipeline_id), None)
        if pipeline is None:
            errors.append({"code": "NotSupportedChoice", "path": "pipeline_id", "detail": "Pipeline not found"})
            return
        values["pipeline_id"] = pipeline_id
        if "status_id" in values:
            if values["status_id"] not in {s["id"] for s in pipeline["_embedded"]["statuses"]}:
                errors.append(
                    {
                        "code": "NotSupportedChoice",
                        "path": "status_id",
                        "detail": "The value you selected is not a valid choice.",
                    }
                )
        elif current is None:
            values["status_id"] = pipeline["_embedded"]["statuses"][1]["id"]

    def _check_task(self, values: dict[str, Any], current: dict[str, Any] | None, errors: list[dict[str, str]]) -> None:
        if current is None:
            for name in ("text", "complete_till"):
                if name not in values:
                    errors.append({"code": "NotBlank", "path": name, "detail": "This value should not be blank."})
        if "entity_type" in values and values["entity_type"] not in NOTE_PARENTS:
            errors.append(
                {
                    "code": "NotSupportedChoice",
                    "path": "entity_type",
                    "detail": "The value you selected is not a valid choice.",
                }
            )
        elif (
            "entity_id" in values
            and values.get("entity_type") in self.records
            and values["entity_id"] not in self.records[values["entity_type"]]
        ):
            errors.append({"code": "NotFound", "path": "entity_id", "detail": "Entity not found"})

    def _apply(self, entity: str, values: dict[str, Any], *, update: bool) -> Change:
        now = self.now()
        links = {other: values.pop(f"_{other}") for other in ("contacts", "companies") if f"_{other}" in values}
        if update:
            record = self.records[entity][values["id"]]
            before = dict(record)
            record.update(values)
            record["updated_at"] = values.get("updated_at", now)
            changed = tuple(sorted(k for k in values if before.get(k) != record.get(k) and k != "id"))
        else:
            record = _blank(entity, self.next_id(), self.account_id, now)
            record.update(values)
            self.records[entity][record["id"]] = record
            before, changed = {}, tuple(sorted(values))
        for other, ids in links.items():
            for other_id in ids:
                self.link(entity, record["id"], other, other_id)
        if entity == "leads" and record["status_id"] in (WON, LOST) and not record.get("closed_at"):
            record["closed_at"] = now
        if entity == "tasks" and "text" in values and record.get("entity_type") is None:
            record["entity_type"] = None
        action = "update" if update else "add"
        old_status = before.get("status_id") if update else None
        if entity == "leads" and update and "status_id" in changed:
            action = "status"
        change = Change(entity, action, record, old_status_id=old_status, changed=changed)
        self._record_events(change)
        return change

    def delete(self, entity: str, entity_id: int) -> Change | None:
        record = self.records[entity].pop(entity_id, None)
        if record is None:
            return None
        self.links = {
            link
            for link in self.links
            if (link[0], link[1]) != (entity, entity_id) and (link[2], link[3]) != (entity, entity_id)
        }
        change = Change(entity, "delete", record)
        self._record_events(change)
        return change

    def link(self, entity: str, entity_id: int, other: str, other_id: int) -> None:
        self.links.add((entity, entity_id, other, other_id))
        self.links.add((other, other_id, entity, entity_id))

    def linked(self, entity: str, entity_id: int, other: str) -> list[int]:
        return sorted(o_id for (e, e_id, o, o_id) in self.links if e == entity and e_id == entity_id and o == other)

    # --- notes and calls ----------------------------------------------------------------------------------
    def add_notes(
        self, parent: str, items: Any, *, parent_id: int | None = None
    ) -> tuple[list[dict[str, Any]], list[Change]]:
        if not isinstance(items, list):
            raise ValidationFailed({"0": [_type_error("", "array")]})
        if len(items) > 250:
            raise TooMany(250)
        errors: dict[str, list[dict[str, str]]] = {}
        for index, item in enumerate(items):
            problems = self._check_note(parent, item, parent_id)
            if problems:
                errors[str(index)] = problems
        if errors:
            raise ValidationFailed(errors)
        results, changes = [], []
        for index, item in enumerate(items):
            note = self.make_note(
                parent, parent_id or item["entity_id"], item["note_type"], dict(item.get("params") or {})
            )
            results.append(
                {"id": note["id"], "entity_id": note["entity_id"], "request_id": str(item.get("request_id", index))}
            )
            changes.append(Change("notes", "note", note))
        return results, changes

    def _check_note(self, parent: str, item: Any, parent_id: int | None) -> list[dict[str, str]]:
        if not isinstance(item, dict):
            return [_type_error("", "object")]
        problems = []
        entity_id = parent_id or item.get("entity_id")
        if parent not in self.records or entity_id not in self.records[parent]:
            problems.append({"code": "NotFound", "path": "entity_id", "detail": "Entity not found"})
        note_type = item.get("note_type")
        if note_type not in NOTE_TYPES:
            problems.append(
                {
                    "code": "NotSupportedChoice",
                    "path": "note_type",
                    "detail": "The value you selected is not a valid choice.",
                }
            )
        params = item.get("params") or {}
        if not isinstance(params, dict):
            problems.append(_type_error("params", "object"))
        elif note_type == "common" and not isinstance(params.get("text"), str):
            problems.append({"code": "NotBlank", "path": "params.text", "detail": "This value should not be blank."})
        elif note_type in ("call_in", "call_out"):
            for name in ("uniq", "duration", "source", "phone"):
                if params.get(name) in (None, ""):
                    problems.append(
                        {"code": "NotBlank", "path": f"params.{name}", "detail": "This value should not be blank."}
                    )
        return problems

    def make_note(self, parent: str, entity_id: int, note_type: str, params: dict[str, Any]) -> dict[str, Any]:
        now = self.now()
        note: dict[str, Any] = {
            "id": self.next_id(),
            "entity_id": entity_id,
            "entity_type": parent,
            "created_by": 0,
            "updated_by": 0,
            "created_at": now,
            "updated_at": now,
            "responsible_user_id": 0,
            "group_id": 0,
            "note_type": note_type,
            "params": params,
            "account_id": self.account_id,
        }
        self.notes[note["id"]] = note
        kind = {"call_in": "incoming_call", "call_out": "outgoing_call"}.get(note_type, f"{note_type}_note_added")
        self._event(kind, parent, entity_id, [{"note": {"id": note["id"]}}], [])
        return note

    def add_calls(self, items: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Change]]:
        """A call is attached to the contact or company whose phone ends with the same 10 digits; a call that
        matches nobody is not added, and is reported in ``errors`` instead."""
        if not isinstance(items, list):
            raise ValidationFailed({"0": [_type_error("", "array")]})
        errors: dict[str, list[dict[str, str]]] = {}
        for index, item in enumerate(items):
            problems = []
            if not isinstance(item, dict):
                problems.append(_type_error("", "object"))
            else:
                if item.get("direction") not in ("inbound", "outbound"):
                    problems.append(
                        {
                            "code": "NotSupportedChoice",
                            "path": "direction",
                            "detail": "The value you selected is not a valid choice.",
                        }
                    )
                for name in ("duration", "source", "phone"):
                    if item.get(name) in (None, ""):
                        problems.append({"code": "NotBlank", "path": name, "detail": "This value should not be blank."})
            if problems:
                errors[str(index)] = problems
        if errors:
            raise ValidationFailed(errors)
        added, dropped, changes = [], [], []
        for index, item in enumerate(items):
            request_id = str(item.get("request_id", index))
            target = self._call_target(str(item["phone"]))
            if target is None:
                dropped.append(
                    {
                        "request_id": request_id,
                        "status": 404,
                        "title": "Not Found",
                        "detail": "No contact or company with this phone number: the call was not added",
                    }
                )
                continue
            parent, entity_id = target
            note_type = "call_in" if item["direction"] == "inbound" else "call_out"
            params = {
                k: item[k]
                for k in ("uniq", "duration", "source", "link", "phone", "call_result", "call_status")
                if k in item
            }
            note = self.make_note(parent, entity_id, note_type, params)
            self.calls.append({**item, "note_id": note["id"]})
            changes.append(Change("notes", "note", note))
            added.append(
                {
                    "id": note["id"],
                    "entity_id": entity_id,
                    "entity_type": parent,
                    "account_id": self.account_id,
                    "request_id": request_id,
                }
            )
        return added, dropped, changes

    def _call_target(self, phone: str) -> tuple[str, int] | None:
        tail = digits(phone)[-10:]
        if not tail:
            return None
        for entity in ("contacts", "companies"):
            for record in self.records[entity].values():
                if any(digits(p)[-10:] == tail for p in field_values(record, "PHONE")):
                    if entity == "contacts":
                        open_leads = [
                            i
                            for i in self.linked("contacts", record["id"], "leads")
                            if self.records["leads"][i]["status_id"] not in (WON, LOST)
                        ]
                        if len(open_leads) == 1:
                            return "leads", open_leads[0]
                    return entity, record["id"]
        return None

    # --- complex leads ------------------------------------------------------------------------------------
    def add_complex(self, items: Any) -> tuple[list[dict[str, Any]], list[Change]]:
        if not isinstance(items, list):
            raise ValidationFailed({"0": [_type_error("", "array")]})
        if len(items) > 50:
            raise TooMany(50)
        out: list[dict[str, Any]] = []
        changes: list[Change] = []
        for index, item in enumerate(items):
            embedded = dict(item.get("_embedded") or {}) if isinstance(item, dict) else {}
            lead = {k: v for k, v in item.items() if k != "_embedded"} if isinstance(item, dict) else item
            contact_id = company_id = None
            if embedded.get("contacts"):
                result, made = self.write("contacts", [embedded["contacts"][0]], update=False)
                contact_id, changes = result[0]["id"], changes + made
            if embedded.get("companies"):
                result, made = self.write("companies", [embedded["companies"][0]], update=False)
                company_id, changes = result[0]["id"], changes + made
            lead["_embedded"] = {
                "contacts": [{"id": contact_id}] if contact_id else [],
                "companies": [{"id": company_id}] if company_id else [],
            }
            result, made = self.write("leads", [lead], update=False)
            changes += made
            if contact_id and company_id:
                self.link("contacts", contact_id, "companies", company_id)
            out.append(
                {
                    "id": result[0]["id"],
                    "contact_id": contact_id,
                    "company_id": company_id,
                    "request_id": [str(item.get("request_id", index))],
                    "merged": False,
                }
            )
        return out, changes

    # --- reads --------------------------------------------------------------------------------------------
    def matches(self, entity: str, record: dict[str, Any], query: str) -> bool:
        """amoCRM's ``query``: names, phones (by digits) and emails, and other field values."""
        needle = query.strip().casefold()
        if not needle:
            return True
        texts = [record.get(k) or "" for k in ("name", "first_name", "last_name", "text")]
        if any(needle in str(t).casefold() for t in texts):
            return True
        wanted = digits(query)
        for cf in record.get("custom_fields_values") or []:
            for value in cf["values"]:
                text = str(value["value"])
                if cf["field_code"] == "PHONE" and len(wanted) >= 5:
                    if wanted[-10:] in digits(text):
                        return True
                elif needle in text.casefold():
                    return True
        return False

    def _record_events(self, change: Change) -> None:
        entity, record = SINGULAR.get(change.entity, change.entity), change.record
        if change.entity == "tasks":
            kind = {"add": "task_added", "delete": "task_deleted"}.get(change.action, "task_text_changed")
            if record.get("is_completed") and "is_completed" in change.changed:
                kind = "task_completed"
            self._event(kind, "task", record["id"], [], [])
            return
        if change.action in ("add", "delete"):
            self._event(f"{entity}_{'added' if change.action == 'add' else 'deleted'}", entity, record["id"], [], [])
            return
        if change.action == "status":
            self._event(
                "lead_status_changed",
                entity,
                record["id"],
                [{"lead_status": {"id": record["status_id"], "pipeline_id": record["pipeline_id"]}}],
                [{"lead_status": {"id": change.old_status_id, "pipeline_id": record["pipeline_id"]}}],
            )
        for name in change.changed:
            if name == "name":
                self._event(
                    "name_field_changed", entity, record["id"], [{"name_field_value": {"name": record["name"]}}], []
                )
            elif name == "price":
                self._event(
                    "sale_field_changed", entity, record["id"], [{"sale_field_value": {"sale": record["price"]}}], []
                )
            elif name == "custom_fields_values":
                self._event("custom_field_value_changed", entity, record["id"], [], [])

    def _event(self, kind: str, entity: str, entity_id: int, after: list[Any], before: list[Any]) -> None:
        self.events.append(
            {
                "id": f"01sandbox{len(self.events) + 1:017d}",
                "type": kind,
                "entity_id": entity_id,
                "entity_type": entity,
                "created_by": 0,
                "created_at": self.now(),
                "value_after": after,
                "value_before": before,
                "account_id": self.account_id,
            }
        )


def field_values(record: dict[str, Any], code: str) -> list[str]:
    return [
        str(v["value"])
        for cf in record.get("custom_fields_values") or []
        if cf.get("field_code") == code
        for v in cf["values"]
    ]


def _enums(codes: Iterable[str], first: int) -> dict[str, int]:
    return {code: first + n for n, code in enumerate(codes)}


def _type_error(path: str, kind: str) -> dict[str, str]:
    return {"code": "InvalidType", "path": path, "detail": f"This value should be of type {kind}."}


def _pipeline(pid: int, name: str, main: bool, stages: list[tuple[int, str]]) -> dict[str, Any]:
    statuses = [
        (pid * 10 + 1, "Неразобранное", 1),
        *((sid, sname, 0) for sid, sname in stages),
        (WON, "Успешно реализовано", 0),
        (LOST, "Закрыто и не реализовано", 0),
    ]
    return {
        "id": pid,
        "name": name,
        "sort": 1 if main else 2,
        "is_main": main,
        "is_unsorted_on": True,
        "is_archive": False,
        "account_id": 0,
        "_embedded": {
            "statuses": [
                {
                    "id": sid,
                    "name": sname,
                    "sort": 10 * (n + 1),
                    "is_editable": sid not in (WON, LOST),
                    "pipeline_id": pid,
                    "color": "#99ccff",
                    "type": stype,
                    "account_id": 0,
                }
                for n, (sid, sname, stype) in enumerate(statuses)
            ]
        },
    }


def _blank(entity: str, entity_id: int, account_id: int, now: int) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": entity_id,
        "responsible_user_id": 0,
        "group_id": 0,
        "created_by": 0,
        "updated_by": 0,
        "created_at": now,
        "updated_at": now,
        "account_id": account_id,
    }
    if entity == "tasks":
        return {
            **base,
            "entity_id": None,
            "entity_type": None,
            "duration": 0,
            "is_completed": False,
            "task_type_id": 1,
            "text": "",
            "result": [],
            "complete_till": now,
        }
    base.update(name="", closest_task_at=None, is_deleted=False, custom_fields_values=None)
    if entity == "contacts":
        base.update(first_name="", last_name="", is_unsorted=False)
    if entity == "leads":
        base.update(
            price=0, status_id=0, pipeline_id=0, loss_reason_id=None, closed_at=None, score=None, labor_cost=None
        )
    return base
