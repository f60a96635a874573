"""The Bitrix24 sandbox's in-memory CRM: contacts, companies, deals, activities, timeline comments, calls, events.

Each REST method the hub uses is implemented here with Bitrix24's semantics (multi-field updates, list filters,
paging, ``start=-1``); :mod:`crm_hub_plugins.bitrix24.sandbox` puts HTTP, auth, limits and faults around it.
"""

from __future__ import annotations

import bisect
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

PAGE_SIZE = 50
MULTI_FIELDS = ("PHONE", "EMAIL", "WEB", "IM")

CONTACT_FIELDS = (
    "ID", "HONORIFIC", "NAME", "SECOND_NAME", "LAST_NAME", "PHOTO", "BIRTHDATE", "TYPE_ID", "SOURCE_ID",
    "SOURCE_DESCRIPTION", "POST", "COMMENTS", "OPENED", "EXPORT", "HAS_PHONE", "HAS_EMAIL", "HAS_IMOL",
    "ASSIGNED_BY_ID", "CREATED_BY_ID", "MODIFY_BY_ID", "DATE_CREATE", "DATE_MODIFY", "COMPANY_ID", "LEAD_ID",
    "ORIGINATOR_ID", "ORIGIN_ID", "ORIGIN_VERSION", "ADDRESS", "UTM_SOURCE",
)  # fmt: skip
COMPANY_FIELDS = (
    "ID", "TITLE", "COMPANY_TYPE", "INDUSTRY", "EMPLOYEES", "CURRENCY_ID", "REVENUE", "COMMENTS", "OPENED",
    "HAS_PHONE", "HAS_EMAIL", "ASSIGNED_BY_ID", "CREATED_BY_ID", "MODIFY_BY_ID", "DATE_CREATE", "DATE_MODIFY",
    "ORIGINATOR_ID", "ORIGIN_ID", "ADDRESS",
)  # fmt: skip
DEAL_FIELDS = (
    "ID", "TITLE", "TYPE_ID", "CATEGORY_ID", "STAGE_ID", "STAGE_SEMANTIC_ID", "IS_NEW", "CURRENCY_ID",
    "OPPORTUNITY", "CONTACT_ID", "COMPANY_ID", "BEGINDATE", "CLOSEDATE", "OPENED", "CLOSED", "COMMENTS",
    "ASSIGNED_BY_ID", "CREATED_BY_ID", "MODIFY_BY_ID", "DATE_CREATE", "DATE_MODIFY", "ORIGINATOR_ID", "ORIGIN_ID",
)  # fmt: skip
ACTIVITY_FIELDS = (
    "ID", "OWNER_ID", "OWNER_TYPE_ID", "TYPE_ID", "PROVIDER_ID", "PROVIDER_TYPE_ID", "SUBJECT", "DESCRIPTION",
    "DESCRIPTION_TYPE", "DIRECTION", "START_TIME", "END_TIME", "DEADLINE", "COMPLETED", "STATUS", "PRIORITY",
    "RESPONSIBLE_ID", "AUTHOR_ID", "EDITOR_ID", "CREATED", "LAST_UPDATED", "ORIGINATOR_ID", "ORIGIN_ID",
    "SETTINGS", "COMMUNICATIONS",
)  # fmt: skip
COMMENT_FIELDS = ("ID", "CREATED", "ENTITY_ID", "ENTITY_TYPE", "AUTHOR_ID", "COMMENT", "FILES")

ENTITY_FIELDS: dict[str, tuple[str, ...]] = {
    "contact": CONTACT_FIELDS,
    "company": COMPANY_FIELDS,
    "deal": DEAL_FIELDS,
    "activity": ACTIVITY_FIELDS,
    "comment": COMMENT_FIELDS,
}
HAS_MULTI = {"contact", "company"}
NOT_FOUND = {
    "contact": "Contact is not found",
    "company": "Company is not found",
    "deal": "Deal is not found",
    "activity": "Activity is not found",
    "comment": "Comment is not found",
}
EVENT_NAMES = {"contact": "CONTACT", "company": "COMPANY", "deal": "DEAL", "activity": "ACTIVITY"}
OWNER_TYPES = {"1": "lead", "2": "deal", "3": "contact", "4": "company"}

