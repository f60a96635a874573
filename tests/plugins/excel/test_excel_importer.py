"""Importing a file yields a plan: observations to apply, rows refused with reasons, and the counts of the report."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from excel_workbooks import write_csv, write_ods, write_xls, write_xlsx
from openpyxl import Workbook, load_workbook

from crm_hub_plugins.excel.importer import REASON_HEADER, plan_import, write_rejected
from hub.core.errors import BadInput
from hub.core.events import ClientObservation, observation_adapter

TITLE = ["Клиенты отдела продаж", None, None, None, None, None]
HEADER = ["ФИО", "Тел.", "Почта", "Организация", "ИНН", "Дата"]
PEOPLE: list[list[object]] = [
    ["Иванов Иван Иванович", 79161234567.0, "Ivan@Mail.RU", "ООО Ромашка", "7707083893", 45352],
    ["Петров Пётр", "8 (916) 222-33-44, +7 495 123 45 67", "", "АО Вектор", 274062111.0, None],
    ["Сидорова Анна", "", "anna@example.com", "", "", None],
    ["", "123-45-67", "", "", "", None],
    ["Иванов Иван", "+7 916 123-45-67", "ivan.work@mail.ru", "", "", None],
]


def people_file(path: Path, people: list[list[object]] = PEOPLE) -> Path:
    return write_xlsx(path, [TITLE, [], HEADER, *people], merged=["A1:F1"])


def by_name(observations: list[ClientObservation]) -> dict[str | None, ClientObservation]:
    return {o.name: o for o in observations}


def test_a_messy_russian_sheet_becomes_clients_and_companies(tmp_path: Path) -> None:
    plan = plan_import(people_file(tmp_path / "clients.xlsx"))
    assert plan.layout.header_row == 3
    clients = by_name(plan.observations)
    ivanov = clients["Иванов Иван Иванович"]
    assert ivanov.phones == ["+79161234567"]
    assert ivanov.emails == ["ivan@mail.ru", "ivan.work@mail.ru"]
    assert ivanov.fields == {"date": "2024-03-01"}
    assert ivanov.source.system == "excel" and ivanov.source.account == "clients"
    assert ivanov.source.entity == "row"
    assert ivanov.company is not None and ivanov.company.kind == "company"
    romashka = clients["ООО Ромашка"]
    assert romashka.client_kind == "company" and romashka.identity == {"inn": "7707083893"}
    assert ivanov.company.ref == romashka.source
    assert clients["АО Вектор"].identity == {"inn": "0274062111"}
    assert clients["Петров Пётр"].phones == ["+79162223344", "+74951234567"]


def test_companies_come_before_the_people_who_link_to_them(tmp_path: Path) -> None:
    kinds = [o.client_kind for o in plan_import(people_file(tmp_path / "clients.xlsx")).observations]
    assert kinds == sorted(kinds)  # "company" < "person"


def test_the_report_counts_rows_duplicates_and_rejections(tmp_path: Path) -> None:
    plan = plan_import(people_file(tmp_path / "clients.xlsx"))
    summary = plan.summary()
    assert summary["rows read"] == 5
    assert summary["duplicates in file"] == 1  # "Иванов Иван" shares Ivanov's phone
    assert summary["clients"] == 3 and summary["companies"] == 2
    assert summary["rejected"] == 1
    assert plan.rejected[0].row_number == 7
    assert "has 7 digits" in plan.rejected[0].reason


def test_rows_that_share_a_phone_but_name_different_people_are_not_merged(tmp_path: Path) -> None:
    people: list[list[object]] = [
        ["Иванов Иван", "+74951234567", "", "ООО Ромашка", "", None],
        ["Петров Пётр", "+74951234567", "", "ООО Ромашка", "", None],
    ]
    plan = plan_import(people_file(tmp_path / "office.xlsx", people))
    assert plan.duplicates == 0
    assert {"Иванов Иван", "Петров Пётр"} <= set(by_name(plan.observations))


def test_a_resorted_file_gives_the_same_source_ids(tmp_path: Path) -> None:
    first = plan_import(people_file(tmp_path / "a.xlsx"), source="clients")
    again = plan_import(people_file(tmp_path / "b.xlsx", list(reversed(PEOPLE))), source="clients")
    assert {o.source for o in first.observations} == {o.source for o in again.observations}


def test_observations_survive_the_json_round_trip_of_the_bus(tmp_path: Path) -> None:
    plan = plan_import(people_file(tmp_path / "clients.xlsx"))
    for observation in plan.observations:
        assert observation_adapter.validate_json(observation.model_dump_json()) == observation


def test_an_unchanged_file_is_observed_at_its_modification_time(tmp_path: Path) -> None:
    path = people_file(tmp_path / "clients.xlsx")
    first, second = plan_import(path), plan_import(path)
    assert [o.observed_at for o in first.observations] == [o.observed_at for o in second.observations]
    assert first.observations[0].observed_at == datetime.fromtimestamp(path.stat().st_mtime, UTC)


def test_xls_ods_and_csv_give_the_same_clients(tmp_path: Path) -> None:
    rows = [["ФИО", "Телефон", "Почта"], ["Иванов Иван", 79161234567.0, "ivan@mail.ru"]]
    text_rows = [["ФИО", "Телефон", "Почта"], ["Иванов Иван", "79161234567", "ivan@mail.ru"]]
    paths = [
        write_xls(tmp_path / "a.xls", rows),
        write_ods(tmp_path / "a.ods", rows),
        write_csv(tmp_path / "a.csv", text_rows, delimiter=";", encoding="cp1251"),
        write_csv(tmp_path / "b.csv", text_rows, delimiter=",", encoding="utf-8-sig"),
    ]
    for path in paths:
        (client,) = plan_import(path, source="list").observations
        assert (client.name, client.phones, client.emails) == ("Иванов Иван", ["+79161234567"], ["ivan@mail.ru"])


def test_a_mapping_file_names_columns_the_synonyms_do_not_know(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "odd.xlsx", [["Кто", "Куда звонить"], ["Иванов Иван", "+79161234567"]])
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('[columns]\n"Кто" = "name"\n"B" = "phone"\n', encoding="utf-8")
    with pytest.raises(BadInput, match="no header row"):
        plan_import(path)
    (client,) = plan_import(path, mapping=mapping).observations
    assert (client.name, client.phones) == ("Иванов Иван", ["+79161234567"])


def test_progress_is_reported_until_every_row_is_counted(tmp_path: Path) -> None:
    rows: list[list[object]] = [["ФИО", "Телефон"]]
    rows += [[f"Клиент {i}", f"+7916{i:07d}"] for i in range(5000)]
    calls: list[tuple[int, int]] = []
    plan_import(write_xlsx(tmp_path / "many.xlsx", rows), progress=lambda total, step: calls.append((total, step)))
    assert {total for total, _ in calls} == {5001}
    assert sum(step for _, step in calls) == 5001


def test_a_sheet_longer_than_max_rows_is_refused(tmp_path: Path) -> None:
    rows: list[list[object]] = [["ФИО", "Телефон"]]
    rows += [[f"Клиент {i}", ""] for i in range(100)]
    with pytest.raises(BadInput, match=r"more than the limit of 50.*HUB_EXCEL__MAX_ROWS"):
        plan_import(write_xlsx(tmp_path / "long.xlsx", rows), max_rows=50)


def test_rejected_rows_are_written_with_their_reason_and_can_be_imported_again(tmp_path: Path) -> None:
    plan = plan_import(people_file(tmp_path / "clients.xlsx"))
    out = tmp_path / "rejected.xlsx"
    assert write_rejected(out, plan.rejected, plan.headers) == 1
    sheet = load_workbook(out).active
    assert sheet is not None
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[0][:4] == [REASON_HEADER, "Строка / Row", "ФИО", "Тел."]
    assert "7 digits" in str(values[1][0])
    assert values[1][1] == 7 and values[1][3] == "123-45-67"
    again = plan_import(out)
    assert [r.cells[3] for r in again.rejected] == ["123-45-67"]


def test_rejected_cells_that_look_like_formulas_stay_text(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "evil.csv", [["ФИО", "Телефон"], ["", "=1+2"]])
    plan = plan_import(path)
    out = tmp_path / "rejected.xlsx"
    write_rejected(out, plan.rejected, plan.headers)
    sheet = load_workbook(out).active
    assert sheet is not None
    cell = sheet["D2"]
    assert (cell.data_type, cell.value) == ("s", "'=1+2")


@pytest.mark.slow
def test_a_sheet_at_excels_row_limit_is_imported_with_a_warning(tmp_path: Path) -> None:
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.append(["ФИО", "Телефон"])
    ws.append(["Иванов Иван", "+79161234567"])
    ws.cell(row=1_048_576, column=1, value="Петров Пётр")
    book.save(tmp_path / "full.xlsx")
    plan = plan_import(tmp_path / "full.xlsx")
    assert any("row limit (1,048,576 rows)" in w for w in plan.warnings)
    assert {o.name for o in plan.observations} == {"Иванов Иван", "Петров Пётр"}


def test_a_sheet_with_only_a_header_says_there_is_nothing_to_import(tmp_path: Path) -> None:
    plan = plan_import(write_xlsx(tmp_path / "header.xlsx", [HEADER]))
    assert plan.observations == []
    assert any("no data under the header row 1" in w for w in plan.warnings)
