"""Applying observations: identity, provenance, conflicts, idempotence, transactions, merges (both setups)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from hub.core import schema as s
from hub.core.errors import BadInput
from hub.core.events import (
    ClientKey,
    ClientObservation,
    DealObservation,
    InteractionObservation,
    RefObservation,
    SourceRef,
    TaskObservation,
)
from hub.core.ingest import Ingest

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def ref(system: str = "bitrix24", entity: str = "contact", id: str = "1", account: str = "acme.bitrix24.ru"):
    return SourceRef(system=system, account=account, entity=entity, id=id)


def count(hub: Any, table: Any) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)


def test_same_observation_twice_changes_nothing_and_emits_nothing(backend):
    hub = backend.hub()
    obs = ClientObservation(
        source=ref(), name="Иван Петров", phones=["8 (916) 123-45-67"], emails=["I@x.ru"], observed_at=T0
    )
    first = hub.ingest(obs)
    second = hub.ingest(obs)
    assert [e.type for e in first.events] == ["client.changed"]
    assert second.events == []
    assert count(hub, s.clients) == 1 and count(hub, s.outbox) == 1 and count(hub, s.contact_points) == 2


def test_phone_formats_resolve_to_one_client(backend):
    hub = backend.hub()
    a = hub.ingest(ClientObservation(source=ref(id="1"), name="Иван", phones=["8 (916) 123-45-67"]))
    b = hub.ingest(ClientObservation(source=ref("amocrm", id="77", account="acme"), phones=["+7 916 123 45 67"]))
    c = hub.ingest(
        InteractionObservation(
            source=ref("asterisk", "call", "c1", ""), channel="call", client=ClientKey(phones=["9161234567"])
        )
    )
    assert a.client_id == b.client_id == c.client_id
    client = hub.get_client(a.client_id)
    assert client.phones == ["+79161234567"]
    assert {(r.system, r.id) for r in client.refs} == {("bitrix24", "1"), ("amocrm", "77")}


def test_email_is_case_insensitive_in_lookup(backend):
    hub = backend.hub()
    a = hub.ingest(ClientObservation(source=ref(), name="Anna", emails=["Anna.K@Example.com"]))
    assert hub.find_clients(email="anna.k@EXAMPLE.com")[0].id == a.client_id


def test_client_is_found_by_external_ref_first(backend):
    hub = backend.hub()
    a = hub.ingest(ClientObservation(source=ref(id="1"), name="A", phones=["+79161111111"]))
    b = hub.ingest(ClientObservation(source=ref(id="2"), name="B", phones=["+79162222222"]))
    # contact 1 now carries B's phone: the ref decides, and the shared phone becomes a merge candidate
    moved = hub.ingest(ClientObservation(source=ref(id="1"), phones=["+79162222222"]))
    assert moved.client_id == a.client_id != b.client_id
    candidates = hub.merge_candidates()
    assert [(c["client_id"], c["other_id"]) for c in candidates] == [(a.client_id, b.client_id)]


def test_two_clients_sharing_a_phone_never_merge_silently(backend):
    hub = backend.hub()
    a = hub.ingest(ClientObservation(source=ref(id="1"), name="Иван", phones=["+79161234567"]))
    b = hub.ingest(ClientObservation(source=ref(id="2"), name="Мария", emails=["maria@x.ru"]))
    c = hub.ingest(ClientObservation(source=ref(id="2"), phones=["+79161234567"]))
    assert c.client_id == b.client_id
    assert count(hub, s.clients) == 2
    assert hub.merge_candidates()[0]["reason"].startswith("shared phone +79161234567")
    # an observation naming only that phone goes to the oldest client, and the ambiguity stays recorded
    d = hub.ingest(
        InteractionObservation(
            source=ref("asterisk", "call", "x", ""), channel="call", client=ClientKey(phones=["+79161234567"])
        )
    )
    assert d.client_id == a.client_id
    assert len(hub.merge_candidates()) == 1


def test_person_and_company_sharing_an_office_phone_stay_apart(backend):
    hub = backend.hub()
    company = hub.ingest(
        ClientObservation(
            source=ref(entity="company", id="5"), client_kind="company", name="ООО Ромашка", phones=["+74951234567"]
        )
    )
    person = hub.ingest(ClientObservation(source=ref(id="6"), name="Иван", phones=["+74951234567"]))
    assert company.client_id != person.client_id
    assert hub.merge_candidates() == []


def test_newest_value_wins_and_a_late_older_one_does_not_overwrite(backend):
    hub = backend.hub()
    hub.ingest(ClientObservation(source=ref(), name="Старое Имя", observed_at=T0))
    newer = hub.ingest(
        ClientObservation(
            source=ref("amocrm", id="9", account="a"),
            name="Новое Имя",
            phones=["+79160000001"],
            observed_at=T0 + timedelta(hours=1),
        )
    )
    late = hub.ingest(ClientObservation(source=ref(), name="Старое Имя 2", observed_at=T0 - timedelta(hours=1)))
    client = hub.get_client(newer.client_id)
    assert client.name == "Новое Имя"
    assert late.events == []


def test_provenance_of_each_field_is_kept(backend):
    hub = backend.hub()
    r = hub.ingest(ClientObservation(source=ref(), name="Иван", position="Директор", observed_at=T0))
    with hub.store.read() as conn:
        fields = conn.execute(select(s.clients.c.fields).where(s.clients.c.id == r.client_id)).scalar()
        point = conn.execute(select(s.contact_points.c.origin)).all()
    assert fields["position"] == {"v": "Директор", "s": "bitrix24:acme.bitrix24.ru", "t": T0.isoformat()}
    assert point == []


def test_system_of_record_beats_a_newer_value(backend):
    hub = backend.hub(system_of_record={"name": ["bitrix24"]})
    hub.ingest(ClientObservation(source=ref(), name="Из Битрикса", phones=["+79160000002"], observed_at=T0))
    r = hub.ingest(
        ClientObservation(
            source=ref("excel", "row", "1", "list.xlsx"),
            name="Из Excel",
            phones=["+79160000002"],
            position="Менеджер",
            observed_at=T0 + timedelta(days=1),
        )
    )
    client = hub.get_client(r.client_id)
    assert client.name == "Из Битрикса"
    assert client.fields["position"] == "Менеджер"


def test_cyrillic_names_are_searchable_case_insensitively(backend):
    hub = backend.hub()
    hub.ingest(ClientObservation(source=ref(), name="Ёлкин Пётр Семёнович", phones=["+79161234567"]))
    assert [c.name for c in hub.find_clients(q="пётр")] == ["Ёлкин Пётр Семёнович"]
    assert [c.name for c in hub.find_clients(q="ЁЛКИН")] == ["Ёлкин Пётр Семёнович"]
    assert hub.find_clients(q="100%_") == []


def test_the_same_call_twice_is_stored_once(backend):
    hub = backend.hub()
    call = InteractionObservation(
        source=ref("asterisk", "call", "1700000000.42", "pbx"),
        channel="call",
        client=ClientKey(phones=["+79161234567"]),
        direction="in",
        status="answered",
        duration_s=42,
        occurred_at=T0,
    )
    first = hub.ingest(call)
    again = hub.ingest(call)
    assert [e.type for e in first.events] == ["client.changed", "interaction.added"]
    assert again.events == []
    assert count(hub, s.items) == 1
    assert hub.timeline(first.client_id)[0].fields["duration_s"] == 42


def test_a_later_event_of_the_same_call_updates_its_one_entry(backend):
    hub = backend.hub()
    key = ClientKey(phones=["+79161234567"])
    src = ref("mango", "call", "entry-1", "vpbx")
    hub.ingest(InteractionObservation(source=src, channel="call", client=key, status="ringing", observed_at=T0))
    r = hub.ingest(
        InteractionObservation(
            source=src,
            channel="call",
            client=key,
            status="answered",
            duration_s=30,
            observed_at=T0 + timedelta(seconds=40),
        )
    )
    assert [e.type for e in r.events] == ["interaction.changed"]
    (item,) = hub.timeline(r.client_id)
    assert item.fields["status"] == "answered" and item.fields["duration_s"] == 30
    # a repeated, older state arriving late changes nothing
    late = hub.ingest(
        InteractionObservation(
            source=src, channel="call", client=key, status="ringing", observed_at=T0 + timedelta(seconds=1)
        )
    )
    assert late.events == [] and hub.timeline(r.client_id)[0].fields["status"] == "answered"


def test_deal_keeps_its_stage_history(backend):
    hub = backend.hub()
    key = ClientKey(ref=ref(id="1"), phones=["+79161234567"], name="Иван")
    src = ref(entity="deal", id="10")
    hub.ingest(
        DealObservation(
            source=src,
            client=key,
            title="Поставка",
            stage="NEW",
            amount=Decimal("1500.50"),
            currency="RUB",
            observed_at=T0,
        )
    )
    r = hub.ingest(DealObservation(source=src, client=key, stage="WON", status="won", observed_at=T0 + timedelta(1)))
    deal = hub.timeline(r.client_id, kinds=["deal"])[0]
    assert deal.fields["stage"] == "WON" and deal.fields["amount"] == "1500.50"
    assert [h["stage"] for h in deal.fields["stages"]] == ["NEW", "WON"]


def test_task_for_unknown_number_creates_the_client(backend):
    hub = backend.hub()
    r = hub.ingest(
        TaskObservation(
            source=ref("asterisk", "callback", "c9", ""),
            title="Перезвонить",
            client=ClientKey(phones=["+79169998877"]),
            due_at=T0,
        )
    )
    assert hub.find_clients(phone="89169998877")[0].id == r.client_id


def test_unknown_client_is_refused_when_creating_is_not_allowed(backend):
    hub = backend.hub(create_unknown_clients=False)
    with pytest.raises(BadInput, match="no client matches"):
        hub.ingest(
            InteractionObservation(
                source=ref("asterisk", "call", "z", ""), channel="call", client=ClientKey(phones=["+79169998877"])
            )
        )
    assert count(hub, s.clients) == 0 and count(hub, s.items) == 0


def test_invalid_phone_stores_nothing_in_strict_mode_and_is_reported_in_lenient_mode(backend):
    hub = backend.hub()
    bad = ClientObservation(source=ref(), name="Иван", phones=["12345"], emails=["ivan@x.ru"])
    with pytest.raises(BadInput, match="phone"):
        hub.ingest(bad)
    assert count(hub, s.clients) == 0
    result = hub.ingest(bad, strict=False)
    assert result.warnings and hub.get_client(result.client_id).emails == ["ivan@x.ru"]


def test_record_timeline_and_outbox_commit_together_or_not_at_all(backend, monkeypatch):
    hub = backend.hub()

    def broken_emit(self: Ingest, event: Any) -> None:
        raise RuntimeError("disk full while writing the outbox")

    monkeypatch.setattr(Ingest, "_emit", broken_emit)
    with pytest.raises(RuntimeError):
        hub.ingest(
            InteractionObservation(
                source=ref("asterisk", "call", "1", ""), channel="call", client=ClientKey(phones=["+79161234567"])
            )
        )
    assert (count(hub, s.clients), count(hub, s.items), count(hub, s.refs), count(hub, s.outbox)) == (0, 0, 0, 0)


def test_ingest_many_skips_a_bad_observation_alone(backend):
    hub = backend.hub()
    good1 = ClientObservation(source=ref(id="1"), name="A", phones=["+79160000001"])
    bad = ClientObservation(source=ref(id="2"), name="B", phones=["nope"])
    good2 = ClientObservation(source=ref(id="3"), name="C", phones=["+79160000003"])
    results = hub.ingest_many([good1, bad, good2])
    assert isinstance(results[1], BadInput)
    assert count(hub, s.clients) == 2 and count(hub, s.outbox) == 2


def test_ref_link_attaches_an_id_and_emits_nothing(backend):
    hub = backend.hub()
    r = hub.ingest(ClientObservation(source=ref("excel", "row", "1", "f.xlsx"), name="A", phones=["+79160000001"]))
    linked = hub.ingest(RefObservation(source=ref(id="500"), target="client", target_id=r.client_id))
    assert linked.events == []
    assert hub.find_clients(ref=ref(id="500"))[0].id == r.client_id
    # the portal's own event about that contact, carrying what the hub wrote, is an echo: no change, no event
    echo = hub.ingest(ClientObservation(source=ref(id="500"), name="A", phones=["8 916 000-00-01"]))
    assert echo.events == [] and echo.client_id == r.client_id


def test_merge_moves_everything_and_undo_restores_both(backend):
    hub = backend.hub()
    a = hub.ingest(ClientObservation(source=ref(id="1"), name="Иван", phones=["+79161111111"]))
    b = hub.ingest(
        ClientObservation(source=ref("amocrm", id="2", account="x"), name="Ваня", position="CEO", emails=["vanya@x.ru"])
    )
    hub.ingest(
        InteractionObservation(
            source=ref("mail", "message", "m1", ""),
            channel="email",
            client=ClientKey(client_id=b.client_id),
            subject="Счёт",
        )
    )
    merge_id = hub.merge(a.client_id, b.client_id)
    merged = hub.get_client(a.client_id)
    assert merged.emails == ["vanya@x.ru"] and merged.fields["position"] == "CEO" and merged.name == "Иван"
    assert len(merged.refs) == 2 and len(hub.timeline(a.client_id)) == 1
    assert hub.get_client(b.client_id).merged_into == a.client_id
    assert hub.find_clients(email="vanya@x.ru")[0].id == a.client_id
    # observations for the merged-away ref now land on the winner
    again = hub.ingest(ClientObservation(source=ref("amocrm", id="2", account="x"), position="CEO"))
    assert again.client_id == a.client_id and again.events == []

    hub.unmerge(merge_id)
    a_after, b_after = hub.get_client(a.client_id), hub.get_client(b.client_id)
    assert a_after.emails == [] and "position" not in a_after.fields and len(a_after.refs) == 1
    assert b_after.merged_into is None and b_after.emails == ["vanya@x.ru"]
    assert len(hub.timeline(b.client_id)) == 1 and hub.timeline(a.client_id) == []
    with hub.store.read() as conn:
        types = [r.type for r in conn.execute(select(s.outbox.c.type).order_by(s.outbox.c.id))]
    assert types[-3:] == ["clients.merged", "client.changed", "client.changed"]


def test_merge_refuses_nonsense(backend):
    hub = backend.hub()
    a = hub.ingest(ClientObservation(source=ref(id="1"), name="A", phones=["+79161111111"]))
    with pytest.raises(BadInput):
        hub.merge(a.client_id, a.client_id)
    with pytest.raises(Exception, match="does not exist"):
        hub.merge(a.client_id, 999)


def test_company_link_resolves_or_creates_the_company(backend):
    hub = backend.hub()
    r = hub.ingest(
        ClientObservation(
            source=ref(id="1"),
            name="Иван",
            phones=["+79161111111"],
            company=ClientKey(name="ООО Ромашка", kind="company", ref=ref(entity="company", id="3")),
        )
    )
    person = hub.get_client(r.client_id)
    company = hub.get_client(person.company_id)
    assert company.kind == "company" and company.name == "ООО Ромашка"


def test_clients_and_items_stream_page_by_page_with_filters(backend):
    hub = backend.hub()
    for i in range(25):
        hub.ingest(
            InteractionObservation(
                source=ref("pbx", "call", str(i), ""),
                channel="call" if i % 2 else "email",
                client=ClientKey(phones=[f"+7916{i:07d}"]),
                occurred_at=T0 + timedelta(i),
            )
        )
    assert len(list(hub.iter_clients(page=7))) == 25
    calls = list(hub.iter_items(channel="call", page=4))
    assert len(calls) == 12 and all(c.channel == "call" for c in calls)
    assert len(list(hub.iter_items(since=T0 + timedelta(20), page=3))) == 5
    hub.ingest(RefObservation(source=ref(id="900"), target="client", target_id=1))
    assert [c.id for c in hub.iter_clients(system="bitrix24")] == [1]


def test_a_timeline_item_is_found_by_its_external_ref(backend):
    hub = backend.hub()
    src = ref("amocrm", "note", "55", "acme")
    r = hub.ingest(
        InteractionObservation(
            source=src, channel="note", client=ClientKey(phones=["+79161234567"]), body="Позвонить завтра"
        )
    )
    item = hub.find_item(src)
    assert item is not None and item.id == r.item_id and item.fields["body"] == "Позвонить завтра"
    assert hub.find_item(ref("amocrm", "note", "56", "acme")) is None
    assert hub.get_item(r.item_id).client_id == r.client_id


def test_a_batch_finds_what_the_database_holds_and_what_its_own_earlier_observations_made(backend):
    hub = backend.hub()
    known = hub.ingest(ClientObservation(source=ref(id="1"), name="Иван", phones=["+79161111111"]))
    calls = [
        InteractionObservation(
            source=ref("asterisk", "call", f"c{i}", ""), channel="call", client=ClientKey(phones=["8 916 111-11-11"])
        )
        for i in range(3)
    ]
    results = hub.ingest_many(
        [
            ClientObservation(source=ref(id="1"), name="Иван", position="CEO"),  # the known ref, in the database
            *calls,
            ClientObservation(source=ref(id="2"), name="Пётр", emails=["Petr@x.ru"]),  # new in this batch
            InteractionObservation(
                source=ref("mail", "message", "m1", ""), channel="email", client=ClientKey(emails=["petr@X.ru"])
            ),
            ClientObservation(source=ref(id="2"), name="Пётр", phones=["+79162222222"]),  # its ref, made just now
            calls[0],  # the same call again in the same batch: stored once
        ]
    )
    ids = [r.client_id for r in results if not isinstance(r, BadInput)]
    assert ids[:4] == [known.client_id] * 4
    assert ids[4] == ids[5] == ids[6] != known.client_id
    assert results[7].events == []  # type: ignore[union-attr]
    assert count(hub, s.clients) == 2 and count(hub, s.items) == 4
    assert hub.get_client(ids[4]).phones == ["+79162222222"] and hub.get_client(ids[4]).emails == ["petr@x.ru"]


def test_a_batch_larger_than_one_lookup_resolves_every_observation(backend):
    hub = backend.hub()
    first = hub.ingest_many([ClientObservation(source=ref(id=str(i)), phones=[f"+7916{i:07d}"]) for i in range(1200)])
    calls = [
        InteractionObservation(
            source=ref("asterisk", "call", f"c{i}", ""), channel="call", client=ClientKey(phones=[f"8916{i:07d}"])
        )
        for i in range(1200)
    ]
    second = hub.ingest_many(calls)
    assert [r.client_id for r in second] == [r.client_id for r in first]  # type: ignore[union-attr]
    assert count(hub, s.clients) == 1200
