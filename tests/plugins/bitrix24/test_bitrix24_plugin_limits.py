"""Limits and trust: the leaky bucket is never tripped, limits show in health, OAuth tokens rotate durably, and a
portal is connected once."""

from __future__ import annotations

import contextlib
import json
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from bitrix24_testing import Portal, Wired
from fastapi.testclient import TestClient
from pydantic import ValidationError
from test_bitrix24_plugin_sink import running, settle

from crm_hub_plugins.bitrix24.connection import portals
from crm_hub_plugins.bitrix24.inbound import Inbound
from crm_hub_plugins.bitrix24.settings import Bitrix24Section
from crm_hub_plugins.bitrix24.sink import Writer
from hub.core.errors import ExternalAPIError, FatalDelivery
from hub.core.events import ClientKey, ClientObservation, InteractionObservation, SourceRef
from hub.core.formcodec import encode
from hub.web.app import create_app
from tests.conftest import wait_for


def client_obs(n: int) -> ClientObservation:
    return ClientObservation(
        source=SourceRef(system="excel", account="x.xlsx", entity="row", id=str(n)),
        name=f"Клиент {n}",
        phones=[f"+7916{n:07d}"],
    )


def test_query_limit_exceeded_never_happens_with_the_limiter(wired_embedded: Wired, make_portal: Any) -> None:
    tight: Portal = make_portal(rate=4, burst=5)
    wired_embedded.env(WEBHOOK_URL=tight.webhook_url, RATE_LIMIT="4/s burst 5")
    hub = wired_embedded.hub()
    portal = portals(hub).get()
    threads = [threading.Thread(target=lambda: [portal.client.call("profile") for _ in range(4)]) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tight.sandbox.requests == 12
    assert tight.sandbox.stats["limit_exceeded"] == 0 and portal.client.limit_exceeded == 0
    unpaced = tight.client(retries=0)  # the same calls without the hub's limiter do trip the portal's bucket
    with contextlib.suppress(ExternalAPIError):
        for _ in range(12):
            unpaced.call("profile")
    assert tight.sandbox.stats["limit_exceeded"] > 0
    assert hub.health()["plugins"]["bitrix24"]["status"] == "ok"


def test_the_operation_time_limit_is_retriable_with_its_wait_and_health_says_degraded(wired_embedded: Wired) -> None:
    wired_embedded.portal.sandbox.block_method("crm.contact.list", 120)
    hub = wired_embedded.hub()
    portal = portals(hub).get()
    with pytest.raises(ExternalAPIError) as caught:
        Inbound(portal).read("contact", "1")
    assert caught.value.retriable and caught.value.retry_after and caught.value.retry_after >= 60
    report = hub.health()["plugins"]["bitrix24"]
    assert report["status"] == "degraded" and "operation time limit" in report["portals"][wired_embedded.key]["detail"]


def test_a_portal_error_page_is_retried_and_a_refused_webhook_is_down_without_secrets(wired_embedded: Wired) -> None:
    sandbox = wired_embedded.portal.sandbox
    sandbox.add_fault("html", count=1, methods=["batch"])
    hub = wired_embedded.hub()
    applied = hub.ingest(client_obs(1))
    Writer(portals(hub).get()).ensure_clients([hub.get_client(applied.client_id)])  # the 502 page is retried
    assert len(sandbox.crm.records["contact"]) == 1 and sandbox.stats["fault_html"] == 1

    wrong = wired_embedded.portal.webhook_url.replace(sandbox.webhook_code, "revoked0code")
    wired_embedded.env(WEBHOOK_URL=wrong)
    hub = wired_embedded.hub()
    with pytest.raises(FatalDelivery):
        Writer(portals(hub).get()).ensure_clients([hub.get_client(applied.client_id)])
    report = hub.health()["plugins"]["bitrix24"]
    assert report["status"] == "down" and "authentication refused" in json.dumps(report)
    assert "revoked0code" not in json.dumps(report) and sandbox.application_token not in json.dumps(report)


def test_rotated_oauth_tokens_are_stored_before_use_and_a_restarted_hub_goes_on(wired: Wired) -> None:
    sandbox = wired.portal.sandbox
    wired.use_oauth()
    first = wired.hub()
    portal = portals(first).get()
    assert portal.health()["status"] == "down"  # not connected yet
    installed = sandbox.issue_tokens()
    info = portal.connect(installed["refresh_token"])
    assert info["member_id"] == sandbox.member_id
    scope = f"bitrix24:{wired.key}"
    stored = first.state.get(scope, "oauth_tokens")
    assert stored["refresh_token"] != installed["refresh_token"]  # rotated at once, and stored
    sandbox.expire_tokens()
    portal.client.call("profile")  # expired_token → refresh → the new pair is stored before it is used
    again = first.state.get(scope, "oauth_tokens")
    assert again["refresh_token"] != stored["refresh_token"]
    assert portal.tokens is not None and portal.tokens.session().tokens.refresh_token == again["refresh_token"]
    first.store.dispose()

    second = wired.hub()  # a new process: it has only what was stored
    restarted = portals(second).get()
    sandbox.expire_tokens()
    assert restarted.client.call("profile")["ID"] == "1"
    assert second.state.get(scope, "oauth_tokens")["refresh_token"] not in (stored["refresh_token"], None)
    assert restarted.health()["status"] == "ok"
    # The same portal (its member_id) cannot be connected under a second name.
    assert second.state.claim("accounts:claims", f"bitrix24:{sandbox.member_id}", "someone-else") is False


def test_with_oauth_a_telephony_call_goes_through_externalcall(wired: Wired) -> None:
    sandbox = wired.portal.sandbox
    wired.use_oauth()
    portals(wired.hub()).get().connect(sandbox.issue_tokens()["refresh_token"])
    with running(wired) as (hub, other):
        call = hub.ingest(
            InteractionObservation(
                source=SourceRef(system="telephony", account="pbx", entity="call", id="1700000001.7"),
                channel="call",
                client=ClientKey(phones=["+7 916 222-33-44"], name="Олег"),
                direction="out",
                occurred_at=datetime(2025, 3, 2, 9, 30, tzinfo=UTC),
                duration_s=95,
                status="answered",
            )
        )
        wait_for(lambda: sandbox.crm.calls and sandbox.crm.records["activity"])
        settle(wired, hub)
        [made] = sandbox.crm.calls.values()
        assert made["finished"] and made["external_id"].startswith("crm-hub-") and made["type"] == 1
        [activity] = sandbox.crm.records["activity"].values()
        assert activity["ORIGIN_ID"].startswith("VI_") and activity["END_TIME"].startswith("2025-03-02T09:31:35")
        wait_for(lambda: any(r.system == "bitrix24" for r in hub.timeline(call.client_id)[0].refs))
        [item] = hub.timeline(call.client_id)
        assert any(r.system == "bitrix24" and r.id == activity["ID"] for r in item.refs)
        wait_for(lambda: len(other.received) >= 2)
        assert sorted(e.type for e in other.received) == ["client.changed", "interaction.added"]


def test_a_portal_is_connected_once(wired_embedded: Wired, make_portal: Any) -> None:
    url = wired_embedded.portal.webhook_url
    with pytest.raises(ValidationError, match="configured twice"):
        Bitrix24Section.model_validate({"webhook_url": url, "portals": [{"webhook_url": url}]})
    twin: Portal = make_portal(member_id=wired_embedded.portal.sandbox.member_id, application_token="twin-token")
    wired_embedded.env(PORTALS=json.dumps([{"webhook_url": twin.webhook_url, "application_token": "twin-token"}]))
    hub = wired_embedded.hub()
    hub.prepare()

    def event(token: str) -> str:
        auth = {"application_token": token, "member_id": twin.sandbox.member_id, "domain": "acme.bitrix24.ru"}
        return encode({"event": "ONCRMCONTACTADD", "data": {"FIELDS": {"ID": "1"}}, "ts": "1", "auth": auth})

    form = {"content-type": "application/x-www-form-urlencoded"}
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as http:
        first = http.post(
            "/webhooks/bitrix24", content=event(wired_embedded.portal.sandbox.application_token), headers=form
        )
        assert first.status_code == 200
        second = http.post("/webhooks/bitrix24", content=event("twin-token"), headers=form)
        assert second.status_code == 409 and second.json()["error"] == "conflict"
