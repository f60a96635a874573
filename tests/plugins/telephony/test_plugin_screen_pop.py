"""Screen pop: a ringing call is listed with the caller's summary and pushed as a server-sent event."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
from fastapi.testclient import TestClient

from crm_hub_plugins.telephony.sandbox import AmiEvent, AMISandbox, generate_call
from hub.core.events import ClientKey, ClientObservation, DealObservation, InteractionObservation, SourceRef
from hub.testing import serve_asgi
from hub.web.app import create_app
from tests.conftest import wait_for

from .conftest import ami_settings

PHONE = "79165550101"


def known_caller(hub) -> int:
    crm = SourceRef(system="bitrix24", account="acme", entity="contact", id="7")
    company = ClientObservation(
        source=SourceRef(system="bitrix24", account="acme", entity="company", id="3"),
        client_kind="company",
        name="ООО Ромашка",
    )
    hub.ingest(company)
    person = hub.ingest(
        ClientObservation(
            source=crm,
            name="Мария Петрова",
            phones=[PHONE],
            company=ClientKey(ref=company.source, kind="company"),
        )
    )
    base = datetime.now(UTC) - timedelta(days=10)
    for i in range(7):
        hub.ingest(
            InteractionObservation(
                source=SourceRef(system="bitrix24", account="acme", entity="activity", id=str(i)),
                channel="note",
                client=ClientKey(ref=crm),
                occurred_at=base + timedelta(days=i),
                subject=f"Заметка {i}",
            )
        )
    for i, status in enumerate(["open", "won"]):
        hub.ingest(
            DealObservation(
                source=SourceRef(system="bitrix24", account="acme", entity="deal", id=str(i)),
                client=ClientKey(ref=crm),
                title=f"Сделка {i}",
                status=status,
                amount=1000 * (i + 1),
                currency="RUB",
            )
        )
    assert person.client_id is not None
    return person.client_id


def split_at_ringing(events: list[AmiEvent]) -> tuple[list[AmiEvent], list[AmiEvent]]:
    """The events up to the operator's phone ringing, and the rest of the call."""
    at = next(
        i
        for i, e in enumerate(events)
        if e["Event"] == "Newstate" and e["ChannelStateDesc"] == "Ringing" and e["Channel"].startswith("PJSIP/101")
    )
    return events[: at + 1], events[at + 1 :]


def sse_events(response: httpx.Response) -> Iterator[tuple[str, dict]]:
    event = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: ") and event:
            yield event, json.loads(line[len("data: ") :])
            event = None


def test_ringing_call_is_listed_with_the_callers_summary_until_it_ends(telephony_hub) -> None:
    with AMISandbox() as sandbox:
        hub = telephony_hub(**ami_settings(sandbox))
        client_id = known_caller(hub)
        hub.start("all")
        assert sandbox.wait_for_login()
        ringing, rest = split_at_ringing(generate_call("answered", rng=random.Random(1), number=PHONE))
        sandbox.send_events(ringing)
        api = TestClient(create_app(hub), base_url="http://127.0.0.1")
        [call] = wait_for(lambda: api.get("/api/calls/live").json()["items"])
        assert (call["state"], call["direction"], call["number"], call["extension"]) == (
            "ringing", "in", "+79165550101", "101"
        )  # fmt: skip
        caller = call["client"]
        assert (caller["id"], caller["name"], caller["company"]) == (client_id, "Мария Петрова", "ООО Ромашка")
        assert [i["subject"] for i in caller["last_interactions"]] == [f"Заметка {i}" for i in (6, 5, 4, 3, 2)]
        assert [d["title"] for d in caller["open_deals"]] == ["Сделка 0"]
        sandbox.send_events(rest[:6])
        wait_for(lambda: api.get("/api/calls/live").json()["items"][0]["state"] == "active")
        sandbox.send_events(rest[6:])
        wait_for(lambda: api.get("/api/calls/live").json()["items"] == [])


def test_sse_client_receives_the_ringing_call_with_its_client(telephony_hub) -> None:
    with AMISandbox() as sandbox:
        hub = telephony_hub(**ami_settings(sandbox))
        known_caller(hub)
        hub.start("all")
        assert sandbox.wait_for_login()
        ringing, rest = split_at_ringing(generate_call("answered", rng=random.Random(2), number=PHONE))
        with serve_asgi(create_app(hub)) as url, httpx.stream("GET", f"{url}/api/calls/live/stream", timeout=10) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            sandbox.send_events(ringing)
            events = sse_events(r)
            kind, data = next(events)
            assert kind == "ringing" and data["client"]["name"] == "Мария Петрова"
            assert len(data["client"]["last_interactions"]) == 5
            sandbox.send_events(rest)
            assert [k for k, _ in (next(events), next(events))] == ["active", "ended"]


def test_a_web_process_without_the_listener_serves_calls_heard_elsewhere(telephony_hub) -> None:
    with AMISandbox() as sandbox:
        listener = telephony_hub(**ami_settings(sandbox))
        known_caller(listener)
        listener.start("all")
        web = telephony_hub(**ami_settings(sandbox))
        web.prepare()  # another process: same database, no AMI session of its own
        assert sandbox.wait_for_login()
        ringing, rest = split_at_ringing(generate_call("answered", rng=random.Random(3), number=PHONE))
        with serve_asgi(create_app(web)) as url, httpx.stream("GET", f"{url}/api/calls/live/stream", timeout=10) as r:
            sandbox.send_events(ringing)
            events = sse_events(r)
            kind, data = next(events)
            assert kind == "ringing" and data["client"]["name"] == "Мария Петрова"
            sandbox.send_events(rest[:6])  # answered: polled, so it shows once it has lasted a poll interval
            assert next(events)[0] == "active"
            sandbox.send_events(rest[6:])
            assert next(events)[0] == "ended"
