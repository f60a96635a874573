"""Phones and emails normalise to one canonical form, so the same person is found however it was written."""

from __future__ import annotations

import pytest

from hub.core.errors import BadInput
from hub.core.identity import normalize_email, normalize_phone, split_phones


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
