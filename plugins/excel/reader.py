"""Rows of one sheet as lists of text cells, whatever the format (xlsx/xlsm/xlsb/xls/ods through calamine, csv).

Cells are rendered the way a person reads them in Excel: ``79161234567`` not ``79161234567.0``, dates as ISO
dates, formulas as their cached values, merged cells filled with the value of their top-left cell. Row numbers
are the ones shown in the file (1-based), for error reports.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from types import ModuleType

import python_calamine as calamine

from hub.core.errors import BadInput

from .formats import SpreadsheetFormat, detect_format

charset_normalizer: ModuleType | None
try:  # installed with requests almost everywhere; without it windows-1251 is assumed for non-UTF-8 text
    import charset_normalizer
except ImportError:  # pragma: no cover - depends on the environment
    charset_normalizer = None

Row = tuple[int, list[str]]

ROW_LIMITS = {SpreadsheetFormat.XLS: 65_536}
EXCEL_ROW_LIMIT = 1_048_576
_CYRILLIC_CODEPAGES = ["cp1251", "koi8_r", "cp866"]
_DELIMITERS = (";", ",", "\t", "|")
_SNIFF_LINES = 50


@dataclass
class SheetRows:
    """One sheet opened for reading: iterate it for ``(row_number, cells)``; empty trailing cells may be absent."""

    path: Path
    format: SpreadsheetFormat
    sheet: str
    total_rows: int
    rows: Iterator[Row]
    warnings: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[Row]:
        return self.rows


def list_sheets(path: Path) -> list[str]:
    """Names of the sheets in the file, in workbook order; a CSV file has one, named after the file."""
    fmt = detect_format(path)
    if fmt is SpreadsheetFormat.CSV:
        return [path.stem]
    with _open_workbook(path, fmt) as workbook:
        return list(workbook.sheet_names)


def open_sheet(path: Path, *, sheet: str | None = None) -> SheetRows:
    """Open one sheet (by name; by default the first visible worksheet that has data) for streaming its rows."""
    fmt = detect_format(path)
    if fmt is SpreadsheetFormat.CSV:
        if sheet not in (None, path.stem):
            raise BadInput(f"{path.name}: a CSV file has a single sheet; drop --sheet {sheet!r}")
        return _open_csv(path)
    return _open_calamine(path, fmt, sheet)


# --- cell rendering ---------------------------------------------------------------------------------------


def cell_text(value: object) -> str:
    """One cell as the text a person sees: whole floats without ``.0``, dates in ISO, booleans as TRUE/FALSE."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e17:
            return str(int(value))
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        if value.time() == time(0, 0):
            return value.date().isoformat()
        return value.isoformat(timespec="seconds")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return "" if value is None else str(value)


# --- workbooks through calamine ----------------------------------------------------------------------------


def _open_workbook(path: Path, fmt: SpreadsheetFormat) -> calamine.CalamineWorkbook:
    try:
        if path.suffix.lower() == fmt.suffix:
            return calamine.CalamineWorkbook.from_path(path)
        # calamine picks its parser by extension; a misnamed file is handed over as bytes, which it sniffs
        with path.open("rb") as handle:
            return calamine.CalamineWorkbook.from_filelike(io.BytesIO(handle.read()))
    except calamine.PasswordError:
        raise BadInput(
            f"{path.name}: the workbook is password-protected; remove the password in Excel and save it again"
        ) from None
    except calamine.CalamineError as exc:
        raise BadInput(f"{path.name}: the {fmt.value} file is damaged ({exc}); open and save it again") from None


def _open_calamine(path: Path, fmt: SpreadsheetFormat, sheet: str | None) -> SheetRows:
    with _open_workbook(path, fmt) as workbook:
        try:
            chosen = workbook.get_sheet_by_name(sheet) if sheet is not None else _first_sheet_with_data(path, workbook)
        except calamine.WorksheetNotFound:
            names = ", ".join(repr(n) for n in workbook.sheet_names)
            raise BadInput(f"{path.name}: there is no sheet {sheet!r}; the sheets are {names}") from None
        except calamine.PasswordError:
            raise BadInput(f"{path.name}: the sheet is password-protected; remove the password in Excel") from None
        except calamine.CalamineError as exc:
            raise BadInput(f"{path.name}: sheet {sheet!r} cannot be read ({exc}); open and save it again") from None
    if chosen.start is None or chosen.end is None:
        raise BadInput(f"{path.name}: sheet {chosen.name!r} is empty; choose another with --sheet")
    last_row = chosen.end[0] + 1
    warnings: list[str] = []
    limit = ROW_LIMITS.get(fmt, EXCEL_ROW_LIMIT)
    if last_row >= limit:
        warnings.append(
            f"sheet {chosen.name!r} fills Excel's row limit ({limit:,} rows): rows past it were probably cut off "
            "when the file was saved; export the rest into a second file"
        )
    return SheetRows(
        path=path,
        format=fmt,
        sheet=chosen.name,
        total_rows=last_row,
        rows=_calamine_rows(chosen),
        warnings=warnings,
    )


def _first_sheet_with_data(path: Path, workbook: calamine.CalamineWorkbook) -> calamine.CalamineSheet:
    first: calamine.CalamineSheet | None = None
    for meta in workbook.sheets_metadata:
        if meta.typ != calamine.SheetTypeEnum.WorkSheet or meta.visible != calamine.SheetVisibleEnum.Visible:
            continue
        candidate = workbook.get_sheet_by_name(meta.name)
        if candidate.start is not None:
            return candidate
        first = first or candidate
    if first is None:
        raise BadInput(f"{path.name}: the workbook has no visible worksheet")
    return first