DEAL_STAGES = (
    ("NEW", "New", 10, "P"),
    ("PREPARATION", "Preparing documents", 20, "P"),
    ("PREPAYMENT_INVOICE", "Invoice", 30, "P"),
    ("EXECUTING", "In progress", 40, "P"),
    ("FINAL_INVOICE", "Final invoice", 50, "P"),
    ("WON", "Deal won", 60, "S"),
    ("LOSE", "Deal lost", 70, "F"),
)

_OPS = (">=", "<=", "!=", "!@", ">", "<", "@", "=", "!", "%")
_INT_FIELDS = {"ID", "COMPANY_ID", "CONTACT_ID", "OWNER_ID", "OWNER_TYPE_ID", "TYPE_ID", "CATEGORY_ID", "ENTITY_ID"}
_INT_FIELDS |= {"ASSIGNED_BY_ID", "CREATED_BY_ID", "RESPONSIBLE_ID", "DIRECTION", "AUTHOR_ID"}


class MethodError(Exception):
    """A REST error answer: HTTP status, Bitrix24 error code (often empty for CRM methods) and description."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description


@dataclass
class Answer:
    result: Any
    total: int | None = None
    next: int | None = None


def _get(params: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """Bitrix24 reads top-level parameter names case-insensitively (``id``/``ID``, ``fields``/``FIELDS``)."""
    if name in params:
        return params[name]
    lower = name.lower()
    for key, value in params.items():
        if key.lower() == lower:
            return value
    return default


def _items(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list | tuple):
        return list(value)
    return [] if value is None or value == "" else [value]


def _as_int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _as_datetime(value: Any) -> datetime | None:
    text = str(value).strip()
    for fmt in (None, "%d.%m.%Y %H:%M:%S", "%d.%m.%Y"):
        try:
            parsed = datetime.fromisoformat(text) if fmt is None else datetime.strptime(text, fmt)
        except ValueError:
            continue
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone(timedelta(hours=3)))
    return None


def _digits(value: Any) -> str:
    return re.sub(r"\D", "", str(value))


def _same_phone(a: Any, b: Any) -> bool:
    """Bitrix24 normalises numbers before comparing: ``8 916…`` and ``+7 916…`` are one number."""
    left, right = _digits(a), _digits(b)
    if len(left) >= 10 and len(right) >= 10:
        return left[-10:] == right[-10:]
    return bool(left) and left == right


def _required_fields(params: Mapping[str, Any]) -> Any:
    """``*.add`` without ``fields`` is an error on the portal, not an empty record."""
    fields = _get(params, "fields")
    if not isinstance(fields, Mapping) or not fields:
        raise MethodError(400, "", "Parameter 'fields' must be array.")
    return fields


class CrmStore:
    """All CRM data of one sandbox portal and the methods that read and change it."""

    def __init__(
        self,
        *,
        emit: Callable[[str, dict[str, Any]], None],
        wallclock: Callable[[], float] = time.time,
        tz_offset_hours: int = 3,
        user_id: int = 1,
    ) -> None:
        self._emit = emit
        self._wallclock = wallclock
        self.tz = timezone(timedelta(hours=tz_offset_hours))
        self.user_id = user_id
        self.lock = threading.RLock()
        self.reset()
        self.methods: dict[str, Callable[[dict[str, Any]], Answer]] = {
            "profile": lambda p: Answer(self._profile()),
            "user.current": lambda p: Answer(self._profile()),
            "app.info": lambda p: Answer(self._app_info()),
            "crm.duplicate.findbycomm": self._findbycomm,
            "crm.status.list": self._status_list,
            "crm.dealcategory.stage.list": self._dealcategory_stages,
            "crm.category.list": self._category_list,
            "crm.timeline.comment.add": lambda p: Answer(self._add("comment", _get(p, "fields") or {})),
            "crm.timeline.comment.get": lambda p: Answer(
                self._present("comment", self._record("comment", p), [], full=True)
            ),
            "crm.timeline.comment.list": self._comment_list,
            "crm.timeline.comment.fields": lambda p: Answer(self._fields("comment")),
            "telephony.externalcall.register": self._call_register,
            "telephony.externalcall.finish": self._call_finish,
        }
        for kind in ("contact", "company", "deal", "activity"):
            self._crud(kind)

    def _crud(self, kind: str) -> None:
        prefix = f"crm.{kind}."
        self.methods[prefix + "add"] = lambda p: Answer(self._add(kind, _required_fields(p)))
        self.methods[prefix + "update"] = lambda p: Answer(self._update(kind, p))
        self.methods[prefix + "get"] = lambda p: Answer(self._present(kind, self._record(kind, p), [], full=True))
        self.methods[prefix + "list"] = lambda p: self._list(kind, p)
        self.methods[prefix + "delete"] = lambda p: Answer(self._delete(kind, p))
        self.methods[prefix + "fields"] = lambda p: Answer(self._fields(kind))

    def reset(self) -> None:
        with self.lock:
            self.records: dict[str, dict[int, dict[str, Any]]] = {kind: {} for kind in ENTITY_FIELDS}
            self.ids: dict[str, list[int]] = {kind: [] for kind in ENTITY_FIELDS}
            self.next_id: dict[str, int] = {kind: 1 for kind in ENTITY_FIELDS}
            self.next_multi_id = 1
            self.calls: dict[str, dict[str, Any]] = {}

    def now(self) -> str:
        return datetime.fromtimestamp(self._wallclock(), self.tz).isoformat(timespec="seconds")

    # --- records ----------------------------------------------------------------------------------------------

    def _record(self, kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
        record_id = _as_int(_get(params, "id"))
        if record_id is None:
            raise MethodError(400, "", "ID is not defined or invalid.")
        record = self.records[kind].get(record_id)
        if record is None:
            raise MethodError(400, "", "Not found" if kind != "comment" else NOT_FOUND[kind])
        return record

    def _multi(self, record: dict[str, Any], name: str, values: Any, *, adding: bool) -> None:
        current: list[dict[str, Any]] = record.setdefault(name, [])
        for item in _items(values):
            entry = item if isinstance(item, dict) else {"VALUE": item}
            value = str(entry.get("VALUE", "") if entry.get("VALUE") is not None else "").strip()
            item_id = _as_int(entry.get("ID")) if not adding else None
            if name == "EMAIL" and value and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
                raise MethodError(400, "ERROR_CORE", f"The field Work e-mail contains an invalid address: {value}")
            if item_id is not None:
                existing = next((m for m in current if int(m["ID"]) == item_id), None)
                if existing is None:
                    continue
                if str(entry.get("DELETE", "")).upper() == "Y" or not value:
                    current.remove(existing)
                else:
                    existing["VALUE"] = value
                    existing["VALUE_TYPE"] = str(entry.get("VALUE_TYPE") or existing["VALUE_TYPE"])
            elif value:
                current.append(
                    {
                        "ID": str(self.next_multi_id),
                        "VALUE_TYPE": str(entry.get("VALUE_TYPE") or "WORK"),
                        "VALUE": value,
                        "TYPE_ID": name,
                    }
                )
                self.next_multi_id += 1
        if name in ("PHONE", "EMAIL"):
            record[f"HAS_{name}"] = "Y" if current else "N"

    def _assign(self, kind: str, record: dict[str, Any], fields: Mapping[str, Any], *, adding: bool) -> None:
        allowed = set(ENTITY_FIELDS[kind]) - {"ID", "DATE_CREATE", "DATE_MODIFY", "CREATED", "HAS_PHONE", "HAS_EMAIL"}
        for raw_key, value in fields.items():
            key = str(raw_key).upper()
            if kind in HAS_MULTI and key in MULTI_FIELDS:
                self._multi(record, key, value, adding=adding)
            elif key == "COMMUNICATIONS" and kind == "activity":
                record[key] = [self._communication(c) for c in _items(value)]
            elif key in allowed or key.startswith("UF_"):
                record[key] = value if isinstance(value, list | dict) or value is None else str(value)

    def _communication(self, item: Any) -> dict[str, Any]:
        entry = item if isinstance(item, dict) else {"VALUE": item}
        self.next_multi_id += 1
        return {
            "ID": str(self.next_multi_id),
            "TYPE": str(entry.get("TYPE") or ("EMAIL" if "@" in str(entry.get("VALUE", "")) else "PHONE")),
            "VALUE": str(entry.get("VALUE", "")),
            "ENTITY_ID": str(entry.get("ENTITY_ID", "")),
            "ENTITY_TYPE_ID": str(entry.get("ENTITY_TYPE_ID", "")),
        }

    def _validate(self, kind: str, record: dict[str, Any]) -> None:
        if kind == "activity":
            for name in ("OWNER_ID", "OWNER_TYPE_ID", "TYPE_ID"):
                if not record.get(name):
                    raise MethodError(400, "", f"The field {name} is not defined or invalid.")
            if record["TYPE_ID"] in ("1", "2", "4") and not record.get("COMMUNICATIONS"):
                raise MethodError(400, "", "The field COMMUNICATIONS is not defined or invalid.")
        if kind == "comment":
            for name in ("ENTITY_ID", "ENTITY_TYPE", "COMMENT"):
                if not record.get(name):
                    raise MethodError(400, "", f"Required field {name} is not set.")
            owner = self.records.get(str(record["ENTITY_TYPE"]).lower(), {})
            if _as_int(record["ENTITY_ID"]) not in owner:
                raise MethodError(400, "", "Entity not found.")
        if kind == "deal":
            stage = str(record.get("STAGE_ID") or "NEW")
            semantic = next((s for sid, _, _, s in DEAL_STAGES if sid == stage.split(":")[-1]), "P")
            record["STAGE_ID"] = stage
            record["STAGE_SEMANTIC_ID"] = semantic
            record["CLOSED"] = "N" if semantic == "P" else "Y"
            record.setdefault("CATEGORY_ID", "0")
            record.setdefault("CURRENCY_ID", "RUB")
            record.setdefault("OPPORTUNITY", "0.00")

    def add(self, kind: str, fields: Mapping[str, Any], *, emit: bool = True) -> int:
        """Create a record as a portal user would (used by tests and seeding); emits the ADD event when asked."""
        with self.lock:
            return self._add(kind, fields, emit=emit)

    def _add(self, kind: str, fields: Any, *, emit: bool = True) -> int:
        if not isinstance(fields, Mapping):
            raise MethodError(400, "", "Parameter 'fields' must be array.")
        record_id = self.next_id[kind]
        now = self.now()
        record: dict[str, Any] = {"ID": str(record_id)}
        if kind == "comment":
            record.update({"CREATED": now, "AUTHOR_ID": str(self.user_id), "FILES": []})
        elif kind == "activity":
            record.update({"CREATED": now, "LAST_UPDATED": now, "COMPLETED": "N", "RESPONSIBLE_ID": str(self.user_id)})
        else:
            record.update({"DATE_CREATE": now, "DATE_MODIFY": now, "OPENED": "Y", "ASSIGNED_BY_ID": str(self.user_id)})
            record.update({"CREATED_BY_ID": str(self.user_id), "MODIFY_BY_ID": str(self.user_id)})
        if kind in HAS_MULTI:
            record.update({"HAS_PHONE": "N", "HAS_EMAIL": "N"})
        self._assign(kind, record, fields, adding=True)
        self._validate(kind, record)
        self.next_id[kind] = record_id + 1
        self.records[kind][record_id] = record
        self.ids[kind].append(record_id)
        if emit:
            self._event(kind, "ADD", record_id)
        return record_id

    def update(self, kind: str, record_id: int, fields: Mapping[str, Any], *, emit: bool = True) -> None:
        """Change a record as a portal user would; emits the UPDATE event."""
        with self.lock:
            self._update(kind, {"id": record_id, "fields": fields}, emit=emit)

    def _update(self, kind: str, params: Mapping[str, Any], *, emit: bool = True) -> bool:
        record = self._record(kind, params)
        fields = _get(params, "fields")
        if not isinstance(fields, Mapping):
            raise MethodError(400, "", "Parameter 'fields' must be array.")
        draft = {k: (list(map(dict, v)) if k in MULTI_FIELDS else v) for k, v in record.items()}
        self._assign(kind, draft, fields, adding=False)
        self._validate(kind, draft)
        if kind == "activity":
            draft["LAST_UPDATED"] = self.now()
        elif kind != "comment":
            draft["DATE_MODIFY"] = self.now()
            draft["MODIFY_BY_ID"] = str(self.user_id)
        record.clear()
        record.update(draft)
        if emit:
            self._event(kind, "UPDATE", int(record["ID"]))
        return True

    def _delete(self, kind: str, params: Mapping[str, Any]) -> bool:
        record = self._record(kind, params)
        record_id = int(record["ID"])
        del self.records[kind][record_id]
        self.ids[kind].remove(record_id)
        self._event(kind, "DELETE", record_id)
        return True

    def _event(self, kind: str, action: str, record_id: int) -> None:
        if kind == "comment":
            if action == "ADD":
                self._emit("ONCRMTIMELINECOMMENTADD", {"ID": str(record_id)})
            return
        self._emit(f"ONCRM{EVENT_NAMES[kind]}{action}", {"ID": str(record_id)})

    def seed_contacts(self, count: int, *, phones: bool = True, emails: bool = True) -> list[int]:
        """Add ``count`` contacts quickly, without events: ``Контакт N`` with a unique phone and email."""
        with self.lock:
            created = []
            for _ in range(count):
                n = self.next_id["contact"]
                fields: dict[str, Any] = {"NAME": f"Контакт {n}", "LAST_NAME": "Тестовый"}
                if phones:
                    fields["PHONE"] = [{"VALUE": f"+7916{n:07d}", "VALUE_TYPE": "WORK"}]
                if emails:
                    fields["EMAIL"] = [{"VALUE": f"contact{n}@example.ru", "VALUE_TYPE": "WORK"}]
                created.append(self._add("contact", fields, emit=False))
            return created

    # --- presentation and lists -------------------------------------------------------------------------------

    def _present(self, kind: str, record: dict[str, Any], select: list[str], *, full: bool = False) -> dict[str, Any]:
        """A record as the API shows it: ``*`` is every standard field, ``UF_*`` the custom ones; multi-fields
        (PHONE, EMAIL) only when named, as in Bitrix24, or with ``full`` (the ``.get`` methods)."""
        wanted = [str(s).upper() for s in select] or ["*"]
        out: dict[str, Any] = {}
        if "*" in wanted or full:
            out.update({name: record.get(name) for name in ENTITY_FIELDS[kind] if name != "COMMUNICATIONS"})
        if "UF_*" in wanted or full:
            out.update({k: v for k, v in record.items() if k.startswith("UF_")})
        named = [n for n in wanted if n not in ("*", "UF_*")]
        if full:
            named += [n for n in (*MULTI_FIELDS, "COMMUNICATIONS") if record.get(n)]
        for name in named:
            value = record.get(name)
            out[name] = [dict(m) for m in value] if isinstance(value, list) else value
        out.setdefault("ID", record["ID"])
        return out

    def _compile(self, filter_: Any) -> list[tuple[str, str, Any]]:
        rules = []
        for raw_key, value in (filter_ or {}).items() if isinstance(filter_, Mapping) else []:
            key = str(raw_key)
            op = next((o for o in _OPS if key.startswith(o)), "=")
            name = key[len(op) :] if key.startswith(op) else key
            rules.append((name.upper(), op, value))
        return rules

    def _match_one(self, field: str, op: str, actual: Any, wanted: Any) -> bool:
        if field in MULTI_FIELDS:
            values = [m["VALUE"] for m in actual or []]
            if field == "PHONE":
                hit = any(_same_phone(v, wanted) for v in values)
            else:
                hit = any(str(v).casefold() == str(wanted).casefold() for v in values)
            return hit if op in ("=", "%") else not hit
        if op in ("@", "!@") or (op == "=" and isinstance(wanted, list | dict)):
            options = {str(v) for v in _items(wanted)}
            return (str(actual) in options) == (op != "!@")
        if op == "%":
            return str(wanted).casefold() in str(actual or "").casefold()
        if op in ("=", "!", "!="):
            equal = str(actual if actual is not None else "") == str(wanted)
            if field in _INT_FIELDS and _as_int(actual) is not None and _as_int(wanted) is not None:
                equal = _as_int(actual) == _as_int(wanted)
            return equal if op == "=" else not equal
        left: Any
        right: Any
        if field in _INT_FIELDS or field.endswith("_ID") or field == "OPPORTUNITY":
            left, right = _as_int(str(actual).split(".")[0]), _as_int(str(wanted).split(".")[0])
        elif field.startswith("DATE_") or field in ("CREATED", "START_TIME", "END_TIME", "LAST_UPDATED", "DEADLINE"):
            left, right = _as_datetime(actual), _as_datetime(wanted)
        else:
            left, right = str(actual or ""), str(wanted)
        if left is None or right is None:
            return False
        return {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}[op]

    def _comment_list(self, params: Mapping[str, Any]) -> Answer:
        """crm.timeline.comment.list lists the comments of one CRM element: the portal refuses it without
        ``filter[ENTITY_ID]`` and ``filter[ENTITY_TYPE]`` (crm_timeline_comment_list.php)."""
        filter_ = _get(params, "filter")
        keys = {str(k).upper() for k in filter_} if isinstance(filter_, Mapping) else set()
        if not {"ENTITY_ID", "ENTITY_TYPE"} <= keys:
            raise MethodError(400, "", "Access denied.")
        return self._list("comment", params)

    def _list(self, kind: str, params: Mapping[str, Any]) -> Answer:
        rules = self._compile(_get(params, "filter"))
        order_param = _get(params, "order") or {}
        order = (
            [(str(k).upper(), str(v).upper()) for k, v in order_param.items()]
            if isinstance(order_param, Mapping)
            else []
        )
        select = [str(s) for s in _items(_get(params, "select"))]
        start = _as_int(_get(params, "start", 0))
        start = 0 if start is None else start
        records = self.records[kind]
        ids = self.ids[kind]
        by_id = not order or order == [("ID", "ASC")]
        begin = 0
        # Keyset pages (>ID, ID ascending) start with a bisect instead of a scan, as an index would.
        if by_id:
            for field, op, value in rules:
                if field == "ID" and op in (">", ">="):
                    bound = _as_int(value)
                    if bound is None:
                        return Answer([], total=0)
                    pos = bisect.bisect_right(ids, bound) if op == ">" else bisect.bisect_left(ids, bound)
                    begin = max(begin, pos)
        matched: list[dict[str, Any]] = []
        limit = PAGE_SIZE if start < 0 else None
        for record_id in ids[begin:] if by_id else ids:
            record = records[record_id]
            if all(self._match_one(f, op, record.get(f), v) for f, op, v in rules):
                matched.append(record)
                if by_id and limit is not None and len(matched) >= limit:
                    break
        if not by_id:
            for field, direction in reversed(order):

                def sort_key(rec: dict[str, Any], field: str = field) -> tuple[int, Any]:
                    value = rec.get(field)
                    number = _as_int(value)
                    return (0, number) if number is not None else (1, str(value or ""))

                matched.sort(key=sort_key, reverse=direction == "DESC")
        if start < 0:
            return Answer([self._present(kind, r, select) for r in matched[:PAGE_SIZE]], total=0)
        page = matched[start : start + PAGE_SIZE]
        more = start + PAGE_SIZE < len(matched)
        return Answer(
            [self._present(kind, r, select) for r in page], total=len(matched), next=start + PAGE_SIZE if more else None
        )

    def _fields(self, kind: str) -> dict[str, Any]:
        described: dict[str, Any] = {}
        for name in ENTITY_FIELDS[kind]:
            described[name] = {
                "type": "integer" if name == "ID" or name.endswith("_ID") else "string",
                "isRequired": False,
                "isReadOnly": name in ("ID", "DATE_CREATE", "DATE_MODIFY", "CREATED", "HAS_PHONE", "HAS_EMAIL"),
                "isImmutable": False,
                "isMultiple": False,
                "isDynamic": False,
                "title": name,
            }
        if kind in HAS_MULTI:
            for name in MULTI_FIELDS:
                described[name] = {**described["ID"], "type": "crm_multifield", "isReadOnly": False}
                described[name].update({"isMultiple": True, "title": name})
        return described

    # --- the other methods ------------------------------------------------------------------------------------

    def _profile(self) -> dict[str, Any]:
        return {
            "ID": str(self.user_id),
            "ADMIN": True,
            "NAME": "Администратор",
            "LAST_NAME": "Песочницы",
            "PERSONAL_GENDER": "",
            "TIME_ZONE": "",
            "TIME_ZONE_OFFSET": int(self.tz.utcoffset(None).total_seconds()),
        }

    def _app_info(self) -> dict[str, Any]:
        return {
            "ID": 1,
            "CODE": "local.sandbox",
            "VERSION": 1,
            "STATUS": "L",
            "INSTALLED": True,
            "PAYMENT_EXPIRED": "N",
            "DAYS": None,
            "LANGUAGE_ID": "ru",
            "LICENSE": "ru_project",
        }

    def _findbycomm(self, params: Mapping[str, Any]) -> Answer:
        comm_type = str(_get(params, "type") or "").upper()
        if not comm_type:
            raise MethodError(400, "Communication type is not defined", "Parameter 'type' is required.")
        if comm_type not in ("PHONE", "EMAIL"):
            raise MethodError(400, "", f"Communication type '{comm_type}' is not supported in current context")
        values = _items(_get(params, "values"))
        if not values:
            raise MethodError(400, "Communication values is not defined", "Parameter 'values' is required.")
        entity_type = str(_get(params, "entity_type") or "").upper()
        kinds = [entity_type.lower()] if entity_type else ["contact", "company"]
        found: dict[str, list[int]] = {}
        for kind in kinds:
            if kind not in HAS_MULTI:
                continue
            ids = [
                rid
                for rid in self.ids[kind]
                if any(self._match_one(comm_type, "=", self.records[kind][rid].get(comm_type), v) for v in values[:20])
            ]
            if ids:
                found[kind.upper()] = ids[:20]
        return Answer(found or [])

    def _status_list(self, params: Mapping[str, Any]) -> Answer:
        rules = self._compile(_get(params, "filter"))
        rows = []
        for n, (status_id, name, sort, semantic) in enumerate(DEAL_STAGES, start=1):
            row = {
                "ID": str(n),
                "ENTITY_ID": "DEAL_STAGE",
                "STATUS_ID": status_id,
                "NAME": name,
                "NAME_INIT": name,
                "SORT": str(sort),
                "SYSTEM": "Y" if status_id in ("NEW", "WON", "LOSE") else "N",
                "CATEGORY_ID": "0",
                "SEMANTICS": {"S": "success", "F": "failure"}.get(semantic),
                "EXTRA": {"SEMANTICS": {"S": "success", "F": "apology", "P": "process"}[semantic]},
            }
            if all(self._match_one(f, op, row.get(f), v) for f, op, v in rules):
                rows.append(row)
        return Answer(rows, total=len(rows))

    def _dealcategory_stages(self, params: Mapping[str, Any]) -> Answer:
        if _as_int(_get(params, "id", 0)) not in (0, None):
            raise MethodError(400, "", "Not found")
        return Answer([{"NAME": name, "SORT": sort, "STATUS_ID": sid} for sid, name, sort, _ in DEAL_STAGES])

    def _category_list(self, params: Mapping[str, Any]) -> Answer:
        entity_type = _as_int(_get(params, "entityTypeId"))
        if entity_type != 2:
            raise MethodError(400, "NOT_FOUND", "Entity type not found or is not supported")
        category = {"id": 0, "name": "General", "sort": 100, "entityTypeId": 2, "isDefault": "Y"}
        return Answer({"categories": [category]}, total=1)

    def _call_register(self, params: Mapping[str, Any]) -> Answer:
        user_id = _get(params, "USER_ID") or _get(params, "USER_PHONE_INNER")
        if not user_id:
            raise MethodError(400, "ERROR_CORE", "USER_ID or USER_PHONE_INNER should be set")
        call_type = _as_int(_get(params, "TYPE"))
        if call_type not in (1, 2, 3, 4):
            raise MethodError(400, "ERROR_CORE", "Unknown TYPE")
        phone = str(_get(params, "PHONE_NUMBER") or "")
        if not _digits(phone):
            raise MethodError(400, "ERROR_CORE", "Unsupported phone number format")
        start_raw = _get(params, "CALL_START_DATE")
        if start_raw and _as_datetime(start_raw) is None:
            raise MethodError(400, "ERROR_CORE", "CALL_START_DATE should be in the ISO-8601 format")
        key = "|".join(
            str(x)
            for x in (phone, call_type, user_id, _get(params, "LINE_NUMBER", ""), _get(params, "EXTERNAL_CALL_ID", ""))
        )
        for call in self.calls.values():
            if call["key"] == key and not call["finished"] and self._wallclock() - call["registered"] < 1800:
                return Answer(call["answer"])
        entity_type = str(_get(params, "CRM_ENTITY_TYPE") or "").upper() or None
        entity_id = _as_int(_get(params, "CRM_ENTITY_ID"))
        if entity_type is None:
            found = self._findbycomm({"type": "PHONE", "values": [phone]}).result
            for candidate in ("CONTACT", "COMPANY"):
                if isinstance(found, dict) and found.get(candidate):
                    entity_type, entity_id = candidate, found[candidate][0]
                    break
        call_id = f"externalCall.{uuid.uuid4().hex}.{int(self._wallclock())}"
        answer: dict[str, Any] = {
            "CALL_ID": call_id,
            "CRM_CREATED_LEAD": None,
            "CRM_CREATED_ENTITIES": [],
            "CRM_ENTITY_TYPE": entity_type,
            "CRM_ENTITY_ID": entity_id,
        }
        self.calls[call_id] = {
            "key": key,
            "finished": False,
            "registered": self._wallclock(),
            "answer": answer,
            "type": call_type,
            "phone": phone,
            "user_id": str(user_id),
            "start": str(start_raw or self.now()),
            "external_id": str(_get(params, "EXTERNAL_CALL_ID") or ""),
        }
        return Answer(answer)

    def _call_finish(self, params: Mapping[str, Any]) -> Answer:
        call = self.calls.get(str(_get(params, "CALL_ID") or ""))
        if call is None:
            raise MethodError(400, "ERROR_CORE", "Call is not found, or finished")
        if call["finished"]:
            raise MethodError(400, "ERROR_CORE", "Call is not found, or finished")
        duration = _as_int(_get(params, "DURATION")) or 0
        status = str(_get(params, "STATUS_CODE") or "200")
        incoming = call["type"] in (2, 3)
        answer = call["answer"]
        started = _as_datetime(call["start"]) or datetime.now(self.tz)
        activity_id = None
        if answer["CRM_ENTITY_TYPE"] and answer["CRM_ENTITY_ID"]:
            owner_type = {"CONTACT": "3", "COMPANY": "4", "LEAD": "1"}[answer["CRM_ENTITY_TYPE"]]
            activity_id = self._add(
                "activity",
                {
                    "OWNER_TYPE_ID": owner_type,
                    "OWNER_ID": answer["CRM_ENTITY_ID"],
                    "TYPE_ID": "2",
                    "PROVIDER_ID": "VOXIMPLANT_CALL",
                    "PROVIDER_TYPE_ID": "CALL",
                    "DIRECTION": "1" if incoming else "2",
                    "SUBJECT": ("Incoming call from " if incoming else "Outgoing call to ") + call["phone"],
                    "START_TIME": started.isoformat(timespec="seconds"),
                    "END_TIME": (started + timedelta(seconds=duration)).isoformat(timespec="seconds"),
                    "COMPLETED": "Y",
                    "DESCRIPTION": str(_get(params, "RECORD_URL") or ""),
                    "ORIGIN_ID": f"VI_{_get(params, 'CALL_ID')}",
                    "COMMUNICATIONS": [
                        {
                            "VALUE": call["phone"],
                            "TYPE": "PHONE",
                            "ENTITY_ID": answer["CRM_ENTITY_ID"],
                            "ENTITY_TYPE_ID": owner_type,
                        }
                    ],
                },
            )
        call["finished"] = True
        return Answer(
            {
                "CALL_ID": answer["CALL_ID"],
                "CALL_TYPE": call["type"],
                "CALL_DURATION": duration,
                "CALL_START_DATE": started.isoformat(timespec="seconds"),
                "CALL_FAILED_CODE": status,
                "CALL_VOTE": _as_int(_get(params, "VOTE")),
                "COST": str(_get(params, "COST") or "0.0000"),
                "COST_CURRENCY": str(_get(params, "COST_CURRENCY") or "RUB"),
                "CRM_ACTIVITY_ID": activity_id,
                "CRM_ENTITY_TYPE": answer["CRM_ENTITY_TYPE"],
                "CRM_ENTITY_ID": answer["CRM_ENTITY_ID"],
                "PHONE_NUMBER": call["phone"],
                "PORTAL_USER_ID": call["user_id"],
                "EXTERNAL_CALL_ID": call["external_id"],
            }
        )

    def dispatch(self, method: str, params: dict[str, Any]) -> Answer:
        handler = self.methods.get(method)
        if handler is None:
            raise MethodError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
        with self.lock:
            return handler(params)
