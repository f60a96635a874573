"""The sandbox speaks as amoCRM does: documented bodies in, documented shapes and errors out, webhooks sent."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from amocrm_testing import Running, fixture_json
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_hub_plugins.amocrm.webhooks import parse_webhook
from hub.testing import serve_asgi


def api(sandbox: Running, method: str, path: str, body: Any = None, **params: Any) -> httpx.Response:
    return httpx.request(
        method,
        f"{sandbox.url}{path}",
        json=body,
        params=params or None,
        headers={"Authorization": f"Bearer {sandbox.sandbox.long_lived_token}"},
    )


def contact_with_phone(sandbox: Running, phone: str = "+14155551234") -> int:
    body = [{"name": "Jane", "custom_fields_values": [{"field_code": "PHONE", "values": [{"value": phone}]}]}]
    return int(api(sandbox, "POST", "/api/v4/contacts", body).json()["_embedded"]["contacts"][0]["id"])


def test_unauthorised_and_over_limit_answers_are_the_documented_bodies(sandbox: Running) -> None:
    unauthorised = httpx.get(f"{sandbox.url}/api/v4/contacts", headers={"Authorization": "Bearer nope"})
    assert unauthorised.status_code == 401 and unauthorised.json() == fixture_json("error_401.json")
    too_many = api(sandbox, "GET", "/api/v4/contacts", limit=251)
    assert too_many.status_code == 422 and too_many.json() == fixture_json("error_422_limit.json")
    oversize = api(sandbox, "POST", "/api/v4/contacts", [{"name": "x"}] * 251)
    assert oversize.status_code == 422


def test_rate_limit_answer_is_the_documented_429_body() -> None:
    from crm_hub_plugins.amocrm.sandbox import create_app

    app = create_app(rate_limit=1, ban_after=100)
    with serve_asgi(app) as url:
        headers = {"Authorization": f"Bearer {app.state.sandbox.long_lived_token}"}
        answers = [httpx.get(f"{url}/api/v4/account", headers=headers) for _ in range(3)]
    assert answers[0].status_code == 200
    assert answers[-1].status_code == 429 and answers[-1].json() == fixture_json("error_429.json")


def test_validation_errors_have_the_documented_problem_json_shape(sandbox: Running) -> None:
    bad = [{"name": "x", "status_id": "abc", "custom_fields_values": [{"field_id": 1, "values": []}]}]
    answer = api(sandbox, "POST", "/api/v4/leads", bad)
    documented = fixture_json("error_400_validation.json")
    assert answer.status_code == 400 and answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert {k: body[k] for k in ("title", "type", "status", "detail")} == {
        k: documented[k] for k in ("title", "type", "status", "detail")
    }
    [request] = body["validation-errors"]
    assert request["request_id"] == "0"
    assert {(e["code"], e["path"]) for e in request["errors"]} == {
        ("NotSupportedChoice", "custom_fields_values.0.field_id"),
        ("InvalidType", "status_id"),
    }


def test_documented_call_in_note_request_is_accepted(sandbox: Running) -> None:
    request = fixture_json("note_call_in_request.json")
    sandbox.sandbox.account.records["contacts"][12117258] = {**_contact(12117258)}
    answer = api(sandbox, "POST", "/api/v4/contacts/notes", request)
    assert answer.status_code == 200
    [note] = answer.json()["_embedded"]["notes"]
    assert (note["entity_id"], note["request_id"]) == (12117258, "n1")
    listed = api(sandbox, "GET", "/api/v4/contacts/12117258/notes", **{"filter[note_type]": "call_in"}).json()
    assert listed["_embedded"]["notes"][0]["params"]["phone"] == "+14155551234"


def test_documented_task_body_is_accepted_and_read_back(sandbox: Running) -> None:
    task = fixture_json("task.json")
    lead_id = api(sandbox, "POST", "/api/v4/leads", [{"name": "Сделка"}]).json()["_embedded"]["leads"][0]["id"]
    body = {k: task[k] for k in ("text", "complete_till", "task_type_id", "duration", "responsible_user_id")}
    answer = api(sandbox, "POST", "/api/v4/tasks", [{**body, "entity_id": lead_id, "entity_type": "leads"}])
    task_id = answer.json()["_embedded"]["tasks"][0]["id"]
    read = api(sandbox, "GET", f"/api/v4/tasks/{task_id}").json()
    assert {k: read[k] for k in body} == body and read["entity_type"] == "leads"
    assert set(task) - {"id", "result"} <= set(read) | {"_links"}


def test_complex_leads_answer_has_the_documented_shape(sandbox: Running) -> None:
    body = [
        {
            "name": "Сделка",
            "price": 5000,
            "request_id": "2",
            "_embedded": {
                "contacts": [{"first_name": "Пётр", "name": "Пётр Сидоров"}],
                "companies": [{"name": "ООО Ромашка"}],
            },
        }
    ]
    answer = api(sandbox, "POST", "/api/v4/leads/complex", body).json()
    [documented] = fixture_json("leads_complex_response.json")
    assert [set(a) for a in answer] == [set(documented)] and answer[0]["request_id"] == ["2"]
    lead = api(sandbox, "GET", f"/api/v4/leads/{answer[0]['id']}", **{"with": "contacts"}).json()
    assert lead["_embedded"]["contacts"][0]["id"] == answer[0]["contact_id"]
    assert lead["_embedded"]["companies"][0]["id"] == answer[0]["company_id"]


def test_a_call_whose_phone_matches_no_contact_is_dropped_and_reported(sandbox: Running) -> None:
    contact_id = contact_with_phone(sandbox, "+7 916 000-11-22")
    calls = [
        {"direction": "inbound", "duration": 30, "source": "pbx", "phone": "89160001122", "uniq": "a"},
        {"direction": "outbound", "duration": 5, "source": "pbx", "phone": "+74950000000", "uniq": "b"},
    ]
    answer = api(sandbox, "POST", "/api/v4/calls", calls).json()
    [added] = answer["_embedded"]["calls"]
    assert (added["entity_id"], added["entity_type"], added["request_id"]) == (contact_id, "contacts", "0")
    assert [e["request_id"] for e in answer["errors"]] == ["1"]
    assert [n["note_type"] for n in sandbox.sandbox.account.notes.values()] == ["call_in"]


def test_pipelines_have_won_142_and_lost_143_in_every_pipeline(sandbox: Running) -> None:
    pipelines = api(sandbox, "GET", "/api/v4/leads/pipelines").json()["_embedded"]["pipelines"]
    assert len(pipelines) >= 2
    for pipeline in pipelines:
        assert {142, 143} <= {s["id"] for s in pipeline["_embedded"]["statuses"]}


def test_custom_fields_list_phone_and_email_with_enum_codes(sandbox: Running) -> None:
    fields = api(sandbox, "GET", "/api/v4/contacts/custom_fields").json()["_embedded"]["custom_fields"]
    by_code = {f["code"]: f for f in fields}
    assert {"WORK", "MOB"} <= {e["value"] for e in by_code["PHONE"]["enums"]}
    assert {"WORK", "PRIV"} <= {e["value"] for e in by_code["EMAIL"]["enums"]}


def test_updated_since_filter_and_events_feed_serve_reconciliation(sandbox: Running) -> None:
    old = contact_with_phone(sandbox)
    stamp = int(time.time()) + 1
    sandbox.sandbox.options.clock = lambda: stamp + 10.0
    sandbox.sandbox.account.clock = sandbox.sandbox.options.clock
    api(sandbox, "PATCH", f"/api/v4/contacts/{old}", {"name": "Jane Roe"})
    fresh = api(sandbox, "GET", "/api/v4/contacts", **{"filter[updated_at][from]": stamp}).json()
    assert [c["id"] for c in fresh["_embedded"]["contacts"]] == [old]
    events = api(sandbox, "GET", "/api/v4/events", **{"filter[entity]": "contact"}).json()["_embedded"]["events"]
    assert [e["type"] for e in events] == ["contact_added", "name_field_changed"]
    assert api(sandbox, "GET", "/api/v4/events", limit=101).status_code == 422


def test_every_change_is_posted_as_a_v2_form_webhook_in_the_background() -> None:
    received: list[tuple[str, bytes]] = []

    async def hook(request: Request) -> Response:
        received.append((request.headers["user-agent"], await request.body()))
        return Response("ok")

    from crm_hub_plugins.amocrm.sandbox import create_app

    receiver = Starlette(routes=[Route("/webhooks/amocrm/secret", hook, methods=["POST"])])
    with serve_asgi(receiver) as hub_url:
        app = create_app(rate_limit=10_000)
        with serve_asgi(app) as url:
            sb = Running(url, app.state.sandbox)
            sb.admin("webhooks", {"url": f"{hub_url}/webhooks/amocrm/secret"})
            contact = contact_with_phone(sb)
            api(sb, "PATCH", "/api/v4/contacts", [{"id": contact, "name": "Анна"}])
            company = api(sb, "POST", "/api/v4/companies", [{"name": "ООО Ромашка"}]).json()
            lead = api(sb, "POST", "/api/v4/leads", [{"name": "L", "_embedded": {"contacts": [{"id": contact}]}}])
            lead_id = lead.json()["_embedded"]["leads"][0]["id"]
            api(sb, "PATCH", "/api/v4/leads", [{"id": lead_id, "status_id": 142}])
            api(
                sb,
                "POST",
                "/api/v4/leads/notes",
                [{"entity_id": lead_id, "note_type": "common", "params": {"text": "т"}}],
            )
            sb.admin("delete", {"entity": "contacts", "id": contact})
            app.state.sandbox.wait_webhooks()
    assert {agent for agent, _ in received} == {"amoCRM-Webhooks/3.0"}
    hints = [h for _, body in received for h in parse_webhook(body)]
    assert [(h.entity, h.action) for h in hints] == [
        ("contact", "add"),
        ("contact", "update"),
        ("company", "add"),
        ("lead", "add"),
        ("lead", "status"),
        ("note", "add"),
        ("contact", "delete"),
    ]
    assert hints[1].data["name"] == "Анна" and hints[4].data["old_status_id"] != "142"
    assert hints[0].custom_fields[0].code == "PHONE"
    assert company["_embedded"]["companies"][0]["id"] == int(hints[2].id)


def test_patch_of_one_custom_field_keeps_the_others(sandbox: Running) -> None:
    contact = contact_with_phone(sandbox)
    api(
        sandbox,
        "PATCH",
        f"/api/v4/contacts/{contact}",
        {"custom_fields_values": [{"field_code": "EMAIL", "values": [{"value": "a@b.ru"}]}]},
    )
    record = api(sandbox, "GET", f"/api/v4/contacts/{contact}").json()
    assert {cf["field_code"] for cf in record["custom_fields_values"]} == {"PHONE", "EMAIL"}


@pytest.mark.parametrize("path", ["/api/v4/contacts/424242", "/api/v4/leads/pipelines/1"])
def test_missing_entities_answer_204(sandbox: Running, path: str) -> None:
    assert api(sandbox, "GET", path).status_code == 204


def _contact(entity_id: int) -> dict[str, Any]:
    return {
        "id": entity_id,
        "name": "Jane",
        "responsible_user_id": 0,
        "group_id": 0,
        "created_by": 0,
        "updated_by": 0,
        "created_at": 0,
        "updated_at": 0,
        "account_id": 31_000_001,
        "custom_fields_values": None,
        "first_name": "",
        "last_name": "",
    }
