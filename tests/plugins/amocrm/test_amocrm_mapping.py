"""Mapping amoCRM ↔ hub: round trips with Cyrillic, merges that never wipe, deals, calls, notes and tasks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from amocrm_testing import Running

from crm_hub_plugins.amocrm.mapping import (
    LeadMapping,
    Pipelines,
    call_payload,
    client_observation,
    client_payload,
    deal_observation,
    interaction_observation,
    lead_payload,
    note_payload,
    reflects_hub,
    task_observation,
    task_payload,
)
from hub.core.events import ClientKey, ClientView, ItemView, RefView

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def view(**overrides: Any) -> ClientView:
    base: dict[str, Any] = {
        "id": 7,
        "kind": "person",
        "name": "Иван Петров",
        "phones": ["+79161234567"],
        "emails": ["ivan@пример.рф"],
        "refs": [],
        "version": 1,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return ClientView(**{**base, **overrides})


def item(
    kind: Literal["interaction", "deal", "task"] = "interaction", channel: str | None = "call", **fields: Any
) -> ItemView:
    return ItemView(
        id=42,
        client_id=7,
        kind=kind,
        channel=channel,
        occurred_at=NOW,
        fields=fields,
        refs=[],
        version=1,
        source=RefView(system="telephony", account="pbx", entity="call", id="c-1"),
    )


def test_client_round_trip_through_the_sandbox_keeps_cyrillic_name_phone_and_email(sandbox: Running) -> None:
    client = sandbox.client()
    [made] = client.add("/api/v4/contacts", [client_payload(view())])
    entity = client.get_entity("contacts", made["id"])
    assert entity is not None
    obs = client_observation(entity, account="sandbox")
    assert (obs.name, obs.phones, obs.emails) == ("Иван Петров", ["+79161234567"], ["ivan@пример.рф"])
    assert (obs.source.system, obs.source.account, obs.source.entity) == ("amocrm", "sandbox", "contact")
    assert reflects_hub(obs, view())  # reading back our own write is an echo, not news


def test_merge_adds_the_hubs_phone_and_never_wipes_values_it_does_not_know(sandbox: Running) -> None:
    client = sandbox.client()
    existing_body = {
        "name": "Иван Петров",
        "custom_fields_values": [
            {
                "field_code": "PHONE",
                "values": [
                    {"value": "8 (495) 111-22-33", "enum_code": "WORK"},
                    {"value": "+7 916 123-45-67", "enum_code": "MOB"},
                ],
            },
            {"field_code": "POSITION", "values": [{"value": "Директор"}]},
        ],
    }
    [made] = client.add("/api/v4/contacts", [existing_body])
    existing = client.get_entity("contacts", made["id"])
    payload = client_payload(view(phones=["+79161234567", "+79035550000"]), existing=existing)
    assert "name" not in payload  # unchanged
    client.update("/api/v4/contacts", [payload])
    after = client.get_entity("contacts", made["id"])
    assert after is not None
    phones = {cf["field_code"]: cf for cf in after["custom_fields_values"]}
    assert [v["value"] for v in phones["PHONE"]["values"]] == ["8 (495) 111-22-33", "+7 916 123-45-67", "+79035550000"]
    assert phones["PHONE"]["values"][1]["enum_code"] == "MOB"
    assert phones["POSITION"]["values"] == [{"value": "Директор"}]
    assert [v["value"] for v in phones["EMAIL"]["values"]] == ["ivan@пример.рф"]
    again = client_payload(view(phones=["+79161234567", "+79035550000"]), existing=after)
    assert again == {"id": made["id"]}  # nothing left to send


def test_company_maps_to_company_kind_and_contact_links_to_it(sandbox: Running) -> None:
    client = sandbox.client()
    [company] = client.add("/api/v4/companies", [client_payload(view(kind="company", name="ООО «Ромашка»"))])
    [contact] = client.add("/api/v4/contacts", [{"name": "Анна", "_embedded": {"companies": [{"id": company["id"]}]}}])
    company_obs = client_observation(client.get_entity("companies", company["id"]) or {}, account="s", company=True)
    contact_obs = client_observation(client.get_entity("contacts", contact["id"]) or {}, account="s")
    assert company_obs.client_kind == "company" and company_obs.source.entity == "company"
    assert contact_obs.company is not None and contact_obs.company.ref == company_obs.source


def test_lead_status_142_is_won_143_lost_others_open_with_names_and_amount(sandbox: Running) -> None:
    client = sandbox.client()
    [contact] = client.add("/api/v4/contacts", [{"name": "Анна"}])
    pipelines = Pipelines.from_response(client.get("/api/v4/leads/pipelines"))
    leads = client.add(
        "/api/v4/leads",
        [
            {"name": f"Сделка {s}", "price": 150000, "status_id": s, "_embedded": {"contacts": [{"id": contact["id"]}]}}
            for s in (142, 143, 7100002)
        ],
    )
    deals = [
        deal_observation(
            client.get_entity("leads", lead["id"], with_=["contacts"]) or {}, account="s", pipelines=pipelines
        )
        for lead in leads
    ]
    assert [d.status for d in deals if d] == ["won", "lost", "open"]
    third = deals[2]
    assert third is not None
    assert (third.pipeline, third.stage, third.amount, third.title) == (
        "Воронка",
        "Переговоры",
        150000,
        "Сделка 7100002",
    )
    assert third.client.ref is not None and third.client.ref.id == str(contact["id"])
    assert deal_observation({"id": 1, "status_id": 142}, account="s") is None  # nothing to attach it to


def test_hub_deal_goes_to_the_mapped_pipeline_and_stage_and_closes_as_142_or_143() -> None:
    mapping = LeadMapping(pipeline_map={"Партнёры": 7000002}, status_map={"Договор": 7200002})
    open_deal = lead_payload(
        item("deal", None, title="Поставка", amount="990.50", pipeline="Партнёры", stage="Договор", status="open"),
        contact_id=5,
        mapping=mapping,
    )
    assert open_deal == {
        "name": "Поставка",
        "price": 990,
        "pipeline_id": 7000002,
        "status_id": 7200002,
        "_embedded": {"contacts": [{"id": 5}]},
    }
    assert lead_payload(item("deal", None, status="won"), contact_id=None, lead_id=9)["status_id"] == 142
    assert lead_payload(item("deal", None, status="lost"), contact_id=None)["status_id"] == 143


def test_call_goes_to_calls_api_and_is_attached_by_phone(sandbox: Running) -> None:
    client = sandbox.client()
    client.add("/api/v4/contacts", [client_payload(view())])
    call = item(direction="in", duration_s=61.4, status="answered", recording_url="https://rec/1.mp3")
    payload = call_payload(call, view())
    assert (payload["direction"], payload["duration"], payload["phone"], payload["link"]) == (
        "inbound",
        61,
        "+79161234567",
        "https://rec/1.mp3",
    )
    answer = client.request("POST", "/api/v4/calls", json_body=[payload])
    assert "errors" not in answer
    [note] = sandbox.sandbox.account.notes.values()
    back = interaction_observation(note, account="s", client=ClientKey())
    assert back is not None
    assert (back.channel, back.direction, back.duration_s, back.recording_url) == (
        "call",
        "in",
        61,
        "https://rec/1.mp3",
    )
    assert back.client.phones == ["+79161234567"]


def test_call_and_email_notes_are_accepted_by_the_sandbox_and_read_back(sandbox: Running) -> None:
    client = sandbox.client()
    [contact] = client.add("/api/v4/contacts", [{"name": "Анна"}])
    call = note_payload(item(direction="out", duration_s=12, phone="+79160000000"), view(), entity_id=contact["id"])
    email = note_payload(item(channel="email", subject="Счёт", body="Добрый день!"), view(), entity_id=contact["id"])
    client.add("/api/v4/contacts/notes", [call, email])
    notes = list(client.list_all(f"/api/v4/contacts/{contact['id']}/notes", key="notes"))
    observed = [interaction_observation(n, account="s", client=ClientKey(phones=["+79160000000"])) for n in notes]
    assert [(o.channel, o.direction) for o in observed if o] == [("call", "out"), ("note", "internal")]
    assert observed[1] is not None and observed[1].body == "Письмо: Счёт\n\nДобрый день!"


def test_missed_call_back_task_round_trip(sandbox: Running) -> None:
    client = sandbox.client()
    [contact] = client.add("/api/v4/contacts", [{"name": "Анна"}])
    due = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
    payload = task_payload(
        item("task", None, title="Перезвонить: пропущенный", due_at=due.isoformat(), assignee="123"),
        entity_id=contact["id"],
    )
    [made] = client.add("/api/v4/tasks", [payload])
    obs = task_observation(client.get_entity("tasks", made["id"]) or {}, account="s", client=ClientKey())
    assert (obs.title, obs.due_at, obs.assignee, obs.done) == ("Перезвонить: пропущенный", due, "123", False)
    assert obs.fields["task_type_id"] == 1


def test_echo_detection_compares_normalised_values() -> None:
    obs = client_observation(
        {
            "id": 1,
            "name": "  иван   петров ",
            "custom_fields_values": [
                {"field_code": "PHONE", "values": [{"value": "8 (916) 123-45-67"}]},
                {"field_code": "EMAIL", "values": [{"value": "IVAN@Пример.рф"}]},
            ],
        },
        account="s",
    )
    assert reflects_hub(obs, view())
    assert not reflects_hub(obs, view(phones=["+79035550000"]))
    assert not reflects_hub(obs, view(name="Пётр"))
