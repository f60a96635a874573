"""``ClientKey.name_if_empty``: a weak name (a PBX caller id, an e-mail display name) names a new or nameless
client and gives way to any other source; it never renames a client that has a name (both setups)."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.core.events import ClientKey, ClientObservation, InteractionObservation, SourceRef

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def call(n: int, phone: str, name: str | None, *, weak: bool = True) -> InteractionObservation:
    return InteractionObservation(
        source=SourceRef(system="asterisk", account="pbx", entity="call", id=f"call-{n}"),
        channel="call",
        client=ClientKey(phones=[phone], name=name, name_if_empty=weak),
        direction="in",
        occurred_at=T0,
        observed_at=T0,
    )


def crm(phone: str, name: str, at: datetime = T0) -> ClientObservation:
    return ClientObservation(
        source=SourceRef(system="bitrix24", account="acme", entity="contact", id=phone),
        name=name,
        phones=[phone],
        observed_at=at,
    )


def test_weak_name_names_a_new_client(backend) -> None:
    hub = backend.hub()
    hub.ingest(call(1, "+79160000001", "Пётр Иванов"))
    [client] = hub.find_clients(phone="+79160000001")
    assert client.name == "Пётр Иванов"


def test_weak_name_never_renames_a_named_client(backend) -> None:
    hub = backend.hub()
    hub.ingest(crm("+79160000002", "Анна Смирнова"))
    result = hub.ingest(call(2, "+79160000002", "АТС Анна"))
    assert hub.find_clients(phone="+79160000002")[0].name == "Анна Смирнова"
    assert [e.type for e in result.events] == ["interaction.added"], "no client change at all"


def test_weak_name_fills_a_nameless_client_once(backend) -> None:
    hub = backend.hub()
    hub.ingest(call(3, "+79160000003", None))
    assert hub.find_clients(phone="+79160000003")[0].name is None
    filled = hub.ingest(call(4, "+79160000003", "Ольга"))
    assert "client.changed" in [e.type for e in filled.events]
    hub.ingest(call(5, "+79160000003", "Другая"))
    assert hub.find_clients(phone="+79160000003")[0].name == "Ольга"


def test_any_other_source_outranks_a_weak_name_even_with_an_older_observation(backend) -> None:
    hub = backend.hub()
    hub.ingest(call(6, "+79160000004", "Петя"))
    hub.ingest(crm("+79160000004", "Пётр Сергеевич Иванов", at=datetime(2020, 1, 1, tzinfo=UTC)))
    assert hub.find_clients(phone="+79160000004")[0].name == "Пётр Сергеевич Иванов"


def test_a_name_without_the_flag_still_names_only_new_clients(backend) -> None:
    hub = backend.hub()
    hub.ingest(call(7, "+79160000005", None))
    hub.ingest(call(8, "+79160000005", "Имя", weak=False))
    assert hub.find_clients(phone="+79160000005")[0].name is None
