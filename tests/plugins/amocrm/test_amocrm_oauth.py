"""OAuth against the sandbox: rotating single-use refresh tokens are stored before use and never lost."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from amocrm_testing import Running, fixture_json

from crm_hub_plugins.amocrm.client import AmoCRMClient, OAuthSession, OAuthTokens, ReconnectRequired
from hub.core.errors import ExternalAPIError


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Store:
    """A token store that records what it was given and when."""

    def __init__(self) -> None:
        self.saved: list[OAuthTokens] = []
        self.fail = False

    def __call__(self, tokens: OAuthTokens) -> None:
        if self.fail:
            raise OSError("disk full")
        self.saved.append(tokens)


@pytest.fixture
def clocked(sandbox: Running) -> Iterator[tuple[Running, Clock]]:
    clock = Clock()
    sandbox.sandbox.options.clock = clock
    yield sandbox, clock


def session(sandbox: Running, store: Store, clock: Clock, **kwargs: object) -> OAuthSession:
    opts = sandbox.sandbox.options
    return OAuthSession(
        sandbox.url,
        client_id=opts.client_id,
        client_secret=opts.client_secret,
        redirect_uri=opts.redirect_uri,
        on_tokens=store,
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )


def test_code_exchange_stores_the_pair_and_the_client_uses_it(clocked: tuple[Running, Clock]) -> None:
    sandbox, clock = clocked
    store = Store()
    oauth = session(sandbox, store, clock)
    tokens = oauth.exchange_code(sandbox.admin("oauth-code")["code"])
    assert store.saved == [tokens] and tokens.expires_at == clock.now + 86_400
    assert AmoCRMClient(sandbox.url, oauth).account()["subdomain"] == "sandbox"
    assert "***" in repr(tokens) and tokens.refresh_token not in repr(oauth)


def test_a_used_code_cannot_be_exchanged_twice(clocked: tuple[Running, Clock]) -> None:
    sandbox, clock = clocked
    code = sandbox.admin("oauth-code")["code"]
    session(sandbox, Store(), clock).exchange_code(code)
    with pytest.raises(ReconnectRequired, match="hub amocrm connect"):
        session(sandbox, Store(), clock).exchange_code(code)


def test_access_token_is_refreshed_a_little_before_24_hours_and_stored_before_use(
    clocked: tuple[Running, Clock],
) -> None:
    sandbox, clock = clocked
    store = Store()
    oauth = session(sandbox, store, clock)
    first = oauth.exchange_code(sandbox.admin("oauth-code")["code"])
    client = AmoCRMClient(sandbox.url, oauth)
    clock.now += 86_400 - 1200
    client.account()
    assert oauth.refreshes == 0
    clock.now += 700  # within the 10-minute margin
    sent: list[str] = []
    client.http.event_hooks["request"].append(lambda r: sent.append(r.headers["authorization"][7:]))
    client.account()
    assert oauth.refreshes == 1 and len(store.saved) == 2
    second = store.saved[-1]
    assert second.refresh_token != first.refresh_token
    assert sent == [second.access_token]  # the request used the pair only after it was stored


def test_reusing_an_old_refresh_token_is_rejected_as_the_fixture_shows(clocked: tuple[Running, Clock]) -> None:
    sandbox, clock = clocked
    store = Store()
    oauth = session(sandbox, store, clock)
    first = oauth.exchange_code(sandbox.admin("oauth-code")["code"])
    oauth.refresh()
    opts = sandbox.sandbox.options
    reuse = httpx.post(
        f"{sandbox.url}/oauth2/access_token",
        json={
            "client_id": opts.client_id,
            "client_secret": opts.client_secret,
            "grant_type": "refresh_token",
            "refresh_token": first.refresh_token,
            "redirect_uri": opts.redirect_uri,
        },
    )
    assert reuse.status_code == 401
    assert reuse.json() == fixture_json("oauth_refresh_token_revoked_401.json")
    stale = session(sandbox, Store(), clock, tokens=first)
    with pytest.raises(ReconnectRequired, match=r"Token has been revoked.*hub amocrm connect") as caught:
        stale.refresh()
    assert first.refresh_token not in str(caught.value)


def test_a_401_refreshes_once_and_retries(clocked: tuple[Running, Clock]) -> None:
    sandbox, clock = clocked
    store = Store()
    oauth = session(sandbox, store, clock)
    oauth.exchange_code(sandbox.admin("oauth-code")["code"])
    sandbox.sandbox.access_tokens.clear()  # amoCRM forgot the access token early
    assert AmoCRMClient(sandbox.url, oauth).account()["id"] == 31_000_001
    assert oauth.refreshes == 1


def test_when_storing_fails_the_new_pair_is_kept_and_the_dead_token_never_sent_again(
    clocked: tuple[Running, Clock],
) -> None:
    sandbox, clock = clocked
    store = Store()
    oauth = session(sandbox, store, clock)
    oauth.exchange_code(sandbox.admin("oauth-code")["code"])
    store.fail = True
    calls_before = sandbox.sandbox.by_route["POST /oauth2/access_token"]
    with pytest.raises(ExternalAPIError, match="could not be stored") as caught:
        oauth.refresh()
    assert caught.value.retriable
    with pytest.raises(ExternalAPIError, match="could not be stored"):
        oauth.access_token()  # not used until stored
    assert sandbox.sandbox.by_route["POST /oauth2/access_token"] == calls_before + 1
    store.fail = False
    token = oauth.access_token()
    assert store.saved[-1].access_token == token
    assert AmoCRMClient(sandbox.url, oauth).account()["id"] == 31_000_001


def test_a_second_process_takes_the_rotated_pair_from_the_store_instead_of_spending_a_dead_token(
    clocked: tuple[Running, Clock],
) -> None:
    sandbox, clock = clocked
    store = Store()
    web = session(sandbox, store, clock)
    first = web.exchange_code(sandbox.admin("oauth-code")["code"])
    worker = session(sandbox, store, clock, tokens=first, load_tokens=lambda: store.saved[-1])
    clock.now += 86_000
    web.access_token()  # the web process rotates the pair
    calls = sandbox.sandbox.by_route["POST /oauth2/access_token"]
    assert AmoCRMClient(sandbox.url, worker).account()["id"] == 31_000_001
    assert sandbox.sandbox.by_route["POST /oauth2/access_token"] == calls  # no refresh with the dead token
    assert worker.tokens == store.saved[-1]
