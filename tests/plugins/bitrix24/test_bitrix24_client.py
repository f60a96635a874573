"""The Bitrix24 client against the sandbox: request counts, batching, the rate limit, errors and OAuth refresh."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import pytest
from bitrix24_testing import Portal

from crm_hub_plugins.bitrix24.client import Bitrix24Client, OAuthSession, OAuthTokens
from hub.core.errors import ExternalAPIError, FatalDelivery
from hub.core.ratelimit import RateLimiter


def test_ten_thousand_contacts_are_read_in_four_requests(portal: Portal) -> None:
    portal.sandbox.crm.seed_contacts(10_000)
    client = portal.client()
    rows = list(client.list_all("crm.contact.list", {"select": ["ID", "NAME", "PHONE", "EMAIL"]}))
    assert len(rows) == 10_000 and len({r["ID"] for r in rows}) == 10_000
    assert [r["ID"] for r in rows[:2]] == ["1", "2"] and rows[-1]["ID"] == "10000"
    assert rows[0]["PHONE"][0]["VALUE"] == "+79160000001"
    assert client.requests == 4 == portal.sandbox.requests


def test_offset_paging_also_reads_2500_rows_a_request(portal: Portal) -> None:
    portal.sandbox.crm.seed_contacts(5_001)
    client = portal.client()
    rows = list(client.list_all("crm.contact.list", {"order": {"ID": "ASC"}}, keyset=False))
    assert len({r["ID"] for r in rows}) == 5_001
    assert client.requests == 3


def test_list_all_keeps_the_callers_filter(portal: Portal) -> None:
    portal.sandbox.crm.seed_contacts(130)
    client = portal.client()
    rows = list(client.list_all("crm.contact.list", {"filter": {">ID": 100, "!ID": 120}, "select": ["NAME"]}))
    assert [r["ID"] for r in rows] == [str(i) for i in range(101, 131) if i != 120]
    assert rows[0]["NAME"] == "Контакт 101"
    assert client.requests == 1


def test_an_empty_list_costs_one_request(portal: Portal) -> None:
    client = portal.client()
    assert list(client.list_all("crm.deal.list")) == []
    assert client.requests == 1


def test_writes_go_fifty_to_a_batch(portal: Portal) -> None:
    client = portal.client()
    commands = {f"c{i}": ("crm.contact.add", {"fields": {"NAME": f"Имя {i}"}}) for i in range(120)}
    results, errors = client.batch(commands)
    assert errors == {}
    assert sorted(results.values()) == list(range(1, 121))
    assert client.requests == 3
    assert portal.sandbox.crm.records["contact"][120]["NAME"] == "Имя 119"


def test_batch_reports_failed_commands_by_key(portal: Portal) -> None:
    client = portal.client()
    commands = {
        "ok": ("crm.contact.add", {"fields": {"NAME": "Ок"}}),
        "missing": ("crm.contact.get", {"id": 999}),
        "read": ("crm.contact.get", {"id": "$result[ok]"}),
    }
    results, errors = client.batch(commands)
    assert results["read"]["NAME"] == "Ок"
    assert errors["missing"].description == "Not found"
    halted, halt_errors = client.batch(commands, halt=True)
    assert "read" not in halted and list(halt_errors) == ["missing"]


def test_limiter_keeps_the_bucket_from_ever_overflowing(make_portal: Any) -> None:
    limited = make_portal(rate=10, burst=5)
    # margin: room for arrival jitter (tens of milliseconds on a busy machine), as a real deployment needs too
    limiter = RateLimiter("10/s burst 5", margin=0.2)
    client = limited.client(throttle=limiter.acquire, on_limit_exceeded=limiter.fill)
    started = time.monotonic()
    for _ in range(15):
        client.call("profile")
    assert limited.sandbox.stats["limit_exceeded"] == 0
    assert time.monotonic() - started >= 0.9, "10 requests beyond the burst need about a second at 10/s"


def test_default_two_per_second_burst_fifty(make_portal: Any) -> None:
    real = make_portal()
    with httpx.Client() as http:
        flood = [http.post(real.webhook_url + "profile").status_code for _ in range(56)]
    assert 503 in flood, "without a limiter the 51st quick request overflows the bucket"
    real.sandbox.reset()
    limiter = RateLimiter("2/s burst 50", margin=0.1)
    client = real.client(throttle=limiter.acquire, on_limit_exceeded=limiter.fill)
    started = time.monotonic()
    for _ in range(54):
        client.call("profile")
    elapsed = time.monotonic() - started
    assert real.sandbox.stats["limit_exceeded"] == 0
    assert 1.8 <= elapsed < 4.0, "50 at once, then 2 a second"


def test_query_limit_exceeded_fills_the_bucket_and_retries(make_portal: Any) -> None:
    strict = make_portal(rate=50, burst=5)
    limiter = RateLimiter("50/s burst 50")
    client = strict.client(throttle=limiter.acquire, on_limit_exceeded=limiter.fill)
    for _ in range(20):
        client.call("profile")
    assert strict.sandbox.stats["limit_exceeded"] >= 1
    assert client.limit_exceeded == strict.sandbox.stats["limit_exceeded"]


def test_operation_time_limit_pauses_that_method_until_reset(make_portal: Any) -> None:
    portal = make_portal(rate=1000, burst=1000, operation_window=2.0)
    client = portal.client()
    client.call("crm.contact.list")
    portal.sandbox.block_method("crm.contact.list", 1.5)
    with pytest.raises(ExternalAPIError) as first:
        client.call("crm.contact.list")
    assert first.value.retriable and first.value.status == 429
    assert first.value.retry_after is not None and 0 < first.value.retry_after <= 2.5
    made = client.requests
    with pytest.raises(ExternalAPIError) as again:
        client.call("crm.contact.list")
    assert client.requests == made, "a paused method is not even tried"
    assert again.value.retry_after is not None and again.value.retry_after <= first.value.retry_after
    assert client.call("crm.contact.fields")["ID"]["isReadOnly"] is True, "other methods go on"


def test_operation_time_limit_without_a_known_reset_waits_the_configured_time(portal: Portal) -> None:
    portal.sandbox.block_method("crm.deal.list", 30)
    with pytest.raises(ExternalAPIError) as caught:
        portal.client(operation_limit_wait=45.0).call("crm.deal.list")
    assert caught.value.retry_after == 45.0


@pytest.mark.parametrize("kind", ["status", "html", "drop"])
def test_a_transient_failure_is_retried(portal: Portal, kind: str) -> None:
    portal.sandbox.add_fault(kind, count=1, status=502)
    client = portal.client()
    assert client.call("profile")["ID"] == "1"
    assert client.requests == 2


def test_persistent_server_errors_become_retriable_after_the_retries(portal: Portal) -> None:
    portal.sandbox.add_fault("html", count=10)
    client = portal.client(retries=2)
    with pytest.raises(ExternalAPIError) as caught:
        client.call("crm.contact.list")
    assert caught.value.retriable and client.requests == 3
    assert "non-JSON" in str(caught.value)


def test_a_slow_answer_is_a_retriable_timeout(portal: Portal) -> None:
    portal.sandbox.add_fault("slow", count=5, seconds=0.6)
    client = portal.client(timeout=0.2, retries=1)
    with pytest.raises(ExternalAPIError) as caught:
        client.call("profile")
    assert caught.value.retriable and "timed out" in str(caught.value)


def test_missing_entity_is_fatal(portal: Portal) -> None:
    with pytest.raises(FatalDelivery) as caught:
        portal.client().call("crm.contact.get", {"id": 404})
    assert caught.value.status == 400 and "Not found" in str(caught.value)


def test_invalid_field_values_are_fatal(portal: Portal) -> None:
    with pytest.raises(FatalDelivery, match="ERROR_CORE"):
        portal.client().call("crm.contact.add", {"fields": {"EMAIL": [{"VALUE": "broken"}]}})


def test_wrong_webhook_code_is_fatal_and_never_shown(portal: Portal, caplog: pytest.LogCaptureFixture) -> None:
    secret_code = "s3cr3tc0de"
    client = Bitrix24Client(f"{portal.base_url}/rest/1/{secret_code}/", backoff=lambda a, r: 0.0)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(FatalDelivery) as caught:
        client.call("profile")
    assert caught.value.status == 401
    assert secret_code not in str(caught.value) + repr(client) + caplog.text
    assert "***" in repr(client)


def test_malformed_webhook_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError) as caught:
        Bitrix24Client("https://acme.bitrix24.ru/rest/abc/topsecret")
    assert "topsecret" not in str(caught.value)


def test_account_is_the_portal_host(portal: Portal) -> None:
    assert portal.client().account == "127.0.0.1"


def _oauth(portal: Portal, stored: list[Any], *, ttl: float = 3600.0, margin: float = 60.0) -> OAuthSession:
    issued = portal.sandbox.issue_tokens(ttl=ttl)
    return OAuthSession(
        client_id=portal.sandbox.client_id,
        client_secret=portal.sandbox.client_secret,
        tokens=OAuthTokens.from_response(issued),
        on_tokens=stored.append,
        portal=portal.base_url,
        oauth_url=f"{portal.base_url}/oauth/token/",
        refresh_margin=margin,
    )


def test_expired_token_is_refreshed_and_stored_before_it_is_used(
    portal: Portal, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stored: list[Any] = []
    seen_at_store: list[int] = []
    session = _oauth(portal, stored)

    def store(tokens: OAuthTokens) -> None:
        seen_at_store.append(portal.sandbox.requests)
        stored.append(tokens)

    session._on_tokens = store
    client = Bitrix24Client(session, backoff=lambda a, r: 0.0)
    old = session.tokens
    portal.sandbox.expire_tokens()
    assert client.call("profile")["ID"] == "1"
    assert len(stored) == 1 and stored[0].access_token != old.access_token
    assert stored[0].refresh_token != old.refresh_token, "refresh tokens rotate"
    assert seen_at_store == [1], "stored after the rejected request and before the retry"
    assert portal.sandbox.requests == 2 and session.tokens == stored[0]
    for secret in (portal.sandbox.client_secret, old.refresh_token, old.access_token, stored[0].access_token):
        assert secret not in caplog.text


def test_a_failed_store_keeps_the_new_token_unused(portal: Portal) -> None:
    session = _oauth(portal, [])

    def broken_store(tokens: OAuthTokens) -> None:
        raise OSError("disk full")

    session._on_tokens = broken_store
    client = Bitrix24Client(session, backoff=lambda a, r: 0.0)
    old = session.tokens
    portal.sandbox.expire_tokens()
    with pytest.raises(OSError):
        client.call("profile")
    assert session.tokens == old and portal.sandbox.requests == 1


def test_token_about_to_expire_is_refreshed_before_the_request(portal: Portal) -> None:
    stored: list[Any] = []
    session = _oauth(portal, stored, ttl=5.0, margin=60.0)
    client = Bitrix24Client(session)
    client.call("profile")
    assert len(stored) == 1 and portal.sandbox.stats["token_refreshes"] == 1
    assert client.requests == 1, "no request was wasted on an expired token"


def test_revoked_refresh_token_is_fatal(portal: Portal) -> None:
    session = _oauth(portal, [])
    portal.sandbox.refresh_tokens.clear()
    portal.sandbox.expire_tokens()
    with pytest.raises(FatalDelivery, match="reconnect"):
        Bitrix24Client(session).call("profile")
    assert "refresh_token" not in repr(session.tokens) and session.tokens.refresh_token not in repr(session.tokens)
