"""Click-to-call: POST /api/calls and `hub call` through AMI Originate, Mango commands/callback and Zadarma."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from crm_hub_plugins.telephony import plugin as telephony_plugin
from crm_hub_plugins.telephony.sandbox import AMISandbox, MangoSender
from crm_hub_plugins.telephony.sandbox import create_app as callback_emulator
from hub.cli import build_cli
from hub.core.plugins import PluginHost
from hub.testing import serve_asgi
from hub.web.app import create_app
from tests.conftest import wait_for

from .conftest import MANGO_KEY, MANGO_SALT, ZADARMA_KEY, ZADARMA_SECRET, ami_settings, calls_on_timeline


def finished(api: TestClient, request_id: str) -> dict:
    return wait_for(
        lambda: (s := api.get(f"/api/calls/{request_id}").json())["status"] not in ("pending", "ringing") and s
    )


def test_ami_click_to_call_is_correlated_with_its_originate_response_and_call(telephony_hub) -> None:
    with AMISandbox() as sandbox:
        hub = telephony_hub(**ami_settings(sandbox), click_to_call="ami")
        hub.start("all")
        assert sandbox.wait_for_login()
        api = TestClient(create_app(hub), base_url="http://127.0.0.1")
        accepted = api.post("/api/calls", json={"extension": "101", "phone": "+7 916 555-01-02"})
        assert accepted.status_code == 202
        request_id = accepted.json()["request_id"]
        status = finished(api, request_id)
        assert (status["status"], status["provider"], status["reason"]) == ("answered", "ami", 4)
        [call] = wait_for(lambda: calls_on_timeline(hub))
    originate = next(a for a in sandbox.actions if a.get("Action") == "Originate")
    assert (originate["ActionID"], originate["Channel"], originate["Exten"]) == (request_id, "PJSIP/101", "79165550102")
    assert call.fields["originate_id"] == request_id and call.fields["direction"] == "out"
    assert call.client_id == hub.find_clients(phone="+79165550102")[0].id


def test_click_to_call_refuses_what_it_cannot_place(telephony_hub) -> None:
    hub = telephony_hub(mango__api_key="", zadarma__key="")
    hub.prepare()
    api = TestClient(create_app(hub), base_url="http://127.0.0.1")
    assert api.post("/api/calls", json={"extension": "101", "phone": "12"}).status_code == 422
    assert api.post("/api/calls", json={"extension": "", "phone": "+79165550102"}).status_code == 422
    assert api.post("/api/calls", content=b"[1", headers={"Content-Type": "application/json"}).status_code == 400
    unconfigured = api.post("/api/calls", json={"extension": "101", "phone": "+79165550102"})
    assert unconfigured.status_code == 409 and "HUB_TELEPHONY__AMI__HOST" in unconfigured.json()["detail"]
    assert api.get("/api/calls/nope").status_code == 404


@pytest.fixture
def run_cli(embedded, monkeypatch):
    for key, value in embedded.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COLUMNS", "200")
    host = PluginHost(autoload=False, extra=[("telephony", telephony_plugin)])
    cli = build_cli(host)

    def invoke(*args: str, **settings: object):
        for name, value in settings.items():
            monkeypatch.setenv(f"HUB_TELEPHONY__{name.upper()}", str(value))
        return CliRunner().invoke(cli, list(args), obj=host, catch_exceptions=False)

    return invoke


def test_hub_call_opens_a_short_ami_session_and_logs_off(run_cli) -> None:
    with AMISandbox() as sandbox:
        result = run_cli("call", "101", "8 916 555-01-04", "--json", **ami_settings(sandbox))
        assert result.exit_code == 0, result.output
        outcome = json.loads(result.stdout)
        assert (outcome["status"], outcome["phone"], outcome["session"]) == ("answered", "+79165550104", "short")
        # the Logoff reaches the PBX a moment after the command has printed its result
        wait_for(lambda: len(sandbox.actions) >= 3, timeout=10)
        assert [a["Action"] for a in sandbox.actions] == ["Login", "Originate", "Logoff"]
    with AMISandbox(originate_answers=False) as sandbox:
        result = run_cli("call", "101", "+79165550105", **ami_settings(sandbox))
        assert result.exit_code == 1 and "failed no_answer" in result.output


def test_mango_click_to_call_reaches_the_emulator_and_its_call_links_back(telephony_hub) -> None:
    emulator = callback_emulator(mango_api_key=MANGO_KEY, mango_api_salt=MANGO_SALT)
    with serve_asgi(emulator) as url:
        hub = telephony_hub(click_to_call="mango", mango__api_url=f"{url}/vpbx/")
        hub.start("all")
        api = TestClient(create_app(hub), base_url="http://127.0.0.1")
        accepted = api.post("/api/calls", json={"extension": "1234", "phone": "+7 916 555-01-06"})
        request_id = accepted.json()["request_id"]
        assert finished(api, request_id)["status"] == "requested"
    [command] = emulator.state.mango_commands
    assert command == {"command_id": request_id, "from": {"extension": "1234"}, "to_number": "79165550106"}
    sender = MangoSender(MANGO_KEY, MANGO_SALT)
    parties = {"from": {"extension": "1234"}, "to": {"number": "79165550106"}}
    leg = {"entry_id": "e-c2c", "call_id": "leg-1", "seq": 1, "call_state": "Connected", "command_id": request_id,
           "timestamp": 1700000005, **parties}  # fmt: skip
    summary = {"entry_id": "e-c2c", "call_direction": 2, "create_time": 1700000000, "talk_time": 1700000005,
               "end_time": 1700000065, "entry_result": 1, **parties}  # fmt: skip
    api.post("/webhooks/telephony/mango/events/call", data=sender.form(leg))
    api.post("/webhooks/telephony/mango/events/summary", data=sender.form(summary))
    [call] = wait_for(lambda: calls_on_timeline(hub))
    assert call.fields["originate_id"] == request_id and call.fields["talk_s"] == 60.0


def test_zadarma_click_to_call_is_signed_for_the_emulator(run_cli) -> None:
    emulator = callback_emulator(zadarma_key=ZADARMA_KEY, zadarma_secret=ZADARMA_SECRET)
    with serve_asgi(emulator) as url:
        settings = {"click_to_call": "zadarma", "zadarma__key": ZADARMA_KEY, "zadarma__secret": ZADARMA_SECRET}
        result = run_cli("call", "101", "+7 903 111-22-33", zadarma__api_url=url, **settings)
    assert result.exit_code == 0 and result.output.strip().endswith("requested")
    assert emulator.state.zadarma_callbacks == [{"format": "json", "from": "101", "to": "79031112233"}]
