"""A row becomes a client in the hub's words; rows that name nobody are refused with the reason."""

from __future__ import annotations

import random

import pytest

from crm_hub_plugins.excel.columns import build_layout
from crm_hub_plugins.excel.contacts import email_or_reason, fast_ru_phone, phone_or_reason
from crm_hub_plugins.excel.mapping import ClientRecord, RejectedRow, RowMapper, checked_inn, excel_date, split_full_name
from hub.core.errors import BadInput
from hub.core.identity import normalize_email, normalize_phone

HEADERS = ["ФИО", "Тел.", "Почта", "Организация", "ИНН", "Должность", "Комментарий", "Источник"]


def mapper() -> RowMapper:
    return RowMapper(build_layout(1, HEADERS, None, origin="test.xlsx"))


def record(cells: list[str]) -> ClientRecord:
    result = mapper().map_row(2, cells)
    assert isinstance(result, ClientRecord), result
    return result


def test_a_full_row_maps_every_column() -> None:
    row = record(
        [
            "Иванов Иван Иванович",
            "8 (916) 123-45-67, +7 495 123 45 67",
            "Ivan@Mail.RU",
            "ООО Ромашка",
            "7707083893",
            "директор",
            "перезвонить",
            "выставка",
        ]
    )
    assert (row.last_name, row.first_name, row.middle_name) == ("Иванов", "Иван", "Иванович")
    assert row.phones == ["+79161234567", "+74951234567"]
    assert row.emails == ["ivan@mail.ru"]
    assert (row.company_name, row.company_inn) == ("ООО Ромашка", "7707083893")
    assert row.position == "директор"
    assert row.fields == {"comment": "перезвонить", "Источник": "выставка"}


def test_a_phone_stored_as_a_float_is_the_same_number() -> None:
    assert record(["Иванов", "79161234567", "", "", "", "", "", ""]).phones == ["+79161234567"]
    assert record(["Иванов", "7.9161234567E10", "", "", "", "", "", ""]).phones == ["+79161234567"]


def test_a_phone_that_lost_digits_in_scientific_notation_is_explained() -> None:
    result = mapper().map_row(5, ["", "7,92E+10", "", "", "", "", "", ""])
    assert isinstance(result, RejectedRow)
    assert "scientific notation and lost its last digits" in result.reason


def test_a_seven_digit_local_phone_is_rejected_with_its_reason() -> None:
    result = mapper().map_row(7, ["", "123-45-67", "", "", "", "", "", ""])
    assert isinstance(result, RejectedRow)
    assert result.row_number == 7
    assert "has 7 digits: a local number without an area code" in result.reason
    assert result.cells[1] == "123-45-67"


def test_a_bad_second_phone_is_noted_and_the_row_kept() -> None:
    rows = mapper()
    result = rows.map_row(3, ["Иванов", "+79161234567; 123-45-67", "", "", "", "", "", ""])
    assert isinstance(result, ClientRecord)
    assert result.phones == ["+79161234567"]
    assert [(n.row_number, "7 digits" in n.message) for n in rows.notes] == [(3, True)]


def test_a_row_with_nothing_to_identify_anyone_is_rejected() -> None:
    result = mapper().map_row(4, ["", "", "", "", "", "", "позвонить в марте", ""])
    assert isinstance(result, RejectedRow)
    assert result.reason == "no name, phone, e-mail, company or INN"


def test_an_invalid_email_alone_is_rejected_with_its_reason() -> None:
    result = mapper().map_row(4, ["", "", "ivan@", "", "", "", "", ""])
    assert isinstance(result, RejectedRow)
    assert "e-mail 'ivan@' is not a valid address" in result.reason


def test_a_blank_row_is_skipped_not_rejected() -> None:
    assert mapper().map_row(9, ["", " ", "", "", "", "", "", ""]) is None


def test_a_company_without_a_person_is_a_company_row() -> None:
    row = record(["", "+74951234567", "office@romashka.ru", "ООО Ромашка", "7707083893", "", "", ""])
    assert (row.kind, row.name, row.inn) == ("company", "ООО Ромашка", "7707083893")
    assert row.phones == ["+74951234567"]


def test_an_inn_that_fails_its_check_digits_is_kept_as_text_and_noted() -> None:
    rows = mapper()
    result = rows.map_row(2, ["Иванов", "+79161234567", "", "ООО Ромашка", "7707083890", "", "", ""])
    assert isinstance(result, ClientRecord)
    assert result.company_inn is None
    assert result.fields["ИНН"] == "7707083890"
    assert "fails its check digits" in rows.notes[0].message


@pytest.mark.parametrize(
    ("text", "inn"),
    [
        ("7707083893", "7707083893"),  # Sberbank, 10 digits
        ("0274062111", "0274062111"),  # leading zero kept
        ("274062111", "0274062111"),  # leading zero restored after a number-formatted cell lost it
        ("500100732259", "500100732259"),  # a person's INN, 12 digits
        ("7707083890", None),
        ("12345", None),
        ("77O7083893", None),
    ],
)
def test_inn_is_checked_by_its_check_digits(text: str, inn: str | None) -> None:
    assert checked_inn(text) == inn


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("Иванов Иван Иванович", ("Иванов", "Иван", "Иванович")),
        ("Иван Иванович Иванов", ("Иванов", "Иван", "Иванович")),
        ("Иванов Иван", ("Иванов", "Иван", None)),
        ("John Smith", ("Smith", "John", None)),
        ("Мамедов Руслан Эльдар оглы", (None, None, None)),
    ],
)
def test_full_names_are_split_into_last_first_middle(text: str, parts: tuple[str | None, ...]) -> None:
    assert split_full_name(text) == parts


def test_dates_stored_as_numbers_become_iso_dates() -> None:
    assert excel_date("45352") == "2024-03-01"
    assert excel_date("01.03.2024") == "2024-03-01"
    assert excel_date("весной") == "весной"


def test_fast_phone_path_gives_what_the_core_gives() -> None:
    rng = random.Random(3)
    shapes = ["+7{}", "8{}", "7{}", "{}", "8 ({}) ", "+7 {}"]
    checked = 0
    for _ in range(3000):
        national = str(rng.choice([3, 4, 5, 6, 7, 8, 9])) + f"{rng.randrange(10**9):09d}"
        text = rng.choice(shapes).format(national)
        fast = fast_ru_phone(text)
        if fast is None:
            continue
        checked += 1
        assert fast == normalize_phone(text, "RU"), text
    assert checked > 500


def test_fast_phone_path_refuses_what_the_core_refuses() -> None:
    rng = random.Random(4)
    for _ in range(2000):
        text = "+7" + str(rng.choice([3, 4, 5, 6, 7, 8, 9])) + f"{rng.randrange(10**9):09d}"
        try:
            expected: str | None = normalize_phone(text, "RU")
        except BadInput:
            expected = None
        assert phone_or_reason(text, "RU")[0] == expected, text


@pytest.mark.parametrize(
    "address",
    [
        "Ivan@Mail.RU",
        "ivan.petrov+crm@example.com",
        "a_b%c@sub.domain.org",
        "x@y.test",
        "ivan@почта.рф",
        "a..b@mail.ru",
        ".a@mail.ru",
        "a@-mail.ru",
        "a@mail",
        "user@localhost",
    ],
)
def test_fast_email_path_gives_what_the_core_gives(address: str) -> None:
    try:
        expected: str | None = normalize_email(address)
    except BadInput:
        expected = None
    assert email_or_reason(address)[0] == expected
