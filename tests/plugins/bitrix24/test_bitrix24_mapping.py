"""Bitrix24 entities ↔ the hub: observations from contacts, companies, deals, activities and comments; fields back."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from bitrix24_testing import Portal

from crm_hub_plugins.bitrix24.mapping import (
    activity_fields,
    activity_observation,
    client_echoes,
    comment_fields,
    comment_observation,
    company_fields,
    company_observation,
    contact_fields,
    contact_observation,
    deal_echoes,
    deal_fields,
    deal_observation,
    externalcall_params,
    multifield_additions,
)
from hub.core.events import ClientView, ItemView, RefView

ACCOUNT = "acme.bitrix24.ru"
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)

CONTACT: dict[str, Any] = {
    "ID": "42",
    "NAME": "Иван",
    "SECOND_NAME": "Петрович",
    "LAST_NAME": "Сидоров",
    "POST": "Главный инженер",
    "COMPANY_ID": "7",
    "DATE_MODIFY": "2026-11-23T10:00:00+03:00",
    "PHONE": [{"ID": "1", "VALUE_TYPE": "WORK", "VALUE": "8 (916) 123-45-67", "TYPE_ID": "PHONE"}],
    "EMAIL": [{"ID": "2", "VALUE_TYPE": "WORK", "VALUE": "Ivan.Sidorov@Example.RU", "TYPE_ID": "EMAIL"}],
    "UF_CRM_INN": "7707083893",
}


def client_view(**overrides: Any) -> ClientView:
    values: dict[str, Any] = {
        "id": 5,
        "kind": "person",
        "name": "Сидоров Иван Петрович",
        "phones": ["+79161234567"],
        "emails": ["ivan.sidorov@example.ru"],
        "refs": [],
        "fields": {
            "first_name": "Иван",
            "last_name": "Сидоров",
            "middle_name": "Петрович",
            "position": "Главный инженер",
        },
        "version": 3,
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(overrides)
    return ClientView(**values)


def item(channel: str | None, kind: Literal["interaction", "deal", "task"] = "interaction", **fields: Any) -> ItemView:
    source = RefView(system="telephony", account="pbx", entity="call", id="c-1")
    return ItemView(
        id=77,
        client_id=5,
        kind=kind,
        channel=channel,
        occurred_at=NOW,
        fields=fields,
        refs=[],
        version=1,
        source=source,
    )


def test_contact_becomes_a_person_with_normalised_contact_points() -> None:
    obs = contact_observation(CONTACT, ACCOUNT)
    assert (obs.source.system, obs.source.account, obs.source.entity, obs.source.id) == (
        "bitrix24",
        ACCOUNT,
        "contact",
        "42",
    )
    assert (obs.first_name, obs.middle_name, obs.last_name, obs.position) == (
        "Иван",
        "Петрович",
        "Сидоров",
        "Главный инженер",
    )
    assert obs.phones == ["+79161234567"] and obs.emails == ["ivan.sidorov@example.ru"]
    assert obs.company is not None and obs.company.ref is not None and obs.company.ref.id == "7"
    assert obs.observed_at == datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    assert obs.fields == {"UF_CRM_INN": "7707083893"}


def test_unparseable_phone_is_skipped_not_fatal() -> None:
    obs = contact_observation({**CONTACT, "PHONE": [{"VALUE": "доб. 12"}, {"VALUE": "+7 495 123-45-67"}]}, ACCOUNT)
    assert obs.phones == ["+74951234567"]


def test_company_becomes_a_company_client() -> None:
    obs = company_observation({"ID": "7", "TITLE": "ООО «Ромашка»", "PHONE": [{"VALUE": "+7 495 123 45 67"}]}, ACCOUNT)
    assert (obs.client_kind, obs.name, obs.phones, obs.source.entity) == (
        "company",
        "ООО «Ромашка»",
        ["+74951234567"],
        "company",
    )


def test_deal_carries_stage_amount_currency_and_its_contact() -> None:
    deal = {"ID": "9", "TITLE": "Поставка", "STAGE_ID": "C2:EXECUTING", "STAGE_SEMANTIC_ID": "P", "CATEGORY_ID": "2"}
    deal |= {"OPPORTUNITY": "150000.50", "CURRENCY_ID": "RUB", "CONTACT_ID": "42", "COMPANY_ID": "0"}
    obs = deal_observation(deal, ACCOUNT, stage_map={"in_work": "C2:EXECUTING"})
    assert (obs.title, obs.stage, obs.status, obs.pipeline) == ("Поставка", "in_work", "open", "2")
    assert (obs.amount, obs.currency) == (Decimal("150000.50"), "RUB")
    assert obs.client.ref is not None and (obs.client.ref.entity, obs.client.ref.id) == ("contact", "42")
    won = deal_observation({**deal, "STAGE_ID": "WON", "STAGE_SEMANTIC_ID": "S"}, ACCOUNT)
    assert (won.stage, won.status) == ("WON", "won")


def test_activities_become_calls_emails_and_meetings() -> None:
    base = {"ID": "11", "OWNER_TYPE_ID": "3", "OWNER_ID": "42", "START_TIME": "2026-11-23T10:00:00+03:00"}
    call = activity_observation(
        {**base, "TYPE_ID": "2", "DIRECTION": "1", "END_TIME": "2026-11-23T10:02:30+03:00"}, ACCOUNT
    )
    assert call is not None and (call.channel, call.direction, call.duration_s) == ("call", "in", 150.0)
    assert call.client.ref is not None and call.client.ref.id == "42"
    email = activity_observation({**base, "TYPE_ID": "4", "DIRECTION": "2", "SUBJECT": "Счёт №5"}, ACCOUNT)
    assert email is not None and (email.channel, email.direction, email.subject) == ("email", "out", "Счёт №5")
    meeting = activity_observation({**base, "TYPE_ID": "1"}, ACCOUNT)
    assert meeting is not None and meeting.channel == "meeting"
    assert activity_observation({**base, "TYPE_ID": "3"}, ACCOUNT) is None, "tasks are not interactions"


def test_deal_owned_activity_finds_its_client_through_communications() -> None:
    activity: dict[str, Any] = {"ID": "12", "OWNER_TYPE_ID": "2", "OWNER_ID": "9", "TYPE_ID": "2", "DIRECTION": "2"}
    activity["COMMUNICATIONS"] = [{"VALUE": "+79161234567", "ENTITY_ID": "42", "ENTITY_TYPE_ID": "3", "TYPE": "PHONE"}]
    obs = activity_observation(activity, ACCOUNT)
    assert obs is not None and obs.client.ref is not None and obs.client.ref.id == "42"


def test_timeline_comment_becomes_a_note() -> None:
    comment = {"ID": "3", "ENTITY_ID": "42", "ENTITY_TYPE": "contact", "COMMENT": "Перезвонить в пятницу"}
    obs = comment_observation({**comment, "CREATED": "2026-11-23T10:00:00+03:00"}, ACCOUNT)
    assert (obs.channel, obs.body, obs.source.entity) == ("note", "Перезвонить в пятницу", "timeline_comment")


def test_new_contact_fields_carry_names_contact_points_and_the_hub_id() -> None:
    fields = contact_fields(client_view())
    assert (fields["NAME"], fields["LAST_NAME"], fields["SECOND_NAME"]) == ("Иван", "Сидоров", "Петрович")
    assert fields["PHONE"] == [{"VALUE": "+79161234567", "VALUE_TYPE": "WORK"}]
    assert fields["EMAIL"] == [{"VALUE": "ivan.sidorov@example.ru", "VALUE_TYPE": "WORK"}]
    assert (fields["ORIGINATOR_ID"], fields["ORIGIN_ID"]) == ("crm-hub", "5")


def test_update_never_wipes_contact_points_the_hub_does_not_know() -> None:
    current = {**CONTACT, "PHONE": [*CONTACT["PHONE"], {"ID": "3", "VALUE": "+7 999 000-00-00", "VALUE_TYPE": "HOME"}]}
    view = client_view(phones=["+79161234567", "+74951112233"])
    fields = contact_fields(view, current)
    assert fields == {"PHONE": [{"VALUE": "+74951112233", "VALUE_TYPE": "WORK"}]}
    assert all("ID" not in entry and "DELETE" not in entry for entry in fields["PHONE"])


def test_nothing_to_send_when_bitrix24_already_has_everything() -> None:
    assert contact_fields(client_view(), CONTACT) == {}
    assert multifield_additions(CONTACT["EMAIL"], ["IVAN.SIDOROV@example.ru"], "EMAIL") == []


def test_merge_keeps_every_existing_value_in_the_sandbox(portal: Portal) -> None:
    client = portal.client()
    existing = [{"VALUE": "+7 999 000-00-00", "VALUE_TYPE": "HOME"}, {"VALUE": "8 916 123-45-67", "VALUE_TYPE": "WORK"}]
    cid = client.call("crm.contact.add", {"fields": {"NAME": "Иван", "PHONE": existing}})
    current = client.call("crm.contact.get", {"id": cid})
    client.call(
        "crm.contact.update", {"id": cid, "fields": contact_fields(client_view(phones=["+74951112233"]), current)}
    )
    after = {p["VALUE"] for p in client.call("crm.contact.get", {"id": cid})["PHONE"]}
    assert after == {"+7 999 000-00-00", "8 916 123-45-67", "+74951112233"}


def test_echo_of_what_the_hub_wrote_is_recognised(portal: Portal) -> None:
    client = portal.client()
    view = client_view()
    cid = client.call("crm.contact.add", {"fields": contact_fields(view)})
    echo = contact_observation(client.call("crm.contact.get", {"id": cid}), ACCOUNT)
    assert client_echoes(view, echo)
    client.call("crm.contact.update", {"id": cid, "fields": {"LAST_NAME": "Сидорова"}})
    changed = contact_observation(client.call("crm.contact.get", {"id": cid}), ACCOUNT)
    assert not client_echoes(view, changed)


def test_display_name_only_client_round_trips_as_an_echo(portal: Portal) -> None:
    client = portal.client()
    view = client_view(name="Мария Ёлкина", fields={}, phones=[], emails=["MARIA@Example.ru"])
    cid = client.call("crm.contact.add", {"fields": contact_fields(view)})
    stored = client.call("crm.contact.get", {"id": cid})
    assert stored["NAME"] == "Мария Ёлкина"
    assert client_echoes(view, contact_observation(stored, ACCOUNT))


def test_company_fields_add_title_and_contact_points() -> None:
    view = client_view(kind="company", name="ООО «Ромашка»", fields={}, emails=[])
    assert company_fields(view) == {
        "TITLE": "ООО «Ромашка»",
        "ORIGINATOR_ID": "crm-hub",
        "ORIGIN_ID": "5",
        "PHONE": [{"VALUE": "+79161234567", "VALUE_TYPE": "WORK"}],
    }


def test_call_becomes_an_activity_the_sandbox_accepts(portal: Portal) -> None:
    client = portal.client()
    cid = client.call("crm.contact.add", {"fields": {"NAME": "Иван"}})
    call = item("call", direction="in", duration_s=95, subject="Входящий звонок", recording_url="https://rec/1.mp3")
    fields = activity_fields(call, owner_type="contact", owner_id=cid, communication="+79161234567")
    stored = client.call("crm.activity.get", {"id": client.call("crm.activity.add", {"fields": fields})})
    back = activity_observation(stored, ACCOUNT)
    assert back is not None and (back.channel, back.direction, back.duration_s) == ("call", "in", 95.0)
    assert back.occurred_at == NOW and stored["ORIGIN_ID"] == "77"


def test_call_becomes_externalcall_register_and_finish(portal: Portal) -> None:
    client = portal.client()
    cid = client.call("crm.contact.add", {"fields": {"NAME": "Иван", "PHONE": [{"VALUE": "+79161234567"}]}})
    register, finish = externalcall_params(
        item("call", direction="out", duration_s=61, status="answered"),
        user_id=1,
        phone="+79161234567",
        crm_entity_type="CONTACT",
        crm_entity_id=cid,
    )
    registered = client.call("telephony.externalcall.register", register)
    done = client.call("telephony.externalcall.finish", {**finish, "CALL_ID": registered["CALL_ID"]})
    activity = client.call("crm.activity.get", {"id": done["CRM_ACTIVITY_ID"]})
    assert (activity["DIRECTION"], activity["OWNER_ID"], done["CALL_DURATION"]) == ("2", str(cid), 61)


def test_note_becomes_a_timeline_comment(portal: Portal) -> None:
    client = portal.client()
    cid = client.call("crm.contact.add", {"fields": {"NAME": "Иван"}})
    fields = comment_fields(item("note", body="Клиент просил счёт"), entity_type="contact", entity_id=cid)
    comment_id = client.call("crm.timeline.comment.add", {"fields": fields})
    listed = client.call("crm.timeline.comment.list", {"filter": {"ENTITY_ID": cid, "ENTITY_TYPE": "contact"}})
    assert [(c["ID"], c["COMMENT"]) for c in listed] == [(str(comment_id), "Клиент просил счёт")]


def test_deal_fields_map_stages_and_recognise_their_echo(portal: Portal) -> None:
    client = portal.client()
    cid = client.call("crm.contact.add", {"fields": {"NAME": "Иван"}})
    deal = item(None, kind="deal", title="Поставка труб", stage="in_work", amount="150000.50", currency="RUB")
    stage_map = {"in_work": "EXECUTING"}
    deal_id = client.call("crm.deal.add", {"fields": deal_fields(deal, stage_map=stage_map, contact_id=cid)})
    stored = client.call("crm.deal.get", {"id": deal_id})
    assert (stored["STAGE_ID"], stored["CONTACT_ID"], stored["OPPORTUNITY"]) == ("EXECUTING", str(cid), "150000.50")
    assert deal_echoes(deal, deal_observation(stored, ACCOUNT, stage_map=stage_map))
    assert deal_fields(deal, stage_map=stage_map, contact_id=cid, current={**stored, "OPPORTUNITY": "150000.5"}) == {}
    won = item(None, kind="deal", status="won")
    assert deal_fields(won, current=stored) == {"STAGE_ID": "WON"}
