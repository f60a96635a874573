"""The REST API: feed and read the unified record; bad input gets a clear 4xx and stores nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hub.core import schema as s
from hub.web.app import create_app


@pytest.fixture
def api(backend):
    hub = backend.hub()
    hub.prepare()
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as client:
        client.hub = hub  # type: ignore[attr-defined]
        yield client


def stored(hub) -> tuple[int, int, int]:
    with hub.store.read() as conn:
        return tuple(
            int(conn.execute(select(func.count()).select_from(t)).scalar() or 0)  # type: ignore[return-value]
            for t in (s.clients, s.items, s.outbox)
        )


CALL = {
    "kind": "interaction",
    "channel": "call",
    "source": {"system": "asterisk", "entity": "call", "id": "c-1"},
    "client": {"phones": ["8 (916) 123-45-67"], "name": "Иван Петров"},
    "direction": "in",
    "status": "answered",
    "duration_s": 65,
    "occurred_at": "2026-11-20T09:30:00+03:00",
}


def test_post_an_observation_and_read_the_client_and_timeline(api):
    r = api.post("/api/observations", json=CALL)
    assert r.status_code == 201, r.text
    client_id = r.json()["client_id"]
    again = api.post("/api/observations", json=CALL)
    assert again.status_code == 200 and again.json()["events"] == []

    found = api.get("/api/clients", params={"phone": "+7 916 123 45 67"}).json()["items"]
    assert [c["id"] for c in found] == [client_id]
    assert found[0]["phones"] == ["+79161234567"] and found[0]["name"] == "Иван Петров"
    assert found[0]["refs"] == []
    assert api.get("/api/clients", params={"q": "петров"}).json()["items"][0]["id"] == client_id
    client = api.get(f"/api/clients/{client_id}").json()
    assert client["kind"] == "person"
    timeline = api.get(f"/api/clients/{client_id}/timeline").json()["items"]
    assert len(timeline) == 1
    assert timeline[0]["channel"] == "call" and timeline[0]["fields"]["duration_s"] == 65
    assert timeline[0]["occurred_at"].startswith("2026-11-20T06:30:00")


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "malformed_json"),
        (b'"a string"', 422, "bad_input"),
        (b"[" + b",".join([b"{}"] * 1001) + b"]", 413, "too_many"),
        (b'{"kind": "fax", "source": {"system": "x", "entity": "y", "id": "1"}}', 422, "unknown_kind"),
        (
            b'{"kind": "client", "source": {"system": "x", "entity": "y", "id": "1"}, "phones": ["12"]}',
            422,
            "bad_input",
        ),
        (b'{"kind": "client", "phones": ["+79161234567"]}', 422, "bad_input"),
        (
            b'{"kind": "interaction", "channel": "call", "source": {"system": "x", "entity": "c", "id": "1"},'
            b' "client": {"client_id": 424242}}',
            422,
            "bad_input",
        ),
        (b'{"kind": "client", "source": {"system": "x", "entity": "y", "id": "1"}, "unexpected": 1}', 422, "bad_input"),
    ],
)
def test_bad_input_gets_a_clear_4xx_and_stores_nothing(api, body, status, error):
    r = api.post("/api/observations", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["error"] == error and r.json()["detail"]
    assert stored(api.hub) == (0, 0, 0)
    assert api.get("/healthz").status_code == 200  # and the hub keeps serving


def test_the_reason_names_the_bad_field(api):
    r = api.post(
        "/api/observations",
        json={"kind": "client", "source": {"system": "x", "entity": "y", "id": "1"}, "observed_at": "yesterday"},
    )
    assert "observed_at" in r.json()["detail"]


def test_oversized_body_is_refused_with_413(api):
    huge = {**CALL, "body": "я" * 2_000_000}
    r = api.post("/api/observations", json=huge)
    assert r.status_code == 413 and "larger than" in r.json()["detail"]
    assert stored(api.hub) == (0, 0, 0)


def test_unknown_client_id_is_404(api):
    assert api.get("/api/clients/999").status_code == 404
    assert api.get("/api/clients/999/timeline").json()["error"] == "not_found"


def test_find_without_a_criterion_is_422(api):
    assert api.get("/api/clients").status_code == 422


def test_health_readiness_metrics_and_openapi(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] is True
    api.post("/api/observations", json=CALL)
    metrics = api.get("/metrics").text
    assert 'hub_observations_total{kind="interaction",outcome="applied"}' in metrics
    assert "hub_outbox_pending" in metrics
    spec = api.get("/openapi.json").json()
    assert "/api/observations" in spec["paths"] and "ClientObservation" in spec["components"]["schemas"]


def test_merge_and_undo_through_the_api(api):
    a = api.post(
        "/api/observations",
        json={
            "kind": "client",
            "source": {"system": "b24", "entity": "c", "id": "1"},
            "name": "Иван",
            "phones": ["+79161111111"],
        },
    ).json()["client_id"]
    b = api.post(
        "/api/observations",
        json={
            "kind": "client",
            "source": {"system": "b24", "entity": "c", "id": "2"},
            "name": "Иван",
            "emails": ["i@x.ru"],
        },
    ).json()["client_id"]
    merge_id = api.post(f"/api/clients/{a}/merge", params={"other_id": b}).json()["merge_id"]
    assert api.get(f"/api/clients/{a}").json()["emails"] == ["i@x.ru"]
    assert api.post(f"/api/merges/{merge_id}/undo").status_code == 200
    assert api.get(f"/api/clients/{a}").json()["emails"] == []


def test_api_token_protects_the_api_but_not_health(embedded):
    hub = embedded.hub(http={"api_token": "s3cret-token-of-16+chars"})
    hub.prepare()
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as client:
        assert client.get("/api/clients", params={"q": "x"}).status_code == 401
        ok = client.get("/api/clients", params={"q": "x"}, headers={"authorization": "Bearer s3cret-token-of-16+chars"})
        assert ok.status_code == 200
        assert client.get("/healthz").status_code == 200


def _metric(text: str, prefix: str) -> float:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(lines[0].split()[-1]) if lines else 0.0


def test_external_api_calls_and_rate_limit_waits_are_in_the_metrics(api):
    calls = 'hub_api_calls_total{account="crm:test-account"}'
    waits = 'hub_rate_limit_wait_seconds_total{account="crm:test-account"}'
    before = api.get("/metrics").text
    limiter = api.hub.limiter("crm:test-account", "5/s burst 2")
    for _ in range(4):
        limiter.acquire()
    after = api.get("/metrics").text
    assert _metric(after, calls) - _metric(before, calls) == 4
    assert _metric(after, waits) - _metric(before, waits) > 0.2  # two requests over the burst waited ~0.2 s each


def test_a_batch_applies_each_observation_or_refuses_it_alone(api):
    calls = [{**CALL, "source": {"system": "asterisk", "entity": "call", "id": f"c-{i}"}} for i in range(3)]
    bad = {**CALL, "client": {"phones": ["12"]}, "source": {"system": "asterisk", "entity": "call", "id": "bad"}}
    r = api.post("/api/observations", json=[calls[0], bad, calls[1], {"kind": "fax"}, calls[2], calls[0]])
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["applied"], body["unchanged"], body["rejected"]) == (3, 1, 2)
    assert "phone" in body["items"][1]["detail"] and "unknown observation kind" in body["items"][3]["detail"]
    assert body["items"][5]["events"] == []  # the repeat of the first call changed nothing
    client_id = body["items"][0]["client_id"]
    assert len(api.get(f"/api/clients/{client_id}/timeline").json()["items"]) == 3
