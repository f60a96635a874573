"""What a file really is: xlsx, xls, ods or csv, told by its content (the extension is only a hint).

Every refusal is a :class:`BadInput` that names the file, says what it is instead and what to do.
"""

from __future__ import annotations

import struct
import zipfile
from enum import StrEnum
from pathlib import Path

from hub.core.errors import BadInput

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ODS_MIMETYPE = "application/vnd.oasis.opendocument.spreadsheet"
_SPREADSHEET_SUFFIXES = {".xlsx", ".xlsm", ".xltx", ".xltm", ".xls", ".xlsb", ".ods"}
_TEXT_SAMPLE = 65536


class SpreadsheetFormat(StrEnum):
    XLSX = "xlsx"
    XLSM = "xlsm"
    XLSB = "xlsb"
    XLS = "xls"
    ODS = "ods"
    CSV = "csv"

    @property
    def suffix(self) -> str:
        return "." + self.value


def detect_format(path: Path) -> SpreadsheetFormat:
    """Return the format of ``path`` judged by its bytes, or raise :class:`BadInput` saying why it cannot be read."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_TEXT_SAMPLE)
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BadInput(f"{path}: is a folder, not a spreadsheet file") from None
    if not head.strip():
        raise BadInput(f"{path.name}: the file is empty; export the sheet again and check that it has rows")
    if head.startswith(_ZIP_MAGIC):
        return _zip_format(path)
    if head.startswith(_OLE_MAGIC):
        return _ole_format(path)
    return _text_format(path, head)


def _zip_format(path: Path) -> SpreadsheetFormat:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            mimetype = archive.read("mimetype").decode("ascii", "replace").strip() if "mimetype" in names else None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
        raise BadInput(
            f"{path.name}: the workbook is damaged or truncated ({exc}); download or save it again"
        ) from None
    if "[Content_Types].xml" in names:
        if "xl/workbook.xml" in names:
            return SpreadsheetFormat.XLSM if path.suffix.lower() in (".xlsm", ".xltm") else SpreadsheetFormat.XLSX
        if "xl/workbook.bin" in names:
            return SpreadsheetFormat.XLSB
        if "word/document.xml" in names:
            raise BadInput(f"{path.name}: is a Word document, not a spreadsheet; export the table to .xlsx or .csv")
        if "ppt/presentation.xml" in names:
            raise BadInput(f"{path.name}: is a PowerPoint presentation, not a spreadsheet")
        raise BadInput(f"{path.name}: is an Office Open XML package without a workbook in it; save it as .xlsx again")
    if mimetype is not None:
        if mimetype.startswith(_ODS_MIMETYPE):
            return SpreadsheetFormat.ODS
        raise BadInput(f"{path.name}: is an OpenDocument file of type {mimetype!r}, not a spreadsheet (.ods)")
    raise BadInput(f"{path.name}: is a zip archive, not a spreadsheet; unpack it and import the .xlsx or .csv inside")


def _ole_format(path: Path) -> SpreadsheetFormat:
    try:
        names = ole_stream_names(path)
    except (ValueError, struct.error, OSError) as exc:
        raise BadInput(f"{path.name}: the legacy Excel file is damaged ({exc}); save it again as .xlsx") from None
    if {"EncryptionInfo", "EncryptedPackage"} <= names:
        raise BadInput(
            f"{path.name}: the workbook is password-protected (encrypted); open it in Excel, remove the password "
            "(File → Info → Protect Workbook) and save it again"
        )
    if names & {"Workbook", "Book"}:
        return SpreadsheetFormat.XLS
    if "WordDocument" in names:
        raise BadInput(f"{path.name}: is a Word .doc document, not a spreadsheet")
    raise BadInput(f"{path.name}: is an OLE compound file without a workbook stream; it is not an Excel file")


def _text_format(path: Path, head: bytes) -> SpreadsheetFormat:
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise BadInput(f"{path.name}: is a binary file, not a spreadsheet; import .xlsx, .xls, .ods or .csv files")
    lowered = head[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if lowered.startswith((b"<!doctype html", b"<html", b"<table")):
        raise BadInput(
            f"{path.name}: is a web page (HTML) saved with a spreadsheet name; open it in Excel and save as .xlsx"
        )
    if lowered.startswith(b"<?xml"):
        raise BadInput(f"{path.name}: is an XML file (perhaps Excel 2003 XML); open it in Excel and save as .xlsx")
    if path.suffix.lower() in _SPREADSHEET_SUFFIXES:
        raise BadInput(
            f"{path.name}: is a plain text file, not an Excel workbook, despite its {path.suffix} name; "
            "if it holds comma- or semicolon-separated values, rename it to .csv"
        )
    return SpreadsheetFormat.CSV


def ole_stream_names(path: Path) -> set[str]:
    """Names of the entries in an OLE2 compound file (the container of .xls and of encrypted .xlsx).

    A small reader of the directory only (MS-CFB 2.2-2.6): enough to tell a workbook from an encrypted package
    without another dependency.
    """
    with path.open("rb") as handle:
        header = handle.read(512)
        if len(header) < 512:
            raise ValueError("header is cut short")
        sector_size = 1 << struct.unpack_from("<H", header, 0x1E)[0]
        if sector_size not in (512, 4096):
            raise ValueError(f"sector size {sector_size}")
        size = path.stat().st_size
        max_sectors = size // sector_size + 1

        def sector(number: int) -> bytes:
            handle.seek((number + 1) * sector_size)
            data = handle.read(sector_size)
            if len(data) < sector_size:
                raise ValueError(f"sector {number} is beyond the end of the file")
            return data

        fat_sectors = [n for n in struct.unpack_from("<109I", header, 0x4C) if n < 0xFFFFFFFA]
        difat_next, difat_count = struct.unpack_from("<II", header, 0x44)
        per_sector = sector_size // 4
        for _ in range(min(difat_count, max_sectors)):
            if difat_next >= 0xFFFFFFFA:
                break
            entries = struct.unpack(f"<{per_sector}I", sector(difat_next))
            fat_sectors.extend(n for n in entries[:-1] if n < 0xFFFFFFFA)
            difat_next = entries[-1]
        fat: list[int] = []
        for number in fat_sectors:
            fat.extend(struct.unpack(f"<{per_sector}I", sector(number)))
        names: set[str] = set()
        current = struct.unpack_from("<I", header, 0x30)[0]
        for _ in range(max_sectors):
            if current >= 0xFFFFFFFA:
                break
            data = sector(current)
            for offset in range(0, sector_size, 128):
                name_len, kind = struct.unpack_from("<HB", data, offset + 64)
                if kind in (1, 2) and 2 <= name_len <= 64:
                    names.add(data[offset : offset + name_len - 2].decode("utf-16-le", "replace"))
            if current >= len(fat):
                raise ValueError("directory chain leaves the allocation table")
            current = fat[current]
        return names
