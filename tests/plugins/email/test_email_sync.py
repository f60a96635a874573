"""Mailbox → timeline against a real Dovecot: once per email, cursors, UIDVALIDITY, robots, folders, flags."""

from __future__ import annotations

import base64
import json
from typing import Any

from email_testing import CORPUS, emails_of, message, sync_once

from crm_hub_plugins.email.connection import accounts

EXPECTED: dict[str, dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))


def _load_corpus(wired: Any) -> None:
    wired.dovecot.append("INBOX", *[(CORPUS / name).read_bytes() for name in sorted(EXPECTED)])


def test_an_email_from_a_client_lands_once_in_their_timeline(wired_any: Any) -> None:
    wired = wired_any
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


def test_the_corpus_reaches_exactly_its_clients_and_robots_reach_nobody(wired_any: Any) -> None:
    wired = wired_any
    _load_corpus(wired)
    hub = wired.hub()
    sync_once(hub)
    for name, expected in EXPECTED.items():
        for client in expected.get("clients", []):
            entries = [e for e in emails_of(hub, client) if e.fields["subject"] == expected["subject"]]
            assert len(entries) == 1, (name, client)
            if "body" in expected:
                assert entries[0].fields["body"] == expected["body"]
        if expected.get("skipped"):
            assert not hub.find_clients(email=expected["from"]) or expected["from"] in _clients_of_others()
    for robot in ("MAILER-DAEMON@mx.firma.ru", "no-reply@bank.ru", "news@shop.ru", "boss@firma.ru", "sales@firma.ru"):
        assert hub.find_clients(email=robot) == []


def _clients_of_others() -> set[str]:
    return {c for e in EXPECTED.values() for c in e.get("clients", [])}


def test_one_email_to_two_clients_is_in_both_timelines(wired: Any) -> None:
    _load_corpus(wired)
    hub = wired.hub()
    sync_once(hub)
    for client in ("ivanov@alfa.ru", "petrova@beta.ru"):
        [entry] = emails_of(hub, client)
        assert entry.fields["direction"] == "out"
        assert entry.fields["message_id"] == "two-1@firma.ru"


def test_replies_share_the_thread_of_their_root_even_without_headers(wired: Any) -> None:
    _load_corpus(wired)
    hub = wired.hub()
    sync_once(hub)
    entries = emails_of(hub, "viktor@zavod.ru")
    assert len(entries) == 3
    assert {e.fields["thread"] for e in entries} == {"thread-root@zavod.ru"}


def test_a_malformed_date_falls_back_to_internaldate_and_no_message_id_still_dedups(wired: Any) -> None:
    _load_corpus(wired)
    wired.dovecot.append("Archive", (CORPUS / "no_message_id.eml").read_bytes())
    wired.env(IMAP__FOLDERS='["INBOX", "Archive"]')
    hub = wired.hub()
    sync_once(hub)
    [dated] = emails_of(hub, "elena@client.ru")
    assert dated.fields["date_from"] == "internaldate"
    assert dated.occurred_at.year >= 2026
    [no_id] = emails_of(hub, "dmitry@client.ru")
    assert no_id.fields["message_key"].startswith("hdr:")


def test_text_no_charset_reads_is_kept_as_raw_bytes_and_flagged(wired: Any) -> None:
    _load_corpus(wired)
    hub = wired.hub()
    sync_once(hub)
    [entry] = emails_of(hub, "binary@client.ru")
    assert entry.fields["decoded"] is False
    assert base64.b64decode(entry.fields["raw_base64"]) in (CORPUS / "undecodable_body.eml").read_bytes()


def test_the_same_email_in_inbox_and_sent_is_one_entry(wired: Any) -> None:
    reply = message(sender="crm@example.test", to="Иван <ivan@client.ru>", message_id="<out-1@example.test>")
    wired.dovecot.append("INBOX", reply)
    wired.dovecot.append("Sent", reply)
    hub = wired.hub()
    report = sync_once(hub)
    assert set(report.folders) == {"INBOX", "Sent"}  # the folder marked \Sent is read by default
    assert report.stored == 1 and report.folders["Sent"].already_stored == 1
    [entry] = emails_of(hub, "ivan@client.ru")
    assert entry.fields["direction"] == "out"


