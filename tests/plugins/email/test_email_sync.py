"""Mailbox → timeline against a real Dovecot: once per email, cursors, UIDVALIDITY, robots, folders."""

from __future__ import annotations

from typing import Any

from email_testing import emails_of, message, sync_once


def test_an_email_from_a_client_lands_once_in_their_timeline(wired: Any) -> None:
    wired.dovecot.append("INBOX", message())
    hub = wired.hub()
    report = sync_once(hub)
    assert report.stored == 1
    [entry] = emails_of(hub, "ivan@client.ru")
    assert entry.fields["subject"] == "Вопрос по счёту"
    assert entry.fields["body"] == "Добрый день!"
    assert entry.fields["direction"] == "in"
    assert hub.find_clients(email="ivan@client.ru")[0].name == "Иван Петров"
    again = sync_once(hub)
    assert again.stored == 0 and again.messages == 0
    assert len(emails_of(hub, "ivan@client.ru")) == 1
