"""A hub with the console, users of both roles, and a browser-like HTTP client that logs in through the form."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.core.events import ClientObservation, InteractionObservation, SourceRef
from hub.core.users import Users
from hub.web.app import create_app

PASSWORD = "correct horse 42"
CSRF = re.compile(r'name="csrf" value="([^"]*)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


class Browser:
    """An HTTP client with cookies, following the console's own forms (CSRF token included)."""

    def __init__(self, app: Any) -> None:
        self.http = TestClient(app, base_url="http://127.0.0.1", follow_redirects=False)
        self.csrf = ""

    def login(self, username: str, password: str = PASSWORD) -> Any:
        form = self.http.get("/console/login")
        answer = self.http.post(
            "/console/login",
            data={"username": username, "password": password, "csrf": csrf_of(form.text), "next": "/console/clients"},
        )
        if answer.status_code == 303:
            self.csrf = csrf_of(self.http.get("/console/clients").text)
        return answer

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.http.get(path, **kwargs)

    def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True) -> Any:
        body = dict(data or {})
        if csrf:
            body["csrf"] = self.csrf
        return self.http.post(path, data=body)


@pytest.fixture
def console_hub(embedded):
    hub = embedded.hub()
    users = Users(hub.store)
    users.add("anna", PASSWORD, role="admin", display_name="Анна Петрова", language="ru")
    users.add("oleg", PASSWORD, role="operator", display_name="Олег", extension="201", language="en")
    return hub


@pytest.fixture
def browser(console_hub) -> Iterator[Any]:
    def make() -> Browser:
        return Browser(create_app(console_hub))

    yield make


def add_client(hub: Any, ext_id: str, name: str, phones: list[str] = (), emails: list[str] = (), **extra: Any) -> int:  # type: ignore[assignment]
    source = extra.pop("source", None) or SourceRef(
        system="bitrix24", account="acme.bitrix24.ru", entity="contact", id=ext_id
    )
    result = hub.ingest(ClientObservation(source=source, name=name, phones=list(phones), emails=list(emails), **extra))
    return result.client_id


def add_call(hub: Any, call_id: str, phone: str, **fields: Any) -> int:
    obs = InteractionObservation(
        source=SourceRef(system="telephony", account="pbx", entity="call", id=call_id),
        channel="call",
        client={"phones": [phone]},
        **{"direction": "in", "status": "answered", "duration_s": 75, "operator": "Олег", **fields},
    )
    return hub.ingest(obs).item_id