def test_the_same_email_in_two_mailboxes_is_one_entry(wired: Any, tmp_path: Any) -> None:
    wired.dovecot.add_user("second@example.test", "another-pass")
    wired.dovecot.append("INBOX", message(to="crm@example.test, second@example.test"))
    wired.dovecot.append(
        "INBOX",
        message(to="crm@example.test, second@example.test"),
        user="second@example.test",
        password="another-pass",
    )
    toml = tmp_path / "hub.toml"
    toml.write_text(
        f"""
[[email.mailboxes]]
name = "second"
[email.mailboxes.imap]
host = "127.0.0.1"
port = {wired.dovecot.port}
username = "second@example.test"
password = "another-pass"
security = "none"
"""
    )
    hub = wired.hub(config_file=toml)
    assert sync_once(hub, "crm@example.test").stored == 1
    second = sync_once(hub, "second")
    assert second.stored == 0 and second.folders["INBOX"].already_stored == 1
    assert len(emails_of(hub, "ivan@client.ru")) == 1


def test_reading_never_changes_flags(wired: Any) -> None:
    wired.dovecot.append("INBOX", message(), message(message_id="<m2@client.ru>"))
    hub = wired.hub()
    sync_once(hub)
    conn = wired.dovecot.client()
    conn.select_folder("INBOX", readonly=True)
    flags = conn.get_flags(conn.search("ALL"))
    conn.logout()
    assert all(b"\\Seen" not in f for f in flags.values())


def test_a_changed_uidvalidity_reads_the_folder_again_without_doubling(wired: Any) -> None:
    wired.env(IMAP__FOLDERS='["INBOX", "Projects"]')
    mails = [message(message_id=f"<p{i}@client.ru>", subject=f"Проект {i}") for i in range(3)]
    wired.dovecot.append("Projects", *mails)
    hub = wired.hub()
    assert sync_once(hub).stored == 3
    account = accounts(hub).get()
    before = account.cursor("Projects")
    conn = wired.dovecot.client()
    conn.delete_folder("Projects")
    conn.logout()
    wired.dovecot.append("Projects", *mails, message(message_id="<p9@client.ru>", subject="Новый"))
    report = sync_once(hub)
    after = account.cursor("Projects")
    assert after is not None and before is not None and after.uidvalidity > before.uidvalidity
    assert report.folders["Projects"].resynced
    assert report.stored == 1 and report.folders["Projects"].already_stored == 3
    assert len(emails_of(hub, "ivan@client.ru")) == 4


def test_a_deleted_folder_is_reported_and_the_others_go_on(wired: Any, capsys: Any) -> None:
    wired.env(IMAP__FOLDERS='["INBOX", "Gone"]')
    wired.dovecot.append("INBOX", message())
    hub = wired.hub()
    report = sync_once(hub)
    assert report.stored == 1
    assert "Gone" in (report.folders["Gone"].error or "")
    health = hub.health()["plugins"]["email"]
    assert health["status"] == "degraded"
    assert "Gone" in health["accounts"]["crm@example.test"]["detail"]


def test_the_cursor_is_per_mailbox_folder_and_uidvalidity(wired: Any) -> None:
    wired.dovecot.append("INBOX", message(), message(message_id="<m2@client.ru>"))
    hub = wired.hub()
    sync_once(hub)
    cursor = accounts(hub).get().cursor("INBOX")
    assert cursor is not None and cursor.last_uid == 2 and cursor.uidvalidity > 0
    assert hub.state.get("email:crm@example.test:cursors", "INBOX") == [cursor.uidvalidity, 2]


def test_unknown_correspondents_stay_out_when_clients_are_not_created(wired: Any) -> None:
    wired.env(CREATE_UNKNOWN_CLIENTS="false")
    wired.dovecot.append("INBOX", message(), message(sender="olga@romashka.ru", message_id="<o1@romashka.ru>"))
    hub = wired.hub()
    hub.ingest(
        hub.parse_observation(
            {
                "kind": "client",
                "source": {"system": "crm", "entity": "contact", "id": "1"},
                "emails": ["OLGA@romashka.ru"],
            }
        )
    )
    report = sync_once(hub)
    assert report.stored == 1 and report.folders["INBOX"].skipped == {"unknown correspondent": 1}
    assert hub.find_clients(email="ivan@client.ru") == []
    [entry] = emails_of(hub, "olga@romashka.ru")
    assert entry.fields["email"] == "olga@romashka.ru"
