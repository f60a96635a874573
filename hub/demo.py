"""``hub demo``: the hub on the embedded default wired to the Bitrix24, amoCRM and PBX (AMI) sandboxes, fed with
realistic Russian traffic (a messy Excel base, contacts and deals moving in Bitrix24 and replicated to amoCRM,
calls answered and missed at the operator's extension, email threads with the clients read through the email
plugin's parsing), with the console open to log in. Ctrl-C stops it all.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import structlog

from hub.core.events import ClientKey, ClientObservation, DealObservation, InteractionObservation, SourceRef
from hub.core.hub import Hub
from hub.core.settings import load_settings
from hub.core.users import Users

log = structlog.get_logger("hub.demo")

OPERATOR_EXTENSION = "101"
STAGES = ["NEW", "PREPARATION", "PREPAYMENT_INVOICE", "EXECUTING", "WON"]
PEOPLE = [
    ("Иванов Иван Петрович", "8 (916) 123-45-67", "ivanov@romashka.ru", "ООО «Ромашка»", "7707083893"),
    ("Петрова Мария Сергеевна", "+7 903 555 01 02", "m.petrova@yandex.ru", "ООО «Ромашка»", "7707083893"),
    ("Сидоров Алексей", "8-925-777-88-99", "sidorov@mail.ru", "ИП Сидоров А.В.", "500100732259"),
    ("Кузнецова Елена", "7 (495) 123 45 00", "elena.k@stroymash.ru", "АО «Строймаш»", "7736207543"),
    ("Смирнов Дмитрий Олегович", "+79261112233", "d.smirnov@gmail.com", None, None),
    ("Волкова Анна", "89035556677", "anna.volkova@inbox.ru", "ООО «Вектор»", "7728168971"),
    ("Морозов Павел", "8 (812) 600-10-20", "morozov@vector.spb.ru", "ООО «Вектор»", "7728168971"),
    ("Новикова Ольга Игоревна", "+7 (917) 000-12-34", "olga.novikova@ya.ru", None, None),
]


def _excel_file(directory: Path) -> Path:
    """A base as people really keep it: Russian headers, phones in every format, a duplicate, blank rows."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Клиенты"
    sheet.append(["ФИО", "Телефон", "E-mail", "Компания", "ИНН", "Комментарий"])
    rows = [
        (
            "Григорьев Степан",
            "8(916)234-56-78, доб. 12",
            "grigoriev@list.ru",
            "ООО «Альфа»",
            "7704217370",
            "с выставки",
        ),
        ("  Белова Татьяна ", "+7 999 888-77-66", "BELOVA@MAIL.RU", "", "", ""),
        ("", "", "", "", "", ""),
        ("Иванов Иван Петрович", "79161234567", "ivanov@romashka.ru", "ООО «Ромашка»", "7707083893", "дубль"),
        ("Зайцев Игорь", "тел. 8 926 111 22 44", "", "ИП Зайцев", "", "перезвонить в пн"),
        ("Орлова Ирина", "не указан", "orlova@@mail", "", "", "ошибочная строка"),
    ]
    for row in rows:
        sheet.append(list(row))
    path = directory / "база клиентов.xlsx"
    book.save(path)
    return path


COMPANY_MAIL = "sales@torgdom.example"
MAIL_THREADS = [
    (
        "Запрос коммерческого предложения",
        "Добрый день!\n\nПросим выслать КП на поставку 12 станков, доставка до Подольска.\n\nС уважением",
        "Здравствуйте! КП во вложении, цены действуют до конца месяца.",
        "Спасибо, согласовываем с руководством, ответим до пятницы.",
    ),
    (
        "Счёт №418 от 02.11",
        "Оплату провели сегодня, платёжное поручение прикладываю.",
        "Получили, спасибо! Отгрузка в четверг.",
        None,
    ),
    (
        "Не работает пульт управления",
        "После обновления прошивки пульт не включается. Что делать?",
        "Передали в сервис, инженер позвонит вам сегодня до 18:00.",
        "Инженер приехал, всё работает. Спасибо за оперативность!",
    ),
]


