"""Bad input and bad days: wrong password, a server that is down or restarts mid-IDLE, a 50 MB message, thousands
of messages on the first sync (resumable), CPython's own email corpus. Clear logs, nothing lost or doubled."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner
from email_testing import emails_of, message, sync_once

from crm_hub_plugins.email.client import LoginRefused, Unreachable
from crm_hub_plugins.email.connection import accounts
from crm_hub_plugins.email.listener import MailboxListener
from hub.cli import build_cli
from hub.core.plugins import PluginHost
from tests.conftest import wait_for


def _mailbox_health(hub: Any) -> dict[str, Any]:
    report: dict[str, Any] = hub.health()["plugins"]["email"]["accounts"]["crm@example.test"]
    return report


def test_a_wrong_password_is_a_clear_error_without_the_password(wired: Any) -> None:
    wired.env(IMAP__PASSWORD="wrong-password-42")
    hub = wired.hub()
    with pytest.raises(LoginRefused) as refused:
        sync_once(hub)
    assert "HUB_EMAIL__IMAP__PASSWORD" in str(refused.value)
    assert "wrong-password-42" not in str(refused.value)


def test_a_mailbox_that_cannot_log_in_is_down_in_readyz(wired: Any) -> None:
    from fastapi.testclient import TestClient

    from hub.web.app import create_app

    wired.env(IMAP__PASSWORD="wrong-password-42")
    hub = wired.hub()
    stop = threading.Event()
    thread = threading.Thread(target=MailboxListener(accounts(hub).get()).run, args=(stop,), daemon=True)
    with structlog.testing.capture_logs() as logs:
        thread.start()
        try:
            wait_for(lambda: _mailbox_health(hub)["status"] == "down")
            with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
                ready = web.get("/readyz")
        finally:
            stop.set()
            thread.join(timeout=10)
    assert ready.status_code == 503 and ready.json()["down"] == ["email/accounts/crm@example.test"]
    assert "refused" in ready.json()["plugins"]["email"]["accounts"]["crm@example.test"]["detail"]
    assert "wrong-password-42" not in ready.text and "wrong-password-42" not in str(logs)
    assert any(e["event"] == "account.down" for e in logs)


def test_hub_email_sync_reports_a_mailbox_that_is_down(wired: Any) -> None:
    wired.dovecot.append("INBOX", message())
    for name, value in wired.backend.env().items():
        wired.monkeypatch.setenv(name, value)
    import crm_hub_plugins.email.plugin

    host = PluginHost(autoload=False, extra=[("email", crm_hub_plugins.email.plugin)])
    command = build_cli(host)
    runner = CliRunner()
    ok = runner.invoke(command, ["email", "sync", "--json"], obj=host)
    assert ok.exit_code == 0, ok.output
    assert '"stored": 1' in ok.output
    wired.dovecot.stop()
    down = runner.invoke(command, ["email", "sync"], obj=host)
    assert down.exit_code == 1
    assert "is down" in down.output and "cannot reach IMAP server" in down.output


def test_server_down_shows_in_health_and_comes_back_by_itself(wired: Any) -> None:
    wired.env(IMAP__WATCHDOG_INTERVAL="1", IMAP__POLL_INTERVAL="30")
    wired.dovecot.append("INBOX", message())
    hub = wired.hub()
    account = accounts(hub).get()
    listener = MailboxListener(account)
    stop = threading.Event()
    thread = threading.Thread(target=listener.run, args=(stop,), daemon=True)
    with structlog.testing.capture_logs() as logs:
        thread.start()
        try:
            wait_for(lambda: len(emails_of(hub, "ivan@client.ru")) == 1)
            assert _mailbox_health(hub)["status"] == "ok"
            wired.dovecot.stop()  # mid-IDLE
            wait_for(lambda: _mailbox_health(hub)["status"] == "down")
            assert "IMAP" in _mailbox_health(hub)["detail"]
            wired.dovecot.append_offline("INBOX", message(message_id="<while-down@client.ru>", subject="Пока лежал"))
            wired.dovecot.start()
            wait_for(lambda: len(emails_of(hub, "ivan@client.ru")) == 2, timeout=30)  # the catch-up pass
            wait_for(lambda: _mailbox_health(hub)["status"] == "ok")
        finally:
            stop.set()
            thread.join(timeout=10)
    events = [e["event"] for e in logs]
    assert "account.down" in events and "account.up" in events
    assert len(emails_of(hub, "ivan@client.ru")) == 2


def test_idle_brings_new_mail_within_seconds_in_hub_run(wired: Any) -> None:
    wired.env(IMAP__POLL_INTERVAL="600")
    hub = wired.hub()
    hub.start("all")
    try:
        wait_for(lambda: _mailbox_health(hub)["status"] == "ok")
        time.sleep(0.5)
        wired.dovecot.append("INBOX", message(message_id="<idle-1@client.ru>"))
        started = time.monotonic()
        wait_for(lambda: emails_of(hub, "ivan@client.ru"), timeout=10)
        assert time.monotonic() - started < 5  # IDLE, not the 600 s poll
    finally:
        hub.stop(grace=5)


def test_a_50_mb_message_keeps_headers_and_attachment_list_with_a_capped_body(wired: Any) -> None:
    import email.message

    msg = email.message.EmailMessage()
    msg["From"] = "Big Client <big@client.ru>"
    msg["To"] = "crm@example.test"
    msg["Subject"] = "Чертежи проекта"
    msg["Message-ID"] = "<big-1@client.ru>"
    msg.set_content("Высылаю чертежи. " * 20_000)
    msg.add_attachment(os.urandom(50_000_000), maintype="application", subtype="zip", filename="Чертежи.zip")
    wired.dovecot.append("INBOX", msg.as_bytes(), message(message_id="<after-big@client.ru>", sender="big@client.ru"))
    wired.env(MAX_BODY_CHARS="50000")
    hub = wired.hub()
    with structlog.testing.capture_logs() as logs:
        report = sync_once(hub)
    assert report.folders["INBOX"].capped == 1 and report.stored == 2
    big = next(e for e in emails_of(hub, "big@client.ru") if e.fields["message_id"] == "big-1@client.ru")
    assert big.fields["subject"] == "Чертежи проекта"
    assert big.fields["body"].startswith("Высылаю чертежи.")
    assert len(big.fields["body"]) <= 50_000 and big.fields["body_truncated"] is True
    assert '"name": "Чертежи.zip"' in big.fields["attachments"]
    assert any(e["event"] == "email.message_capped" for e in logs)


@pytest.mark.slow
def test_thousands_on_the_first_sync_show_progress_and_resume_after_a_crash(wired: Any) -> None:
    total = 3000
    wired.dovecot.append_offline(
        "INBOX", *[message(message_id=f"<bulk-{i}@client.ru>", subject=f"Заявка {i}") for i in range(total)]
    )
    wired.env(FETCH_BATCH="100")
    hub = wired.hub()
    account = accounts(hub).get()
    conn = account.connect()
    # The link dies in the middle of the first sync (the server stops): what was stored stays, the cursor says where.
    stopper = threading.Thread(
        target=lambda: (
            wait_for(lambda: (account.cursor("INBOX") or _zero()).last_uid >= 1000, timeout=120),
            wired.dovecot.stop(),
        ),
        daemon=True,
    )
    stopper.start()
    from crm_hub_plugins.email.sync import MailboxSync

    with pytest.raises(Unreachable):
        MailboxSync(account).sync(conn)
    stopper.join(timeout=30)
    conn.close()
    done_before = account.cursor("INBOX").last_uid  # type: ignore[union-attr]
    assert 1000 <= done_before < total
    wired.dovecot.start()
    from hub.progress import ProgressReporter

    with structlog.testing.capture_logs() as logs, ProgressReporter(log_every=0) as progress:
        conn = account.connect()
        report = MailboxSync(account, progress).sync(conn)
        conn.close()
    assert report.messages == total - done_before
    assert any(e["event"] == "progress" for e in logs)
    client = hub.find_clients(email="ivan@client.ru")[0]
    assert len(hub.timeline(client.id, limit=total + 10)) == total


def _zero() -> Any:
    from crm_hub_plugins.email.connection import Cursor

    return Cursor(0, 0)


def _cpython_corpus() -> list[Path]:
    try:
        import test
    except ImportError:
        return []
    data = Path(test.__file__).parent / "test_email" / "data"
    return sorted(data.glob("msg_*.txt")) if data.is_dir() else []


@pytest.mark.skipif(not _cpython_corpus(), reason=f"this interpreter ({sys.executable}) has no test package")
def test_cpython_email_corpus_goes_through_the_sync_and_the_hub_keeps_serving(wired: Any) -> None:
    files = _cpython_corpus()
    wired.dovecot.append("INBOX", *[p.read_bytes() for p in files], message(message_id="<after-corpus@client.ru>"))
    hub = wired.hub()
    report = sync_once(hub)
    assert report.messages == len(files) + 1
    assert _mailbox_health(hub)["status"] == "ok"
    assert len(emails_of(hub, "ivan@client.ru")) == 1
    assert sync_once(hub).messages == 0
    from fastapi.testclient import TestClient

    from hub.web.app import create_app

    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        assert web.get("/readyz").status_code == 200
        assert web.get("/api/clients", params={"email": "ivan@client.ru"}).json()["items"]


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_and_starttls_check_the_certificate(embedded: Any, tmp_path: Path, monkeypatch: Any, security: str) -> None:
    from email_servers import PASSWORD, USER, running_dovecot

    import crm_hub_plugins.email.plugin

    with running_dovecot(tmp_path, tls=True) as server:
        server.append("INBOX", message())
        port = server.tls_port if security == "tls" else server.port
        for name, value in {"HOST": "127.0.0.1", "PORT": str(port), "USERNAME": USER, "PASSWORD": PASSWORD}.items():
            monkeypatch.setenv(f"HUB_EMAIL__IMAP__{name}", value)
        monkeypatch.setenv("HUB_EMAIL__IMAP__SECURITY", security)
        hub = embedded.hub([("email", crm_hub_plugins.email.plugin)])
        with pytest.raises(Unreachable, match="CA_FILE"):
            sync_once(hub)  # a self-signed certificate is not trusted by default
        monkeypatch.setenv("HUB_EMAIL__IMAP__CA_FILE", str(server.ca_file))
        hub = embedded.hub([("email", crm_hub_plugins.email.plugin)])
        assert sync_once(hub).stored == 1


def test_without_idle_the_mailbox_is_polled(wired: Any) -> None:
    wired.env(IMAP__IDLE="false", IMAP__POLL_INTERVAL="0.5")
    hub = wired.hub()
    listener = MailboxListener(accounts(hub).get())
    stop = threading.Event()
    thread = threading.Thread(target=listener.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: listener.passes >= 1)
        wired.dovecot.append("INBOX", message(message_id="<polled@client.ru>"))
        wait_for(lambda: emails_of(hub, "ivan@client.ru"), timeout=10)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
