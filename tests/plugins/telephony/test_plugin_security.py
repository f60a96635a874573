"""Telephony as an attacker sees it: toll fraud through click-to-call, open webhooks, replayed notifications."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from crm_hub_plugins.telephony import plugin as telephony_plugin
from crm_hub_plugins.telephony.clicktocall import ORIGINATE_SCOPE
from crm_hub_plugins.telephony.replay import INDEX_SCOPE, ZadarmaReplayGuard
from crm_hub_plugins.telephony.sandbox import AMISandbox, ZadarmaSender
from hub.cli import build_cli
from hub.core.plugins import PluginHost
from hub.web.app import create_app
from tests.conftest import wait_for

from .conftest import ZADARMA_SECRET, ami_settings, calls_on_timeline, tasks_on_timeline
from .test_plugin_webhooks import MOSCOW, ZADARMA, zadarma_today

GENERIC = "/webhooks/telephony/generic"
GENERIC_TOKEN = "generic-token-0123456789"


# --- toll fraud -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "phone, reason",
    [
        ("8 809 123-45-67", "premium-rate"),  # Russian premium-rate range
        ("+881 6 1234 5678", "non-geographic"),  # Iridium satellite
        ("+44 20 7946 0000", "outside the countries"),
        ("+1 900 555 1234", "outside the countries"),  # US premium-rate, and not an allowed country
    ],
)
def test_click_to_call_refuses_costly_numbers_and_dials_nothing(telephony_hub, phone, reason) -> None:
    with AMISandbox() as sandbox:
        hub = telephony_hub(**ami_settings(sandbox), click_to_call="ami")
        hub.start("all")
        assert sandbox.wait_for_login()
        api = TestClient(create_app(hub), base_url="http://127.0.0.1")
        refused = api.post("/api/calls", json={"extension": "101", "phone": phone})
        assert refused.status_code == 422 and reason in refused.json()["detail"]
        ok = api.post("/api/calls", json={"extension": "101", "phone": "8 800 555-35-35"})  # toll-free is fine
        assert ok.status_code == 202
        wait_for(lambda: any(a.get("Action") == "Originate" for a in sandbox.actions))
    originates = [a for a in sandbox.actions if a.get("Action") == "Originate"]
    assert [a["Exten"] for a in originates] == ["78005553535"]
    assert len(hub.state.items(ORIGINATE_SCOPE)) == 1


def test_the_dial_policy_is_configurable(telephony_hub) -> None:
    with AMISandbox() as sandbox:
        hub = telephony_hub(**ami_settings(sandbox), click_to_call="ami", dial__country_codes="7,44")
        hub.start("all")
        assert sandbox.wait_for_login()
        api = TestClient(create_app(hub), base_url="http://127.0.0.1")
        assert api.post("/api/calls", json={"extension": "101", "phone": "+44 20 7946 0000"}).status_code == 202
        assert api.post("/api/calls", json={"extension": "101", "phone": "+7 809 123-45-67"}).status_code == 422


def test_hub_call_refuses_a_premium_rate_number(embedded, monkeypatch) -> None:
    for key, value in embedded.env().items():
        monkeypatch.setenv(key, value)
    with AMISandbox() as sandbox:
        for name, value in {**ami_settings(sandbox), "click_to_call": "ami"}.items():
            monkeypatch.setenv(f"HUB_TELEPHONY__{name.upper()}", str(value))
        host = PluginHost(autoload=False, extra=[("telephony", telephony_plugin)])
        result = CliRunner().invoke(build_cli(host), ["call", "101", "+7 809 123-45-67"], obj=host)
        assert result.exit_code == 1 and "premium-rate" in result.output
        assert [a["Action"] for a in sandbox.actions if a.get("Action") == "Originate"] == []


# --- every webhook verifies its sender ----------------------------------------------------------------------------
MISSED = {
    "call_id": "pbx-1", "event": "ended", "direction": "in", "from": "+7 916 123-45-67", "extension": "105",
    "started_at": "2025-11-17T10:00:00+03:00", "ended_at": "2025-11-17T10:00:30+03:00", "status": "missed",
}  # fmt: skip


def test_the_generic_webhook_does_not_exist_without_its_token(telephony_hub) -> None:
    hub = telephony_hub()  # Mango and Zadarma configured, no generic token
    hub.start("all")
    api = TestClient(create_app(hub), base_url="http://127.0.0.1")
    assert api.post(GENERIC, json=MISSED).status_code == 404
    assert hub.wait_idle()
    assert (
        calls_on_timeline(hub) == [] and tasks_on_timeline(hub) == [] and hub.find_clients(phone="+79161234567") == []
    )
    [why] = [u for u in hub.unmounted_routes if u.path == GENERIC]
    assert why.plugin == "telephony" and "HUB_TELEPHONY__GENERIC_TOKEN" in why.reason
    assert GENERIC not in api.get("/openapi.json").text


def test_a_webhook_whose_signature_is_not_configured_does_not_exist(telephony_hub) -> None:
    hub = telephony_hub(mango__api_salt="", zadarma__secret="", generic_token=GENERIC_TOKEN)
    hub.prepare()
    api = TestClient(create_app(hub), base_url="http://127.0.0.1")
    assert api.post("/webhooks/telephony/mango/events/call", data={"json": "{}"}).status_code == 404
    assert api.get(ZADARMA, params={"zd_echo": "x"}).status_code == 404
    auth = {"Authorization": f"Bearer {GENERIC_TOKEN}"}
    assert api.post(GENERIC, json=MISSED, headers=auth).status_code == 202


def test_hub_plugins_list_says_why_a_webhook_is_missing(embedded, monkeypatch) -> None:
    for key, value in embedded.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HUB_TELEPHONY__ZADARMA__SECRET", ZADARMA_SECRET)
    host = PluginHost(autoload=False, extra=[("telephony", telephony_plugin)])
    result = CliRunner().invoke(build_cli(host), ["plugins", "list", "--json"], obj=host, catch_exceptions=False)
    [telephony] = json.loads(result.stdout)
    missing = {r["path"]: r["reason"] for r in telephony["routes_not_mounted"]}
    assert set(missing) == {"/webhooks/telephony/mango/events/{kind}", GENERIC}
    assert "HUB_TELEPHONY__MANGO__API_SALT" in missing["/webhooks/telephony/mango/events/{kind}"]
    table = CliRunner().invoke(
        build_cli(host), ["plugins", "list"], obj=host, catch_exceptions=False, env={"COLUMNS": "300"}
    )
    assert "not mounted: /webhooks/telephony/generic" in table.output


def test_a_short_webhook_secret_is_refused(telephony_hub) -> None:
    hub = telephony_hub(generic_token="form-token-1")  # the plugin is set aside; the hub itself goes on
    health = hub.health()["plugins"]["telephony"]
    assert health["status"] == "down"
    assert re.search(r"HUB_TELEPHONY__GENERIC_TOKEN: .*at least 16 characters", health["error"])
    assert "form-token-1" not in health["error"]


# --- Zadarma replays ----------------------------------------------------------------------------------------------
def _missed_call(blocks):
    start, start_sig = blocks["NOTIFY_START"]
    end, _ = blocks["NOTIFY_END"]
    missed, headers = ZadarmaSender(ZADARMA_SECRET).signed({**end, "disposition": "no answer", "duration": "0"})
    return (start, start_sig), (missed, headers["Signature"])


def test_a_captured_notify_end_resent_with_a_new_call_id_is_a_replay(telephony_hub) -> None:
    hub = telephony_hub()
    hub.start("all")
    api = TestClient(create_app(hub), base_url="http://127.0.0.1")
    (start, start_sig), (end, end_sig) = _missed_call(zadarma_today()[0])
    assert api.post(ZADARMA, data=start, headers={"Signature": start_sig}).json() == {"status": "stored"}
    assert api.post(ZADARMA, data=end, headers={"Signature": end_sig}).json() == {"status": "stored"}
    wait_for(lambda: tasks_on_timeline(hub))
    for n in range(3):  # the signature does not cover pbx_call_id: the same signed message under new call ids
        forged = {**end, "pbx_call_id": f"in_forged_{n}"}
        assert api.post(ZADARMA, data=forged, headers={"Signature": end_sig}).json() == {"status": "replay"}
    # a captured NOTIFY_START turned into a NOTIFY_END (the event name is not signed either)
    turned = {**start, "event": "NOTIFY_END", "pbx_call_id": "in_forged_x", "disposition": "no answer"}
    assert api.post(ZADARMA, data=turned, headers={"Signature": start_sig}).json() == {"status": "replay"}
    # the signed fields re-split at another boundary sign the same string
    resplit = {**end, "caller_id": end["caller_id"] + "7", "called_did": end["called_did"][1:], "pbx_call_id": "in_y"}
    assert api.post(ZADARMA, data=resplit, headers={"Signature": end_sig}).json() == {"status": "replay"}
    assert hub.wait_idle()
    assert len(calls_on_timeline(hub)) == 1 and len(tasks_on_timeline(hub)) == 1


def test_a_notification_of_long_ago_is_stale(telephony_hub) -> None:
    hub = telephony_hub()
    hub.start("all")
    api = TestClient(create_app(hub), base_url="http://127.0.0.1")
    blocks, _ = zadarma_today(datetime.now(UTC).replace(microsecond=0) - timedelta(days=3))
    (_start, _), (end, end_sig) = _missed_call(blocks)
    assert api.post(ZADARMA, data=end, headers={"Signature": end_sig}).json() == {"status": "stale"}
    garbled, headers = ZadarmaSender(ZADARMA_SECRET).signed({**end, "call_start": "yesterday"})
    assert api.post(ZADARMA, data=garbled, headers=headers).status_code == 400
    assert hub.wait_idle()
    assert calls_on_timeline(hub) == [] and tasks_on_timeline(hub) == []


def test_replay_marks_are_forgotten_once_no_fresh_notification_can_use_them(telephony_hub) -> None:
    hub = telephony_hub()
    hub.prepare()
    now = [datetime.now(UTC)]
    guard = ZadarmaReplayGuard(
        hub.state, account="zd-key", timezone="Europe/Moscow", retention=timedelta(hours=48), clock=lambda: now[0]
    )
    stamp = (now[0] - timedelta(minutes=5)).astimezone(MOSCOW).strftime("%Y-%m-%d %H:%M:%S")
    form = {"event": "NOTIFY_END", "caller_id": "79161234567", "called_did": "74951234567", "call_start": stamp}
    assert guard.check({**form, "pbx_call_id": "a"}) == "fresh"
    assert guard.check({**form, "pbx_call_id": "a"}) == "fresh"  # a retry of the same call
    assert guard.check({**form, "pbx_call_id": "b"}) == "replay"
    assert guard.forget_old() == 0
    now[0] += timedelta(days=4)
    assert guard.check({**form, "pbx_call_id": "b"}) == "stale"
    assert guard.forget_old() == 1 and hub.state.items(INDEX_SCOPE) == {}
