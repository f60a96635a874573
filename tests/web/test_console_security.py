"""Who may see what: login, roles, sessions, CSRF, rate limiting, escaping, API tokens."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from hub.core import schema as s
from hub.core.events import SourceRef
from hub.core.users import Users
from hub.web.app import create_app
from hub.web.console import PREFIX, ROUTERS
from tests.core.sinks import RecordingSink, SinkPlugin
from tests.web.conftest import PASSWORD, Browser, add_client, csrf_of

ADMIN_PAGES = ["/console/ops", "/console/merges", "/console/reports", "/console/reports/calls", "/console/users"]


def _console_paths() -> list[tuple[str, str]]:
    paths = []
    for route in (route for router in ROUTERS for route in router.routes):
        path = PREFIX + getattr(route, "path", "")
        if path == "/console/login":
            continue
        for method in sorted(getattr(route, "methods", None) or ["GET"]):
            if method == "HEAD":
                continue
            paths.append((method, re.sub(r"\{[^}]+\}", "1", path)))
    return paths


def test_every_console_route_sends_a_stranger_to_the_login_page(console_hub):
    app = create_app(console_hub)
    stranger = TestClient(app, base_url="http://127.0.0.1", follow_redirects=False)
    paths = _console_paths()
    assert len(paths) >= 15
    for method, path in paths:
        answer = stranger.request(method, path)
        assert answer.status_code in (303, 401), (method, path, answer.status_code)
        if answer.status_code == 303:
            assert answer.headers["location"].startswith("/console/login"), (method, path)


def test_an_operator_cannot_reach_admin_pages_or_actions(browser):
    operator = browser()
    assert operator.login("oleg").status_code == 303
    for path in ADMIN_PAGES:
        answer = operator.get(path)
        assert answer.status_code == 403, path
        assert "You cannot open this page." in answer.text
    assert operator.post("/console/ops/dead-letters/replay", {"queue": ""}).status_code == 403
    assert operator.post("/console/users", {"username": "x", "password": PASSWORD, "role": "admin"}).status_code == 403
    assert [u.username for u in Users(operator.http.app.state.hub.store).all()] == ["anna", "oleg"]
    assert operator.get("/console/clients").status_code == 200


def test_the_operator_menu_shows_no_admin_links(browser):
    operator = browser()
    operator.login("oleg")
    page = operator.get("/console/clients").text
    assert "/console/ops" not in page and "/console/users" not in page


def test_a_wrong_password_is_refused_and_the_session_cookie_is_not_set(browser):
    b = browser()
    answer = b.login("anna", "not the password")
    assert answer.status_code == 401
    assert "hub_session" not in answer.cookies
    assert "Неверный логин или пароль." in answer.text  # Russian by default


def test_login_attempts_are_rate_limited_even_with_the_right_password_afterwards(browser):
    b = browser()
    for _ in range(5):
        assert b.login("anna", "guess").status_code == 401
    blocked = b.login("anna")
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0


def test_a_login_form_without_its_csrf_token_is_refused(browser):
    b = browser()
    b.http.get("/console/login")
    answer = b.http.post("/console/login", data={"username": "anna", "password": PASSWORD, "csrf": "forged"})
    assert answer.status_code == 403
    assert "hub_session" not in answer.cookies


def test_a_form_without_the_sessions_csrf_token_changes_nothing(embedded):
    sink = RecordingSink("crm", "bitrix24")
    sink.fail_times = 10**6
    hub = embedded.hub([("s", SinkPlugin(sink))], sink={"max_attempts": 1})
    Users(hub.store).add("root", PASSWORD, role="admin")
    hub.start("all")
    add_client(hub, "1", "Иван", source=SourceRef(system="excel", entity="row", id="1"))
    from tests.conftest import wait_for

    letter = wait_for(lambda: hub.dlq.list())[0]
    b = Browser(create_app(hub))
    b.login("root")
    refused = b.post(f"/console/ops/dead-letters/{letter.id}/replay", csrf=False)
    assert refused.status_code == 403
    forged = b.http.post(f"/console/ops/dead-letters/{letter.id}/replay", data={"csrf": "x" * 43})
    assert forged.status_code == 403
    assert hub.dlq.get(letter.id).status == "open"


def test_a_client_named_like_a_script_is_shown_as_text(browser, console_hub):
    client_id = add_client(console_hub, "1", '<script>alert("x")</script>', ["+79161234567"])
    b = browser()
    b.login("anna")
    for path in (f"/console/clients/{client_id}", "/console/clients", f"/console/clients/{client_id}/pop"):
        page = b.get(path).text
        assert "<script>alert" not in page, path
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page, path


def test_pages_forbid_framing_and_foreign_scripts(browser):
    b = browser()
    b.login("anna")
    answer = b.get("/console/clients")
    assert answer.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["cache-control"] == "no-store"


def test_a_forged_or_foreign_cookie_is_no_session(browser, console_hub):
    b = browser()
    b.login("anna")
    real = b.http.cookies.get("hub_session")
    assert real
    stranger = TestClient(create_app(console_hub), base_url="http://127.0.0.1", follow_redirects=False)
    stranger.cookies.set("hub_session", real[:-3] + "abc", path="/console")
    assert stranger.get("/console/clients").status_code == 303
    stranger.cookies.clear()
    stranger.cookies.set("hub_session", real, path="/console")
    assert stranger.get("/console/clients").status_code == 200  # the same signed cookie works anywhere…


def test_an_expired_session_is_no_session(browser, console_hub):
    b = browser()
    b.login("anna")
    with console_hub.store.write() as conn:
        from datetime import UTC, datetime, timedelta

        conn.execute(s.sessions.update().values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert b.get("/console/clients").status_code == 303


def test_logging_out_ends_the_session_on_the_server(browser, console_hub):
    b = browser()
    b.login("anna")
    cookie = b.http.cookies.get("hub_session")
    assert b.post("/console/logout").status_code == 303
    replay = TestClient(create_app(console_hub), base_url="http://127.0.0.1", follow_redirects=False)
    replay.cookies.set("hub_session", cookie, path="/console")
    assert replay.get("/console/clients").status_code == 303


def test_changing_a_password_ends_the_users_sessions(browser, console_hub):
    b = browser()
    b.login("oleg")
    Users(console_hub.store).set_password("oleg", "another password 1")
    assert b.get("/console/clients").status_code == 303
    assert b.login("oleg").status_code == 401
    assert b.login("oleg", "another password 1").status_code == 303


def test_passwords_and_tokens_are_stored_only_as_hashes(console_hub):
    users = Users(console_hub.store)
    token = users.create_api_token("anna", "crm import")
    with console_hub.store.read() as conn:
        hashes = [r.password_hash for r in conn.execute(select(s.users.c.password_hash))]
        stored = [r.token_hash for r in conn.execute(select(s.api_tokens.c.token_hash))]
    assert all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashes)
    assert token not in stored and len(stored[0]) == 64


def test_the_api_takes_personal_tokens_and_the_single_token(embedded):
    hub = embedded.hub(http={"api_token": "the-single-token-123"})
    users = Users(hub.store)
    users.add("bot", PASSWORD, role="operator")
    personal = users.create_api_token("bot")
    api = TestClient(create_app(hub), base_url="http://127.0.0.1")
    assert api.get("/api/clients?q=x").status_code == 401
    assert api.get("/api/clients?q=x", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert api.get("/api/clients?q=x", headers={"Authorization": "Bearer the-single-token-123"}).status_code == 200
    assert api.get("/api/clients?q=x", headers={"Authorization": f"Bearer {personal}"}).status_code == 200
    users.revoke_api_token(users.api_tokens()[0]["id"])
    assert api.get("/api/clients?q=x", headers={"Authorization": f"Bearer {personal}"}).status_code == 401


def test_no_secret_is_shown_on_any_page(embedded):
    hub = embedded.hub(http={"api_token": "the-single-token-123"})
    Users(hub.store).add("root", PASSWORD, role="admin")
    b = Browser(create_app(hub))
    b.login("root")
    secret = hub.state.get("console", "secret_key")
    for path in ("/console/ops", "/console/users", "/console/settings", "/console/clients"):
        page = b.get(path).text
        assert "the-single-token-123" not in page and secret not in page and "$argon2" not in page, path


def test_a_user_chooses_english_and_the_console_speaks_it(browser):
    b = browser()
    b.login("anna")
    assert "Клиенты" in b.get("/console/clients").text
    assert b.post("/console/settings", {"language": "en", "extension": "105"}).status_code == 303
    page = b.get("/console/clients").text
    assert ">Clients<" in page and "Клиенты" not in page
    assert csrf_of(page) == b.csrf
