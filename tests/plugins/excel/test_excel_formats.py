"""The format of a file is told by its content; every file that cannot be read gets a message saying why."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from excel_workbooks import write_csv, write_ods, write_ole, write_xls, write_xlsx

from crm_hub_plugins.excel.formats import SpreadsheetFormat, detect_format
from crm_hub_plugins.excel.reader import list_sheets, open_sheet
from hub.core.errors import BadInput

ROWS = [["ФИО", "Телефон"], ["Иванов Иван", "+79161234567"]]


def test_each_format_is_recognised_by_content(tmp_path: Path) -> None:
    assert detect_format(write_xlsx(tmp_path / "a.xlsx", ROWS)) is SpreadsheetFormat.XLSX
    assert detect_format(write_xls(tmp_path / "a.xls", ROWS)) is SpreadsheetFormat.XLS
    assert detect_format(write_ods(tmp_path / "a.ods", ROWS)) is SpreadsheetFormat.ODS
    assert detect_format(write_csv(tmp_path / "a.csv", ROWS)) is SpreadsheetFormat.CSV


def test_an_xlsx_renamed_csv_is_read_as_xlsx(tmp_path: Path) -> None:
    misnamed = write_xlsx(tmp_path / "clients.csv", ROWS)
    assert detect_format(misnamed) is SpreadsheetFormat.XLSX
    assert list(open_sheet(misnamed)) == [(1, ["ФИО", "Телефон"]), (2, ["Иванов Иван", "+79161234567"])]


def test_an_xls_renamed_xlsx_is_read_as_xls(tmp_path: Path) -> None:
    misnamed = write_xls(tmp_path / "clients.xlsx", ROWS)
    assert detect_format(misnamed) is SpreadsheetFormat.XLS
    assert [cells for _, cells in open_sheet(misnamed)][1] == ["Иванов Иван", "+79161234567"]


def test_a_text_file_renamed_xlsx_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "clients.xlsx"
    path.write_text("ФИО;Телефон\nИванов;+79161234567\n", encoding="utf-8")
    with pytest.raises(BadInput, match=r"plain text file, not an Excel workbook.*rename it to \.csv"):
        detect_format(path)


def test_a_zip_that_is_not_a_workbook_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "clients.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("clients.txt", "Иванов")
    with pytest.raises(BadInput, match="zip archive, not a spreadsheet"):
        detect_format(path)


def test_a_word_document_is_refused_as_not_a_spreadsheet(tmp_path: Path) -> None:
    path = tmp_path / "clients.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<document/>")
    with pytest.raises(BadInput, match="Word document"):
        detect_format(path)


def test_a_truncated_xlsx_is_reported_as_damaged(tmp_path: Path) -> None:
    whole = write_xlsx(tmp_path / "whole.xlsx", ROWS).read_bytes()
    path = tmp_path / "clients.xlsx"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(BadInput, match="damaged or truncated"):
        detect_format(path)


def test_an_encrypted_workbook_is_reported_as_password_protected(tmp_path: Path) -> None:
    # Excel saves a workbook with a password as an OLE container of these two streams instead of a zip
    path = write_ole(tmp_path / "secret.xlsx", ["EncryptionInfo", "EncryptedPackage"])
    with pytest.raises(BadInput, match="password-protected"):
        detect_format(path)


def test_an_ole_file_without_a_workbook_is_not_taken_for_xls(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"Word \.doc"):
        detect_format(write_ole(tmp_path / "letter.xls", ["WordDocument"]))
    with pytest.raises(BadInput, match="without a workbook stream"):
        detect_format(write_ole(tmp_path / "other.xls", ["Contents"]))


def test_a_damaged_ole_file_is_reported_as_damaged(tmp_path: Path) -> None:
    path = tmp_path / "old.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100)
    with pytest.raises(BadInput, match="damaged"):
        detect_format(path)


def test_empty_and_binary_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(BadInput, match="the file is empty"):
        detect_format(empty)
    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(BadInput, match="binary file, not a spreadsheet"):
        detect_format(binary)


def test_an_html_page_saved_as_xls_gets_advice(tmp_path: Path) -> None:
    path = tmp_path / "report.xls"
    path.write_text("<html><body><table><tr><td>Иванов</td></tr></table></body></html>", encoding="utf-8")
    with pytest.raises(BadInput, match=r"web page \(HTML\).*save as \.xlsx"):
        detect_format(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such file"):
        detect_format(tmp_path / "nowhere.xlsx")


def test_sheets_are_listed_and_an_unknown_one_is_named(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "a.xlsx", ROWS, sheet="Клиенты")
    assert list_sheets(path) == ["Клиенты"]
    with pytest.raises(BadInput, match=r"no sheet 'Лиды'; the sheets are 'Клиенты'"):
        open_sheet(path, sheet="Лиды")
    assert list_sheets(write_csv(tmp_path / "leads.csv", ROWS)) == ["leads"]
