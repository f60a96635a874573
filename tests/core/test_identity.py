"""Phones and emails normalise to one canonical form, so the same person is found however it was written."""

from __future__ import annotations

import pytest

from hub.core.errors import BadInput
from hub.core.identity import (
    clean_text,
    company_name_key,
    name_adds_nothing,
    names_compatible,
    normalize_email,
    normalize_phone,
    split_extension,
    split_phones,
)


@pytest.mark.parametrize(
    "raw",
    [
        "8 (916) 123-45-67",
        "+7 916 123 45 67",
        "79161234567",
        "9161234567",
        "+7(916)123-45-67",
        "8-916-123-45-67",
        " 8 916 1234567 ",
    ],
)
def test_russian_number_formats_are_one_number(raw: str) -> None:
    assert normalize_phone(raw, "RU") == "+79161234567"


def test_moscow_landline_with_trunk_prefix() -> None:
    assert normalize_phone("8 (495) 123-45-67", "RU") == "+74951234567"


def test_international_number_keeps_its_country() -> None:
    assert normalize_phone("+49 30 901820", "RU") == "+4930901820"
    assert normalize_phone("+375 29 123-45-67", "RU") == "+375291234567"


def test_other_default_region() -> None:
    assert normalize_phone("(701) 123-45-67", "KZ") == "+77011234567"


@pytest.mark.parametrize("raw", ["12", "123-45-67", "not a phone", "+7 916 123", ""])
def test_invalid_numbers_are_refused_with_a_reason(raw: str) -> None:
    with pytest.raises(BadInput, match="phone"):
        normalize_phone(raw, "RU")


def test_several_phones_in_one_cell() -> None:
    assert split_phones("+7 916 123-45-67, 8 495 123 45 67; 89161112233") == [
        "+7 916 123-45-67",
        "8 495 123 45 67",
        "89161112233",
    ]


def test_emails_are_case_insensitive() -> None:
    assert normalize_email("Ivan.Petrov@Example.COM") == normalize_email("ivan.petrov@example.com")


def test_cyrillic_domain_email_is_accepted() -> None:
    assert normalize_email("Иван@Почта.рф") == "иван@почта.рф"


@pytest.mark.parametrize("raw", ["no-at-sign", "a@", "@b.ru", "two@@ats.ru"])
def test_invalid_email_is_refused(raw: str) -> None:
    with pytest.raises(BadInput, match="email"):
        normalize_email(raw)


@pytest.mark.parametrize(
    "raw",
    [" +7 916 123-45-67", "\t+79161234567\n", "8\u00a0916\u00a0123\u00a045\u00a067", "\u200b89161234567\u200b",
     "79161234567.0", "+7 (916) 123-45-67 доб. 12", "8 916 123 45 67 вн.5", "+79161234567 ext 7", "89161234567#12"],
)  # fmt: skip
def test_phones_padded_with_any_whitespace_or_saved_as_floats_are_one_number(raw: str) -> None:
    assert normalize_phone(raw) == "+79161234567"


def test_extensions_are_set_apart_and_stay_with_their_number() -> None:
    assert split_extension("+7 495 123-45-67 доб. 123") == ("+7 495 123-45-67", "123")
    assert split_extension("8 495 123 45 67") == ("8 495 123 45 67", None)
    assert split_phones("+7 495 123-45-67, доб. 12 / 8 916 111-22-33\n89162223344") == [
        "+7 495 123-45-67 доб. 12",
        "8 916 111-22-33",
        "89162223344",
    ]


def test_emails_padded_with_any_whitespace_are_one_address() -> None:
    for raw in (" ivan@mail.ru", "\tIvan@Mail.RU\n", "ivan@mail.ru\u00a0", "\u200bivan@mail.ru", "<ivan@mail.ru>"):
        assert normalize_email(raw) == "ivan@mail.ru"
    assert clean_text("\u200b Иванов\u00a0\t") == "Иванов"


@pytest.mark.parametrize(
    ("a", "b", "one"),
    [
        ("Емельянова Л.С.", "Емельянова Людмила Сергеевна", True),
        ("Л. С. Емельянова", "ЕМЕЛЬЯНОВА людмила", True),
        ("Коваленко О. А.", "Оксана Коваленко", True),
        ("Смирова Анна", "Смирнова Анна Петровна", True),  # a typo
        ("Семенов Пётр", "Семёнов Петр", True),
        ("Иванов Иван", "Иванов Игорь", False),
        ("Иванов И.П.", "Иванов Иван Сергеевич", False),
        ("Петрова Анна", "Сидорова Анна", False),
    ],
)
def test_names_that_can_be_one_person(a: str, b: str, one: bool) -> None:
    assert names_compatible(a, b) is one and names_compatible(b, a) is one


def test_a_shorter_or_recased_name_adds_nothing_to_a_fuller_one() -> None:
    assert name_adds_nothing("ЕМЕЛЬЯНОВА Л.С.", "Емельянова Людмила Сергеевна")
    assert name_adds_nothing("Людмила", "Емельянова Людмила Сергеевна")
    assert not name_adds_nothing("Емельянова Людмила Сергеевна", "Емельянова Л.С.")
    assert not name_adds_nothing("Петрова Людмила", "Емельянова Людмила")


def test_company_names_match_without_case_quotes_and_legal_form() -> None:
    spellings = ["ООО «Атлант 2000»", 'Общество с ограниченной ответственностью "Атлант 2000"', "атлант 2000, ооо"]
    assert {company_name_key(s) for s in spellings} == {"2000 атлант"}
    assert company_name_key("ПАО «Сигма»") == company_name_key("Публичное акционерное общество Сигма") == "сигма"
    assert company_name_key("ООО") is None
    assert company_name_key("ООО Атлант") != company_name_key("ООО Атлант Плюс")