def _message(
    sender: tuple[str, str], to: tuple[str, str], subject: str, body: str, at: datetime, parent: Any = None
) -> Any:
    """An email as a mail server hands it over: RFC 5322 headers, a Message-ID, and the thread headers of a reply."""
    from email.message import EmailMessage
    from email.utils import format_datetime, formataddr, make_msgid

    msg = EmailMessage()
    msg["From"] = formataddr(sender)
    msg["To"] = formataddr(to)
    msg["Subject"] = f"Re: {subject}" if parent is not None else subject
    msg["Date"] = format_datetime(at)
    msg["Message-ID"] = make_msgid(domain=sender[1].rsplit("@", 1)[1])
    if parent is not None:
        msg["In-Reply-To"] = parent["Message-ID"]
        msg["References"] = " ".join(filter(None, [parent.get("References"), parent["Message-ID"]]))
    msg.set_content(body)
    return msg


class Traffic:
    """Feeds the demo hub: clients and deals from Bitrix24 (replicated to amoCRM), calls through the PBX."""

    def __init__(self, hub: Hub, ami: Any, rng: random.Random, b24_account: str) -> None:
        self.hub = hub
        # refs name the sandbox portal as the Bitrix24 plugin does (its host), so the Bitrix24 sink knows them for
        # its own and only the amoCRM sink replicates them
        self.account = b24_account
        self.ami = ami
        self.rng = rng
        self.deals: list[tuple[str, int, ClientKey]] = []

    def seed(self, directory: Path) -> None:
        now = datetime.now(UTC)
        for index, (name, phone, email, company, inn) in enumerate(PEOPLE, 1):
            company_key = None
            if company and inn:
                company_ref = SourceRef(system="bitrix24", account=self.account, entity="company", id=str(9100 + index))
                found = self.hub.find_clients(q=company, limit=1)
                if not found:
                    self.hub.ingest(
                        ClientObservation(
                            source=company_ref, client_kind="company", name=company, identity={"inn": inn}
                        )
                    )
                company_key = (
                    ClientKey(ref=company_ref, kind="company")
                    if not found
                    else ClientKey(client_id=found[0].id, kind="company")
                )
            # far above the ids the sandbox gives the contacts the hub replicates to it (the Excel base): a shared id
            # would make two people one Bitrix24 contact, and a merge candidate
            ref = SourceRef(system="bitrix24", account=self.account, entity="contact", id=str(9000 + index))
            self.hub.ingest(
                ClientObservation(
                    source=ref,
                    observed_at=now - timedelta(days=30 - index),
                    name=name,
                    phones=[phone],
                    emails=[email],
                    company=company_key,
                )
            )
            self.deals.append((str(500 + index), 0, ClientKey(ref=ref)))
            if index <= len(MAIL_THREADS) * 2:
                self.mail_thread(index - 1, now - timedelta(days=12 - index, hours=3))
            self._deal(index - 1)
            self.hub.ingest(
                InteractionObservation(
                    source=SourceRef(system="bitrix24", account=self.account, entity="activity", id=f"n{index}"),
                    channel="note",
                    client=ClientKey(ref=ref),
                    occurred_at=now - timedelta(days=20 - index, hours=index),
                    subject="Первичный звонок",
                    body="Интересуется поставкой, просит КП до пятницы.",
                )
            )
        with contextlib.suppress(Exception):  # the Excel plugin may be disabled in this install
            from crm_hub_plugins.excel.apply import run_import

            run_import(self.hub, _excel_file(directory), source="база клиентов.xlsx")

    def mail_thread(self, index: int, start: datetime) -> None:
        """A conversation with one demo client: their letter, the company's answer, maybe their reply, read through
        the email plugin's own parsing (as its mailbox sync reads them), one thread on the client's card."""
        try:
            from crm_hub_plugins.email.raw import record_message
        except ImportError:  # no email plugin in this install
            return
        name, _phone, address, *_ = PEOPLE[index]
        client, company = (name, address), ("Отдел продаж", COMPANY_MAIL)
        subject, *letters = MAIL_THREADS[index % len(MAIL_THREADS)]
        parent = None
        for turn, body in enumerate(letters):
            if body is None:
                break
            sender, to = (client, company) if turn % 2 == 0 else (company, client)
            parent = _message(sender, to, subject, body, start + timedelta(hours=2 * turn + 1), parent)
            record_message(self.hub, parent.as_bytes(), company_addresses=[COMPANY_MAIL], mailbox=COMPANY_MAIL)

    def _deal(self, index: int) -> None:
        deal_id, stage, client = self.deals[index]
        status = "won" if STAGES[stage] == "WON" else "open"
        self.hub.ingest(
            DealObservation(
                source=SourceRef(system="bitrix24", account=self.account, entity="deal", id=deal_id),
                client=client,
                title=f"Поставка оборудования №{deal_id}",
                stage=STAGES[stage],
                status=status,
                amount=Decimal(self.rng.choice([45_000, 120_000, 380_000, 1_250_000])),
                currency="RUB",
                fields={"manager": self.rng.choice(["Анна Петрова", "Олег Смирнов"])},
            )
        )

    def move_a_deal(self) -> None:
        open_deals = [i for i, (_, stage, _) in enumerate(self.deals) if stage < len(STAGES) - 1]
        if not open_deals:
            return
        index = self.rng.choice(open_deals)
        deal_id, stage, client = self.deals[index]
        self.deals[index] = (deal_id, stage + 1, client)
        self._deal(index)

    def call(self) -> None:
        from crm_hub_plugins.telephony.sandbox import generate_call

        kind = self.rng.choice(["answered", "answered", "no_answer", "busy", "outbound", "cancelled"])
        _name, phone, *_ = self.rng.choice(PEOPLE)
        digits = "".join(c for c in phone if c.isdigit())
        number = "7" + digits[1:] if digits.startswith("8") else digits
        events = generate_call(kind, rng=self.rng, extension=OPERATOR_EXTENSION, number=number)
        ringing = next(
            (i for i, e in enumerate(events) if e.get("ChannelStateDesc") == "Ringing" and e["Event"] == "Newstate"),
            len(events) - 1,
        )
        self.ami.send_events(events[: ringing + 1])  # the operator's phone rings for a few seconds: the pop-up shows
        time.sleep(self.rng.uniform(3, 7))
        self.ami.send_events(events[ringing + 1 :])

    def run(self, stop: threading.Event, every_s: float) -> None:
        while not stop.wait(every_s * self.rng.uniform(0.5, 1.5)):
            try:
                roll = self.rng.random()
                if roll < 0.55:
                    self.call()
                elif roll < 0.85:
                    self.move_a_deal()
                else:
                    # the conversation's last letter arrives now (its earlier letters, hours ago)
                    self.mail_thread(self.rng.randrange(len(PEOPLE)), datetime.now(UTC) - timedelta(hours=5, minutes=1))
            except Exception as exc:  # the demo goes on; the log says what happened
                log.warning("demo traffic step failed", error=str(exc))


