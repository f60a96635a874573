"""Limits and trust: 429 is honoured, a 403 ban stops all traffic, rotated OAuth tokens survive a restart."""

from __future__ import annotations

from typing import Any

import pytest
from amocrm_testing import Connected, fixture_json
from sqlalchemy import func, select

from crm_hub_plugins.amocrm.connection import accounts
from crm_hub_plugins.amocrm.sink import Writer
from hub.core import schema as s
from hub.core.errors import ExternalAPIError
from hub.core.events import ClientObservation, SourceRef
from tests.conftest import wait_for


def client_obs(n: int) -> ClientObservation:
    return ClientObservation(
        source=SourceRef(system="excel", account="x.xlsx", entity="row", id=str(n)),
        name=f"Клиент {n}",
        phones=[f"+7916{n:07d}"],
    )


def test_a_429_is_honoured_every_request_to_the_account_waits_and_health_says_degraded(
    connected_embedded: Connected,
) -> None:
    connected_embedded.sandbox.admin(
        "faults", {"kind": "status", "status": 429, "body": fixture_json("error_429.json"), "remaining": 1}
    )
    hub = connected_embedded.hub()
    account = accounts(hub).get()
    applied = hub.ingest(client_obs(1))
    with pytest.raises(ExternalAPIError) as caught:
        Writer(account).ensure_clients([hub.get_client(applied.client_id)])
    assert caught.value.retriable and caught.value.status == 429
    assert account.limiter.delay() > 30  # the whole account pauses, not just this call
    report = hub.health()["plugins"]["amocrm"]
    assert report["status"] == "degraded" and "rate limited" in report["accounts"][connected_embedded.key]["detail"]


def test_a_403_ban_stops_all_traffic_dead_letters_events_and_health_is_down(connected: Connected) -> None:
    sandbox = connected.sandbox
    sandbox.admin("faults", {"kind": "status", "status": 403, "body": {"title": "Forbidden", "status": 403}})
    hub = connected.hub()
    hub.start("all")
    for n in range(5):
        hub.ingest(client_obs(n))

    def dead() -> int:
        with hub.store.read() as conn:
            return int(conn.execute(select(func.count()).select_from(s.dead_letters)).scalar_one())

    wait_for(lambda: dead() == 5, timeout=30)
    assert sandbox.sandbox.requests == 1  # one answer of 403, then nothing more was sent
    report = hub.health()["plugins"]["amocrm"]
    assert report["status"] == "down"
    text = str(report)
    assert "blocked" in text and sandbox.sandbox.long_lived_token not in text


def test_rotated_oauth_tokens_are_stored_before_use_and_a_restarted_hub_goes_on(connected: Connected) -> None:
    opts = connected.sandbox.sandbox.options
    connected.monkeypatch.delenv("HUB_AMOCRM__LONG_LIVED_TOKEN")
    connected.env(CLIENT_ID=opts.client_id, CLIENT_SECRET=opts.client_secret, REDIRECT_URI=opts.redirect_uri)
    first = connected.hub()
    account = accounts(first).get()
    assert account.health()["status"] == "down"  # not connected yet: reconnect required
    info = account.connect(connected.sandbox.admin("oauth-code")["code"])
    assert info["subdomain"] == "sandbox"
    scope = f"amocrm:{connected.key}"
    stored: dict[str, Any] = first.state.get(scope, "oauth_tokens")
    assert account.oauth is not None
    rotated = account.oauth.refresh()
    now_stored = first.state.get(scope, "oauth_tokens")
    assert now_stored["refresh_token"] == rotated.refresh_token != stored["refresh_token"]
    first.store.dispose()

    second = connected.hub()  # a new process: it has only what was stored
    again = accounts(second).get()
    assert again.call(again.client.account)["id"] == info["id"]
    assert again.oauth is not None
    again.oauth.refresh()  # the stored refresh token is the one valid token: it works
    assert second.state.get(scope, "oauth_tokens")["refresh_token"] != rotated.refresh_token
    assert again.health()["status"] == "ok"
    # The same amoCRM account cannot be connected under a second name.
    assert second.state.claim("accounts:claims", f"amocrm:{info['id']}", "someone-else") is False
