"""One file → an import plan: the client observations to apply, the rows refused and why, the counts.

Nothing here touches the database: applying the plan (and counting created, updated and merge candidates) is
the caller's job. ``write_rejected`` gives the refused rows back as a workbook the user can fix and re-import.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from openpyxl import Workbook

from hub.core.errors import BadInput
from hub.core.events import ClientObservation

from .columns import (
    HEADER_SCAN_ROWS,
    SYNONYMS,
    ColumnLayout,
    MappingFile,
    build_layout,
    column_letter,
    find_header,
    load_mapping,
)
from .export import append_row
from .mapping import (
    ClientRecord,
    FileDeduplicator,
    RejectedRow,
    RowMapper,
    RowNote,
    build_observations,
    separate_shared_points,
)
from .reader import Row, open_sheet

Progress = Callable[[int, int], None]
"""Called as ``progress(total_rows, rows_advanced_since_last_call)``: fits ``rich.progress.Progress.update``."""

PROGRESS_STEP = 2000
REASON_HEADER = "Причина / Reason"
ROW_HEADER = "Строка / Row"


@dataclass
class ImportPlan:
    """What importing a file would do. ``observations`` lists companies before the people who link to them."""

    path: Path
    format: str
    sheet: str
    account: str
    layout: ColumnLayout
    observations: list[ClientObservation] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    notes: list[RowNote] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rows_read: int = 0
    blank_rows: int = 0
    duplicates: int = 0
    # filled in by whoever applies the plan through the core
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    merge_candidates: int = 0

    @property
    def companies(self) -> int:
        """Companies the file names: those applied on their own and those made by the first person naming them."""
        own = {o.source.id for o in self.observations if o.client_kind == "company"}
        linked = {o.company.ref.id for o in self.observations if o.company is not None and o.company.ref is not None}
        return len(own | linked)

    @property
    def headers(self) -> list[str]:
        return list(self.layout.headers)

    def summary(self) -> dict[str, int | str]:
        """The counts a report shows, in the order it shows them."""
        return {
            "file": self.path.name,
            "sheet": self.sheet,
            "rows read": self.rows_read,
            "clients": sum(1 for o in self.observations if o.client_kind == "person"),
            "companies": self.companies,
            "duplicates in file": self.duplicates,
            "rejected": len(self.rejected),
            "notes": len(self.notes),
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "merge candidates": self.merge_candidates,
        }


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a plan is built.

    A plan allocates a few hundred thousand dicts, lists and models and makes no reference cycles; the collector's
    passes over that growing heap cost about 40% of the import time and find nothing to free.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def plan_import(
    path: Path,
    *,
    sheet: str | None = None,
    mapping: Path | MappingFile | None = None,
    source: str | None = None,
    region: str = "RU",
    progress: Progress | None = None,
    max_rows: int | None = None,
    observed_at: datetime | None = None,
) -> ImportPlan:
    """Read ``path`` and say what importing it means, without changing anything.

    ``source`` names the account of the observations' SourceRef (default: the file name without its extension),
    so a re-import of the same list, even re-sorted or saved in another format, reaches the same refs.
    ``observed_at`` defaults to the file's modification time: importing an unchanged file twice is then the same
    observation twice.
    """
    with _collector_paused():
        return _plan_import(
            Path(path),
            sheet=sheet,
            mapping=mapping,
            source=source,
            region=region,
            progress=progress,
            max_rows=max_rows,
            observed_at=observed_at,
        )


def _plan_import(
    path: Path,
    *,
    sheet: str | None,
    mapping: Path | MappingFile | None,
    source: str | None,
    region: str,
    progress: Progress | None,
    max_rows: int | None,
    observed_at: datetime | None,
) -> ImportPlan:
    mapping_file = load_mapping(mapping) if isinstance(mapping, Path | str) else mapping
    rows = open_sheet(path, sheet=sheet)
    if max_rows is not None and rows.total_rows > max_rows + HEADER_SCAN_ROWS:
        raise BadInput(
            f"{path.name}: sheet {rows.sheet!r} has {rows.total_rows:,} rows, more than the limit of {max_rows:,}; "
            "split the file or raise HUB_EXCEL__MAX_ROWS"
        )
    iterator = iter(rows)
    head: list[Row] = []
    for row in iterator:
        head.append(row)
        if len(head) >= HEADER_SCAN_ROWS:
            break
    header_row = find_header(head, mapping_file)
    origin = f"{path.name}, sheet {rows.sheet!r}"
    if header_row is None and not (mapping_file and mapping_file.columns):
        known = ", ".join(names[0] for names in SYNONYMS.values())
        raise BadInput(
            f"{origin}: no header row in the first {HEADER_SCAN_ROWS} rows; name the columns ({known}...) "
            "or give a mapping file with column letters"
        )
    header_cells = next((cells for number, cells in head if number == header_row), [])
    layout = build_layout(header_row, header_cells, mapping_file, origin=origin)
    plan = ImportPlan(
        path=path,
        format=rows.format.value,
        sheet=rows.sheet,
        account=source or path.stem,
        layout=layout,
        warnings=rows.warnings,
    )
    mapper = RowMapper(layout, region=region)
    dedup = FileDeduplicator()
    total = rows.total_rows
    pending = 0

    def take(number: int, cells: list[str]) -> None:
        result = mapper.map_row(number, cells)
        if result is None:
            plan.blank_rows += 1
            return
        plan.rows_read += 1
        if isinstance(result, ClientRecord):
            dedup.add(result)
        else:
            plan.rejected.append(result)

    first_data = layout.first_data_row
    for number, cells in head:
        if number >= first_data:
            take(number, cells)
    if progress is not None:
        progress(total, len(head))
    for number, cells in iterator:
        take(number, cells)
        pending += 1
        if pending == PROGRESS_STEP and progress is not None:
            progress(total, pending)
            pending = 0
    if progress is not None and pending:
        progress(total, pending)
    if plan.rows_read == 0:
        plan.warnings.append(f"{origin}: no data under the header row {layout.header_row}; nothing to import")
    when = observed_at or datetime.fromtimestamp(path.stat().st_mtime, UTC)
    records = dedup.records()
    plan.notes = mapper.notes + separate_shared_points(records)
    plan.observations = build_observations(records, account=plan.account, observed_at=when)
    plan.duplicates = dedup.duplicates
    return plan


def write_rejected(target: Path | IO[bytes], rejected_rows: Sequence[RejectedRow], headers: Sequence[str]) -> int:
    """Write the refused rows with the reason first, then the row number, then the original cells.

    The user fixes the cells and imports the file again: the header row is the original one, so the columns are
    found the same way. Returns the number of rows written.
    """
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Rejected")
    width = max([len(headers), *(len(r.cells) for r in rejected_rows)])
    titles = [headers[i] if i < len(headers) and headers[i] else column_letter(i) for i in range(width)]
    append_row(sheet, [REASON_HEADER, ROW_HEADER, *titles])
    for row in rejected_rows:
        append_row(sheet, [row.reason, row.row_number, *row.cells])
    book.save(target)
    return len(rejected_rows)
