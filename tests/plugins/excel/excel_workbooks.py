"""Builders of the files the Excel tests import: xlsx, xls, ods, csv and bare OLE containers, made on the spot."""

from __future__ import annotations

import re
import struct
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import xlwt
from odf.opendocument import OpenDocumentSpreadsheet
from odf.table import Table, TableCell, TableRow
from odf.text import P
from openpyxl import Workbook

Cell = object


def write_xlsx(
    path: Path, rows: Iterable[Sequence[Cell]], *, sheet: str = "Клиенты", merged: Sequence[str] = ()
) -> Path:
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.title = sheet
    for row in rows:
        ws.append(list(row))
    for span in merged:
        ws.merge_cells(span)
    book.save(path)
    return path


def set_cached_values(path: Path, values: Mapping[str, int | float | str]) -> None:
    """Give formula cells the cached result Excel stores beside them (openpyxl writes formulas without one)."""
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    xml = parts["xl/worksheets/sheet1.xml"].decode("utf-8")
    for ref, value in values.items():
        pattern = re.compile(rf'<c r="{ref}"([^>]*)><f>(.*?)</f>(?:<v\s*/>|<v>\s*</v>)')
        kind = ' t="str"' if isinstance(value, str) else ""
        replacement = f'<c r="{ref}"{kind}><f>\\2</f><v>{value}</v>'
        xml, count = pattern.subn(replacement, xml)
        assert count == 1, f"no formula cell {ref}"
    parts["xl/worksheets/sheet1.xml"] = xml.encode("utf-8")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)


def write_xls(path: Path, rows: Iterable[Sequence[Cell]], *, sheet: str = "Клиенты") -> Path:
    book = xlwt.Workbook(encoding="utf-8")
    ws = book.add_sheet(sheet)
    date_style = xlwt.easyxf(num_format_str="DD.MM.YYYY")
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if value is None:
                continue
            if hasattr(value, "isoformat"):
                ws.write(r, c, value, date_style)
            else:
                ws.write(r, c, value)
    book.save(str(path))
    return path


def write_ods(path: Path, rows: Iterable[Sequence[Cell]], *, sheet: str = "Клиенты") -> Path:
    doc = OpenDocumentSpreadsheet()
    table = Table(name=sheet)
    for row in rows:
        table_row = TableRow()
        for value in row:
            if isinstance(value, int | float) and not isinstance(value, bool):
                cell = TableCell(valuetype="float", value=value)
                cell.addElement(P(text=str(value)))
            else:
                cell = TableCell(valuetype="string")
                if value not in (None, ""):
                    cell.addElement(P(text=str(value)))
            table_row.addElement(cell)
        table.addElement(table_row)
    doc.spreadsheet.addElement(table)
    doc.save(str(path))
    return path


def write_csv(path: Path, rows: Iterable[Sequence[str]], *, delimiter: str = ";", encoding: str = "cp1251") -> Path:
    text = "\r\n".join(delimiter.join(row) for row in rows) + "\r\n"
    path.write_bytes(text.encode(encoding))
    return path


def write_ole(path: Path, stream_names: Sequence[str]) -> Path:
    """A minimal but well-formed OLE2 compound file (MS-CFB v3) holding empty streams of these names.

    Enough to stand for an encrypted .xlsx (``EncryptionInfo`` + ``EncryptedPackage``, exactly what Excel writes
    when a password is set) or a Word .doc (``WordDocument``) without shipping binary files.
    """
    free, end, fat_sector = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD
    entries = ["Root Entry", *stream_names]
    assert len(entries) <= 4, "one directory sector holds four entries"
    header = bytearray(512)
    header[0:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<HHHHH", header, 0x18, 0x3E, 3, 0xFFFE, 9, 6)
    struct.pack_into("<IIIIIIIII", header, 0x28, 0, 1, 1, 0, 4096, end, 0, end, 0)
    struct.pack_into("<109I", header, 0x4C, 0, *([free] * 108))
    fat = struct.pack("<128I", fat_sector, end, *([free] * 126))
    directory = bytearray(512)
    for index, name in enumerate(entries):
        offset = index * 128
        encoded = name.encode("utf-16-le")
        directory[offset : offset + len(encoded)] = encoded
        kind = 5 if index == 0 else 2
        child = 1 if index == 0 and len(entries) > 1 else free
        right = index + 1 if 0 < index < len(entries) - 1 else free
        struct.pack_into("<HBB", directory, offset + 64, len(encoded) + 2, kind, 1)
        struct.pack_into("<III", directory, offset + 68, free, right, child)
        struct.pack_into("<II", directory, offset + 116, end, 0)
    path.write_bytes(bytes(header) + fat + bytes(directory))
    return path
