"""The console in a real browser (Debian's headless Chromium driven by Playwright), against a running hub with
the telephony plugin listening to a PBX sandbox and a sink that fails until told otherwise."""

from __future__ import annotations

import io
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crm_hub_plugins.email import plugin as email_plugin
from crm_hub_plugins.telephony import plugin as telephony_plugin
from crm_hub_plugins.telephony.sandbox import AMISandbox, generate_call
from hub.core.events import DealObservation, SourceRef
from hub.core.users import Users
from hub.testing import serve_asgi
from hub.web.app import create_app
from tests.conftest import wait_for
from tests.core.sinks import RecordingSink, SinkPlugin
from tests.plugins.email.email_servers import PASSWORD as MAIL_PASSWORD
from tests.plugins.email.email_servers import USER as MAILBOX
from tests.plugins.email.email_servers import running_dovecot
from tests.web.conftest import PASSWORD, add_call, add_client

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = os.environ.get("HUB_TEST_SCREENSHOTS")  # a directory: save a screenshot of each page visited

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")


def _letter(sender: str, to: str, subject: str, body: str, message_id: str, date: str, reply_to: str = "") -> bytes:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Date"], msg["Message-ID"] = sender, to, subject, date, message_id
    if reply_to:
        msg["In-Reply-To"] = msg["References"] = reply_to
    msg.set_content(body)
    return msg.as_bytes()


@pytest.fixture
def running(embedded, monkeypatch, tmp_path) -> Iterator[dict[str, Any]]:
    sink = RecordingSink("crm", "amocrm")
    sink.fail_times = 10**6
    with AMISandbox() as ami, running_dovecot(tmp_path) as mail:
        mail.append(
            "INBOX",
            _letter(
                "Мария Петрова <maria@romashka.ru>",
                MAILBOX,
                "Счёт на станки",
                "Добрый день! Пришлите, пожалуйста, счёт на два станка.",
                "<q1@romashka.ru>",
                "Tue, 01 Dec 2026 10:00:00 +0300",
            ),
            _letter(
                f"Отдел продаж <{MAILBOX}>",
                "maria@romashka.ru",
                "Re: Счёт на станки",
                "Счёт во вложении, оплата в течение пяти дней.",
                "<a1@example.test>",
                "Tue, 01 Dec 2026 11:30:00 +0300",
                reply_to="<q1@romashka.ru>",
            ),
        )
        for key, value in {
            "IMAP__HOST": "127.0.0.1",
            "IMAP__PORT": str(mail.port),
            "IMAP__USERNAME": MAILBOX,
            "IMAP__PASSWORD": MAIL_PASSWORD,
            "IMAP__SECURITY": "none",
        }.items():
            monkeypatch.setenv(f"HUB_EMAIL__{key}", value)
        for key, value in {
            "AMI__HOST": "127.0.0.1",
            "AMI__PORT": str(ami.port),
            "AMI__USERNAME": ami.username,
            "AMI__SECRET": ami.secret.get_secret_value(),
            "AMI__RECONNECT_INITIAL": "0.05",
            "CLICK_TO_CALL": "ami",
        }.items():
            monkeypatch.setenv(f"HUB_TELEPHONY__{key}", value)
        hub = embedded.hub(
            [("telephony", telephony_plugin), ("email", email_plugin), ("s", SinkPlugin(sink))],
            sink={"max_attempts": 1},
        )
        users = Users(hub.store)
        users.add("anna", PASSWORD, role="admin", display_name="Анна Петрова")
        users.add("oleg", PASSWORD, role="operator", display_name="Олег", extension="101")
        client_id = add_client(hub, "7", "Мария Петрова", ["+7 916 555-01-01"], ["maria@romashka.ru"])
        add_call(hub, "c-1", "+79165550101", operator="Олег", recording_url="https://pbx.example/rec/1.mp3")
        hub.ingest(
            DealObservation(
                source=SourceRef(system="bitrix24", account="acme.bitrix24.ru", entity="deal", id="5"),
                client={"client_id": client_id},
                title="Поставка станков",
                stage="NEW",
                status="open",
                amount=125000,
                currency="RUB",
            )
        )
        hub.start("all")
        assert ami.wait_for_login()
        wait_for(lambda: hub.dlq.list())
        wait_for(lambda: len([i for i in hub.timeline(client_id) if i.channel == "email"]) == 2, 30)  # the mailbox
        try:
            with serve_asgi(create_app(hub)) as url:
                yield {"hub": hub, "url": url, "sink": sink, "ami": ami, "client_id": client_id, "tmp": tmp_path}
        finally:
            hub.stop(grace=5)  # before its mail server and PBX go away