def _calamine_rows(sheet: calamine.CalamineSheet) -> Iterator[Row]:
    # calamine yields rows from the first one but columns from the first used column: pad back to column A
    pad = [""] * (sheet.start[1] if sheet.start else 0)
    merged = sorted(sheet.merged_cell_ranges or [])
    active: list[tuple[int, int, int, int]] = []
    anchors: dict[tuple[int, int], str] = {}
    next_merge = 0
    for index, raw in enumerate(sheet.iter_rows()):
        cells = pad + [value if type(value) is str else cell_text(value) for value in raw]
        if merged:
            while next_merge < len(merged) and merged[next_merge][0][0] <= index:
                (r0, c0), (r1, c1) = merged[next_merge]
                active.append((r0, c0, r1, c1))
                next_merge += 1
            if active:
                active = [span for span in active if span[2] >= index]
                _fill_merged(cells, index, active, anchors)
        yield index + 1, cells


def _fill_merged(
    cells: list[str], index: int, active: list[tuple[int, int, int, int]], anchors: dict[tuple[int, int], str]
) -> None:
    """Give every cell of a merged range the value of its top-left cell, as a reader of the sheet sees it."""
    for r0, c0, _r1, c1 in active:
        if r0 == index:
            anchors[(r0, c0)] = cells[c0] if c0 < len(cells) else ""
        value = anchors.get((r0, c0), "")
        if c1 >= len(cells):
            cells.extend([""] * (c1 + 1 - len(cells)))
        for column in range(c0, c1 + 1):
            cells[column] = value


# --- csv ----------------------------------------------------------------------------------------------------


@dataclass
class _Decoder:
    """Decodes line by line: UTF-8 where a line is valid UTF-8, the file's legacy code page elsewhere."""

    legacy: str
    utf8_lines: int = 0
    legacy_lines: int = 0

    def decode(self, raw: bytes) -> str:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.legacy_lines += 1
            return raw.decode(self.legacy, "replace")
        if not raw.isascii():
            self.utf8_lines += 1
        return text


def _open_csv(path: Path) -> SheetRows:
    with path.open("rb") as handle:
        sample = handle.read(1 << 20)
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _csv_sheet(path, _Decoder("utf-16"), sample)
    return _csv_sheet(path, _Decoder(_guess_legacy_codepage(sample)), sample)


def _guess_legacy_codepage(sample: bytes) -> str:
    non_utf8 = b"\n".join(line for line in sample.split(b"\n")[:-1] if not _is_utf8(line))
    if not non_utf8 or charset_normalizer is None:
        return "cp1251"
    best = charset_normalizer.from_bytes(non_utf8, cp_isolation=_CYRILLIC_CODEPAGES).best()
    return best.encoding if best is not None else "cp1251"


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _csv_sheet(path: Path, decoder: _Decoder, sample: bytes) -> SheetRows:
    lines = _text_lines(path, decoder)
    head: list[str] = []
    for line in lines:
        head.append(line)
        if len(head) >= _SNIFF_LINES:
            break
    skip = 0
    if head and head[0].lower().startswith("sep=") and len(head[0].strip()) == 5:
        delimiter = head[0].strip()[4]  # Excel's own hint line, "sep=;"
        skip = 1
    else:
        delimiter = _sniff_delimiter(head)
    warnings: list[str] = []

    def rows() -> Iterator[Row]:
        def all_lines() -> Iterator[str]:
            yield from head[skip:]
            yield from lines

        reader = csv.reader(all_lines(), delimiter=delimiter)
        number = 0
        try:
            for number, cells in enumerate(reader, start=1):
                yield number, cells
        except csv.Error as exc:
            raise BadInput(f"{path.name}: row {number + 1} cannot be read as CSV ({exc})") from None
        if decoder.utf8_lines and decoder.legacy_lines:
            warnings.append(
                f"mixed encodings: {decoder.legacy_lines} lines were not UTF-8 and were read as {decoder.legacy}, "
                f"{decoder.utf8_lines} lines as UTF-8; check names with unusual letters"
            )

    total = sample.count(b"\n") if len(sample) < (1 << 20) else _count_lines(path)
    return SheetRows(
        path=path, format=SpreadsheetFormat.CSV, sheet=path.stem, total_rows=total, rows=rows(), warnings=warnings
    )


def _text_lines(path: Path, decoder: _Decoder) -> Iterator[str]:
    if decoder.legacy == "utf-16":
        with path.open(encoding="utf-16", newline="") as text:
            yield from text
        return
    with path.open("rb") as handle:
        first = True
        for raw in handle:
            if first:
                raw = raw.removeprefix(codecs.BOM_UTF8)
                first = False
            yield decoder.decode(raw)


def _sniff_delimiter(lines: list[str]) -> str:
    """The delimiter that splits the most sample lines into the same number (> 1) of fields; ``;`` wins ties."""
    best, best_score = ";", 0
    for delimiter in _DELIMITERS:
        counts: dict[int, int] = {}
        try:
            for cells in csv.reader(lines, delimiter=delimiter):
                if len(cells) > 1:
                    counts[len(cells)] = counts.get(len(cells), 0) + 1
        except csv.Error:
            continue
        score = max(counts.values(), default=0)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
    return count
