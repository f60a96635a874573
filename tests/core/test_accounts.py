"""The core Account: an account is connected once, a huge Retry-After is capped, health tells down from ok."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import structlog
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from hub.core.accounts import Account, Accounts
from hub.core.errors import ConfigError
from hub.testing import serve_asgi


class Crm(Account):
    system = "crm"
    retry_after_cap = 0.5


def test_an_account_is_connected_once_by_its_unique_id(embedded: Any) -> None:
    hub = embedded.hub()
    first, second = Crm(hub, "a.example", rate_limit="10/s"), Crm(hub, "b.example", rate_limit="10/s")
    first.require_claim("31000001")
    first.require_claim("31000001")  # again: the same owner
    with pytest.raises(ConfigError, match=r"already connected to this hub as 'a\.example'"):
        second.require_claim("31000001")


def test_tokens_are_kept_in_the_hub_state(embedded: Any) -> None:
    hub = embedded.hub()
    Crm(hub, "a.example", rate_limit="10/s").store_token("oauth", {"refresh": "r1"})
    assert Crm(embedded.hub(), "a.example", rate_limit="10/s").load_token("oauth") == {"refresh": "r1"}


def test_a_huge_retry_after_is_capped_logged_and_marks_the_account_degraded(embedded: Any) -> None:
    async def limited(_: Any) -> JSONResponse:
        return JSONResponse({"title": "Too Many Requests"}, status_code=429, headers={"Retry-After": "300"})

    hub = embedded.hub()
    account = Crm(hub, "a.example", rate_limit="10/s")
    with serve_asgi(Starlette(routes=[Route("/", limited)])) as base, structlog.testing.capture_logs() as logs:
        assert account.http.get(base + "/").status_code == 429
    assert next(e for e in logs if e["event"] == "account.retry_after_capped")["asked_s"] == 300.0
    assert account.health()["status"] == "degraded"
    assert 0.3 < account.limiter.delay() <= 0.6  # paused for the cap, not five minutes


def test_health_is_down_until_the_account_answers_again(embedded: Any) -> None:
    hub = embedded.hub()
    accounts = Accounts("crm", [Crm(hub, "a.example", rate_limit="10/s"), Crm(hub, "b.example", rate_limit="10/s")])
    accounts.get("a.example").mark_down("token refused (HTTP 401)")
    report = accounts.health()
    assert report is not None and report["status"] == "down"
    assert report["accounts"]["a.example"]["detail"] == "token refused (HTTP 401)"
    accounts.get("a.example").mark_ok()
    assert accounts.health() == {
        "status": "ok",
        "accounts": {
            "a.example": {"status": "ok"},
            "b.example": {"status": "ok", "detail": "configured; not contacted yet"},
        },
    }
    with pytest.raises(ConfigError, match="several crm accounts"):
        accounts.get()
    assert all(isinstance(a.http, httpx.Client) for a in accounts)
    accounts.close()
