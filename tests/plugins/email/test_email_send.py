"""Sending from the hub: through a real SMTP server, with the hub's own Message-ID, on the timeline once, and not
imported again when the Sent folder is read."""

from __future__ import annotations

import email
import email.policy
from typing import Any

import pytest
from click.testing import CliRunner
from email_testing import emails_of, message, sync_once
from fastapi.testclient import TestClient

from hub.cli import build_cli
from hub.core.plugins import PluginHost
from hub.web.app import create_app


@pytest.fixture
def sending(wired: Any, smtp: Any) -> Any:
    wired.with_smtp(smtp)
    return wired


def test_post_api_emails_sends_records_once_and_the_sent_copy_is_not_imported_again(sending: Any, smtp: Any) -> None:
    hub = sending.hub()
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        answer = web.post(
            "/api/emails",
            json={
                "to": ["Client@Romashka.ru"],
                "subject": "Коммерческое предложение",
                "body": "Добрый день!\nКП во вложении.",
            },
        )
    assert answer.status_code == 201, answer.text
    sent = answer.json()
    assert sent["message_id"].endswith("@example.test") and sent["saved_to"] == "Sent"
    [(_mail_from, rcpt, data)] = smtp.messages
    assert rcpt == ["client@romashka.ru"]
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed["Message-ID"] == f"<{sent['message_id']}>"
    assert parsed["Subject"] == "Коммерческое предложение"
    [entry] = emails_of(hub, "client@romashka.ru")
    assert entry.id == sent["items"][0] and entry.fields["direction"] == "out"
    assert entry.fields["body"] == "Добрый день!\nКП во вложении."
    report = sync_once(hub)
    assert report.folders["Sent"].messages == 1 and report.folders["Sent"].already_stored == 1
    assert len(emails_of(hub, "client@romashka.ru")) == 1


def test_a_reply_carries_in_reply_to_and_references_and_joins_the_thread(sending: Any, smtp: Any) -> None:
    sending.dovecot.append(
        "INBOX",
        message(message_id="<q2@client.ru>", extra="In-Reply-To: <q1@client.ru>\r\nReferences: <q1@client.ru>"),
    )
    hub = sending.hub()
    sync_once(hub)
    [question] = emails_of(hub, "ivan@client.ru")
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        answer = web.post(
            "/api/emails",
            json={"to": "ivan@client.ru", "subject": "Re: Вопрос по счёту", "body": "Ответ", "reply_to": question.id},
        )
    assert answer.status_code == 201, answer.text
    parsed = email.message_from_bytes(smtp.messages[0][2], policy=email.policy.default)
    assert parsed["In-Reply-To"] == "<q2@client.ru>"
    assert parsed["References"] == "<q1@client.ru> <q2@client.ru>"
    entries = emails_of(hub, "ivan@client.ru")
    assert len(entries) == 2 and {e.fields["thread"] for e in entries} == {"q1@client.ru"}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"to": ["not an address"], "subject": "x", "body": "y"}, 422),
        ({"to": [], "subject": "x", "body": "y"}, 422),
        ({"to": "a@client.ru", "subject": 5, "body": "y"}, 422),
        ({"to": "a@client.ru", "subject": "x", "body": "y", "reply_to": 999999}, 404),
        ([1, 2], 422),
    ],
)
def test_bad_requests_get_a_clear_4xx_and_send_nothing(sending: Any, smtp: Any, body: Any, status: int) -> None:
    hub = sending.hub()
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        answer = web.post("/api/emails", json=body)
        assert web.post("/api/emails", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    assert answer.status_code == status, answer.text
    assert answer.json()["detail"]
    assert smtp.messages == []


def test_an_smtp_server_that_is_down_is_a_502_and_nothing_is_recorded(sending: Any, smtp: Any) -> None:
    from hub.testing import free_port

    sending.env(SMTP__PORT=str(free_port()))
    hub = sending.hub()
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        answer = web.post("/api/emails", json={"to": "a@client.ru", "subject": "x", "body": "y"})
    assert answer.status_code == 502 and "SMTP" in answer.json()["detail"]
    assert hub.find_clients(email="a@client.ru") == []


def test_hub_email_send_from_the_command_line(sending: Any, smtp: Any) -> None:
    import crm_hub_plugins.email.plugin

    hub = sending.hub()
    host = PluginHost(autoload=False, extra=[("email", crm_hub_plugins.email.plugin)])
    for name, value in sending.backend.env().items():
        sending.monkeypatch.setenv(name, value)
    result = CliRunner().invoke(
        build_cli(host),
        ["email", "send", "--to", "olga@romashka.ru", "--subject", "Счёт", "--body", "Счёт во вложении"],
        obj=host,
    )
    assert result.exit_code == 0, result.output
    assert len(smtp.messages) == 1
    [entry] = emails_of(hub, "olga@romashka.ru")
    assert entry.fields["subject"] == "Счёт"


def test_without_an_smtp_server_sending_is_a_409_that_names_the_setting(wired: Any) -> None:
    hub = wired.hub()
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        answer = web.post("/api/emails", json={"to": "a@client.ru", "subject": "x", "body": "y"})
    assert answer.status_code == 409 and "HUB_EMAIL__SMTP__HOST" in answer.json()["detail"]
