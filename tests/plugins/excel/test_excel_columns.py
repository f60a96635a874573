"""Columns are found by their Russian or English headers; a mapping file overrides, and its mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_hub_plugins.excel.columns import MappingFile, build_layout, field_for_header, find_header, load_mapping
from hub.core.errors import BadInput


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("ФИО", "name"),
        ("Ф.И.О.", "name"),
        ("Фамилия", "last_name"),
        ("Имя", "first_name"),
        ("Отчество", "middle_name"),
        ("Телефон", "phone"),
        ("Тел.", "phone"),
        ("Мобильный", "phone"),
        ("Телефон (рабочий)", "phone"),
        ("E-mail", "email"),
        ("e-mail 2", "email"),
        ("Почта", "email"),
        ("Эл. почта", "email"),
        ("Компания", "company"),
        ("Организация", "company"),
        ("ИНН", "inn"),
        ("Должность", "position"),
        ("Комментарий", "comment"),
        ("Примечание", "comment"),
        ("Дата", "date"),
        ("Дата рождения", "birthday"),
        ("Full name", "name"),
        ("Phone", "phone"),
        ("EMAIL", "email"),
        ("Company", "company"),
        ("Job title", "position"),
        ("Notes", "comment"),
    ],
)
def test_known_headers_name_their_field(header: str, field: str) -> None:
    assert field_for_header(header) == field


@pytest.mark.parametrize("header", ["Телеграм", "Номер договора", "Сумма", "Клиентский номер", ""])
def test_other_headers_are_not_taken_for_known_fields(header: str) -> None:
    assert field_for_header(header) is None


def test_the_header_is_found_below_a_title() -> None:
    rows = [
        (1, ["Выгрузка клиентов за март", "", ""]),
        (2, ["", "", ""]),
        (3, ["ФИО", "Тел.", "Почта"]),
        (4, ["Иванов", "+79161234567", "ivan@mail.ru"]),
    ]
    assert find_header(rows) == 3


def test_columns_are_assigned_and_unknown_ones_kept_under_their_header() -> None:
    layout = build_layout(1, ["ФИО", "Телефон", "Мобильный", "Источник", ""], None, origin="a.xlsx")
    assert layout.targets == {0: "name", 1: "phone", 2: "phone", 3: "fields.Источник"}
    assert layout.describe().startswith("A (ФИО) → name, B (Телефон) → phone")


def test_a_sheet_without_identity_columns_is_refused_with_its_header() -> None:
    with pytest.raises(BadInput, match=r"no column holds a name, phone.*Сумма, Дата"):
        build_layout(1, ["Сумма", "Дата"], None, origin="a.xlsx")


def test_the_mapping_file_overrides_detection_by_header_and_letter(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text(
        '[columns]\n"Моб. тел" = "phone"\n"D" = "email"\n"Телефон" = "ignore"\n"Откуда" = "fields.source"\n',
        encoding="utf-8",
    )
    mapping = load_mapping(path)
    layout = build_layout(2, ["ФИО", "Моб. тел", "Телефон", "Контакт для связи", "Откуда"], mapping, origin="x")
    assert layout.targets == {0: "name", 1: "phone", 3: "email", 4: "fields.source"}


def test_mapping_names_count_when_the_header_is_searched() -> None:
    mapping = MappingFile(columns={"Клиент компании": "name", "Сотовый номер": "phone"})
    rows = [(1, ["Отчёт"]), (2, ["Клиент компании", "Сотовый номер"])]
    assert find_header(rows, mapping) == 2


def test_a_mapping_to_an_unknown_field_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text('[columns]\n"Моб. тел" = "fone"\n', encoding="utf-8")
    with pytest.raises(BadInput, match=r"mapping\.toml: \[columns\] 'Моб. тел' = 'fone' is not a hub field"):
        load_mapping(path)


def test_a_mapping_with_an_unknown_section_names_it(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text('[colums]\n"A" = "phone"\n', encoding="utf-8")
    with pytest.raises(BadInput, match="'colums'"):
        load_mapping(path)


def test_a_mapping_that_is_not_toml_says_so(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text("columns: A -> phone\n", encoding="utf-8")
    with pytest.raises(BadInput, match="not valid TOML"):
        load_mapping(path)


def test_a_mapped_header_missing_from_the_file_is_named_with_the_headers_there() -> None:
    mapping = MappingFile(columns={"Мобильный телефон клиента": "phone"})
    with pytest.raises(BadInput, match="'Мобильный телефон клиента' matches no column of the header row 1"):
        build_layout(1, ["ФИО", "Тел."], mapping, origin="a.xlsx")
