"""Inbound Bitrix24 events: the documented bodies parse, only the configured application token is trusted."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from bitrix24_payloads import fixture_json, fixture_text

from crm_hub_plugins.bitrix24.webhooks import parse_and_verify, parse_event, verify_event
from hub.core.errors import BadInput
from hub.core.formcodec import encode

RAW_TOKEN = "3c6c9248ec54af6bea1159b43ee0ab32"


def test_captured_raw_body_parses_with_its_unknown_keys() -> None:
    event = parse_and_verify(fixture_text("event_ONCRMCONTACTADD_raw_body.txt"), RAW_TOKEN)
    assert (event.event, event.entity_type, event.action, event.entity_id) == (
        "ONCRMCONTACTADD",
        "contact",
        "add",
        "134806",
    )
    assert event.domain == "bitrix24-php-sdk-playground.bitrix24.com"
    assert event.member_id == "010b6886ebc205e43ae65000ee00addb"
    assert event.handler_id == "58"
    assert event.ts == datetime(2024, 9, 22, 15, 28, 46, tzinfo=UTC)


def test_raw_body_as_bytes_is_accepted() -> None:
    body = fixture_text("event_ONCRMCONTACTADD_raw_body.txt").encode()
    assert parse_and_verify(body, RAW_TOKEN).entity_id == "134806"


@pytest.mark.parametrize(
    ("name", "entity", "entity_id"),
    [("event_ONCRMDEALADD_outgoing_webhook.json", "deal", "7405"), ("event_ONCRMCONTACTADD_app.json", "contact", "89")],
)
def test_documented_events_parse_as_form_bodies_and_as_json(name: str, entity: str, entity_id: str) -> None:
    documented = fixture_json(name)
    token = documented["auth"]["application_token"]
    for body in (encode(documented), json.dumps(documented)):
        event = parse_and_verify(body, token)
        assert (event.entity_type, event.entity_id, event.member_id) == (
            entity,
            entity_id,
            documented["auth"]["member_id"],
        )


def test_wrong_token_is_refused_without_showing_either_token() -> None:
    event = parse_event(fixture_text("event_ONCRMCONTACTADD_raw_body.txt"))
    with pytest.raises(BadInput) as caught:
        verify_event(event, "some-other-token")
    assert "wrong application token" in str(caught.value)
    assert RAW_TOKEN not in str(caught.value) and "some-other-token" not in str(caught.value)
    assert RAW_TOKEN not in repr(event)


def test_event_without_token_or_without_configured_token_is_refused() -> None:
    body = "event=ONCRMCONTACTUPDATE&data[FIELDS][ID]=5"
    with pytest.raises(BadInput, match="no auth"):
        parse_and_verify(body, "token")
    with pytest.raises(BadInput, match="APPLICATION_TOKEN"):
        parse_and_verify(body + "&auth[application_token]=x", "")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("data[FIELDS][ID]=1&auth[application_token]=t", "no 'event'"),
        ("event=ONCRMCONTACTADD&auth[application_token]=t", "data\\[FIELDS\\]\\[ID\\]"),
        ("event=ONCRMCONTACTADD&data[FIELDS][ID]=&auth[application_token]=t", "data\\[FIELDS\\]\\[ID\\]"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "no 'event'"),
    ],
)
def test_malformed_bodies_are_bad_input_with_a_clear_message(body: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        parse_and_verify(body, "t")


def test_other_events_parse_without_an_entity_type() -> None:
    event = parse_and_verify("event=ONAPPINSTALL&data[FIELDS][ID]=1&auth[application_token]=t", "t")
    assert (event.entity_type, event.action) == (None, None)


def test_timeline_comment_events_name_their_entity() -> None:
    event = parse_and_verify("event=ONCRMTIMELINECOMMENTADD&data[FIELDS][ID]=9&auth[application_token]=t", "t")
    assert (event.entity_type, event.action, event.entity_id) == ("timeline_comment", "add", "9")
