"""What people do on the console: find clients, read the card and its timeline, merge, replay, report."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from openpyxl import load_workbook

from hub import hookimpl
from hub.cli import cli
from hub.core.events import ClientKey, DealObservation, InteractionObservation, SourceRef, TaskObservation
from hub.core.plugins import PluginHost
from hub.core.users import Users
from hub.web.app import create_app
from tests.conftest import wait_for
from tests.core.sinks import RecordingSink, SinkPlugin
from tests.web.conftest import PASSWORD, Browser, add_call, add_client


def _card_id(answer) -> int:
    assert answer.status_code == 303, answer.text[:300]
    return int(answer.headers["location"].rsplit("/", 1)[1])


def test_a_client_is_found_by_phone_in_any_format_email_inn_and_part_of_the_name(browser, console_hub):
    person = add_client(console_hub, "1", "Иванов Иван Петрович", ["+7 916 123-45-67"], ["Ivanov@Romashka.ru"])
    company = add_client(
        console_hub,
        "2",
        "ООО «Ромашка»",
        source=SourceRef(system="amocrm", account="acme.amocrm.ru", entity="company", id="9"),
        client_kind="company",
        identity={},
    )
    b = browser()
    b.login("anna")
    for typed in ("8 (916) 123-45-67", "89161234567", "+7 916 1234567", "9161234567", "IVANOV@romashka.RU"):
        assert _card_id(b.get("/console/clients", params={"q": typed})) == person, typed
    assert _card_id(b.get("/console/clients", params={"q": "петрович"})) == person  # any case, middle of the name
    assert _card_id(b.get("/console/clients", params={"q": "ромаш"})) == company


def test_a_company_is_found_by_its_inn(browser, console_hub):
    # what the Excel plugin registers with hub_register_identity_keys; this hub loads no plugin
    console_hub.policy.identity_keys["inn"] = lambda v: "".join(c for c in v if c.isdigit()) or None
    company = add_client(
        console_hub,
        "3",
        "АО «Строймаш»",
        source=SourceRef(system="excel", entity="row", id="3"),
        client_kind="company",
        identity={"inn": "7736207543"},
    )
    b = browser()
    b.login("anna")
    assert _card_id(b.get("/console/clients", params={"q": "7736207543"})) == company


def test_a_renamed_client_is_found_by_the_new_name_only(browser, console_hub):
    add_client(console_hub, "1", "Старое Имя", ["+79161234567"])
    b = browser()
    b.login("anna")
    assert b.get("/console/clients", params={"q": "старое"}).status_code == 303
    from hub.core.events import ClientObservation

    console_hub.ingest(
        ClientObservation(
            source=SourceRef(system="bitrix24", account="acme.bitrix24.ru", entity="contact", id="1"),
            name="Новое Имя",
            observed_at=datetime.now(UTC) + timedelta(seconds=5),
        )
    )
    assert b.get("/console/clients", params={"q": "новое"}).status_code == 303
    assert "Ничего не найдено." in b.get("/console/clients", params={"q": "старое"}).text


def test_the_list_pages_through_the_whole_base_and_filters_by_source_and_open_deals(browser, console_hub):
    ids = [add_client(console_hub, str(i), f"Клиент {i:02d}", [f"+7916000{i:04d}"]) for i in range(30)]
    other = add_client(
        console_hub, "x", "Из amoCRM", source=SourceRef(system="amocrm", account="a", entity="contact", id="1")
    )
    console_hub.ingest(
        DealObservation(
            source=SourceRef(system="amocrm", account="a", entity="lead", id="1"),
            client=ClientKey(client_id=other),
            title="Сделка",
            status="open",
        )
    )
    b = browser()
    b.login("anna")
    first = b.get("/console/clients").text
    assert "Из amoCRM" in first and "Клиент 29" in first and "Клиент 05" not in first
    after = first.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    second = b.get("/console/clients" + after).text
    assert "Клиент 05" in second and "Клиент 29" not in second
    only_amo = b.get("/console/clients", params={"system": "amocrm"}).text
    assert "Из amoCRM" in only_amo and "Клиент 01" not in only_amo
    with_deals = b.get("/console/clients", params={"open_deals": "true", "not_contacted": ""}).text
    assert "Из amoCRM" in with_deals and "Клиент 01" not in with_deals
    assert len(ids) == 30


def test_the_card_shows_the_timeline_newest_first_filtered_by_channel_and_paginated(browser, console_hub):
    client_id = add_client(console_hub, "1", "Мария", ["+79165550101"])
    start = datetime(2026, 11, 1, 9, tzinfo=UTC)
    for i in range(35):
        console_hub.ingest(
            InteractionObservation(
                source=SourceRef(system="bitrix24", account="acme.bitrix24.ru", entity="activity", id=str(i)),
                channel="note",
                client=ClientKey(client_id=client_id),
                occurred_at=start + timedelta(hours=i),
                subject=f"Заметка {i:02d}",
            )
        )
    add_call(console_hub, "c1", "+79165550101", occurred_at=start + timedelta(days=10))
    b = browser()
    b.login("anna")
    page = b.get(f"/console/clients/{client_id}").text
    assert page.index("Входящий звонок") < page.index("Заметка 34") < page.index("Заметка 33")
    assert "Заметка 05" not in page and "Страница 1 из 2" in page
    assert "Заметка 04" in b.get(f"/console/clients/{client_id}?p=2").text
    calls = b.get(f"/console/clients/{client_id}", params={"channel": "call"}).text
    assert "Входящий звонок" in calls and "Заметка" not in calls
    day = b.get(f"/console/clients/{client_id}", params={"from": "2026-11-01", "to": "2026-11-01"}).text
    # 1 November in Moscow (the console's default zone) ends at 21:00 UTC: notes 00 (09:00 UTC) to 11 (20:00 UTC)
    assert "Заметка 11" in day and "Заметка 00" in day and "Заметка 12" not in day
    assert "01.11.2026 12:00" in day  # 09:00 UTC shown as Moscow time
    assert 'title="bitrix24:acme.bitrix24.ru / activity / 34"' in page  # provenance on hover


def test_the_card_shows_deal_stage_history_and_open_tasks_and_links_to_the_crms(browser, console_hub):
    client_id = add_client(console_hub, "7", "Мария", ["+79165550101"])
    console_hub.ingest(
        InteractionObservation(
            source=SourceRef(system="amocrm", account="acme.amocrm.ru", entity="contact", id="70"),
            channel="note",
            client=ClientKey(client_id=client_id),
        )
    )
    deal = SourceRef(system="bitrix24", account="acme.bitrix24.ru", entity="deal", id="5")
    now = datetime.now(UTC)
    for minutes, stage in ((0, "NEW"), (5, "PREPARATION"), (9, "WON")):
        console_hub.ingest(
            DealObservation(
                source=deal,
                client=ClientKey(client_id=client_id),
                title="Поставка",
                stage=stage,
                observed_at=now - timedelta(minutes=30 - minutes),
            )
        )
    console_hub.ingest(
        TaskObservation(
            source=SourceRef(system="hub", entity="task", id="t1"),
            client=ClientKey(client_id=client_id),
            title="Перезвонить клиенту",
            due_at=now - timedelta(hours=1),
            assignee="oleg",
        )
    )
    b = browser()
    b.login("anna")
    page = b.get(f"/console/clients/{client_id}").text
    assert "NEW" in page and "PREPARATION" in page and "История стадий" in page
    assert "Перезвонить клиенту" in page and "просрочена" in page
    assert 'href="https://acme.bitrix24.ru/crm/contact/details/7/"' in page
    operator = browser()
    operator.login("oleg")
    tasks = operator.get("/console/tasks").text
    assert "Перезвонить клиенту" in tasks


def test_merge_candidates_are_merged_with_the_chosen_survivor_kept_apart_or_undone(browser, console_hub):
    first = add_client(console_hub, "1", "Анна Иванова", ["+79161111111"])
    second = add_client(
        console_hub,
        "2",
        "Иванова А.",
        ["+79162222222"],
        source=SourceRef(system="amocrm", account="a", entity="contact", id="2"),
    )
    from hub.core import schema as s

    with console_hub.store.write() as conn:
        conn.execute(
            s.merge_candidates.insert().values(
                client_id=first, other_id=second, reason="same name", status="open", created_at=datetime.now(UTC)
            )
        )
    candidates = console_hub.merge_candidates("open")
    assert len(candidates) >= 1
    b = browser()
    b.login("anna")
    page = b.get("/console/merges").text
    assert "Анна Иванова" in page and "Иванова А." in page
    pair = next(c for c in candidates if {c["client_id"], c["other_id"]} == {first, second})
    answer = b.post(f"/console/merges/{pair['id']}/merge", {"winner": second, "loser": first})
    assert answer.status_code == 303
    assert console_hub.get_client(second).merged_into is None
    assert console_hub.get_client(first).merged_into == second
    with console_hub.store.read() as conn:
        merge_id = conn.execute(s.merges.select()).first().id
    assert b.post(f"/console/merges/undo/{merge_id}").status_code == 303
    assert console_hub.get_client(first).merged_into is None
    others = [c for c in console_hub.merge_candidates("open") if c["id"] != pair["id"]]
    for c in others:
        assert b.post(f"/console/merges/{c['id']}/dismiss").status_code == 303
    assert all(c["status"] != "open" or c["id"] == pair["id"] for c in console_hub.merge_candidates("open"))


def test_dead_letters_are_filtered_and_all_matching_are_replayed(embedded):
    sink = RecordingSink("crm", "amocrm")
    sink.fail_times = 10**6
    hub = embedded.hub([("s", SinkPlugin(sink))], sink={"max_attempts": 1})
    Users(hub.store).add("root", PASSWORD, role="admin")
    hub.start("all")
    for i in range(3):
        add_client(
            hub, str(i), f"Клиент {i}", [f"+7916111000{i}"], source=SourceRef(system="excel", entity="r", id=str(i))
        )
    wait_for(lambda: len(hub.dlq.list()) == 3)
    b = Browser(create_app(hub))
    b.login("root")
    assert "remote is down" in b.get("/console/ops", params={"error": "remote"}).text
    assert "Недоставленных нет." in b.get("/console/ops", params={"error": "no such text"}).text
    sink.fail_times = 0
    answer = b.post("/console/ops/dead-letters/replay", {"queue": "crm", "error": "remote"})
    assert answer.status_code == 303 and "replayed=3" in answer.headers["location"]
    wait_for(lambda: len(sink.received) == 3)
    assert hub.dlq.list(status="open") == []


def test_reports_render_with_charts_and_export_to_xlsx_without_formulas(browser, console_hub):
    client_id = add_client(console_hub, "1", '=HYPERLINK("http://evil")', ["+79165550199"])  # never called
    now = datetime.now(UTC)
    add_call(console_hub, "in-1", "+79165550101", status="missed", operator="101", occurred_at=now - timedelta(hours=2))
    add_call(
        console_hub,
        "out-1",
        "+79165550101",
        direction="out",
        operator="101",
        occurred_at=now - timedelta(hours=1, minutes=50),
    )
    b = browser()
    b.login("anna")
    page = b.get("/console/reports/calls").text
    assert "<svg" in page and "Перезвонили ≤ 20 мин" in page
    for name in ("funnel", "new-clients", "not-contacted", "stale-deals", "overdue-tasks"):
        assert b.get(f"/console/reports/{name}").status_code == 200, name
    export = b.get("/console/reports/not-contacted.xlsx", params={"days": "1"})
    assert export.headers["content-type"].startswith("application/vnd.openxmlformats")
    rows = list(load_workbook(io.BytesIO(export.content)).active.iter_rows(values_only=True))
    assert rows[1][0] == client_id and rows[1][1] == '\'=HYPERLINK("http://evil")'
    calls = list(
        load_workbook(io.BytesIO(b.get("/console/reports/calls.xlsx").content)).active.iter_rows(values_only=True)
    )
    assert calls[1][1:6] == ("101", 2, 1, 1, 1)  # calls, answered, missed, called back within 20 minutes


def test_hub_report_prints_and_writes_xlsx_and_hub_users_and_tokens_work(embedded, monkeypatch, tmp_path):
    for key, value in embedded.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COLUMNS", "200")
    hub = embedded.hub()
    add_call(hub, "c1", "+79165550101", operator="Олег")
    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        return runner.invoke(cli, list(args), obj=PluginHost(autoload=False), input=input, catch_exceptions=False)

    assert "Олег" in run("report", "calls").output
    target = tmp_path / "calls.xlsx"
    assert "1 rows written" in run("report", "calls", "--xlsx", str(target)).output
    assert list(load_workbook(target).active.iter_rows(values_only=True))[1][1] == "Олег"
    assert run("report", "funnel", "--from", "2026-13-01").exit_code != 0
    assert "added" in run("users", "add", "vera", "--role", "admin", input="long password 1\nlong password 1\n").output
    assert "vera" in run("users", "list").output
    assert run("users", "passwd", "vera", "--password", "short").exit_code != 0
    assert "changed" in run("users", "passwd", "vera", "--password", "another long one").output
    token = run("tokens", "create", "vera").output.strip()
    assert token.startswith("hubu_") and Users(hub.store).verify_api_token(token).username == "vera"
    assert token not in run("tokens", "list").output


def test_report_pages_the_export_and_hub_report_count_days_in_the_hubs_zone(embedded, monkeypatch):
    for key, value in {**embedded.env(), "HUB_CONSOLE__TIMEZONE": "Asia/Vladivostok"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COLUMNS", "200")
    hub = embedded.hub(console={"timezone": "Asia/Vladivostok"})
    Users(hub.store).add("anna", PASSWORD, role="admin", language="en")
    add_call(hub, "night", "+79165550101", operator="Ирина", occurred_at=datetime(2026, 11, 16, 15, 30, tzinfo=UTC))
    b = Browser(create_app(hub))
    b.login("anna")
    page = b.get("/console/reports/calls", params={"from": "2026-11-17", "to": "2026-11-17"}).text
    assert "2026-11-17" in page and "Ирина" in page  # 01:30 on the 17th in Vladivostok
    assert "Ирина" not in b.get("/console/reports/calls", params={"from": "2026-11-16", "to": "2026-11-16"}).text
    export = b.get("/console/reports/calls.xlsx", params={"from": "2026-11-17", "to": "2026-11-17"})
    assert list(load_workbook(io.BytesIO(export.content)).active.iter_rows(values_only=True))[1][:2] == (
        "2026-11-17",
        "Ирина",
    )
    run = CliRunner().invoke(
        cli, ["report", "calls", "--from", "2026-11-17", "--to", "2026-11-17"], obj=PluginHost(autoload=False)
    )
    assert "2026-11-17" in run.output and "Ирина" in run.output


def test_phones_read_as_people_write_them_on_the_list_and_the_card(browser, console_hub):
    client_id = add_client(console_hub, "31", "Ковалёва Светлана", ["8 (916) 555-01-99"])
    b = browser()
    b.login("anna")
    assert "+7 916 555-01-99" in b.get("/console/clients").text
    card = b.get(f"/console/clients/{client_id}").text
    assert "+7 916 555-01-99" in card and 'name="phone" value="+79165550199"' in card  # click-to-call dials E.164


def test_the_ops_page_reads_plugin_health_as_text_and_says_when_there_are_no_errors(embedded):
    class Health:
        @hookimpl
        def hub_health(self, hub):
            return {"status": "ok", "accounts": {"acme.amocrm.ru": {"requests": 94, "status": "ok"}}}

    hub = embedded.hub([("crm", Health())])
    Users(hub.store).add("anna", PASSWORD, role="admin", language="ru")
    b = Browser(create_app(hub))
    b.login("anna")
    page = b.get("/console/ops").text
    assert "acme.amocrm.ru: requests 94, status ok" in page and "{" not in page.split("<main", 1)[1].split("</main>")[0]
    assert "Ошибок нет." in page
