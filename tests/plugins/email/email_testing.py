"""Shared fixtures of the email tests: a real Dovecot and a real SMTP server on loopback, and hubs wired to them
through ``HUB_EMAIL__*`` variables (the way an operator configures one mailbox)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from email_servers import PASSWORD, USER, Dovecot, SmtpCapture, running_dovecot, running_smtp

CORPUS = Path(__file__).resolve().parent / "corpus"


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[Dovecot]:
    with running_dovecot(tmp_path) as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[SmtpCapture]:
    with running_smtp() as capture:
        yield capture


class Wired:
    """Hubs reading the test Dovecot's mailbox (and sending through the test SMTP server when given)."""

    def __init__(self, backend: Any, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
        self.backend, self.dovecot, self.monkeypatch = backend, dovecot, monkeypatch
        self.env(
            IMAP__HOST="127.0.0.1",
            IMAP__PORT=str(dovecot.port),
            IMAP__USERNAME=USER,
            IMAP__PASSWORD=PASSWORD,
            IMAP__SECURITY="none",
            IMAP__TIMEOUT="10",
            COMPANY_DOMAINS=json.dumps(["example.test", "firma.ru"]),
        )

    def env(self, **values: str) -> None:
        for name, value in values.items():
            self.monkeypatch.setenv(f"HUB_EMAIL__{name}", value)

    def with_smtp(self, smtp: SmtpCapture) -> None:
        self.env(SMTP__HOST=smtp.host, SMTP__PORT=str(smtp.port), SMTP__SECURITY="none")

    def hub(self, **overrides: Any) -> Any:
        import crm_hub_plugins.email.plugin

        hub = self.backend.hub([("email", crm_hub_plugins.email.plugin)], **overrides)
        hub.prepare()
        return hub


@pytest.fixture
def wired(embedded: Any, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> Wired:
    return Wired(embedded, dovecot, monkeypatch)


@pytest.fixture
def wired_any(backend: Any, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> Wired:
    """The same on the embedded default and on PostgreSQL + RabbitMQ."""
    return Wired(backend, dovecot, monkeypatch)


def sync_once(hub: Any, key: str | None = None) -> Any:
    """One ``hub email sync`` pass, as the CLI runs it."""
    from crm_hub_plugins.email.connection import accounts
    from crm_hub_plugins.email.sync import MailboxSync

    account = accounts(hub).get(key)
    conn = account.connect()
    try:
        return MailboxSync(account).sync(conn)
    finally:
        conn.close()


def emails_of(hub: Any, address: str) -> list[Any]:
    found = hub.find_clients(email=address)
    if not found:
        return []
    return [i for i in hub.timeline(found[0].id) if i.channel == "email"]


def message(
    *,
    sender: str = "Иван Петров <ivan@client.ru>",
    to: str = "crm@example.test",
    subject: str = "Вопрос по счёту",
    body: str = "Добрый день!",
    message_id: str | None = "<m1@client.ru>",
    extra: str = "",
    date: str = "Tue, 01 Dec 2026 10:00:00 +0300",
) -> bytes:
    """A small UTF-8 message for tests that are not about decoding."""
    from email.header import Header

    lines = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {Header(subject, 'utf-8').encode()}",
        f"Date: {date}",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: 8bit",
    ]
    if message_id:
        lines.append(f"Message-ID: {message_id}")
    if extra:
        lines.append(extra.strip())
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode("utf-8")
