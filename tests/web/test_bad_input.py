"""Bad input to the REST API gets a clear 4xx naming the problem, stores nothing, and never a 5xx.

Each case is one class of input a probe found answered with 500 or accepted when it should be refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hub.core import schema as s
from hub.web.app import create_app

BIG = 2**63  # one past SQLite's and PostgreSQL's largest integer


@pytest.fixture
def api(backend: Any) -> Iterator[TestClient]:
    hub = backend.hub()
    hub.prepare()
    with TestClient(create_app(hub), base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        client.hub = hub  # type: ignore[attr-defined]
        yield client


def stored(hub: Any) -> tuple[int, ...]:
    with hub.store.read() as conn:
        return tuple(
            int(conn.execute(select(func.count()).select_from(t)).scalar() or 0)
            for t in (s.clients, s.items, s.outbox, s.contact_points, s.refs)
        )


def call(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "interaction",
        "channel": "call",
        "source": {"system": "asterisk", "entity": "call", "id": "c-1"},
        "client": {"phones": ["+7 916 123-45-67"], "name": "Иван Петров"},
        "direction": "in",
        "status": "answered",
        "duration_s": 65,
        "occurred_at": "2026-11-20T09:30:00+03:00",
    }
    body.update(changes)
    return body


def client(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "client", "source": {"system": "b24", "entity": "contact", "id": "1"}}
    body.update(changes)
    return body


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


# (name, body as JSON text, the field or word the answer must name)
BAD_BODIES: list[tuple[str, str, str]] = [
    ("client_id 2^63", json.dumps(call(client={"client_id": BIG})), "client_id"),
    ("ref target_id 2^63", json.dumps({**client(kind="ref"), "target_id": BIG}), "target_id"),
    ("negative client_id", json.dumps(call(client={"client_id": -1})), "client_id"),
    ("JSON nested 100,000 deep", nested(100_000), "deep"),
    ("array nested 100,000 deep", "[" * 100_000 + "]" * 100_000, "deep"),
    ("deep JSON inside fields", json.dumps(call())[:-1] + ', "fields": {"x": ' + nested(5000) + "}}", "deep"),
    (
        "observed_at at year 1 with an offset",
        json.dumps(client(observed_at="0001-01-01T00:00:00+05:00")),
        "observed_at",
    ),
    (
        "occurred_at at year 9999 with an offset",
        json.dumps(call(occurred_at="9999-12-31T23:59:59-05:00")),
        "occurred_at",
    ),
    ("ended_at at the edge", json.dumps(call(ended_at="9999-12-31T23:59:59+00:00")), "ended_at"),
    ("due_at at the edge", json.dumps({**call(kind="task"), "due_at": "0001-01-01T00:00:00+01:00"}), "due_at"),
    ("NUL in a name", json.dumps(client(name="Иван\u0000Петров")), "name"),
    ("NUL in a source id", json.dumps(client(source={"system": "b24", "entity": "contact", "id": "1\u00002"})), "id"),
    ("NUL in a field key", json.dumps(client(fields={"a\u0000b": "x"})), "fields"),
    ("NUL in a field value", json.dumps(client(fields={"note": "x\u0000"})), "fields"),
    ("id of 256 characters", json.dumps(client(source={"system": "b24", "entity": "contact", "id": "x" * 256})), "id"),
    ("identity key of 100 characters", json.dumps(client(identity={"k" * 100: "1"})), "identity"),
    ("identity value of 1,000 characters", json.dumps(client(identity={"inn": "7" * 1000})), "identity"),
    ("field key of 1,000 characters", json.dumps(client(fields={"k" * 1000: 1})), "fields"),
    ("Infinity in duration_s", json.dumps(call())[:-1] + ', "duration_s": Infinity}', "Infinity"),
    ("NaN in duration_s", json.dumps(call())[:-1] + ', "duration_s": NaN}', "NaN"),
    ("-Infinity in a field", json.dumps(client())[:-1] + ', "fields": {"x": -Infinity}}', "Infinity"),
    ("1E+400 as a duration", json.dumps(call())[:-1] + ', "duration_s": 1E+400}', "duration_s"),
    ("1E+400 as an amount", json.dumps({**call(kind="deal"), "amount": "1E+400"}), "amount"),
    ("1E+400 number as an amount", json.dumps(call(kind="deal"))[:-1] + ', "amount": 1E+400}', "amount"),
    ("negative duration", json.dumps(call(duration_s=-5)), "duration_s"),
    ("name of 900,000 characters", json.dumps(client(name="x" * 900_000)), "name"),
    ("subject of 100,000 characters", json.dumps(call(subject="s" * 100_000)), "subject"),
    ("10,000 phones", json.dumps(client(phones=["+79161234567"] * 10_000)), "phones"),
    ("a call that ends before it starts", json.dumps(call(ended_at="2026-11-20T09:00:00+03:00")), "ended_at"),
    (
        "observed_at in the far future",
        json.dumps(client(name="Иван", observed_at="2999-01-01T00:00:00Z")),
        "observed_at",
    ),
    ("a phone that cannot be real", json.dumps(client(phones=["8 (000) 000-00-00"])), "phones"),
    ("a company key phone that cannot be real", json.dumps(call(client={"phones": ["8 (000) 000-00-00"]})), "phones"),
    ("not UTF-8", '{"kind": "client", "name": "\xff"}', "UTF-8"),
]


@pytest.mark.parametrize(("name", "body", "named"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_a_bad_observation_gets_a_4xx_naming_the_problem_and_stores_nothing(
    api: TestClient, name: str, body: str, named: str
) -> None:
    raw = body.encode("latin-1") if name == "not UTF-8" else body.encode()
    r = api.post("/api/observations", content=raw, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    answer = r.json()
    assert answer["error"] and named.lower() in answer["detail"].lower(), answer
    assert "Traceback" not in r.text
    assert stored(api.hub) == (0, 0, 0, 0, 0)  # type: ignore[attr-defined]
    assert api.get("/healthz").status_code == 200


BAD_PATHS: list[tuple[str, str]] = [
    ("GET", f"/api/clients/{BIG}"),
    ("GET", f"/api/clients/{BIG}/timeline"),
    ("GET", f"/api/clients/{-BIG}"),
    ("POST", f"/api/clients/{BIG}/merge?other_id=1"),
    ("POST", f"/api/clients/1/merge?other_id={BIG}"),
    ("POST", f"/api/merges/{BIG}/undo"),
    ("POST", f"/api/dlq/{BIG}/replay"),
    ("GET", "/api/clients?phone=%00"),
    ("GET", "/api/clients?q=%00"),
    ("GET", "/api/clients?email=%00@x.ru"),
    ("GET", "/api/clients?q=" + "x" * 5000),
    ("GET", "/api/dlq?queue=%00"),
    ("GET", "/api/merge-candidates?status=%00"),
    ("GET", "/api/clients/1/timeline?kind=%00"),
]


@pytest.mark.parametrize(("method", "path"), BAD_PATHS)
def test_bad_parameters_get_a_4xx(api: TestClient, method: str, path: str) -> None:
    r = api.request(method, path)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert r.json()["error"] and r.json()["detail"]


def test_a_chunked_body_over_the_limit_is_413(api: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"kind": "client", "name": "'
        for _ in range(1200):
            yield b"x" * 1000
        yield b'"}'

    r = api.post("/api/observations", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text[:300]
    assert "larger than" in r.json()["detail"]
    assert stored(api.hub) == (0, 0, 0, 0, 0)  # type: ignore[attr-defined]


def test_each_item_of_a_batch_of_1000_is_applied_or_refused_on_its_own(api: TestClient) -> None:
    good = [
        client(source={"system": "b24", "entity": "contact", "id": str(i)}, name=f"Клиент {i}") for i in range(1000)
    ]
    bad_at = {
        10: client(source={"system": "b24", "entity": "contact", "id": "nul"}, name="a\u0000b"),
        200: call(client={"client_id": BIG}),
        400: client(source={"system": "b24", "entity": "contact", "id": "k"}, identity={"k" * 100: "1"}),
        600: client(source={"system": "b24", "entity": "contact", "id": "e"}, observed_at="0001-01-01T00:00:00+05:00"),
        999: client(source={"system": "b24", "entity": "contact", "id": "n"}, phones=["8 (000) 000-00-00"]),
    }
    items = [bad_at.get(i, obs) for i, obs in enumerate(good)]
    r = api.post("/api/observations", json=items)
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert (body["applied"], body["rejected"]) == (995, 5)
    assert [i for i, item in enumerate(body["items"]) if "error" in item] == sorted(bad_at)
    assert stored(api.hub)[0] == 995  # type: ignore[attr-defined]


def test_infinity_never_reaches_the_timeline_so_reads_keep_working(api: TestClient) -> None:
    r = api.post(
        "/api/observations",
        content=(json.dumps(call())[:-1] + ', "fields": {"x": Infinity}}').encode(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    assert api.post("/api/observations", json=call()).status_code == 201
    client_id = api.get("/api/clients", params={"phone": "+79161234567"}).json()["items"][0]["id"]
    assert api.get(f"/api/clients/{client_id}/timeline").status_code == 200


def test_a_good_observation_at_the_edges_of_every_bound_is_accepted(api: TestClient) -> None:
    edge = call(
        duration_s=0,
        subject="s" * 1000,
        ended_at="2026-11-20T09:30:00+03:00",
        client={"phones": ["8 (916) 123-45-67"], "name": "И" * 1000},
    )
    assert api.post("/api/observations", json=edge).status_code == 201, api.post("/api/observations", json=edge).text
