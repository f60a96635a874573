"""Events reach every sink once in effect, in per-client order, never echoing back; failures end visibly."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select

from hub.core import schema as s
from hub.core.events import ClientKey, ClientObservation, InteractionObservation, SourceRef
from tests.conftest import wait_for
from tests.core.sinks import RecordingSink, SinkPlugin


def contact(i: int, system: str = "excel", **kw):
    return ClientObservation(
        source=SourceRef(system=system, account="a", entity="row", id=str(i)),
        name=f"Клиент {i}",
        phones=[f"+7916{i:07d}"],
        **kw,
    )


def outbox_ids(hub) -> list[str]:
    with hub.store.read() as conn:
        return [r.event_id for r in conn.execute(select(s.outbox.c.event_id).order_by(s.outbox.c.id))]


def test_every_event_reaches_every_sink(backend):
    one, two = RecordingSink("one", "bitrix24", "p"), RecordingSink("two", "amocrm", "q")
    hub = backend.hub([("sinks", SinkPlugin(one, two))])
    hub.start("all")
    for i in range(50):
        hub.ingest(contact(i))
    expected = outbox_ids(hub)
    assert len(expected) == 50
    wait_for(lambda: len(one.event_ids()) == 50 and len(two.event_ids()) == 50)
    assert sorted(one.event_ids()) == sorted(expected) == sorted(two.event_ids())
    wait_for(lambda: hub.relay.lag() == 0)


def test_a_sink_never_receives_what_its_own_system_caused(backend):
    b24, amo = RecordingSink("b24", "bitrix24", "acme.bitrix24.ru"), RecordingSink("amo", "amocrm", "acme")
    hub = backend.hub([("sinks", SinkPlugin(b24, amo))])
    hub.start("all")
    hub.ingest(
        ClientObservation(
            source=SourceRef(system="bitrix24", account="acme.bitrix24.ru", entity="contact", id="1"),
            name="Из Битрикса",
            phones=["+79161234567"],
        )
    )
    wait_for(lambda: len(amo.event_ids()) == 1)

    def outcomes() -> dict[str, str]:
        with hub.store.read() as conn:
            return dict(conn.execute(select(s.deliveries.c.sink, s.deliveries.c.outcome)).all())

    wait_for(lambda: len(outcomes()) == 2)
    assert b24.event_ids() == []
    assert outcomes() == {"amo": "delivered", "b24": "skipped"}


def test_events_of_one_client_are_delivered_in_order(backend):
    sink = RecordingSink("ordered", "bitrix24")
    hub = backend.hub([("sinks", SinkPlugin(sink))])
    hub.start("all")
    key = ClientKey(phones=["+79161234567"])
    for n in range(40):
        hub.ingest(
            InteractionObservation(
                source=SourceRef(system="pbx", entity="call", id=str(n)), channel="call", client=key, duration_s=n
            )
        )
        hub.ingest(contact(n + 100))  # other clients interleave
    wait_for(lambda: len(sink.event_ids()) == 81)
    versions = defaultdict(list)
    for event in sink.received:
        versions[event.client_id].append(event.version)
        if event.item is not None:
            versions[("item", event.client_id)].append(event.item.fields["duration_s"])
    for key_, seq in versions.items():
        assert seq == sorted(seq), f"{key_} out of order: {seq}"


def test_a_failing_sink_is_retried_with_backoff_then_succeeds(backend):
    sink = RecordingSink("flaky", "bitrix24")
    sink.fail_times = 3
    hub = backend.hub([("sinks", SinkPlugin(sink))], sink={"backoff_base": 0.05, "backoff_max": 0.2})
    hub.start("all")
    hub.ingest(contact(1))
    wait_for(lambda: len(sink.event_ids()) == 1)
    assert sink.calls == 4
    assert hub.dlq.list() == []


def test_after_the_last_attempt_the_event_is_dead_lettered_with_context_and_replay_delivers_it(backend):
    sink = RecordingSink("broken", "bitrix24")
    hub = backend.hub(
        [("sinks", SinkPlugin(sink))], sink={"max_attempts": 3, "backoff_base": 0.02, "backoff_max": 0.05}
    )
    sink.fail_times = 10**6
    hub.start("all")
    hub.ingest(contact(1))
    letters = wait_for(lambda: hub.dlq.list())
    (letter,) = letters
    assert letter.queue == "broken" and letter.attempts == 3 and "remote is down" in letter.error
    assert letter.context["event_type"] == "client.changed" and "traceback" in letter.context
    assert sink.event_ids() == []
    # the remote recovers; replay delivers exactly once
    sink.fail_times = 0
    hub.dlq.replay(letter.id)
    wait_for(lambda: len(sink.event_ids()) == 1)
    assert hub.dlq.list() == [] and hub.dlq.list(status="replayed")[0].id == letter.id
    wait_for(lambda: hub.relay.lag() == 0)
    assert len(sink.event_ids()) == 1


def test_one_poison_event_is_dead_lettered_alone_and_the_rest_of_its_batch_is_delivered(backend):
    sink = RecordingSink("picky", "bitrix24")
    hub = backend.hub([("sinks", SinkPlugin(sink))], sink={"max_attempts": 2, "backoff_base": 0.01})
    r = hub.ingest(contact(1))
    sink.fatal_for = {r.client_id}
    for i in range(2, 12):
        hub.ingest(contact(i))
    hub.start("all")
    wait_for(lambda: len(sink.event_ids()) == 10)
    (letter,) = wait_for(lambda: hub.dlq.list())
    assert letter.client_id == r.client_id and letter.attempts == 1  # fatal: no pointless retries


def test_a_redelivered_event_is_not_delivered_twice(backend):
    sink = RecordingSink("once", "bitrix24")
    hub = backend.hub([("sinks", SinkPlugin(sink))])
    hub.start("all")
    hub.ingest(contact(1))
    wait_for(lambda: len(sink.event_ids()) == 1)
    wait_for(lambda: hub.relay.lag() == 0)
    # publish the same outbox row again, as a relay that crashed before marking it would
    with hub.store.write() as conn:
        conn.execute(s.outbox.update().values(relayed=False))
    hub.relay.start_cursor()
    hub.relay._cursor = 0
    hub.relay.wake.set()
    wait_for(lambda: hub.relay.lag() == 0)
    with hub.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(s.deliveries)).scalar() == 1
    assert len(sink.event_ids()) == 1


def test_embedded_bus_delivers_after_a_restart_what_was_not_delivered_before(embedded):
    sink = RecordingSink("late", "bitrix24")
    hub = embedded.hub([("sinks", SinkPlugin(sink))])
    for i in range(20):
        hub.ingest(contact(i))  # the hub is not running: events wait in the outbox
    hub.store.dispose()
    sink2 = RecordingSink("late", "bitrix24")
    hub2 = embedded.hub([("sinks", SinkPlugin(sink2))])
    hub2.start("all")
    wait_for(lambda: len(sink2.event_ids()) == 20)
    wait_for(lambda: hub2.relay.lag() == 0)


def test_inbox_item_is_retried_and_then_dead_lettered_and_replayable(backend):
    calls: list[dict] = []
    state = {"fail": True}

    class InboxPlugin:
        from hub import hookimpl

        @hookimpl
        def hub_register_inbox_handlers(self, hub, register):
            def handle(payload: dict) -> None:
                calls.append(payload)
                if state["fail"]:
                    raise RuntimeError("entity not readable yet")

            register("test.hint", handle)

    hub = backend.hub([("inbox", InboxPlugin())], sink={"max_attempts": 2, "backoff_base": 0.01})
    hub.start("all")
    assert hub.inbox.put("test.hint", {"id": "42", "name": "Иван"}, dedup_key="h1")
    assert not hub.inbox.put("test.hint", {"id": "42"}, dedup_key="h1")  # the same hint is stored once
    (letter,) = wait_for(lambda: hub.dlq.list(queue="inbox:test.hint"))
    assert len(calls) == 2 and "entity not readable yet" in letter.error
    state["fail"] = False
    hub.dlq.replay(letter.id)
    wait_for(lambda: len(calls) == 3)
    assert calls[-1] == {"id": "42", "name": "Иван"}


def test_a_handled_hint_is_still_recognised_as_a_repeat_for_a_while(backend):
    calls: list[dict] = []

    class InboxPlugin:
        from hub import hookimpl

        @hookimpl
        def hub_register_inbox_handlers(self, hub, register):
            register("test.hint", calls.append)

    hub = backend.hub([("inbox", InboxPlugin())])
    hub.start("all")
    assert hub.inbox.put("test.hint", {"id": "7"}, dedup_key="event-7")
    wait_for(lambda: len(calls) == 1 and hub.inbox.pending() == 0)
    assert not hub.inbox.put("test.hint", {"id": "7"}, dedup_key="event-7")  # replayed webhook: a repeat
    hub.inbox.remember = __import__("datetime").timedelta(seconds=0)
    hub.inbox.forget_old()
    assert hub.inbox.put("test.hint", {"id": "7"}, dedup_key="event-7")  # after the window it is news again
    wait_for(lambda: len(calls) == 2)


def test_a_sink_that_times_out_is_retried(backend):
    import time as _time

    class SlowOnce(RecordingSink):
        def deliver(self, events):
            if self.calls == 0:
                self.calls += 1
                _time.sleep(1.5)  # the remote hangs on the first call
                return
            super().deliver(events)

    sink = SlowOnce("slow", "bitrix24")
    hub = backend.hub([("s", SinkPlugin(sink))], sink={"timeout": 0.3, "backoff_base": 0.05})
    hub.start("all")
    hub.ingest(contact(1))
    wait_for(lambda: len(sink.event_ids()) == 1)
    assert sink.calls == 2 and hub.dlq.list() == []
