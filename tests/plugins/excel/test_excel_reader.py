"""Every cell is read as the text a person sees in Excel, with the row numbers of the file."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
import xlwt
from excel_workbooks import set_cached_values, write_csv, write_ods, write_xls, write_xlsx
from openpyxl import Workbook

from crm_hub_plugins.excel.reader import cell_text, open_sheet
from hub.core.errors import BadInput


def rows_of(path: Path, **kwargs: str) -> list[tuple[int, list[str]]]:
    return list(open_sheet(path, **kwargs))


def test_numbers_read_as_text_without_float_noise() -> None:
    assert cell_text(79161234567.0) == "79161234567"
    assert cell_text(7.9161234567e10) == "79161234567"
    assert cell_text(12.5) == "12.5"
    assert cell_text(42) == "42"
    assert cell_text(True) == "TRUE"


def test_dates_and_times_read_as_iso() -> None:
    assert cell_text(datetime(2024, 3, 1)) == "2024-03-01"
    assert cell_text(datetime(2024, 3, 1, 9, 30)) == "2024-03-01T09:30:00"
    assert cell_text(date(2024, 3, 1)) == "2024-03-01"


def test_xlsx_cells_keep_phones_inn_zeros_and_dates(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "a.xlsx",
        [["ФИО", "Телефон", "ИНН", "Дата"], ["Иванов", 79161234567.0, "0274062111", date(2024, 3, 1)]],
    )
    assert rows_of(path)[1] == (2, ["Иванов", "79161234567", "0274062111", "2024-03-01"])


def test_formulas_are_read_as_their_cached_values(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "formulas.xlsx",
        [["ФИО", "Телефон", "Почта"], ["Иванов", "=7*10^10+9161234567", '=LOWER("IVAN@MAIL.RU")']],
    )
    set_cached_values(path, {"B2": 79161234567, "C2": "ivan@mail.ru"})
    assert rows_of(path)[1] == (2, ["Иванов", "79161234567", "ivan@mail.ru"])


def test_merged_cells_give_their_value_to_every_cell_they_cover(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "merged.xlsx",
        [
            ["Клиенты на 1 марта", None, None],
            ["Организация", "ФИО", "Телефон"],
            ["ООО Ромашка", "Иванов", "+79161234567"],
            [None, "Петров", "+79162223344"],
        ],
        merged=["A1:C1", "A3:A4"],
    )
    rows = rows_of(path)
    assert rows[0] == (1, ["Клиенты на 1 марта"] * 3)
    assert rows[3] == (4, ["ООО Ромашка", "Петров", "+79162223344"])


def test_row_numbers_are_those_of_the_file_even_when_data_starts_lower_and_further_right(tmp_path: Path) -> None:
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws["C5"] = "ФИО"
    ws["D5"] = "Телефон"
    ws["C6"] = "Иванов"
    ws["D6"] = "+79161234567"
    book.save(tmp_path / "offset.xlsx")
    rows = rows_of(tmp_path / "offset.xlsx")
    assert rows[-2:] == [(5, ["", "", "ФИО", "Телефон"]), (6, ["", "", "Иванов", "+79161234567"])]


def test_xls_and_ods_read_like_xlsx(tmp_path: Path) -> None:
    rows = [["ФИО", "Телефон", "Дата"], ["Иванов", 79161234567.0, date(2024, 3, 1)]]
    assert rows_of(write_xls(tmp_path / "a.xls", rows))[1] == (2, ["Иванов", "79161234567", "2024-03-01"])
    ods_rows = [["ФИО", "Телефон"], ["Иванов", 79161234567.0]]
    assert rows_of(write_ods(tmp_path / "a.ods", ods_rows))[1] == (2, ["Иванов", "79161234567"])


def test_csv_from_russian_excel_in_windows_1251_with_semicolons(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", [["ФИО", "Телефон"], ["Ёлкин Пётр", "8 (916) 123-45-67"]], delimiter=";")
    assert rows_of(path) == [(1, ["ФИО", "Телефон"]), (2, ["Ёлкин Пётр", "8 (916) 123-45-67"])]


def test_csv_in_utf8_with_bom_and_commas(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "a.csv",
        [["ФИО", "Телефон"], ["Иванов", '"+7 916 123-45-67, +7 495 123-45-67"']],
        delimiter=",",
        encoding="utf-8-sig",
    )
    assert rows_of(path) == [(1, ["ФИО", "Телефон"]), (2, ["Иванов", "+7 916 123-45-67, +7 495 123-45-67"])]


def test_csv_with_excels_sep_line_uses_it(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("sep=,\nФИО,Телефон;доб\nИванов,+79161234567;12\n", encoding="utf-8")
    assert rows_of(path) == [(1, ["ФИО", "Телефон;доб"]), (2, ["Иванов", "+79161234567;12"])]


def test_csv_with_mixed_encodings_reads_every_line_and_warns(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes(
        "ФИО;Телефон\r\n".encode() + "Иванов;+79161234567\r\n".encode("cp1251") + "Петров;+79162223344\r\n".encode()
    )
    sheet = open_sheet(path)
    assert [cells for _, cells in sheet] == [["ФИО", "Телефон"], ["Иванов", "+79161234567"], ["Петров", "+79162223344"]]
    assert any("mixed encodings" in w for w in sheet.warnings)


def test_an_empty_sheet_is_refused_by_name(tmp_path: Path) -> None:
    book = Workbook()
    assert book.active is not None
    book.active.title = "Пусто"
    book.save(tmp_path / "empty.xlsx")
    with pytest.raises(BadInput, match="sheet 'Пусто' is empty"):
        open_sheet(tmp_path / "empty.xlsx")


def test_the_first_sheet_with_data_is_taken_by_default(tmp_path: Path) -> None:
    book = Workbook()
    assert book.active is not None
    book.active.title = "Обложка"
    data = book.create_sheet("Клиенты")
    data.append(["ФИО", "Телефон"])
    book.save(tmp_path / "two.xlsx")
    assert open_sheet(tmp_path / "two.xlsx").sheet == "Клиенты"


def test_a_sheet_at_the_xls_row_limit_is_read_with_a_warning(tmp_path: Path) -> None:
    book = xlwt.Workbook(encoding="utf-8")
    ws = book.add_sheet("Клиенты")
    ws.write(0, 0, "ФИО")
    ws.write(65535, 0, "Последний")
    book.save(str(tmp_path / "full.xls"))
    sheet = open_sheet(tmp_path / "full.xls")
    assert sheet.total_rows == 65_536
    assert any("row limit (65,536 rows)" in w for w in sheet.warnings)
    assert list(sheet)[-1] == (65_536, ["Последний"])
