"""Decoding the hard-mail corpus (Outlook and 1C windows-1251, KOI8-R, QP, base64, HTML-only, encoded attachment
names, truncated multipart, unknown charsets...): every field exactly as a person reads it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from email_testing import CORPUS

from crm_hub_plugins.email.charsets import decode_bytes, guess_cyrillic
from crm_hub_plugins.email.html import html_to_text
from crm_hub_plugins.email.matching import Company, decide
from crm_hub_plugins.email.mime import decode_words, parse_message

EXPECTED: dict[str, dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
COMPANY = Company.of(["crm@example.test"], ["firma.ru"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_message_decodes_exactly(name: str) -> None:
    expected = EXPECTED[name]
    parsed = parse_message((CORPUS / name).read_bytes())
    assert parsed.subject == expected["subject"]
    assert parsed.sender[0].email == expected["from"]
    assert parsed.sender[0].name == expected.get("from_name", "")
    if "body" in expected:
        assert parsed.body == expected["body"]
    assert [a.name for a in parsed.attachments] == expected.get("attachments", [])
    assert parsed.decoded is expected.get("decoded", True)
    if "message_id" in expected:
        assert parsed.message_id == expected["message_id"]
    if "date" in expected:
        assert parsed.date is None
    for text in (parsed.subject, parsed.body, *(a.name or "" for a in parsed.attachments)):
        assert "\ufffd" not in text


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_message_goes_to_its_clients_and_robots_to_nobody(name: str) -> None:
    expected = EXPECTED[name]
    decision = decide(parse_message((CORPUS / name).read_bytes()), COMPANY)
    assert decision.skipped == expected.get("skipped")
    assert [c.email.lower() for c in decision.clients] == [c.lower() for c in expected.get("clients", [])]
    if "direction" in expected:
        assert decision.direction == expected["direction"]


def test_undecodable_text_keeps_its_raw_bytes() -> None:
    data = (CORPUS / "undecodable_body.eml").read_bytes()
    parsed = parse_message(data)
    assert parsed.decoded is False
    assert parsed.raw is not None and parsed.raw in data


def test_cyrillic_detection_tells_windows_1251_from_koi8_r() -> None:
    text = "Счёт на оплату отправлен вчера"
    assert guess_cyrillic(text.encode("cp1251")) == text
    assert guess_cyrillic(text.encode("koi8_r")) == text
    assert guess_cyrillic(bytes(range(0x80, 0x100))) is None


def test_declared_ascii_with_8bit_text_falls_down_the_chain() -> None:
    assert decode_bytes("Привет".encode(), "us-ascii") == ("Привет", "utf-8")
    assert decode_bytes("Привет, как дела".encode("cp1251"), "us-ascii")[0] == "Привет, как дела"
    assert decode_bytes("Привет".encode("cp1251"), "win-1251")[0] == "Привет"


def test_encoded_words_in_unknown_charsets_do_not_crash() -> None:
    text, ok = decode_words("=?x-nothing?Q?=D0=9F=D1=80=D0=B8?= =?utf-8?B?0LLQtdGC?=")
    assert (text, ok) == ("Привет", True)


def test_html_to_text_has_no_tags_styles_or_scripts() -> None:
    text = html_to_text(
        "<html><head><style>p{}</style></head><body><script>x()</script><p>Один</p><p>Два&nbsp;три</p></body>"
    )
    assert text == "Один\nДва три"
    assert html_to_text("<p>a <b>bold</b> word</p>") == "a bold word"
