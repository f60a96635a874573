"""Whether a Bitrix24 record only reflects what the hub wrote there. The same payload functions that wrote it decide,
so an echo is recognised however quickly its event comes back (even before the sink stored the new id)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from hub.core.errors import BadInput
from hub.core.events import ItemView

from .mapping import (
    ORIGINATOR_ID,
    _custom_fields,
    _same_text,
    _when,
    comment_fields,
    deal_fields,
    multifield_values,
    normal_emails,
    normal_phones,
)

CALL_TIME_TOLERANCE_S = 2.0


def hub_origin(record: Mapping[str, Any]) -> int | None:
    """The hub id a record carries in ORIGIN_ID when the hub created it (ORIGINATOR_ID ``crm-hub``)."""
    origin = str(record.get("ORIGIN_ID") or "")
    if str(record.get("ORIGINATOR_ID") or "") == ORIGINATOR_ID and origin.isdigit():
        return int(origin)
    return None


TEXT_FIELDS = {"contact": ("NAME", "LAST_NAME", "SECOND_NAME", "POST"), "company": ("TITLE",)}


def record_values(entity: str, record: Mapping[str, Any], region: str) -> dict[str, Any]:
    """What the echo ledger compares of a contact or company: every field the mapping reads (names, normalised
    phones and emails, the company link, ``UF_*``), taken from the ``fields`` the sink sent or the record read back,
    so a change a person makes to any of them is never taken for the hub's own write."""
    values: dict[str, Any] = {k: record.get(k) for k in TEXT_FIELDS[entity]}
    values["phones"] = normal_phones(multifield_values(record.get("PHONE")), region)
    values["emails"] = normal_emails(multifield_values(record.get("EMAIL")))
    company = str(record.get("COMPANY_ID") or "")
    values["company"] = company if company not in ("", "0") else None
    values["custom"] = {k: v for k, v in _custom_fields(record).items() if v not in (None, "")}
    return values


def deal_matches(item: ItemView, deal: Mapping[str, Any], stage_map: Mapping[str, str]) -> bool:
    """The deal holds everything the sink would write for ``item``: writing again would change nothing."""
    return item.kind == "deal" and not deal_fields(item, stage_map=stage_map, current=deal)


def _moment(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else _when(value)


def call_matches(item: ItemView, activity: Mapping[str, Any]) -> bool:
    """A call activity Bitrix24 made itself from ``telephony.externalcall.finish`` for the hub's call ``item``."""
    if item.kind != "interaction" or item.channel != "call" or str(activity.get("TYPE_ID")) != "2":
        return False
    started = _when(activity.get("START_TIME"))
    ours = _moment(item.occurred_at)
    return started is not None and ours is not None and abs((started - ours).total_seconds()) <= CALL_TIME_TOLERANCE_S


def comment_matches(item: ItemView, comment: Mapping[str, Any]) -> bool:
    """A timeline comment holding exactly the text the sink writes for ``item``."""
    if item.kind != "interaction":
        return False
    try:
        text = comment_fields(item, entity_type="contact", entity_id=0)["COMMENT"]
    except BadInput:
        return False
    return _same_text(text, comment.get("COMMENT"))


def unlinked(items: Iterable[ItemView], account: str) -> list[ItemView]:
    """Items that have no ref in this portal yet (what the sink may have written without storing the id)."""
    return [i for i in items if not any(r.system == "bitrix24" and r.account == account for r in i.refs)]
