"""The AMI listener inside a running hub, against the AMI sandbox over loopback TCP, on both setups."""

from __future__ import annotations

import random

from crm_hub_plugins.telephony.sandbox import AMISandbox, generate_call
from hub.core.events import ClientObservation, SourceRef
from tests.conftest import wait_for
from tests.core.sinks import RecordingSink, SinkPlugin

from .conftest import ami_session, ami_settings, calls_on_timeline, tasks_on_timeline


def test_each_call_is_one_timeline_entry_linked_to_the_caller(telephony_hub) -> None:
    rng = random.Random(1)
    with AMISandbox() as sandbox:
        hub = telephony_hub(**ami_settings(sandbox), extensions__101="Анна")
        hub.ingest(ClientObservation(source=SourceRef(system="crm", entity="contact", id="1"), name="Пётр Иванов",
                                     phones=["+7 916 000-00-01"]))  # fmt: skip
        hub.start("all")
        assert sandbox.wait_for_login()
        sandbox.send_events(generate_call("answered", rng=rng, number="79160000001"))
        sandbox.send_events(generate_call("outbound", rng=rng, number="79160000002"))
        sandbox.send_events(ami_session("originate_ctd-account-world"))  # an international number
        calls = wait_for(lambda: (c := calls_on_timeline(hub)) and len(c) == 3 and c)
    by_number = {c.fields["number_raw"]: c for c in calls}
    known = by_number["79160000001"]
    assert known.client_id == hub.find_clients(phone="+79160000001")[0].id
    assert (known.fields["direction"], known.fields["status"], known.fields["operator"]) == ("in", "answered", "Анна")
    assert known.source.system == "asterisk" and known.source.entity == "call"
    assert hub.find_clients(phone="+79160000002"), "an unknown number becomes a client"
    assert hub.find_clients(phone="+31260010001"), "international numbers are kept in E.164"
    assert tasks_on_timeline(hub) == [], "answered and outbound calls need no call-back"


def test_drop_mid_call_and_replay_after_reconnect_store_each_call_once(telephony_hub) -> None:
    rng = random.Random(2)
    first, second = generate_call("answered", rng=rng), generate_call("queue", rng=rng)
    with AMISandbox() as sandbox:
        hub = telephony_hub(**ami_settings(sandbox))
        hub.start("all")
        assert sandbox.wait_for_login()
        sandbox.send_events(first, drop_after=len(first) // 2)  # the PBX drops the connection mid-call
        assert sandbox.wait_for_login(2), "the listener did not reconnect"
        sandbox.send_events(first + second + first)  # and replays everything after the reconnect
        wait_for(lambda: sandbox.pending() == 0 and len(calls_on_timeline(hub)) == 2)
        hub.wait_idle()
        assert len(calls_on_timeline(hub)) == 2
        health = hub.health()["plugins"]["telephony"]
        assert health["ami"]["connects"] >= 2 and health["ami"]["connected"]


def test_missed_inbound_call_creates_a_callback_task_replicated_with_the_call(telephony_hub) -> None:
    crm = RecordingSink("crm", "bitrix24", "acme.bitrix24.ru")
    with AMISandbox() as sandbox:
        hub = telephony_hub(**ami_settings(sandbox), plugins=[("sinks", SinkPlugin(crm))], extensions__101="Анна")
        hub.start("all")
        assert sandbox.wait_for_login()
        sandbox.send_events(generate_call("no_answer", rng=random.Random(3), number="79160000003"))
        [task] = wait_for(lambda: tasks_on_timeline(hub))
        wait_for(lambda: {"interaction.added", "task.changed"} <= {e.type for e in crm.received})
    [call] = calls_on_timeline(hub)
    assert call.fields["status"] == "no_answer" and task.client_id == call.client_id
    assert task.fields["assignee"] == "Анна" and task.source.entity == "callback"
    replicated = next(e for e in crm.received if e.type == "interaction.added")
    assert replicated.item is not None and replicated.item.source.system == "asterisk"
    assert "+79160000003" in replicated.client.phones


def test_garbage_on_the_ami_port_is_skipped_and_calls_still_arrive(telephony_hub) -> None:
    with AMISandbox() as sandbox:
        hub = telephony_hub(**ami_settings(sandbox))
        hub.start("all")
        assert sandbox.wait_for_login()
        sandbox.send_events([{"Garbage line without a key": ""}, {"Event": "SomethingNew", "Linkedid": "x"}])
        sandbox.send_events(generate_call("busy", rng=random.Random(4), number="79160000004"))
        sandbox.send_events(generate_call("answered", rng=random.Random(5), number="Anonymous"))
        wait_for(lambda: len(calls_on_timeline(hub)) == 1 and sandbox.pending() == 0)
        assert hub.health()["plugins"]["telephony"]["status"] == "ok"
