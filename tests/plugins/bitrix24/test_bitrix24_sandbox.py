"""The sandbox answers like Bitrix24: the documented payload shapes, paging, multi-fields, batch, limits, events."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from bitrix24_payloads import fixture_json, fixture_text
from bitrix24_testing import Portal
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_hub_plugins.bitrix24.webhooks import parse_and_verify
from hub.core.formcodec import decode, encode
from hub.testing import serve_asgi


def rest(portal: Portal, method: str, params: dict[str, Any] | None = None, *, form: bool = False) -> httpx.Response:
    url = portal.webhook_url + method
    if form:
        headers = {"content-type": "application/x-www-form-urlencoded"}
        return httpx.post(url, content=encode(params or {}).encode(), headers=headers)
    return httpx.post(url, json=params or {})


def test_every_answer_carries_the_documented_time_block(portal: Portal) -> None:
    body = rest(portal, "profile").json()
    assert set(body["time"]) == set(fixture_json("response_time_block.json")["time"])
    assert body["time"]["date_start"].endswith("+03:00")


def test_query_limit_answer_is_the_documented_503(make_portal: Any) -> None:
    small = make_portal(rate=0.5, burst=3)
    answers = [rest(small, "profile") for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert answers[3].status_code == 503
    assert answers[3].json() == fixture_json("error_503_QUERY_LIMIT_EXCEEDED.json")


def test_operation_time_limit_answer_is_the_documented_429(portal: Portal) -> None:
    portal.sandbox.block_method("crm.contact.list", 60)
    answer = rest(portal, "crm.contact.list")
    assert answer.status_code == 429
    assert answer.json() == fixture_json("error_429_OPERATION_TIME_LIMIT.json")
    assert rest(portal, "crm.contact.fields").status_code == 200, "other methods keep working"


def test_operation_limit_is_switched_through_the_admin_endpoint(portal: Portal) -> None:
    httpx.post(
        f"{portal.base_url}/_sandbox/faults", json={"operation_limit": {"method": "crm.deal.list", "seconds": 30}}
    )
    assert rest(portal, "crm.deal.list").status_code == 429


def test_batch_with_failing_commands_has_the_documented_shape(portal: Portal) -> None:
    answer = rest(portal, "batch", {"halt": 0, "cmd": {"get_user": "crm.contact.get?id=7", "get_department": "x.y"}})
    body = answer.json()
    expected = fixture_json("batch_response_halt0_with_errors.json")
    assert answer.status_code == 200
    assert set(body) == set(expected)
    assert set(body["result"]) == set(expected["result"])
    for empty in ("result", "result_total", "result_next", "result_time"):
        assert body["result"][empty] == [], "empty maps are PHP arrays: []"
    assert set(body["result"]["result_error"]) == {"get_user", "get_department"}
    assert set(body["result"]["result_error"]["get_user"]) == {"error", "error_description"}


def test_batch_halt_stops_at_the_first_error(portal: Portal) -> None:
    cmd = {"a": "crm.contact.get?id=404", "b": "crm.contact.add?fields[NAME]=Never"}
    body = rest(portal, "batch", {"halt": 1, "cmd": cmd}).json()
    assert list(body["result"]["result_error"]) == ["a"]
    assert portal.sandbox.crm.records["contact"] == {}


def test_batch_references_use_results_of_earlier_commands(portal: Portal) -> None:
    cmd = {
        "company": "crm.company.add?" + encode({"fields": {"TITLE": "ООО «Ромашка»"}}),
        "contact": "crm.contact.add?" + encode({"fields": {"NAME": "Анна", "COMPANY_ID": "$result[company]"}}),
        "read": "crm.contact.get?id=$result[contact]",
    }
    body = rest(portal, "batch", {"cmd": cmd}).json()["result"]
    assert body["result_error"] == []
    assert body["result"]["read"]["COMPANY_ID"] == str(body["result"]["company"])
    assert set(body["result_time"]) == set(cmd)


def test_batch_refuses_more_than_fifty_commands(portal: Portal) -> None:
    answer = rest(portal, "batch", {"cmd": {f"c{i}": "profile" for i in range(51)}})
    assert answer.status_code == 400


def test_form_encoded_requests_work_like_json(portal: Portal) -> None:
    fields = {"NAME": "Иван", "PHONE": [{"VALUE": "+7 916 123-45-67", "VALUE_TYPE": "MOBILE"}]}
    new_id = rest(portal, "crm.contact.add", {"fields": fields}, form=True).json()["result"]
    got = rest(portal, "crm.contact.get.json", {"id": new_id}, form=True).json()["result"]
    assert got["NAME"] == "Иван"
    assert [(p["VALUE"], p["VALUE_TYPE"]) for p in got["PHONE"]] == [("+7 916 123-45-67", "MOBILE")]


def test_multifield_update_follows_the_documented_rules(portal: Portal) -> None:
    phones = [{"VALUE": v, "VALUE_TYPE": "WORK"} for v in ("111111", "222222", "333333", "44444")]
    cid = rest(portal, "crm.contact.add", {"fields": {"NAME": "M", "PHONE": phones}}).json()["result"]
    ids = [p["ID"] for p in rest(portal, "crm.contact.get", {"id": cid}).json()["result"]["PHONE"]]
    update = [
        {"ID": ids[0], "DELETE": "Y"},
        {"ID": ids[1], "VALUE": ""},
        {"ID": ids[2]},
        {"ID": ids[3], "VALUE": "55555", "VALUE_TYPE": "MOBILE"},
        {"VALUE": "66666", "VALUE_TYPE": "HOME"},
    ]
    assert rest(portal, "crm.contact.update", {"ID": cid, "FIELDS": {"PHONE": update}}).json()["result"] is True
    after = rest(portal, "crm.contact.get", {"id": cid}).json()["result"]["PHONE"]
    assert [(p["VALUE"], p["VALUE_TYPE"]) for p in after] == [("55555", "MOBILE"), ("66666", "HOME")]
    assert after[0]["ID"] == ids[3]


def test_invalid_email_is_an_error_core(portal: Portal) -> None:
    answer = rest(portal, "crm.contact.add", {"fields": {"EMAIL": [{"VALUE": "not-an-address"}]}})
    assert answer.status_code == 400
    assert answer.json()["error"] == "ERROR_CORE"


def test_missing_entity_is_a_400_not_found(portal: Portal) -> None:
    answer = rest(portal, "crm.deal.get", {"id": 12345})
    assert answer.status_code == 400
    assert answer.json() == {"error": "", "error_description": "Not found"}


def test_list_pages_by_fifty_with_next_and_total(portal: Portal) -> None:
    portal.sandbox.crm.seed_contacts(120)
    first = rest(portal, "crm.contact.list", {"order": {"ID": "ASC"}}).json()
    assert (len(first["result"]), first["next"], first["total"]) == (50, 50, 120)
    last = rest(portal, "crm.contact.list", {"order": {"ID": "ASC"}, "start": 100}).json()
    assert len(last["result"]) == 20 and "next" not in last
    assert last["result"][-1]["ID"] == "120"


def test_start_minus_one_skips_the_count(portal: Portal) -> None:
    portal.sandbox.crm.seed_contacts(70)
    body = rest(portal, "crm.contact.list", {"order": {"ID": "ASC"}, "filter": {">ID": 60}, "start": -1}).json()
    assert [r["ID"] for r in body["result"]] == [str(i) for i in range(61, 71)]
    assert body["total"] == 0 and "next" not in body


def test_list_filters_order_and_select(portal: Portal) -> None:
    portal.sandbox.crm.seed_contacts(5)
    portal.sandbox.crm.update("contact", 3, {"NAME": "Яна"})
    by_phone = rest(portal, "crm.contact.list", {"filter": {"PHONE": "+79160000004"}, "select": ["ID", "PHONE"]})
    assert [r["ID"] for r in by_phone.json()["result"]] == ["4"]
    assert by_phone.json()["result"][0]["PHONE"][0]["VALUE"] == "+79160000004"
    desc = rest(portal, "crm.contact.list", {"order": {"ID": "DESC"}, "select": ["ID", "NAME"]}).json()["result"]
    assert [r["ID"] for r in desc] == ["5", "4", "3", "2", "1"]
    assert set(desc[0]) == {"ID", "NAME"}
    named = rest(portal, "crm.contact.list", {"filter": {"%NAME": "ян"}}).json()["result"]
    assert [r["ID"] for r in named] == ["3"]
    in_list = rest(portal, "crm.contact.list", {"filter": {"@ID": [1, 5]}}).json()["result"]
    assert [r["ID"] for r in in_list] == ["1", "5"]


def test_date_modify_filter_finds_recent_changes(make_portal: Any) -> None:
    now = [1_790_000_000.0]
    clocked = make_portal(rate=1000, burst=1000, wallclock=lambda: now[0])
    clocked.sandbox.crm.seed_contacts(3)
    now[0] += 60
    clocked.sandbox.crm.update("contact", 2, {"POST": "Директор"})
    since = rest(clocked, "crm.contact.list", {"filter": {">DATE_MODIFY": "2026-09-21T17:00:00+03:00"}}).json()
    changed = rest(clocked, "crm.contact.get", {"id": 2}).json()["result"]["DATE_MODIFY"]
    assert changed.endswith("+03:00")
    cutoff = clocked.sandbox.crm.records["contact"][1]["DATE_MODIFY"]
    recent = rest(clocked, "crm.contact.list", {"filter": {">DATE_MODIFY": cutoff}}).json()["result"]
    assert [r["ID"] for r in recent] == ["2"]
    assert since["total"] == 3


def test_wrong_webhook_code_is_invalid_credentials(portal: Portal) -> None:
    answer = httpx.post(f"{portal.base_url}/rest/1/wrongcode/profile")
    assert answer.status_code == 401
    assert answer.json()["error"] == "INVALID_CREDENTIALS"


def test_unknown_method_is_404(portal: Portal) -> None:
    answer = rest(portal, "crm.nothing.here")
    assert (answer.status_code, answer.json()["error"]) == (404, "ERROR_METHOD_NOT_FOUND")


def test_oauth_tokens_expire_and_refresh_rotates_them(make_portal: Any) -> None:
    oauth = make_portal(rate=1000, burst=1000)
    tokens = oauth.sandbox.issue_tokens()
    assert set(tokens) == set(fixture_json("oauth_refresh_response.json"))
    ok = httpx.post(f"{oauth.base_url}/rest/profile", json={"auth": tokens["access_token"]})
    assert ok.status_code == 200
    oauth.sandbox.expire_tokens()
    expired = httpx.get(f"{oauth.base_url}/rest/profile.json", params={"auth": tokens["access_token"]})
    assert (expired.status_code, expired.json()["error"]) == (401, "expired_token")
    refresh = {
        "grant_type": "refresh_token",
        "client_id": oauth.sandbox.client_id,
        "client_secret": oauth.sandbox.client_secret,
        "refresh_token": tokens["refresh_token"],
    }
    fresh = httpx.get(f"{oauth.base_url}/oauth/token/", params=refresh)
    assert fresh.status_code == 200
    assert set(fresh.json()) == set(fixture_json("oauth_refresh_response.json"))
    reused = httpx.get(f"{oauth.base_url}/oauth/token/", params=refresh)
    assert reused.json()["error"] == "invalid_grant", "a refresh token works once"


def test_duplicate_search_by_phone_and_email(portal: Portal) -> None:
    portal.sandbox.crm.seed_contacts(3)
    found = rest(
        portal, "crm.duplicate.findbycomm", {"entity_type": "CONTACT", "type": "PHONE", "values": ["89160000002"]}
    )
    assert found.json()["result"] == {"CONTACT": [2]}
    none = rest(portal, "crm.duplicate.findbycomm", {"type": "EMAIL", "values": ["nobody@example.ru"]})
    assert none.json()["result"] == []


def test_external_call_becomes_a_call_activity(portal: Portal) -> None:
    portal.sandbox.crm.seed_contacts(1)
    register = {"USER_ID": 1, "PHONE_NUMBER": "+79160000001", "TYPE": 2, "EXTERNAL_CALL_ID": "pbx-1"}
    call = rest(portal, "telephony.externalcall.register", register).json()["result"]
    assert (call["CRM_ENTITY_TYPE"], call["CRM_ENTITY_ID"]) == ("CONTACT", 1)
    again = rest(portal, "telephony.externalcall.register", register).json()["result"]
    assert again["CALL_ID"] == call["CALL_ID"], "registering the same call twice gives the same CALL_ID"
    done = rest(portal, "telephony.externalcall.finish", {"CALL_ID": call["CALL_ID"], "USER_ID": 1, "DURATION": 42})
    activity = rest(portal, "crm.activity.get", {"id": done.json()["result"]["CRM_ACTIVITY_ID"]}).json()["result"]
    assert (activity["TYPE_ID"], activity["DIRECTION"], activity["OWNER_ID"]) == ("2", "1", "1")


def test_activity_without_communications_is_refused(portal: Portal) -> None:
    portal.sandbox.crm.seed_contacts(1)
    fields = {"OWNER_TYPE_ID": 3, "OWNER_ID": 1, "TYPE_ID": 2, "SUBJECT": "Звонок"}
    answer = rest(portal, "crm.activity.add", {"fields": fields})
    assert answer.status_code == 400


def test_deal_stages_and_categories_are_listed(portal: Portal) -> None:
    stages = rest(portal, "crm.status.list", {"filter": {"ENTITY_ID": "DEAL_STAGE"}}).json()["result"]
    assert {"NEW", "WON", "LOSE"} <= {s["STATUS_ID"] for s in stages}
    category = rest(portal, "crm.dealcategory.stage.list", {"id": 0}).json()["result"]
    assert category[0]["STATUS_ID"] == "NEW"
    assert rest(portal, "crm.category.list", {"entityTypeId": 2}).json()["result"]["categories"][0]["id"] == 0


def test_changes_post_form_encoded_events_to_bound_handlers(portal: Portal) -> None:
    received: list[bytes] = []

    async def handler(request: Request) -> Response:
        received.append(await request.body())
        return Response("ok")

    receiver = Starlette(routes=[Route("/hook", handler, methods=["POST"])])
    with serve_asgi(receiver) as base_url:
        hook_url = f"{base_url}/hook"
        assert rest(portal, "event.bind", {"event": "ONCRMCONTACTADD", "handler": hook_url}).json()["result"] is True
        assert rest(portal, "event.get").json()["result"][0]["handler"] == hook_url
        new_id = rest(portal, "crm.contact.add", {"fields": {"NAME": "Event"}}).json()["result"]
        assert portal.sandbox.wait_for_deliveries()
    event = parse_and_verify(received[0], portal.sandbox.application_token)
    assert (event.event, event.entity_type, event.entity_id) == ("ONCRMCONTACTADD", "contact", str(new_id))
    documented = decode(encode(fixture_json("event_ONCRMDEALADD_outgoing_webhook.json")))
    assert decode(received[0]).keys() == documented.keys()
    assert decode(received[0])["auth"].keys() == documented["auth"].keys()


def test_events_are_collected_in_memory_for_ui_changes_too(portal: Portal) -> None:
    rest(portal, "event.bind", {"event": "ONCRMDEALUPDATE", "handler": "memory://events"})
    deal = portal.sandbox.crm.add("deal", {"TITLE": "Поставка"})
    portal.sandbox.crm.update("deal", deal, {"STAGE_ID": "WON"})
    assert [e["payload"]["event"] for e in portal.sandbox.events] == ["ONCRMDEALUPDATE"]
    assert portal.sandbox.crm.records["deal"][deal]["STAGE_SEMANTIC_ID"] == "S"


@pytest.mark.parametrize("kind", ["status", "html", "drop", "slow"])
def test_faults_are_switched_on_through_the_admin_endpoint(portal: Portal, kind: str) -> None:
    spec = {"kind": kind, "count": 1, "seconds": 0.3, "status": 502}
    assert httpx.post(f"{portal.base_url}/_sandbox/faults", json=spec).status_code == 200
    started = time.monotonic()
    if kind == "drop":
        with pytest.raises(httpx.TransportError):
            rest(portal, "profile")
    else:
        answer = rest(portal, "profile")
        if kind == "html":
            assert answer.status_code == 502 and answer.headers["content-type"].startswith("text/html")
        elif kind == "status":
            assert answer.status_code == 502 and answer.json()["error"] == "INTERNAL_SERVER_ERROR"
        else:
            assert answer.status_code == 200 and time.monotonic() - started >= 0.3
    assert rest(portal, "profile").status_code == 200, "a fault with count 1 hits one request"


def test_admin_endpoints_seed_count_and_reset(portal: Portal) -> None:
    assert httpx.post(f"{portal.base_url}/_sandbox/seed", json={"contacts": 7}).json()["created"] == 7
    rest(portal, "crm.contact.list")
    stats = httpx.get(f"{portal.base_url}/_sandbox/stats").json()
    assert stats["records"]["contact"] == 7 and stats["by_method"]["crm.contact.list"] == 1
    httpx.post(f"{portal.base_url}/_sandbox/reset")
    assert httpx.get(f"{portal.base_url}/_sandbox/stats").json()["requests"] == 0


def test_raw_fixture_event_body_is_what_the_sandbox_would_send(portal: Portal) -> None:
    raw = decode(fixture_text("event_ONCRMCONTACTADD_raw_body.txt").strip())
    rest(portal, "event.bind", {"event": "ONCRMCONTACTADD", "handler": "memory://x"})
    portal.sandbox.crm.add("contact", {"NAME": "X"})
    sent = decode(portal.sandbox.events[0]["body"])
    assert set(sent) == set(raw)
    assert set(sent["auth"]) <= set(raw["auth"])


def test_faults_can_be_given_when_the_sandbox_starts(make_portal: Any) -> None:
    flaky = make_portal(rate=1000, burst=1000, faults=[{"kind": "status", "count": 2, "status": 503}])
    assert [rest(flaky, "profile").status_code for _ in range(3)] == [503, 503, 200]
