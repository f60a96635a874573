"""The amoCRM client against the sandbox: paging, batching, searching, error classification and the ban."""

from __future__ import annotations

import time

import httpx
import pytest
from amocrm_testing import Running, fixture_json

from crm_hub_plugins.amocrm.client import AccountBanned, AmoCRMClient
from crm_hub_plugins.amocrm.sandbox import create_app
from hub.core.errors import ExternalAPIError, FatalDelivery
from hub.core.ratelimit import RateLimiter
from hub.testing import serve_asgi


def test_list_all_reads_250_a_page_following_next_links(sandbox: Running) -> None:
    sandbox.admin("seed", {"contacts": 600})
    client = sandbox.client()
    contacts = list(client.list_all("/api/v4/contacts"))
    assert len(contacts) == 600 and len({c["id"] for c in contacts}) == 600
    assert client.requests_sent == 3
    assert sandbox.sandbox.by_route["GET /api/v4/contacts"] == 3


def test_empty_list_is_204_and_yields_nothing(sandbox: Running) -> None:
    client = sandbox.client()
    assert list(client.list_all("/api/v4/leads")) == []
    assert client.search("contacts", "nobody") == []
    assert client.requests_sent == 2


def test_writes_go_50_a_request_by_default(sandbox: Running) -> None:
    client = sandbox.client()
    created = client.add("/api/v4/contacts", [{"name": f"Клиент {n}"} for n in range(120)])
    assert [c["request_id"] for c in created[:2]] == ["0", "1"]
    assert len(created) == 120 and client.requests_sent == 3
    updated = client.update("/api/v4/contacts", [{"id": c["id"], "name": "Новое имя"} for c in created])
    assert len(updated) == 120 and client.requests_sent == 6
    assert all(r["name"] == "Новое имя" for r in sandbox.sandbox.account.records["contacts"].values())


def test_a_gateway_timeout_halves_the_batch_until_it_fits(sandbox: Running) -> None:
    sandbox.admin("faults", {"kind": "batch_504", "threshold": 20})
    client = sandbox.client(write_batch=80)
    created = client.add("/api/v4/contacts", [{"name": f"c{n}"} for n in range(80)])
    assert [c["request_id"] for c in created] == [str(n % 20) for n in range(80)]
    assert len(sandbox.sandbox.account.records["contacts"]) == 80
    # 80 → 2×40 → 4×20: one refused 80, two refused 40s, four accepted 20s.
    assert client.requests_sent == 7


def test_batch_size_is_capped_at_250() -> None:
    with pytest.raises(ValueError, match="250"):
        AmoCRMClient("https://acme.amocrm.ru", "t", write_batch=251)


def test_search_finds_by_cyrillic_name_phone_digits_and_email(sandbox: Running) -> None:
    client = sandbox.client()
    [made] = client.add(
        "/api/v4/contacts",
        [
            {
                "name": "Иван Петров",
                "custom_fields_values": [
                    {"field_code": "PHONE", "values": [{"value": "+7 (916) 123-45-67", "enum_code": "MOB"}]},
                    {"field_code": "EMAIL", "values": [{"value": "Ivan@Example.ru"}]},
                ],
            }
        ],
    )
    for query in ("петров", "89161234567", "9161234567", "ivan@example.ru"):
        assert [c["id"] for c in client.search("contacts", query)] == [made["id"]], query


def test_validation_errors_become_fatal_and_name_every_bad_field(sandbox: Running) -> None:
    sandbox.admin("faults", {"kind": "status", "status": 400, "body": fixture_json("error_400_validation.json")})
    with pytest.raises(FatalDelivery) as caught:
        sandbox.client().add("/api/v4/leads", [{"name": "x"}])
    assert "custom_fields_values.0.field_id" in str(caught.value) and "status_id" in str(caught.value)
    assert caught.value.retriable is False


def test_sandbox_validation_failure_names_the_unknown_field(sandbox: Running) -> None:
    bad = {"name": "x", "custom_fields_values": [{"field_id": 999999, "values": [{"value": "1"}]}]}
    with pytest.raises(FatalDelivery, match=r"request 1: custom_fields_values\.0\.field_id \(NotSupportedChoice"):
        sandbox.client().add("/api/v4/contacts", [{"name": "ok"}, bad])
    assert sandbox.sandbox.account.records["contacts"] == {}  # a failed batch applies nothing


def test_bad_token_is_not_retriable_and_says_what_to_do(sandbox: Running) -> None:
    client = AmoCRMClient(sandbox.url, "wrong-token")
    with pytest.raises(ExternalAPIError, match="hub amocrm connect") as caught:
        client.account()
    assert (caught.value.status, caught.value.retriable) == (401, False)
    assert "wrong-token" not in str(caught.value)


@pytest.mark.parametrize("kind", ["5xx", "html", "drop"])
def test_server_failures_are_retriable(sandbox: Running, kind: str) -> None:
    sandbox.admin("faults", {"kind": kind, "remaining": 1})
    client = sandbox.client()
    with pytest.raises(ExternalAPIError) as caught:
        client.account()
    assert caught.value.retriable is True
    assert client.account()["subdomain"] == "sandbox"  # the fault was one-off


def test_html_with_200_is_not_taken_for_data(sandbox: Running) -> None:
    sandbox.admin("faults", {"kind": "html", "status": 200, "remaining": 1})
    with pytest.raises(ExternalAPIError, match="not JSON"):
        sandbox.client().account()


def test_slow_answers_time_out_as_retriable(sandbox: Running) -> None:
    sandbox.admin("faults", {"kind": "slow", "delay": 0.5, "remaining": 1})
    client = sandbox.client(http=httpx.Client(timeout=0.1))
    with pytest.raises(ExternalAPIError, match="timed out") as caught:
        client.account()
    assert caught.value.retriable


def test_without_pacing_the_account_gets_429_then_a_ban_and_the_client_stops_all_traffic() -> None:
    app = create_app(rate_limit=7, ban_after=2)
    with serve_asgi(app) as url:
        client = AmoCRMClient(url, app.state.sandbox.long_lived_token)
        statuses: list[int | None] = []
        for _ in range(40):
            try:
                client.account()
                statuses.append(200)
            except AccountBanned:
                statuses.append(403)
                break
            except ExternalAPIError as exc:
                assert exc.retry_after == 300
                statuses.append(exc.status)
        assert statuses.count(429) == 2 and statuses[-1] == 403
        assert client.banned
        seen = app.state.sandbox.requests
        for call in (client.account, lambda: list(client.list_all("/api/v4/contacts"))):
            with pytest.raises(AccountBanned, match="support"):
                call()
        assert app.state.sandbox.requests == seen  # nothing more reached the account
        httpx.post(f"{url}/_sandbox/ban-lift")
        time.sleep(1.1)
        client.reset_ban()
        assert client.account()["id"] == 31_000_001


def test_default_7_per_second_pacing_never_trips_the_limit() -> None:
    app = create_app()  # amoCRM's own 7 requests/s
    limiter = RateLimiter("7/s burst 7")
    with serve_asgi(app) as url:
        client = AmoCRMClient(url, app.state.sandbox.long_lived_token, throttle=limiter.acquire)
        started = time.monotonic()
        for _ in range(21):
            client.account()
        elapsed = time.monotonic() - started
    assert app.state.sandbox.rate_limited == 0
    assert 1.7 < elapsed < 4.0  # 7 at once, then 14 more at 7/s
