"""Clients and their timeline written to xlsx, streamed (openpyxl write-only: memory stays flat), injection-safe.

Formula injection: every text goes into an inline-string cell, never a formula cell. On top of that, text that
Excel or LibreOffice would read as a formula once it is re-entered, pasted or saved as CSV (starting with ``=``,
``+``, ``-``, ``@``, tab or carriage return) is prefixed with a single quote, as OWASP recommends; the quote
stays visible. Phone numbers such as ``+7 916 123-45-67`` and ``+79161234567`` are left untouched: made of a
plus, digits, spaces, brackets and hyphens only, they can call no function, and Excel would never evaluate them
from a text cell.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from hub.core.events import ClientView, ItemView, RefView

CELL_TEXT_LIMIT = 32_767  # Excel refuses to open a file with a longer cell
_TRIGGERS = frozenset("=+-@\t\r")
# one or more numbers, each "+" and a digit, then digits, spaces, brackets, dots or hyphens: "+7 916 …, +7 495 …"
_PHONE_LIKE = re.compile(r"\+\d[\d\s().\-]*(?:[,;]\s*\+\d[\d\s().\-]*)*")
CLIENT_SHEET = "Clients"
TIMELINE_SHEET = "Timeline"
TIMELINE_COLUMNS = (
    "client_id",
    "when (UTC)",
    "kind",
    "channel",
    "direction",
    "status",
    "subject",
    "summary",
    "duration_s",
    "source",
    "item_id",
)


def neutralise(value: str) -> str:
    """Make ``value`` safe to hand to a spreadsheet: never a formula, nothing Excel cannot store.

    ``"=HYPERLINK(...)"`` → ``"'=HYPERLINK(...)"``; ``"+7 916 123-45-67"`` and ``"+79161234567"`` unchanged.
    Control characters XML cannot carry are dropped; text past Excel's 32,767 characters is cut.
    """
    if ILLEGAL_CHARACTERS_RE.search(value):
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
    if value and value[0] in _TRIGGERS and not _is_phone(value):
        value = "'" + value
    if len(value) > CELL_TEXT_LIMIT:
        value = value[: CELL_TEXT_LIMIT - 1] + "…"
    return value


def _is_phone(value: str) -> bool:
    return _PHONE_LIKE.fullmatch(value) is not None and sum(ch.isdigit() for ch in value) >= 7


def safe_value(value: Any) -> Any:
    """A value ready for ``ws.append``: text neutralised, datetimes in naive UTC (Excel has no time zones)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return neutralise(str(value))


def append_row(sheet: WriteOnlyWorksheet, values: Iterable[Any]) -> None:
    sheet.append([safe_value(v) for v in values])


@dataclass(frozen=True)
class ExportCounts:
    clients: int
    items: int


def format_ref(ref: RefView) -> str:
    """``bitrix24:acme.bitrix24.ru/contact/123``."""
    origin = f"{ref.system}:{ref.account}" if ref.account else ref.system
    return f"{origin}/{ref.entity}/{ref.id}"


def write_clients_xlsx(
    target: Path | IO[bytes],
    clients: Iterable[ClientView],
    timeline: Iterable[ItemView] | None = None,
    *,
    systems: Sequence[str] | None = None,
    field_names: Sequence[str] = (),
    company_name: Callable[[int], str | None] | None = None,
) -> ExportCounts:
    """Write one client a row (and, given ``timeline``, a second sheet of interactions) to ``target``.

    Refs: the iterable is read once, so the systems cannot be discovered beforehand. With ``systems`` given, each
    gets a column ``refs: <system>`` holding ``account/entity/id`` (several joined by ``"; "``) and refs of other
    systems go to a last ``refs: other`` column; without it, one ``refs`` column holds every ref as
    ``system:account/entity/id; ...``. ``field_names`` adds a column per custom field; ``company_name`` turns a
    company id into the name shown beside it.
    """
    book = Workbook(write_only=True)
    sheet = book.create_sheet(CLIENT_SHEET)
    items_sheet = book.create_sheet(TIMELINE_SHEET) if timeline is not None else None
    ref_columns = [f"refs: {s}" for s in systems] + ["refs: other"] if systems is not None else ["refs"]
    append_row(
        sheet,
        [
            "id",
            "kind",
            "name",
            "phones",
            "emails",
            "company_id",
            "company",
            *ref_columns,
            *field_names,
            "created (UTC)",
            "updated (UTC)",
        ],
    )
    clients_written = 0
    for client in clients:
        company = None
        if client.company_id is not None and company_name is not None:
            company = company_name(client.company_id)
        append_row(
            sheet,
            [
                client.id,
                client.kind,
                client.name,
                ", ".join(client.phones),
                ", ".join(client.emails),
                client.company_id,
                company,
                *_ref_cells(client.refs, systems),
                *(_field_text(client.fields.get(name)) for name in field_names),
                client.created_at,
                client.updated_at,
            ],
        )
        clients_written += 1
    items_written = 0
    if items_sheet is not None and timeline is not None:
        append_row(items_sheet, TIMELINE_COLUMNS)
        for item in timeline:
            append_row(items_sheet, _item_cells(item))
            items_written += 1
    book.save(target)
    return ExportCounts(clients=clients_written, items=items_written)


def _ref_cells(refs: Sequence[RefView], systems: Sequence[str] | None) -> list[str]:
    if systems is None:
        return ["; ".join(format_ref(r) for r in refs)]
    columns: dict[str, list[str]] = {s: [] for s in systems}
    other: list[str] = []
    for ref in refs:
        if ref.system in columns:
            columns[ref.system].append(f"{ref.account}/{ref.entity}/{ref.id}")
        else:
            other.append(format_ref(ref))
    return ["; ".join(columns[s]) for s in systems] + ["; ".join(other)]


def _field_text(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool | datetime):
        return value
    return str(value)


def _item_cells(item: ItemView) -> list[Any]:
    fields = item.fields
    subject = fields.get("subject") or fields.get("title")
    return [
        item.client_id,
        item.occurred_at,
        item.kind,
        item.channel,
        fields.get("direction"),
        fields.get("status") or fields.get("stage"),
        _field_text(subject),
        _field_text(fields.get("summary")),
        fields.get("duration_s"),
        format_ref(item.source),
        item.id,
    ]
