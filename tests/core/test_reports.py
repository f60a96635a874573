"""Reports across systems: the funnel follows each deal's stage history; new clients count by their source."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.core import reports
from hub.core.events import ClientKey, ClientObservation, DealObservation, SourceRef

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
