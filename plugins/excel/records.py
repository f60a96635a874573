"""The hub's record written to a workbook: clients (with their company's name) and optionally the timeline, streamed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from hub.core.errors import BadInput, NotFound

from .export import ExportCounts, write_clients_xlsx

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
COMPANY_CACHE = 4096


def parse_since(text: str | None) -> datetime | None:
    """``2025-01-31`` or an ISO date-time; a value without a time zone is taken as UTC."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = datetime.combine(date.fromisoformat(value), datetime.min.time())
        except ValueError:
            raise BadInput(f"since={value!r} is not a date; write it as YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def export_from_hub(
    hub: Any,
    target: Path | IO[bytes],
    *,
    timeline: bool = False,
    since: datetime | None = None,
    system: str | None = None,
) -> ExportCounts:
    """Write every live client (changed since ``since``, known to ``system``) and, with ``timeline``, their items.

    Clients and items are read page by page from the hub and written row by row: memory does not grow with the
    number of clients. Company names are looked up once per company (a bounded cache).
    """

    @lru_cache(maxsize=COMPANY_CACHE)
    def company_name(company_id: int) -> str | None:
        try:
            name: str | None = hub.get_client(company_id).name
            return name
        except NotFound:
            return None

    items = hub.iter_items(since=since, system=system) if timeline else None
    return write_clients_xlsx(target, hub.iter_clients(since=since, system=system), items, company_name=company_name)
