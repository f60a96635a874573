"""Reports across systems: the funnel follows each deal's stage history; new clients count by their source."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from openpyxl import load_workbook
from sqlalchemy import update

from hub.core import reports
from hub.core import schema as s
from hub.core.events import ClientKey, ClientObservation, DealObservation, InteractionObservation, SourceRef

NOW = datetime.now(UTC)


def _deal(hub, system: str, ext: str, client_id: int, moves: list[tuple[str, str]], reason: str | None = None):
    for minutes, (stage, status) in enumerate(moves):
        hub.ingest(
            DealObservation(
                source=SourceRef(system=system, account="acme", entity="deal", id=ext),
                client=ClientKey(client_id=client_id),
                title=ext,
                stage=stage,
                status=status,
                amount=1000,
                observed_at=NOW - timedelta(days=3) + timedelta(hours=minutes),
                fields={"loss_reason": reason} if reason else {},
            )
        )


def test_the_funnel_counts_deals_that_moved_on_won_and_lost_with_reasons_across_both_crms(embedded):
    hub = embedded.hub()
    source = SourceRef(system="excel", entity="row", id="1")
    client = hub.ingest(ClientObservation(source=source, name="Клиент", phones=["+79161234567"])).client_id
    _deal(hub, "bitrix24", "1", client, [("NEW", "open"), ("OFFER", "open"), ("WON", "won")])
    _deal(hub, "bitrix24", "2", client, [("NEW", "open"), ("LOST", "lost")], reason="дорого")
    _deal(hub, "bitrix24", "3", client, [("NEW", "open")])
    _deal(hub, "amocrm", "4", client, [("Первичный контакт", "open")])
    built = reports.build(hub, "funnel", reports.Options(reports.Period.parse(None, None)))
    rows = {(r["system"], r["stage"]): r for r in built.rows}
    assert [s for (system, s) in rows if system == "bitrix24"] == ["NEW", "OFFER", "WON", "LOST"]
    assert rows[("bitrix24", "NEW")]["reached"] == 3 and rows[("bitrix24", "NEW")]["conversion"] == 66.7
    assert rows[("bitrix24", "OFFER")]["conversion"] == 100.0 and rows[("bitrix24", "WON")]["conversion"] is None
    assert rows[("amocrm", "Первичный контакт")]["now"] == 1
    outcomes = {(r["status"], r["reason"]): r["deals"] for r in built.sections[0].rows}
    assert outcomes == {("lost", "дорого"): 1, ("won", "—"): 1}


def test_new_clients_are_counted_per_week_by_the_system_they_came_from(embedded):
    hub = embedded.hub()
    hub.ingest(ClientObservation(source=SourceRef(system="excel", entity="row", id="1"), phones=["+79161234567"]))
    hub.ingest(ClientObservation(source=SourceRef(system="amocrm", account="a", entity="contact", id="2"), name="Б"))
    built = reports.build(hub, "new-clients", reports.Options(reports.Period.parse(None, None)))
    [row] = built.rows
    assert (row["amocrm"], row["excel"], row["total"]) == (1, 1, 2)


def _call(hub, call_id: str, at: datetime, **fields) -> None:
    hub.ingest(
        InteractionObservation(
            source=SourceRef(system="telephony", account="pbx", entity="call", id=call_id),
            channel="call",
            client={"phones": ["+79161234567"]},
            occurred_at=at,
            **{"direction": "in", "status": "answered", "duration_s": 60, "operator": "101", **fields},
        )
    )


def test_a_call_at_half_past_one_moscow_time_counts_on_that_moscow_day_not_the_utc_day_before(embedded):
    hub = embedded.hub()
    _call(hub, "late", datetime(2026, 11, 16, 22, 30, tzinfo=UTC))  # 01:30 on the 17th in Moscow
    _call(hub, "evening", datetime(2026, 11, 17, 20, 59, tzinfo=UTC))  # 23:59 on the 17th in Moscow
    _call(hub, "next", datetime(2026, 11, 17, 21, 0, tzinfo=UTC))  # 00:00 on the 18th in Moscow
    moscow = ZoneInfo("Europe/Moscow")
    day = reports.Period.parse("2026-11-17", "2026-11-17", zone=moscow)
    built = reports.build(hub, "calls", reports.Options(day))
    assert [(r["day"], r["calls"]) for r in built.rows] == [("2026-11-17", 2)]
    both = reports.build(hub, "calls", reports.Options(reports.Period.parse("2026-11-17", "2026-11-18", zone=moscow)))
    assert [(r["day"], r["calls"]) for r in both.rows] == [("2026-11-17", 2), ("2026-11-18", 1)]
    in_utc = reports.build(hub, "calls", reports.Options(reports.Period.parse("2026-11-16", "2026-11-17")))
    assert [(r["day"], r["calls"]) for r in in_utc.rows] == [("2026-11-16", 1), ("2026-11-17", 2)]


def test_a_client_that_came_in_on_a_monday_night_in_moscow_counts_in_that_week(embedded):
    hub = embedded.hub()
    sunday_utc = datetime(2026, 11, 15, 21, 30, tzinfo=UTC)  # Monday 16 November, 00:30 in Moscow
    client = hub.ingest(ClientObservation(source=SourceRef(system="excel", entity="row", id="1"), name="Ночной"))
    with hub.store.write() as conn:  # as if it had come in that night
        conn.execute(update(s.clients).where(s.clients.c.id == client.client_id).values(created_at=sunday_utc))
    moscow = ZoneInfo("Europe/Moscow")
    opts = reports.Options(reports.Period.parse("2026-11-01", "2026-11-30", zone=moscow))
    [row] = reports.build(hub, "new-clients", opts).rows
    assert row["week"] == "2026-11-16"
    in_utc = reports.Options(reports.Period.parse("2026-11-01", "2026-11-30"))
    [utc_row] = reports.build(hub, "new-clients", in_utc).rows
    assert utc_row["week"] == "2026-11-09"


def test_the_xlsx_export_and_the_text_table_write_times_in_the_hubs_zone(embedded):
    hub = embedded.hub()
    hub.ingest(
        DealObservation(
            source=SourceRef(system="amocrm", account="acme", entity="lead", id="7"),
            client=ClientKey(phones=["+79161234567"]),
            title="Поставка",
            stage="Переговоры",
            status="open",
            observed_at=datetime(2026, 11, 16, 22, 30, tzinfo=UTC),
        )
    )
    with hub.store.write() as conn:
        conn.execute(update(s.items).values(updated_at=datetime(2026, 11, 16, 22, 30, tzinfo=UTC)))
    moscow = ZoneInfo("Europe/Moscow")
    built = reports.build(hub, "stale-deals", reports.Options(reports.Period.parse(None, None, zone=moscow), days=1))
    rows = list(load_workbook(io.BytesIO(reports.to_xlsx(built))).active.iter_rows(values_only=True))
    assert rows[1][5] == datetime(2026, 11, 17, 1, 30)
    assert "2026-11-17 01:30" in next(iter(reports.rows_as_text(built)))