@pytest.fixture
def chromium(tmp_path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)  # Playwright makes a fresh profile
        try:
            yield browser
        finally:
            browser.close()


def shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def log_in(browser: Any, url: str, username: str) -> Any:
    page = browser.new_page(viewport={"width": 1366, "height": 860}, accept_downloads=True)
    page.goto(f"{url}/console/")
    assert "/console/login" in page.url
    shot(page, "login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button.primary")
    page.wait_for_url("**/console/clients")
    return page


def test_an_admin_finds_a_client_by_phone_sees_the_call_exports_a_report_and_replays_a_dead_letter(
    running, chromium
) -> None:
    url = running["url"]
    page = log_in(chromium, url, "anna")
    shot(page, "clients")
    page.fill("form.filters input[name=q]", "8 (916) 555 01 01")  # stored as +79165550101
    page.click("form.filters button.primary")
    page.wait_for_url(f"**/console/clients/{running['client_id']}")
    assert page.inner_text("h1").startswith("Мария Петрова")
    call = page.locator("li.tl-call").first
    assert "Олег" in call.inner_text() and "принят" in call.inner_text()
    assert call.locator("a", has_text="Запись").get_attribute("href") == "https://pbx.example/rec/1.mp3"
    assert "Поставка станков" in page.inner_text("section.side")
    link = page.locator(".ext-links a").first.get_attribute("href")
    assert link == "https://acme.bitrix24.ru/crm/contact/details/7/"
    shot(page, "card")
    letters = page.locator("li.tl-email")
    assert letters.count() == 2 and "Re: Счёт на станки" in letters.first.inner_text()  # newest first
    letters.first.locator("a", has_text="Переписка").click()  # the thread, oldest first, letters open
    page.wait_for_url("**thread=*")
    thread = page.locator("li.tl-email")
    assert thread.count() == 2 and "Переписка: Счёт на станки" in page.inner_text("section.main h2")
    assert "пришлите, пожалуйста" in thread.nth(0).inner_text().lower()
    assert "Счёт во вложении" in thread.nth(1).inner_text()
    shot(page, "card-thread")

    page.goto(f"{url}/console/reports/calls")
    assert page.locator("svg.chart rect").count() >= 1
    shot(page, "report-calls")
    with page.expect_download() as download:
        page.click("text=Выгрузить в Excel")
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes())).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:4] == ("День", "Оператор", "Звонки", "Принято")
    assert any(r[1] == "Олег" and r[3] == 1 for r in rows[1:])

    page.goto(f"{url}/console/ops")
    shot(page, "ops")
    assert page.locator("table.dlq tbody tr").count() >= 1
    running["sink"].fail_times = 0
    page.locator("table.dlq button", has_text="Повторить").first.click()
    page.wait_for_url("**/console/ops?replayed=1*")
    wait_for(lambda: running["sink"].received)  # the replayed event reached the sink
    assert "Повторено: 1." in page.inner_text("#dead-letters")
    assert len(running["hub"].dlq.list(status="open")) == len(running["hub"].dlq.list(status=None)) - 1


def test_an_operator_gets_the_call_pop_up_and_cannot_open_admin_pages(running, chromium) -> None:
    url = running["url"]
    page = log_in(chromium, url, "oleg")
    assert page.locator("nav a[href='/console/ops']").count() == 0
    events = generate_call("answered", rng=random.Random(5), extension="101", number="79165550101")
    at = next(i for i, e in enumerate(events) if e["Event"] == "Newstate" and e["ChannelStateDesc"] == "Ringing")
    page.wait_for_timeout(500)  # the page's EventSource is connected
    running["ami"].send_events(events[: at + 1])
    page.wait_for_selector("#call-pop:not([hidden]) .pop-name", timeout=10_000)
    assert page.inner_text("#call-pop .pop-name") == "Мария Петрова"
    assert "Поставка станков" in page.inner_text("#call-pop")
    shot(page, "pop-up")
    running["ami"].send_events(events[at + 1 :])
    page.click("#call-pop .pop-name")
    page.wait_for_url(f"**/console/clients/{running['client_id']}")
    shot(page, "card-operator")

    page.click("button.call-btn")  # click-to-call: ring extension 101, then dial the client
    page.wait_for_url("**called=*")
    assert "Звоним на +79165550101 с номера 101" in page.inner_text("main")
    originate = wait_for(lambda: [a for a in running["ami"].actions if a.get("Action") == "Originate"])
    assert "101" in originate[0]["Channel"] and "79165550101" in str(originate[0])

    answer = page.goto(f"{url}/console/ops")
    assert answer is not None and answer.status == 403
    assert "нет доступа" in page.inner_text("main")
    answer = page.goto(f"{url}/console/reports/calls")
    assert answer is not None and answer.status == 403