@contextlib.contextmanager
def sandboxes() -> Iterator[dict[str, Any]]:
    """The Bitrix24 and amoCRM sandboxes on loopback ports and a PBX speaking AMI, stopped on exit."""
    from crm_hub_plugins.amocrm.sandbox import create_app as amocrm_app
    from crm_hub_plugins.bitrix24.sandbox import create_app as bitrix24_app
    from crm_hub_plugins.telephony.sandbox import AMISandbox
    from hub.testing import serve_asgi

    b24, amo = bitrix24_app(), amocrm_app()
    with serve_asgi(b24) as b24_url, serve_asgi(amo) as amo_url, AMISandbox(secret=secrets.token_urlsafe(12)) as ami:
        yield {"bitrix24": (b24, b24_url), "amocrm": (amo, amo_url), "ami": ami}


def demo_environment(data_dir: Path, running: dict[str, Any]) -> dict[str, str]:
    b24, b24_url = running["bitrix24"]
    amo, amo_url = running["amocrm"]
    ami = running["ami"]
    return {
        "HUB_DATA_DIR": str(data_dir),
        "HUB_DATABASE_URL": f"sqlite:///{data_dir / 'hub.db'}",
        "HUB_BITRIX24__WEBHOOK_URL": b24.state.sandbox.webhook_url(b24_url),
        "HUB_BITRIX24__APPLICATION_TOKEN": b24.state.sandbox.application_token,
        "HUB_AMOCRM__BASE_URL": amo_url,
        "HUB_AMOCRM__LONG_LIVED_TOKEN": amo.state.sandbox.long_lived_token,
        "HUB_AMOCRM__WEBHOOK_SECRET": secrets.token_urlsafe(16),
        "HUB_TELEPHONY__AMI__HOST": "127.0.0.1",
        "HUB_TELEPHONY__AMI__PORT": str(ami.port),
        "HUB_TELEPHONY__AMI__USERNAME": ami.username,
        "HUB_TELEPHONY__AMI__SECRET": ami.secret.get_secret_value(),
        "HUB_TELEPHONY__CLICK_TO_CALL": "ami",
        "HUB_TELEPHONY__EXTENSIONS": json.dumps({OPERATOR_EXTENSION: "Олег Смирнов"}, ensure_ascii=False),
    }


