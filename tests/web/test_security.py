"""HTTP security, probed from outside as a hostile web page or a guesser would: what the hub refuses and answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hub.core import schema as s
from hub.core.errors import ConfigError
from hub.core.settings import HttpSettings
from hub.web.app import create_app
from hub.web.security import FailedAuthLimit, HostNames, check_listen_address

ROOT = Path(__file__).resolve().parents[2]
LOCAL = "http://127.0.0.1"
TOKEN = "api-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CLIENT = {
    "kind": "client",
    "source": {"system": "crm", "entity": "contact", "id": "1"},
    "name": "Иван Петров",
    "phones": ["+7 916 123-45-67"],
}


def clients_stored(hub) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(s.clients)).scalar() or 0)


@pytest.fixture
def api(embedded):
    hub = embedded.hub()
    hub.prepare()
    with TestClient(create_app(hub), base_url=LOCAL) as client:
        client.hub = hub  # type: ignore[attr-defined]
        yield client


# --- cross-site requests and DNS rebinding ----------------------------------------------------------------------
def test_a_text_plain_post_from_a_web_page_is_refused_and_stores_nothing(api):
    # the "simple request" a page can send to any address without a preflight
    body = '{"kind": "client", "source": {"system": "crm", "entity": "contact", "id": "1"}, "name": "x"}'
    r = api.post("/api/observations", content=body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["detail"]
    form = api.post("/api/observations", content="a=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    assert api.post("/api/observations", content=body).status_code == 415  # no Content-Type at all
    assert clients_stored(api.hub) == 0


def test_a_foreign_origin_cannot_create_or_merge_clients(api):
    evil = {"Origin": "http://evil.example"}
    assert api.post("/api/observations", json=CLIENT, headers=evil).status_code == 403
    assert clients_stored(api.hub) == 0
    a = api.post("/api/observations", json=CLIENT).json()["client_id"]
    b = api.post(
        "/api/observations", json={**CLIENT, "source": {**CLIENT["source"], "id": "2"}, "phones": ["+79160000000"]}
    )
    merged = api.post(f"/api/clients/{a}/merge", params={"other_id": b.json()["client_id"]}, headers=evil)
    assert merged.status_code == 403 and api.hub.merge_candidates() == []
    assert api.get(f"/api/clients/{b.json()['client_id']}").json()["merged_into"] is None
    assert api.post("/api/observations", json=CLIENT, headers={"Origin": "null"}).status_code == 403
    # the hub's own pages (same origin) and curl (no Origin) still work
    same = {**CLIENT, "source": {**CLIENT["source"], "id": "3"}, "phones": ["+79161110000"]}
    assert api.post("/api/observations", json=same, headers={"Origin": LOCAL}).status_code == 201


def test_a_rebound_host_cannot_read_the_record(embedded):
    hub = embedded.hub()
    hub.prepare()
    hub.ingest(hub.parse_observation(CLIENT))
    with TestClient(create_app(hub), base_url="http://evil.example:8080") as rebound:
        r = rebound.get("/api/clients", params={"q": "Иван"})
        assert r.status_code == 400 and "Иван" not in r.text
        assert rebound.get("/metrics").status_code == 400
        assert rebound.get("/healthz").status_code == 200  # liveness probes use whatever Host they like
    with TestClient(create_app(hub), base_url="http://localhost:8080") as local:
        assert local.get("/api/clients", params={"q": "Иван"}).json()["items"][0]["name"] == "Иван Петров"


def test_configured_names_are_answered(embedded):
    hub = embedded.hub(http={"allowed_hosts": ["hub.example.com", "*.corp.example"], "api_token": TOKEN})
    hub.prepare()
    for base in ("https://hub.example.com", "https://crm.corp.example"):
        with TestClient(create_app(hub), base_url=base) as client:
            assert client.get("/api/clients", params={"q": "x"}, headers=AUTH).status_code == 200
            assert client.post("/api/observations", json=CLIENT, headers={**AUTH, "Origin": base}).status_code in (
                200,
                201,
            )
    with TestClient(create_app(hub), base_url="https://corp.example.evil") as client:
        assert client.get("/api/clients", params={"q": "x"}, headers=AUTH).status_code == 400


def test_every_answer_carries_the_security_headers(api):
    for response in (api.get("/api/clients", params={"q": "x"}), api.get("/healthz"), api.get("/api/clients/999")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert api.get("/api/clients", params={"q": "x"}).headers["cache-control"] == "no-store"
    page = api.get("/docs")
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    refused = api.post("/api/observations", content="x", headers={"Content-Type": "text/plain"})
    assert refused.headers["x-content-type-options"] == "nosniff"


# --- guessing -----------------------------------------------------------------------------------------------------
def test_wrong_tokens_in_a_loop_are_slowed_to_a_halt(embedded):
    hub = embedded.hub(http={"api_token": TOKEN, "auth_failures": "10/min burst 10"})
    hub.prepare()
    with TestClient(create_app(hub), base_url=LOCAL) as client:
        answers = [
            client.get("/api/clients", params={"q": "x"}, headers={"Authorization": f"Bearer guess-{n:016d}"})
            for n in range(50)
        ]
        codes = [a.status_code for a in answers]
        assert codes[:10] == [401] * 10 and set(codes[10:]) == {429}
        assert int(answers[-1].headers["retry-after"]) >= 1
        # even the right token waits now: the guesser cannot tell a hit from a miss
        assert client.get("/api/clients", params={"q": "x"}, headers=AUTH).status_code == 429
        assert client.get("/healthz").status_code == 200


def test_guessed_webhook_paths_count_as_failures(embedded):
    hub = embedded.hub(http={"auth_failures": "5/min burst 5"})
    hub.prepare()
    with TestClient(create_app(hub), base_url=LOCAL) as client:
        codes = [client.post(f"/webhooks/amocrm/guess{n:012d}", content=b"x").status_code for n in range(20)]
    assert codes[:5] == [404] * 5 and set(codes[5:]) == {429}


def test_the_failure_bucket_drains_and_remembers_a_bounded_number_of_addresses():
    now = [0.0]
    limit = FailedAuthLimit("10/min burst 2", max_clients=3, clock=lambda: now[0])
    limit.failed("a")
    limit.failed("a")
    assert limit.retry_after("a") > 0 and limit.retry_after("b") == 0
    now[0] += 6.0  # one failure drained
    assert limit.retry_after("a") == 0
    for address in "bcde":
        limit.failed(address)
    assert len(limit._buckets) == 3


def test_a_short_api_token_stops_the_hub_at_start(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "HUB_DATA_DIR": str(tmp_path),
        "HUB_HTTP__API_TOKEN": "secret",
        "HOME": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "-m", "hub.cli", "run", "--port", "1"],
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "HUB_HTTP__API_TOKEN" in out.stderr and "at least 16 characters" in out.stderr
    assert "secret" not in out.stderr.replace("secrets", "")


def test_the_hub_refuses_to_listen_beyond_loopback_without_a_token(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HUB_DATA_DIR": str(tmp_path), "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "hub.cli", "run", "--host", "0.0.0.0", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and "refusing to listen on 0.0.0.0 without an API token" in out.stderr


def test_listening_beyond_loopback_needs_a_token_or_an_explicit_loud_setting():
    with pytest.raises(ConfigError, match="HUB_HTTP__API_TOKEN"):
        check_listen_address(HttpSettings(), "0.0.0.0")
    check_listen_address(HttpSettings(), "127.0.0.1")
    check_listen_address(HttpSettings(), "localhost")
    check_listen_address(HttpSettings(api_token=TOKEN), "0.0.0.0")
    with structlog.testing.capture_logs() as logs:
        check_listen_address(HttpSettings(allow_remote_without_token=True), "::")
    assert logs and logs[0]["log_level"] == "warning" and "WITHOUT AN API TOKEN" in logs[0]["event"]


# --- who read what --------------------------------------------------------------------------------------------------
def test_reads_of_client_data_are_in_the_access_log_in_production(production):
    hub = production.hub(http={"api_token": TOKEN})
    hub.prepare()
    client_id = hub.ingest(hub.parse_observation(CLIENT)).client_id
    with TestClient(create_app(hub), base_url=LOCAL) as client, structlog.testing.capture_logs() as logs:
        client.get("/api/clients", params={"q": "Иван"}, headers=AUTH)
        client.get(f"/api/clients/{client_id}", headers=AUTH)
        client.post("/api/observations", json={**CLIENT, "name": "Иван"}, headers=AUTH)
    reads = [e for e in logs if e["event"] == "client data read"]
    assert [(e["principal"], e["route"], e["count"]) for e in reads] == [
        ("token:api", "/api/clients", 1),
        ("token:api", "/api/clients/{client_id}", 1),
    ]
    assert all(e["client"] == "testclient" and TOKEN not in str(e) for e in reads)


def test_the_access_log_is_off_on_the_embedded_setup_unless_asked_for(embedded):
    for settings, expected in (({}, 0), ({"access_log": True}, 1)):
        hub = embedded.hub(http=settings)
        hub.prepare()
        with TestClient(create_app(hub), base_url=LOCAL) as client, structlog.testing.capture_logs() as logs:
            client.get("/api/clients", params={"q": "x"})
        assert len([e for e in logs if e["event"] == "client data read"]) == expected
        hub.store.dispose()


def test_a_rebound_host_cannot_export_and_an_export_is_logged_with_its_count(embedded):
    from crm_hub_plugins.excel import plugin as excel_plugin

    hub = embedded.hub([("excel", excel_plugin)], http={"access_log": True})
    hub.prepare()
    hub.ingest(hub.parse_observation(CLIENT))
    with TestClient(create_app(hub), base_url="http://evil.example") as rebound:
        refused = rebound.get("/api/export.xlsx")
        assert refused.status_code == 400 and not refused.content.startswith(b"PK")
    with TestClient(create_app(hub), base_url=LOCAL) as client, structlog.testing.capture_logs() as logs:
        assert client.get("/api/export.xlsx").content.startswith(b"PK")
    [read] = [e for e in logs if e["event"] == "client data read"]
    assert (read["principal"], read["route"], read["count"]) == ("anonymous:loopback", "/api/export.xlsx", 1)


def test_host_names_with_ports_and_ipv6_are_understood():
    names = HostNames(HttpSettings(allowed_hosts=["hub.example.com", "*.corp.example"]))
    for host in (
        "127.0.0.1:8080",
        "[::1]:8080",
        "localhost",
        "HUB.example.com:443",
        "a.corp.example",
        "hub.example.com.",
    ):
        assert names.allows(host), host
    for host in (None, "", "evil.example", "corp.example", "127.0.0.1.evil.example", "[::2]:80", "xcorp.example"):
        assert not names.allows(host), host