@click.command("demo")
@click.option("--port", type=int, default=8080, show_default=True, help="Port of the hub and its console.")
@click.option(
    "--data-dir", type=click.Path(path_type=Path), help="Where the demo database goes (default: a new temp dir)."
)
@click.option("--every", type=float, default=4.0, show_default=True, help="Seconds between two traffic events.")
@click.option("--seed", type=int, default=None, help="Random seed, for the same traffic every time.")
def demo(port: int, data_dir: Path | None, every: float, seed: int | None) -> None:
    """Run the hub with the Bitrix24, amoCRM and PBX sandboxes and live sample traffic; Ctrl-C stops it all."""
    from hub.testing import serve_asgi
    from hub.web.app import create_app

    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="hub-demo-"))
    rng = random.Random(seed)
    stop = threading.Event()
    with sandboxes() as running:
        os.environ.update(demo_environment(data_dir, running))
        hub = Hub(load_settings())
        hub.migrate()
        users = Users(hub.store)
        password = secrets.token_urlsafe(9)
        for username, role, name, extension in (
            ("admin", "admin", "Анна Петрова", None),
            ("operator", "operator", "Олег Смирнов", OPERATOR_EXTENSION),
        ):
            with contextlib.suppress(Exception):
                users.add(username, password, role=role, display_name=name, extension=extension)
        hub.start("all")
        traffic = Traffic(hub, running["ami"], rng, urlsplit(running["bitrix24"][1]).netloc)
        try:
            traffic.seed(data_dir)
            worker = threading.Thread(target=traffic.run, args=(stop, every), name="demo-traffic", daemon=True)
            worker.start()
            with serve_asgi(create_app(hub), port=port, log_level="warning") as url:
                click.echo("")
                click.echo(f"  crm-hub demo console: {url}/console/")
                click.echo(f"  log in as admin / {password}  (reports, ops, merges)")
                click.echo(f"  or operator / {password}  (extension {OPERATOR_EXTENSION}: call pop-ups, click-to-call)")
                b24_url, amo_url, ami_port = running["bitrix24"][1], running["amocrm"][1], running["ami"].port
                click.echo(f"  sandboxes: Bitrix24 {b24_url}, amoCRM {amo_url}, AMI 127.0.0.1:{ami_port}")
                click.echo(f"  data: {data_dir}    Ctrl-C stops everything")
                click.echo("")
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(1)
        finally:
            stop.set()
            hub.stop(grace=5)
    click.echo("demo stopped")
